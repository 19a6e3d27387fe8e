"""Usage errors exit 2 and touch nothing; an unwritable destination 6."""

import fcntl
import os

from harness import TestCase, backup, imapsnap, simple_message, workdir
import harness


class Usage(TestCase):
    def check_usage(self, *args, dest=None):
        run = imapsnap(*args, password="x", timeout=30)
        self.assertExit(run, 2, "usage error")
        self.assertTrue(run.stderr.strip(), "no message on stderr:\n%s" % run)
        if dest:
            self.assertFalse(os.path.exists(dest),
                             "%s created by a usage error" % dest)
        return run

    def dest(self):
        d = workdir("usage")
        os.rmdir(d)
        return d

    def test_no_arguments(self):
        self.check_usage()

    def test_unknown_command(self):
        self.check_usage("frobnicate")

    def test_no_url(self):
        self.check_usage("backup")

    def test_no_destination(self):
        self.check_usage("backup", "imaps://u@127.0.0.1:9")

    def test_bad_scheme(self):
        for url in ("http://u@127.0.0.1:9", "pop3://u@127.0.0.1:9",
                    "imapx://u@127.0.0.1"):
            d = self.dest()
            self.check_usage("backup", url, d, dest=d)

    def test_unknown_option(self):
        d = self.dest()
        self.check_usage("backup", "--frobnicate", "imaps://u@127.0.0.1:9",
                         d, dest=d)

    def test_bad_tls_value(self):
        d = self.dest()
        self.check_usage("backup", "--tls", "bogus", "imaps://u@127.0.0.1:9",
                         d, dest=d)


class Destination(TestCase):
    def test_unwritable_destination(self):
        """DEST below a regular file cannot be created: exit 6 (as root,
        permissions would not stop it, so use a file in the way)."""
        user = harness.SERVER.new_user("dest")
        with user.oracle() as o:
            o.append("INBOX", simple_message("dest"), date=1590000000)
        blocker = os.path.join(workdir("dest"), "a-file")
        with open(blocker, "w") as f:
            f.write("not a directory\n")
        run = backup(user, os.path.join(blocker, "backup"), timeout=60)
        self.assertExit(run, 6, "destination cannot be written")

    def test_locked_destination(self):
        """While another process holds DEST's lock (an flock(2) on
        DEST/.imapsnap/lock), a run exits 5 and saves nothing."""
        user = harness.SERVER.new_user("lock")
        with user.oracle() as o:
            o.append("INBOX", simple_message("first"), date=1590000000)
        dest = workdir("lock")
        self.assertExit(backup(user, dest), 0)
        with user.oracle() as o:
            o.append("INBOX", simple_message("second"), date=1590000001)
        inbox = os.path.join(dest, "INBOX", "cur")
        before = sorted(os.listdir(inbox))
        fd = os.open(os.path.join(dest, ".imapsnap", "lock"),
                     os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            run = backup(user, dest, timeout=60)
        finally:
            os.close(fd)
        self.assertExit(run, 5, "destination locked")
        self.assertEqual(sorted(os.listdir(inbox)), before)
        self.assertExit(backup(user, dest), 0, "after the lock was released")
        self.assertEqual(len(os.listdir(inbox)), 2)
