"""Backing up a Gmail-like account (tests/gmail: hoodiecrow-imap with
X-GM-EXT-1; every message in "[Gmail]/All Mail" and in one folder per
label), checked against what that server holds through imaplib.

A Gmail account shows each message once per label and once more in All
Mail; the backup keeps one copy per X-GM-MSGID and records its id, thread
and labels in the manifest, in every format, and follows label changes."""

import csv
import glob
import hashlib
import json
import os
import re

from harness import TestCase, imapsnap, simple_message, workdir
import harness
from gmail_server import GmailServer, gmail_corpus

SERVER = None
MESSAGES = LABELS = None


def setUpModule():
    global SERVER, MESSAGES, LABELS
    MESSAGES, LABELS = gmail_corpus(120)
    SERVER = GmailServer.start(harness.SERVER, MESSAGES, LABELS)


def tearDownModule():
    if SERVER:
        SERVER.stop()


def saved_files(dest):
    """[sha256] of every message file under DEST (Maildir)."""
    out = []
    for d, dirs, files in os.walk(dest):
        dirs[:] = [x for x in dirs if x != ".imapsnap"]
        if os.path.basename(d) != "cur":
            continue
        for f in files:
            with open(os.path.join(d, f), "rb") as fh:
                out.append(hashlib.sha256(fh.read()).hexdigest())
    return out


def manifest_lines(dest, kind=None, run=None):
    """The manifest lines of DEST (of its `run`-th run file, 0 first)."""
    files = sorted(glob.glob(os.path.join(dest, ".imapsnap", "manifest",
                                          "*.jsonl")))
    if run is not None:
        files = [files[run]]
    out = []
    for path in files:
        with open(path) as f:
            for ln in f:
                o = json.loads(ln)
                if kind is None or o["type"] == kind:
                    out.append(o)
    return out


def backup(srv, dest, *extra):
    return imapsnap("backup", "--cacert", srv.cacert, *extra, srv.url(),
                    dest, password=srv.password)


