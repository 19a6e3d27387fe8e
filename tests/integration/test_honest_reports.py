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
