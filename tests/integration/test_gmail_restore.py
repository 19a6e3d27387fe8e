"""Restoring a Gmail backup (tests/gmail: the Gmail-like server), checked
through imaplib against what the source account held.

A Gmail backup keeps each message once with its labels.  Into a server
that is not Gmail (the test Dovecot) it is restored as Gmail shows it: one
folder per label holding exactly that label's messages, \\Inbox in INBOX,
\\Sent in the Sent folder, and the messages with no label that is a folder
in Archive.  Into the Gmail-like server it is appended once and its labels
are set again.  A second run appends nothing; a run killed midway and run
again duplicates nothing."""

import hashlib
import json
import os
import re
import shutil
import signal
import subprocess
import time

from harness import TestCase, imapsnap, workdir
import harness
from gmail_server import GmailMessage, GmailServer, gmail_corpus

SOURCE = None
MESSAGES = LABELS = None
BACKUP = None

SYSTEM_FOLDERS = {"\\Inbox": "INBOX", "\\Sent": "[Gmail]/Sent Mail"}


def corpus():
    msgs, labels = gmail_corpus(120, seed=23)
    # CRLF line ends only: a server that stores bare LFs as CRLF (Dovecot)
    # grows such a message by more than a copy found after a crash may
    # differ (docs/restore.md, "Crashes"); that is tested elsewhere.
    for m in msgs:
        m.raw = m.raw.replace(b"\r\n", b"\n").replace(b"\r", b"") \
            .replace(b"\n", b"\r\n")
    # Starred (the \Flagged flag) and Important only: archived mail.
    msgs.append(GmailMessage(b"Subject: starred\r\nMessage-ID: <s1@x>\r\n"
                             b"\r\nstar\r\n", ["\\Starred"], ["\\Flagged"]))
    msgs.append(GmailMessage(b"Subject: important\r\nMessage-ID: <i1@x>\r\n"
                             b"\r\nimportant\r\n", ["\\Important"]))
    msgs.append(GmailMessage(b"Subject: three\r\nMessage-ID: <t1@x>\r\n"
                             b"\r\nthree labels\r\n",
                             ["\\Inbox", "Work", "Travel", "\\Important"]))
    return msgs, labels


def setUpModule():
    global SOURCE, MESSAGES, LABELS, BACKUP
    MESSAGES, LABELS = corpus()
    SOURCE = GmailServer.start(harness.SERVER, MESSAGES, LABELS)
    BACKUP = os.path.join(workdir("gmail-restore"), "backup")
    run = imapsnap("backup", "--cacert", SOURCE.cacert, SOURCE.url(), BACKUP,
                   password=SOURCE.password)
    if run.rc != 0:
        raise AssertionError("backup failed: %r" % run.stderr)


def tearDownModule():
    if SOURCE:
        SOURCE.stop()


def sha(b):
    return hashlib.sha256(b).hexdigest()


def mid(b):
    """A message's Message-ID: Dovecot stores bare LFs (the corpus has
    some) as CRLF, so the bytes are not the key there."""
    return re.search(rb"^Message-ID: (\S+)\r?$", b, re.M | re.I).group(1)


def expected_folders(m):
    """Where a message goes on a server that is not Gmail."""
    out = set()
    for label in m.labels:
        if label in SYSTEM_FOLDERS:
            out.add(SYSTEM_FOLDERS[label])
        elif not label.startswith("\\"):
            out.add(label)
    return out or {"Archive"}


def folders_of(user):
    """{folder: sorted [Message-ID]} and {Message-ID: flags}."""
    out, flags = {}, {}
    with user.oracle() as o:
        for f in o.folders():
            if not f.selectable:
                continue
            msgs = o.messages(f)
            if msgs:
                out[f.name] = []
                for uid, m in msgs.items():
                    h = mid(o.body(uid))
                    out[f.name].append(h)
                    flags[h] = m.flags
                out[f.name].sort()
    return out, flags


def restore_json(url, state, password, cacert, *extra):
    run = imapsnap("restore", "--json", "--cacert", cacert, "--state-dir",
                   state, *extra, BACKUP, url, password=password,
                   timeout=120)
    return run, (json.loads(run.stdout) if run.stdout.strip() else None)


