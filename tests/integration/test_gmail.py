"""Backing up a Gmail-like account (tests/gmail: hoodiecrow-imap with
X-GM-EXT-1; every message in "[Gmail]/All Mail" and in one folder per
label), checked against what that server holds through imaplib."""

import email
import hashlib
import os
import re

from harness import TestCase, imapsnap, workdir
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
    """{sha256: path} of every message file under DEST."""
    out = {}
    for d, dirs, files in os.walk(dest):
        dirs[:] = [x for x in dirs if x != ".imapsnap"]
        if os.path.basename(d) != "cur":
            continue
        for f in files:
            p = os.path.join(d, f)
            with open(p, "rb") as fh:
                out.setdefault(hashlib.sha256(fh.read()).hexdigest(), p)
    return out


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

    def test_every_message_saved(self):
        d = workdir("gmail")
        dest = os.path.join(d, "b")
        run = imapsnap("backup", "--cacert", SERVER.cacert, SERVER.url(),
                       dest, password=SERVER.password)
        self.assertExit(run, 0)
        saved = saved_files(dest)
        for m in MESSAGES:
            self.assertIn(hashlib.sha256(m.raw).hexdigest(), saved,
                          "message %s (labels %s) not saved"
                          % (m.msgid, m.labels))
        unlabelled = [m for m in MESSAGES if not m.labels]
        self.assertGreater(len(unlabelled), 20,
                           "the corpus must hold archived mail")
