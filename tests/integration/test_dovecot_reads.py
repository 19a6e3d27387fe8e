"""A second Dovecot serves a Maildir backup read-only with the
mail_location docs/maildir.md gives: imaplib sees every folder (nested,
UTF-8, empty), every message with its bytes and system flags, no
.imapsnap folder, and nothing in the backup changes.  Keywords are not
served (docs/maildir.md says why); they are in the manifest."""

import hashlib
import imaplib
import json
import os
import shutil
import tempfile

from harness import TestCase, backup, imapsnap, simple_message, workdir
import harness
from second_dovecot import SecondDovecot

SYSTEM = {"\\seen", "\\answered", "\\flagged", "\\deleted", "\\draft"}


def location(dest, control):
    """The mail_location of docs/maildir.md."""
    return ("maildir:%s:LAYOUT=fs:INBOX=%s/INBOX:UTF-8:INDEX=MEMORY:"
            "CONTROL=%s/%%u:SUBSCRIPTIONS=.imapsnap" % (dest, dest, control))


def content(oracle):
    """{folder: sorted [(sha256, system flags)]} of every selectable
    folder."""
    out = {}
    for f in oracle.folders():
        if not f.selectable:
            continue
        msgs = oracle.messages(f)
        out[f.name] = sorted(
            (hashlib.sha256(oracle.body(u)).hexdigest(),
             tuple(sorted(x.lower() for x in m.flags if x.lower() in SYSTEM)))
            for u, m in msgs.items())
    return out


def snapshot(dest):
    out = {}
    for d, dirs, files in os.walk(dest):
        for n in dirs + files:
            p = os.path.join(d, n)
            st = os.lstat(p)
            out[os.path.relpath(p, dest)] = (st.st_mode, st.st_size,
                                             st.st_mtime_ns)
    return out


class DovecotReadsABackup(TestCase):
    def test_second_dovecot_serves_the_backup_read_only(self):
        user = harness.SERVER.new_user("dvr")
        with user.oracle() as o:
            for name in ("Work", "Archive", "Archive/2019", "INBOX/Sub",
                         "Empty", harness.mutf7_encode("Été")):
                o.create(name)
            o.append("INBOX", simple_message("one"),
                     ("\\Seen", "$Label1", "Junk"), date=1600000000)
            o.append("INBOX", simple_message("two"),
                     ("\\Flagged", "$MDNSent"), date=1600000001)
            o.append("Work", simple_message("three"),
                     ("\\Answered", "NonJunk"), date=1600000002)
            o.append("Archive/2019", simple_message("four"),
                     ("\\Seen", "\\Deleted"), date=1600000003)
            o.append(harness.mutf7_encode("Été"), simple_message("five"),
                     ("\\Draft",), date=1600000004)
            o.append("INBOX/Sub", simple_message("six"), (),
                     date=1600000005)
            want = content(o)
        dest = workdir("dvr")
        self.assertExit(backup(user, dest), 0)
        # Readable by the user Dovecot's mail processes run as, writable
        # by nobody but the backup's owner.
        for d, dirs, files in os.walk(dest):
            os.chmod(d, 0o755)
            for f in files:
                os.chmod(os.path.join(d, f), 0o644)
        control = tempfile.mkdtemp(prefix="imapsnap-dvr-control-")
        os.chmod(control, 0o755)
        shutil.chown(control, *harness.SERVER.mail_owner)
        before = snapshot(dest)
        srv = SecondDovecot.start(harness.SERVER,
                                  mail_location=location(dest, control))
        try:
            with harness.Oracle(srv, user.name, user.password) as o:
                names = [f.name for f in o.folders()]
                got = content(o)
                # SELECT, not EXAMINE: the folder is read-only all
                # the same.
                with self.assertRaises(imaplib.IMAP4.readonly):
                    o.m.select("INBOX")
        finally:
            srv.stop()
        self.assertNotIn(".imapsnap", " ".join(names))
        self.assertEqual(sorted(got), sorted(want))
        self.assertEqual(got, want)
        self.assertIn(harness.mutf7_encode("Été"), got)
        self.assertEqual(got["Empty"], [])
        # Nothing written into the backup: Dovecot keeps its uidlist in
        # the control directory and its indexes in memory.
        self.assertEqual(snapshot(dest), before)
        self.assertExit(imapsnap("verify", dest), 0)
        # The keywords Dovecot does not serve are in the manifest.
        mdir = os.path.join(dest, ".imapsnap", "manifest")
        (run,) = [n for n in os.listdir(mdir) if n.endswith(".jsonl")]
        flags = {ln["uid"]: ln["flags"] for ln in map(
            json.loads, open(os.path.join(mdir, run), "rb"))
            if ln["type"] == "message" and ln["folder"] == "INBOX"}
        self.assertEqual(sorted(flags[1]), ["$Label1", "Junk", "\\Seen"])
        self.assertEqual(sorted(flags[2]), ["$MDNSent", "\\Flagged"])
        shutil.rmtree(control, ignore_errors=True)