def parse_labels(text):
    """The X-GM-LABELS list of a FETCH response line, as strings."""
    m = re.search(rb"X-GM-LABELS \(((?:[^()\"]|\"(?:\\.|[^\"\\])*\")*)\)",
                  text)
    out = []
    for tok in re.findall(rb'"((?:\\.|[^"\\])*)"|([^\s"]+)', m.group(1)):
        if tok[0]:
            out.append(re.sub(rb"\\(.)", rb"\1", tok[0]).decode())
        else:
            out.append(tok[1].decode())
    return out


def gmail_account(srv):
    """{sha256: sorted labels} of All Mail, and {folder: sorted sha256}
    of every other folder, through imaplib."""
    c = srv.imap()
    labels, folders = {}, {}
    try:
        typ, data = c.list()
        names = []
        for line in data:
            m = re.match(rb'\(([^)]*)\) "/" "?(.*?)"?$', line)
            if m and b"\\Noselect" not in m.group(1):
                names.append(m.group(2).decode())
        for name in names:
            typ, _ = c.select('"%s"' % name, readonly=True)
            typ, data = c.uid("FETCH", "1:*", "(X-GM-LABELS BODY.PEEK[])")
            hs = []
            for item in data:
                if not isinstance(item, tuple):
                    continue
                h = sha(item[1])
                hs.append(h)
                if name == "[Gmail]/All Mail":
                    labels[h] = sorted(parse_labels(item[0]))
            if name != "[Gmail]/All Mail" and hs:
                folders[name] = sorted(hs)
    finally:
        c.logout()
    return labels, folders


class IntoDovecot(TestCase):
    def setUp(self):
        self.dst = harness.SERVER.new_user("gmr")
        self.state = os.path.join(workdir("gmail-restore-state"), "s")

    def restore(self, *extra):
        return restore_json(harness.SERVER.url(self.dst, "imaps"),
                            self.state, self.dst.password,
                            harness.SERVER.cacert, *extra)

    def check(self):
        got, flags = folders_of(self.dst)
        want = {}
        for m in MESSAGES:
            for f in expected_folders(m):
                want.setdefault(f, []).append(mid(m.raw))
        for f in want:
            want[f].sort()
        self.assertEqual(sorted(got), sorted(want))
        for f in want:
            self.assertEqual(got[f], want[f], "folder %s" % f)
        starred = next(m for m in MESSAGES if "\\Starred" in m.labels)
        self.assertIn("\\Flagged", flags[mid(starred.raw)])
        return want

    def test_one_folder_per_label(self):
        run, out = self.restore()
        self.assertExit(run, 0)
        want = self.check()
        copies = sum(len(v) for v in want.values())
        self.assertEqual(out["appended"], copies)
        self.assertGreater(copies, len(MESSAGES),
                           "no message has two labels")
        self.assertNotIn("[Gmail]/All Mail", folders_of(self.dst)[0])
        run, out = self.restore()
        self.assertExit(run, 0)
        self.assertEqual(out["appended"], 0, "a second run appended")
        self.check()

    def test_include_picks_label_folders(self):
        run, out = self.restore("--include", "Work")
        self.assertExit(run, 0)
        got, _ = folders_of(self.dst)
        self.assertEqual(sorted(got), ["Work"])
        self.assertEqual(got["Work"], sorted(
            mid(m.raw) for m in MESSAGES if "Work" in m.labels))

    def test_killed_and_resumed_nothing_twice(self):
        e = dict(os.environ, IMAPSNAP_PASSWORD=self.dst.password)
        args = [harness.BINARY, "restore", "--cacert",
                harness.SERVER.cacert, "--state-dir", self.state, BACKUP,
                harness.SERVER.url(self.dst, "imaps")]
        kills = 0
        for delay in (0.1, 0.25, 0.2, 0.35):
            mark = harness.SERVER.log_mark()
            p = subprocess.Popen(args, env=e, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL,
                                 start_new_session=True)
            time.sleep(delay)
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                kills += 1
            p.wait()
            mark.sessions(self.dst)
        self.assertGreater(kills, 0, "every restore ended before its kill")
        run, out = self.restore()
        self.assertExit(run, 0)
        self.check()