class GmailLike(TestCase):
    def test_server_lays_out_gmail(self):
        """The test server itself: All Mail holds every message, each
        label's folder its messages, with one X-GM-MSGID across them."""
        c = SERVER.imap()
        try:
            typ, caps = c.capability()
            self.assertIn(b"X-GM-EXT-1", caps[0])
            c.select('"[Gmail]/All Mail"', readonly=True)
            typ, data = c.uid("FETCH", "1:*", "(X-GM-MSGID X-GM-LABELS)")
            ids = re.findall(rb"X-GM-MSGID (\d+)", b" ".join(
                x if isinstance(x, bytes) else x[0] for x in data))
            self.assertEqual(len(ids), len(MESSAGES))
            c.select("INBOX", readonly=True)
            typ, data = c.uid("FETCH", "1:*", "(X-GM-MSGID)")
            inbox = set(re.findall(rb"X-GM-MSGID (\d+)", b" ".join(data)))
            want = {str(m.msgid).encode() for m in MESSAGES
                    if "\\Inbox" in m.labels}
            self.assertEqual(inbox, want)
        finally:
            c.logout()

    def test_one_copy_per_message_with_its_labels(self):
        dest = os.path.join(workdir("gmail"), "b")
        run = backup(SERVER, dest)
        self.assertExit(run, 0)
        saved = saved_files(dest)
        self.assertEqual(sorted(saved), sorted(
            hashlib.sha256(m.raw).hexdigest() for m in MESSAGES),
            "not exactly one copy of each message")
        lines = {o["gm_msgid"]: o for o in manifest_lines(dest, "message")}
        self.assertEqual(len(lines), len(MESSAGES))
        for m in MESSAGES:
            o = lines[str(m.msgid)]
            self.assertEqual(o["folder"], "[Gmail]/All Mail")
            self.assertEqual(o["gm_thrid"], str(m.thrid))
            self.assertEqual(o["gm_labels"], sorted(m.labels), m.labels)
        unlabelled = [m for m in MESSAGES if not m.labels]
        self.assertGreater(len(unlabelled), 20,
                           "the corpus must hold archived mail")

    def test_item_list_has_the_labels(self):
        dest = os.path.join(workdir("gmailitems"), "b")
        self.assertExit(backup(SERVER, dest), 0)
        runs = sorted(glob.glob(os.path.join(dest, ".imapsnap", "manifest",
                                             "*.items.tsv")))
        with open(runs[0], newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        self.assertEqual(list(rows[0]), ["folder", "uidvalidity", "uid",
                                         "sha256", "size", "path",
                                         "labels"])
        by_sha = {hashlib.sha256(m.raw).hexdigest(): m for m in MESSAGES}
        self.assertEqual(len(rows), len(MESSAGES))
        for r in rows:
            self.assertEqual(json.loads(r["labels"].replace("\\\\", "\\")),
                             sorted(by_sha[r["sha256"]].labels))

    def test_every_format(self):
        for fmt, name in (("mbox", "b"), ("tar.gz", "b.tar.gz")):
            dest = os.path.join(workdir("gmailfmt"), name)
            run = backup(SERVER, dest, "--format", fmt)
            self.assertExit(run, 0, fmt)
            if fmt == "mbox":
                lines = manifest_lines(dest, "message")
                self.assertEqual(len(lines), len(MESSAGES), fmt)
                self.assertTrue(all("gm_labels" in o and "gm_msgid" in o
                                    for o in lines), fmt)
            run = imapsnap("verify", dest)
            self.assertExit(run, 0, fmt)


class Changes(TestCase):
    """A server of its own: the test changes it."""

    def setUp(self):
        self.msgs, labels = gmail_corpus(30, seed=11)
        self.srv = GmailServer.start(harness.SERVER, self.msgs, labels)

    def tearDown(self):
        self.srv.stop()

    def test_new_mail_and_label_changes_on_a_later_run(self):
        dest = os.path.join(workdir("gmailchg"), "b")
        self.assertExit(backup(self.srv, dest), 0)
        first = len(saved_files(dest))
        self.assertEqual(first, len(self.msgs))
        target = next(m for m in self.msgs if not m.labels)
        c = self.srv.imap()
        try:
            c.select('"[Gmail]/All Mail"')
            typ, data = c.uid("SEARCH", "X-GM-MSGID", str(target.msgid))
            uid = data[0].split()[0]
            typ, _ = c.uid("STORE", uid, "+X-GM-LABELS", "(Travel)")
            self.assertEqual(typ, "OK")
            c.append("INBOX", None, None, simple_message("new one"))
        finally:
            c.logout()
        run = backup(self.srv, dest)
        self.assertExit(run, 0)
        self.assertEqual(len(saved_files(dest)), first + 1,
                         "the labelled message was fetched again, or the "
                         "new one not at all")
        new = manifest_lines(dest, "message", run=1)
        self.assertEqual(len(new), 1)
        self.assertEqual(new[0]["gm_labels"], ["\\Inbox"])
        # The label change is recorded for the copy that was saved.
        # (This server ignores CHANGEDSINCE and reports every message's
        # labels; Gmail reports the changed ones.)
        saved_uid = next(o["uid"] for o in manifest_lines(dest, "message",
                                                          run=0)
                         if o["gm_msgid"] == str(target.msgid))
        changes = [o for o in manifest_lines(dest, "flags", run=1)
                   if o["uid"] == saved_uid and
                   o["folder"] == "[Gmail]/All Mail"]
        self.assertEqual([o["gm_labels"] for o in changes], [["Travel"]])
        # Nothing new: nothing fetched.
        run = backup(self.srv, dest)
        self.assertExit(run, 0)
        self.assertEqual(len(saved_files(dest)), first + 1)
        # verify reads the labels and their changes.
        run = imapsnap("verify", "--json", dest)
        self.assertExit(run, 0)
        out = json.loads(run.stdout)
        self.assertEqual(out["gmail"]["labelled"], first + 1)
        self.assertGreaterEqual(out["gmail"]["label_changes"], 1)
        # restore applies the label change: the message is in Travel.
        dst = harness.SERVER.new_user("gmchg")
        run = imapsnap("restore", "--cacert", harness.SERVER.cacert,
                       "--state-dir", os.path.join(workdir("gmchgst"), "s"),
                       dest, harness.SERVER.url(dst, "imaps"),
                       password=dst.password)
        self.assertExit(run, 0)
        with dst.oracle() as o:
            bodies = [o.body(u) for u in o.messages("Travel")]
        self.assertIn(target.raw.split(b"\r\n\r\n")[0],
                      [b.split(b"\r\n\r\n")[0] for b in bodies])
        self.assertEqual(len(bodies), 1 + sum(
            "Travel" in m.labels for m in self.msgs))
        run = imapsnap("verify", dest)
        self.assertRegex(run.stdout.decode(), r"Gmail: %d messages with "
                         r"labels, \d+ label changes applied" % (first + 1))

    def test_verify_reports_malformed_labels(self):
        dest = os.path.join(workdir("gmailbadlabels"), "b")
        self.assertExit(backup(self.srv, dest), 0)
        path = sorted(glob.glob(os.path.join(dest, ".imapsnap", "manifest",
                                             "*.jsonl")))[0]
        with open(path) as f:
            lines = f.read().splitlines(True)
        for i, ln in enumerate(lines):
            o = json.loads(ln)
            if o["type"] == "message":
                o["gm_labels"] = "Work"
                lines[i] = json.dumps(o) + "\n"
                uid = o["uid"]
                break
        with open(path, "w") as f:
            f.writelines(lines)
        run = imapsnap("verify", dest)
        self.assertExit(run, 7)
        self.assertRegex(run.stdout.decode() + run.stderr.decode(),
                         r"UID %d: gm_labels is not a list" % uid)
        # A flags line with labels that are no names.
        with open(path, "w") as f:
            f.writelines(ln for ln in lines)
        with open(path, "a") as f:
            f.write(json.dumps({"type": "flags", "folder":
                                "[Gmail]/All Mail", "folder_raw":
                                "[Gmail]/All Mail", "uidvalidity": 1,
                                "uid": uid, "flags": [],
                                "gm_labels": ["Work", 7]}) + "\n")
        run = imapsnap("verify", dest)
        self.assertExit(run, 7)
        self.assertIn("gm_labels holds something that is no label name",
                      run.stdout.decode() + run.stderr.decode())
