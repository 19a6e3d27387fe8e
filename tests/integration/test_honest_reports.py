"""What a run reports and records is what it did (docs/reliability.md).

A run that never logged in saved nothing: it leaves no manifest and no
chain entry (verify and the chain then hold only runs that did
something), and a single-file export is not replaced by an empty one."""

import hashlib
import os
import socket

from harness import TestCase, backup, imapsnap, simple_message, workdir
import harness

EXIT_CONNECT = 4
EXIT_AUTH = 3


def unused_port():
    """A loopback port nothing listens on (bound, then released)."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run_files(dest):
    d = os.path.join(dest, ".imapsnap", "manifest")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def sha256(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


class NoLoginNoRecord(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.user = harness.SERVER.new_user("noconn")
        with cls.user.oracle() as o:
            for i in range(2):
                o.append("INBOX", simple_message("m%d" % i))

    def refused(self, dest, *extra):
        url = "imap://%s@127.0.0.1:%d" % (self.user.name, unused_port())
        return imapsnap("backup", "--tls", "none", "--retries", "0",
                        *extra, url, dest, password=self.user.password)

    def test_refused_connection_writes_no_manifest(self):
        dest = os.path.join(workdir("noconn"), "dest")
        run = self.refused(dest)
        self.assertExit(run, EXIT_CONNECT)
        self.assertEqual(run_files(dest), [], "a manifest for a run that "
                         "never connected:\n%s" % run)
        # Then a run that works: verify sees one run, intact.
        self.assertExit(backup(self.user, dest), 0)
        run = self.refused(dest)
        self.assertExit(run, EXIT_CONNECT)
        names = run_files(dest)
        self.assertEqual(len([n for n in names if n.endswith(".jsonl")]), 1,
                         names)
        run = imapsnap("verify", dest)
        self.assertExit(run, 0)
        self.assertIn(b"1 run,", run.stdout, run)

    def test_refused_credentials_write_no_manifest(self):
        dest = os.path.join(workdir("noauth"), "dest")
        run = imapsnap("backup", "--cacert", self.user.server.cacert,
                       self.user.server.url(self.user, "imaps"), dest,
                       password="wrong")
        self.assertExit(run, EXIT_AUTH)
        self.assertEqual(run_files(dest), [], run)

    def test_single_file_export_is_kept(self):
        """An export made earlier is not replaced by an empty one when
        the next run cannot connect."""
        export = os.path.join(workdir("noconn-tar"), "export.tar")
        self.assertExit(backup(self.user, export), 0)
        before = sha256(export)
        run = self.refused(export)
        self.assertExit(run, EXIT_CONNECT)
        self.assertEqual(sha256(export), before, "the export changed:\n%s"
                         % run)
        self.assertEqual([n for n in os.listdir(os.path.dirname(export))
                          if n != "export.tar"], [], "left behind")


# --- a full disk: only what was committed counts ----------------------------

import json  # noqa: E402
import re  # noqa: E402
import sys  # noqa: E402

sys.path.insert(0, os.path.join(harness.ROOT, "tests", "fakeimap"))
import runner  # noqa: E402
import test_disk  # noqa: E402


def committed(fmt, dest):
    """Messages the store holds committed: files in every cur/ (Maildir),
    lines of every index (mbox)."""
    n = 0
    if fmt == "maildir":
        for d, dirs, files in os.walk(dest):
            if os.path.basename(d) == "cur":
                n += len(files)
        return n
    idx = os.path.join(dest, ".imapsnap", "mbox")
    for d, dirs, files in os.walk(idx):
        for f in files:
            if f.endswith(".idx"):
                n += len(runner.read_index(os.path.join(d, f)))
    return n


SUMMARY = re.compile(r"(\d+) folders, (\d+) messages, (\d+) bytes"
                     r"(?:.*?, (\d+) received \((\d+) bytes\) but not "
                     r"committed)?")


class FullDiskCounts(test_disk.DiskCase):
    def backup_into(self, user, fmt, kb, *extra):
        """A backup onto a fresh tmpfs of `kb` KB: (run, messages the
        store holds committed)."""
        with test_disk.Tmpfs("cnt-%s-%d" % (fmt, kb), size_kb=kb) as fs:
            dest = os.path.join(fs.path, "dest")
            run = runner.run(["backup", "--format", fmt, "--tls", "none"] +
                             list(extra) +
                             [harness.SERVER.url(user, "imap"), dest],
                             password=user.password, timeout=60)
            return run, committed(fmt, dest)

    def test_summary_counts_only_what_was_committed(self):
        """A disk that fills up at every size in turn: the summary's and
        --json's message count is what the store committed (files in
        cur/, lines in the mbox index), and what came in whole but was
        never committed is said separately.  At some size the two differ
        (mbox: the data fits, the index line that commits it does not)."""
        user = harness.SERVER.new_user("fullcount")
        user.load_corpus(seed=53, scale=0.12, big=False)
        seen_uncommitted = 0
        for fmt, sizes in (("mbox", range(8, 160, 4)),
                           ("maildir", range(8, 240, 12))):
            for kb in sizes:
                with self.subTest(format=fmt, size_kb=kb):
                    run, held = self.backup_into(user, fmt, kb)
                    self.assertIn(run.rc, (0, 6), str(run))
                    m = SUMMARY.search(run.stderr.decode("utf-8",
                                                         "replace"))
                    self.assertIsNotNone(m, "no summary:\n%s" % run)
                    self.assertEqual(int(m.group(2)), held,
                                     "summary vs. store:\n%s" % run)
                    if m.group(4):
                        seen_uncommitted += 1
                        self.assertEqual(run.rc, 6, str(run))
                    run, held = self.backup_into(user, fmt, kb, "--json")
                    try:
                        j = json.loads(run.stdout)
                    except ValueError:
                        self.fail("no JSON summary:\n%s" % run)
                    self.assertEqual(j["messages"], held,
                                     "--json vs. store:\n%s" % run)
                    self.assertLessEqual(j["messages"] + j["uncommitted"] +
                                         j["failed"], j["planned"], str(run))
                    if j["uncommitted"]:
                        self.assertGreater(j["uncommitted_bytes"], 0)
        self.assertGreater(seen_uncommitted, 0,
                           "no size left messages received but not "
                           "committed")
