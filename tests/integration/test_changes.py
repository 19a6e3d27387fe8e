"""What happens to messages already saved when the server changes them:
flags changed on the server are followed (CONDSTORE CHANGEDSINCE; Maildir
renames the copy), expunged messages stay in the backup and are listed in
the state, and neither costs a body fetch."""

import json
import os
import re

from harness import TestCase, backup, saved_messages, simple_message, workdir
import harness


def state_folder_lines(dest, raw):
    """The lines of folder `raw`'s block in DEST/.imapsnap/state."""
    with open(os.path.join(dest, ".imapsnap", "state")) as f:
        text = f.read()
    m = re.search(r'^folder "%s".*?^end$' % re.escape(raw), text,
                  re.M | re.S)
    assert m, "no block for %s in the state:\n%s" % (raw, text)
    return m.group(0).splitlines()


class Changes(TestCase):
    def setUp(self):
        self.user = harness.SERVER.new_user("chg")
        with self.user.oracle() as o:
            for i in range(6):
                o.append("INBOX", simple_message("m %d" % i),
                         ("\\Seen",) if i % 2 else (), date=1600000000 + i)
        self.dest = workdir("changes")
        self.assertExit(backup(self.user, self.dest), 0)
        self.before = {u: s.read() for u, s in
                       saved_messages(os.path.join(self.dest,
                                                   "INBOX")).items()}
        self.assertEqual(sorted(self.before), [1, 2, 3, 4, 5, 6])

    def change_on_server(self):
        with self.user.oracle() as o:
            m = o.m
            o._ok(m.select("INBOX"), "SELECT")
            o._ok(m.uid("STORE", "2", "+FLAGS", "(\\Flagged \\Answered)"),
                  "STORE")
            o._ok(m.uid("STORE", "4", "-FLAGS", "(\\Seen)"), "STORE")
            o._ok(m.uid("STORE", "5", "+FLAGS", "(\\Deleted)"), "STORE")
            o._ok(m.expunge(), "EXPUNGE")

    def test_flags_followed_expunged_kept_no_body_fetched(self):
        self.change_on_server()
        mark = harness.SERVER.log_mark()
        run = backup(self.user, self.dest)
        self.assertExit(run, 0)
        # (the window may also hold the end of the session that changed
        # the flags: Dovecot logs it a moment after the client left)
        self.assertEqual(sum(n for n, _ in mark.sessions(self.user)), 0,
                         "a run after flag changes fetched bodies")

        saved = saved_messages(os.path.join(self.dest, "INBOX"))
        self.assertEqual(sorted(saved), [1, 2, 3, 4, 5, 6],
                         "an expunged message left the backup")
        for uid, s in saved.items():
            self.assertEqual(s.read(), self.before[uid], "UID %d" % uid)
        with self.user.oracle() as o:
            server = o.messages("INBOX")
        self.assertEqual(sorted(server), [1, 2, 3, 4, 6])
        for uid, msg in server.items():
            self.assertEqual(saved[uid].flags, harness.maildir_flags(
                msg.flags), "flags of UID %d" % uid)

        lines = state_folder_lines(self.dest, "INBOX")
        self.assertIn("expunged 5", lines)
        self.assertRegex(run.stderr.decode(), r"\b2 with new flags\b")
        self.assertRegex(run.stderr.decode(), r"\b1 gone from the server\b")

    def test_nothing_changed_costs_nothing(self):
        mark = harness.SERVER.log_mark()
        run = backup(self.user, self.dest)
        self.assertExit(run, 0)
        self.assertEqual(sum(n for n, _ in mark.sessions(self.user)), 0)
        lines = state_folder_lines(self.dest, "INBOX")
        self.assertFalse([ln for ln in lines if ln.startswith("expunged")])