class IntoGmail(TestCase):
    def setUp(self):
        # An empty account: the label folders are not there yet.
        self.dst = GmailServer.start(harness.SERVER, [], [])
        self.state = os.path.join(workdir("gmail-restore-gstate"), "s")

    def tearDown(self):
        self.dst.stop()

    def restore(self, *extra):
        return restore_json(self.dst.url(), self.state, self.dst.password,
                            self.dst.cacert, *extra)

    def check(self):
        labels, folders = gmail_account(self.dst)
        self.assertEqual(sorted(labels),
                         sorted(sha(m.raw) for m in MESSAGES),
                         "All Mail does not hold each message once")
        for m in MESSAGES:
            # \Starred is the \Flagged flag; this server does not turn
            # one into the other (Gmail does).
            want = sorted(x for x in m.labels if x != "\\Starred")
            self.assertEqual(labels[sha(m.raw)], want, m.raw[:40])
        for label in LABELS:
            self.assertEqual(folders.get(label), sorted(
                sha(m.raw) for m in MESSAGES if label in m.labels), label)
        self.assertEqual(folders.get("INBOX"), sorted(
            sha(m.raw) for m in MESSAGES if "\\Inbox" in m.labels))

    def test_labels_set_again(self):
        run, out = self.restore()
        self.assertExit(run, 0)
        self.assertEqual(out["appended"], len(MESSAGES))
        self.check()
        run, out = self.restore()
        self.assertExit(run, 0)
        self.assertEqual(out["appended"], 0, "a second run appended")
        self.check()

    def test_labels_set_after_a_lost_state(self):
        """A run whose state is gone (or that was killed between its
        APPENDs and its labels) finds the messages by content, appends
        none again, and sets their labels."""
        run, out = self.restore()
        self.assertExit(run, 0)
        c = self.dst.imap()
        try:
            c.select('"[Gmail]/All Mail"')
            typ, data = c.uid("SEARCH", "ALL")
            uids = data[0].split()
            typ, _ = c.uid("STORE", b",".join(uids), "-X-GM-LABELS",
                           "(Work)")
            self.assertEqual(typ, "OK")
        finally:
            c.logout()
        shutil.rmtree(self.state)
        run, out = self.restore()
        self.assertExit(run, 0)
        self.assertEqual(out["appended"], 0)
        self.assertEqual(out["found"], len(MESSAGES))
        self.check()

    def test_killed_and_resumed_nothing_twice(self):
        e = dict(os.environ, IMAPSNAP_PASSWORD=self.dst.password)
        args = [harness.BINARY, "restore", "--cacert", self.dst.cacert,
                "--state-dir", self.state, BACKUP, self.dst.url()]
        kills = 0
        for delay in (0.3, 0.9, 0.6, 1.4):
            p = subprocess.Popen(args, env=e, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL,
                                 start_new_session=True)
            time.sleep(delay)
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                kills += 1
            p.wait()
            time.sleep(0.3)  # the server finishes what it was sent
        self.assertGreater(kills, 0, "every restore ended before its kill")
        run, out = self.restore()
        self.assertExit(run, 0)
        self.check()


class IntoGmailWithoutUidplus(IntoGmail):
    """No APPENDUID: the UIDs to label are found by content."""

    def setUp(self):
        self.dst = GmailServer.start(harness.SERVER, [], [], uidplus=False)
        self.state = os.path.join(workdir("gmail-restore-nostate"), "s")

    def test_server_has_no_uidplus(self):
        c = self.dst.imap()
        try:
            typ, caps = c.capability()
            self.assertNotIn(b"UIDPLUS", caps[0])
        finally:
            c.logout()


class MigrateFromGmail(TestCase):
    def test_says_to_back_up_and_restore(self):
        """migrate copies Gmail's folders as they are (a message once per
        label and once more from All Mail) and says so."""
        dst = harness.SERVER.new_user("gmm")
        state = os.path.join(workdir("gmail-migrate"), "s")
        run = imapsnap("migrate", "--json", "--cacert", SOURCE.cacert,
                       "--state-dir", state, SOURCE.url(),
                       harness.SERVER.url(dst, "imaps"),
                       env={"IMAPSNAP_SRC_PASSWORD": SOURCE.password,
                            "IMAPSNAP_DST_PASSWORD": dst.password},
                       timeout=120)
        self.assertExit(run, 0)
        self.assertIn(b"the source is Gmail", run.stderr)
        self.assertIn(b"back up and restore", run.stderr)
        got, _ = folders_of(dst)
        self.assertEqual(len(got["[Gmail]/All Mail"]), len(MESSAGES))