class ChangesMbox(TestCase):
    """mbox cannot change what it wrote: the manifest records the new
    flags, and they are what verify reads and restore would set."""

    def test_flags_recorded_in_manifest(self):
        user = harness.SERVER.new_user("chgmbox")
        with user.oracle() as o:
            for i in range(3):
                o.append("INBOX", simple_message("m %d" % i),
                         date=1600000000 + i)
        dest = workdir("changes-mbox")
        self.assertExit(backup(user, dest, "--format", "mbox"), 0)
        with user.oracle() as o:
            o._ok(o.m.select("INBOX"), "SELECT")
            o._ok(o.m.uid("STORE", "2", "+FLAGS", "(\\Flagged $Work)"),
                  "STORE")
        run = backup(user, dest, "--format", "mbox")
        self.assertExit(run, 0)
        self.assertRegex(run.stderr.decode(), r"\b1 with new flags\b")
        mdir = os.path.join(dest, ".imapsnap", "manifest")
        lines = []
        for name in sorted(os.listdir(mdir)):
            if name.endswith(".jsonl"):
                with open(os.path.join(mdir, name)) as f:
                    lines += [json.loads(ln) for ln in f if ln.strip()]
        flags = [ln for ln in lines if ln["type"] == "flags"]
        self.assertEqual(len(flags), 1, flags)
        self.assertEqual(flags[0]["uid"], 2)
        self.assertEqual(flags[0]["folder"], "INBOX")
        self.assertEqual(sorted(flags[0]["flags"]),
                         sorted(["\\Flagged", "$Work"]))
        self.assertExit(harness.imapsnap("verify", dest), 0)


# --- a server that ignores CHANGEDSINCE (tests/fakeimap) ---------------------

import sys  # noqa: E402
sys.path.insert(0, os.path.join(harness.ROOT, "tests", "fakeimap"))
from fakeimap import FakeIMAP, Mailbox, Script, make_messages  # noqa: E402


class IgnoresChangedSince(Script):
    """CONDSTORE without honouring CHANGEDSINCE: every message's flags come
    back, each with its own MODSEQ (as the Gmail-like test server does)."""

    capabilities = b"IMAP4rev1 LITERAL+ AUTH=PLAIN SASL-IR CONDSTORE"
    highestmodseq = 10

    def __init__(self, **kw):
        Script.__init__(self, **kw)
        self.modseq = {}

    def examine(self, c, tag, name, rest):
        mb = self.mailbox(name)
        if mb is not None:
            c.send(b"* OK [HIGHESTMODSEQ %d] modseq\r\n" % self.highestmodseq)
        Script.examine(self, c, tag, name, rest)

    def list_uids(self, c, tag, uids, items):
        if b"FLAGS" not in items.upper():
            return Script.list_uids(self, c, tag, uids, items)
        mb = c.selected
        for n, m in enumerate(mb.msgs if mb else [], 1):
            if m.uid in uids:
                c.send(b"* %d FETCH (UID %d FLAGS (%s) MODSEQ (%d))\r\n" % (
                    n, m.uid, b" ".join(m.flags), self.modseq.get(m.uid, 5)))
        c.send(tag + b" OK FETCH done\r\n")


class ChangedSinceIgnored(TestCase):
    def test_only_real_changes_count(self):
        """One message's flags change; the server answers CHANGEDSINCE
        with all 40: the run counts one, not 40."""
        msgs = make_messages(40)
        script = IgnoresChangedSince(mailboxes=[Mailbox(b"INBOX", msgs)])
        dest = os.path.join(workdir("changedsince"), "backup")
        with FakeIMAP(script) as srv:
            args = ["backup", "--tls", "none", "--json", "--format", "mbox",
                    srv.url(), dest]
            run = harness.imapsnap(*args, password="secret")
            self.assertExit(run, 0)
            msgs[7].flags = (b"\\Seen", b"\\Flagged")
            script.modseq[msgs[7].uid] = 11
            script.highestmodseq = 11
            run = harness.imapsnap(*args, password="secret")
        self.assertExit(run, 0)
        self.assertEqual(json.loads(run.stdout)["flags_changed"], 1, run)
        lines = []
        mdir = os.path.join(dest, ".imapsnap", "manifest")
        for name in sorted(os.listdir(mdir)):
            if name.endswith(".jsonl"):
                with open(os.path.join(mdir, name)) as f:
                    lines += [json.loads(x) for x in f if x.strip()]
        flags = [x for x in lines if x.get("type") == "flags"]
        self.assertEqual([x["uid"] for x in flags], [msgs[7].uid])
