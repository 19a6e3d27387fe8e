"""A destination that fills up: ENOSPC while writing gives a clear error
and exit 6, the state is never ahead of what is durable, nothing torn
counts as saved, and once there is room again a re-run completes the
backup with every message exactly once.

The full disk is a small tmpfs mounted for the test (root only; skipped
otherwise), swept over sizes and inode counts so that the disk fills at
every kind of write in turn: a directory, a message, the commit, the state
file.  RLIMIT_FSIZE stands in for a quota on one file's size (EFBIG).
"""

import gzip
import os
import resource
import subprocess
import sys
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakeimap"))

from harness import TestCase, assert_backup_matches, workdir  # noqa: E402
import harness  # noqa: E402
import runner  # noqa: E402
from runner import as_mbox, mbox_split, read_index  # noqa: E402


def can_mount():
    if os.geteuid() != 0:
        return False
    d = workdir("mount-probe")
    r = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs",
                        d], stderr=subprocess.DEVNULL)
    if r.returncode != 0:
        return False
    subprocess.run(["umount", d])
    return True


class Tmpfs:
    """A tmpfs at a fresh directory, unmounted on exit."""

    def __init__(self, name, size_kb=None, inodes=None):
        self.path = workdir(name)
        opts = ["mode=0755"]
        if size_kb:
            opts.append("size=%dk" % size_kb)
        if inodes:
            opts.append("nr_inodes=%d" % inodes)
        subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(opts),
                        "tmpfs", self.path], check=True)

    def grow(self):
        subprocess.run(["mount", "-o", "remount,size=256m,nr_inodes=100000",
                        self.path], check=True)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        if subprocess.run(["umount", self.path]).returncode != 0:
            subprocess.run(["umount", "-l", self.path])


class DiskCase(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.mountable = can_mount()

    def setUp(self):
        if not self.mountable:
            self.skipTest("needs root and tmpfs mounts")

    def server_mail(self, user):
        out, folders = {}, {}
        with user.oracle() as o:
            for f in o.folders():
                if not f.selectable:
                    continue
                folders[f.raw] = f
                for uid in o.messages(f):
                    out[(f.raw, uid)] = o.body(uid)
        return out, folders

    def check_durable(self, fmt, dest, mail, folders, run):
        """State behind store; nothing torn in the store counts."""
        state = runner.load_state(dest) if os.path.exists(
            os.path.join(dest, ".imapsnap", "state")) else {}
        for raw, f in folders.items():
            saved = state.get(raw.encode(), {"saved": set()})["saved"]
            if fmt == "maildir":
                files = runner.maildir_files(f.path(dest))
                for uid, (uv, path) in files.items():
                    self.assertEqual(runner.read(path), mail[(raw, uid)],
                                     "%s UID %d torn in cur/\n%s"
                                     % (f.name, uid, run))
                held = set(files)
                new = os.path.join(f.path(dest), "new")
                if os.path.isdir(new):
                    self.assertEqual(os.listdir(new), [], str(run))
            else:
                held = set()
                path = f.path(dest) + "." + fmt
                rel = os.path.relpath(path, dest)
                index = read_index(os.path.join(dest, ".imapsnap", "mbox",
                                                rel + ".idx"))
                if index:
                    with open(path, "rb") as fh:
                        data = fh.read()
                    self.assertGreaterEqual(len(data), index[-1][4])
                    if fmt == "mbox.gz":
                        data = gzip.decompress(data[:index[-1][4]])
                    for uv, uid, off, length, end in index:
                        self.assertEqual(
                            mbox_split(data[off:off + length]),
                            [as_mbox(mail[(raw, uid)])],
                            "%s UID %d\n%s" % (f.name, uid, run))
                        held.add(uid)
            self.assertEqual(saved - held, set(), "%s: the state is ahead "
                             "of the store\n%s" % (f.name, run))

    def check_complete(self, fmt, user, dest, mail, folders):
        if fmt == "maildir":
            assert_backup_matches(self, user, dest)
            return
        for raw, f in folders.items():
            path = f.path(dest) + "." + fmt
            want = sorted(as_mbox(b) for (r, u), b in mail.items()
                          if r == raw)
            data = b""
            if os.path.exists(path):
                with open(path, "rb") as fh:
                    data = fh.read()
                if fmt == "mbox.gz":
                    data = gzip.decompress(data)
            self.assertEqual(sorted(mbox_split(data)), want, path)

    def fill_and_recover(self, fmt, user, mail, folders, name, size_kb=None,
                         inodes=None):
        """One run on a full disk, checked; then room, and a run that must
        complete.  Returns the first run."""
        args = ["backup", "--format", fmt, "--tls", "none",
                harness.SERVER.url(user, "imap")]
        with Tmpfs(name, size_kb, inodes) as fs:
            dest = os.path.join(fs.path, "dest")
            run = runner.run(args + [dest], password=user.password,
                             timeout=60)
            what = "%s on a tmpfs of %s KB, %s inodes" % (fmt, size_kb,
                                                          inodes)
            self.assertIn(run.rc, (0, 6), "%s:\n%s" % (what, run))
            if os.environ.get("DISK_DEBUG"):
                print(what, run.rc, run.stderr.decode("utf-8", "replace")
                      .splitlines()[:1])
            if run.rc == 6:
                self.assertRegex(run.stderr.decode("utf-8", "replace"),
                                 r"No space left on device",
                                 "%s: the error names the cause" % what)
            if os.path.isdir(dest):
                self.check_durable(fmt, dest, mail, folders, run)
            fs.grow()
            again = runner.run(args + [dest], password=user.password,
                               timeout=60)
            self.assertExit(again, 0, what + ", after making room")
            self.check_complete(fmt, user, dest, mail, folders)
        return run


class FullDisk(DiskCase):
    def small_account(self, name):
        user = harness.SERVER.new_user(name)
        user.load_corpus(seed=51, scale=0.12, big=False)
        mail, folders = self.server_mail(user)
        return user, mail, folders

    def test_disk_fills_at_every_size(self):
        """A small account (about 30 messages) onto a tmpfs swept from one
        page to more than it needs, Maildir and mbox."""
        user, mail, folders = self.small_account("fullsize")
        for fmt, sizes in (("maildir", range(4, 220, 8)),
                           ("mbox", range(4, 120, 8)),
                           ("mbox.gz", range(4, 60, 8))):
            full = 0
            for kb in sizes:
                with self.subTest(format=fmt, size_kb=kb):
                    run = self.fill_and_recover(fmt, user, mail, folders,
                                                "fs-%s-%d" % (fmt, kb),
                                                size_kb=kb)
                    full += run.rc == 6
            self.assertGreater(full, 3, "%s: the disk was never full" % fmt)

    def test_inodes_run_out_at_every_file(self):
        """The same account onto a tmpfs with 1, 2, 3, ... inodes: every
        directory and file imapsnap creates in turn is the one that fails
        (ENOSPC)."""
        user, mail, folders = self.small_account("fullinode")
        for fmt, counts in (("maildir", list(range(1, 40)) +
                             list(range(40, 90, 7))),
                            ("mbox", range(1, 30))):
            full = 0
            for n in counts:
                with self.subTest(format=fmt, inodes=n):
                    run = self.fill_and_recover(fmt, user, mail, folders,
                                                "in-%s-%d" % (fmt, n),
                                                inodes=n)
                    full += run.rc == 6
            self.assertGreater(full, 10, "%s: never out of inodes" % fmt)

    def test_disk_fills_inside_a_large_message(self):
        """The 1.4 MB message of the demo corpus does not fit: the error
        is clear, nothing of it is kept, the rest is durable."""
        user = harness.SERVER.new_user("fullbig")
        user.load_corpus(seed=52, scale=0.5, big=True)
        mail, folders = self.server_mail(user)
        for fmt in ("maildir", "mbox"):
            with self.subTest(format=fmt):
                run = self.fill_and_recover(fmt, user, mail, folders,
                                            "fs-big-" + fmt, size_kb=1200)
                self.assertExit(run, 6)


class FileSizeLimit(DiskCase):
    """RLIMIT_FSIZE: no file may grow beyond the limit (EFBIG)."""

    def setUp(self):
        pass  # no mount needed

    def test_message_larger_than_the_file_size_limit(self):
        """Maildir: the 1.4 MB message cannot be written (EFBIG); that
        message fails with a message naming the cause, every other one is
        saved, the run exits 1, and a run without the limit saves it."""
        user = harness.SERVER.new_user("fsize")
        user.load_corpus(seed=53, scale=0.5, big=True)
        mail, folders = self.server_mail(user)
        dest = workdir("fsize")
        args = ["backup", "--tls", "none", harness.SERVER.url(user, "imap"),
                dest]
        run = runner.run(args, password=user.password, timeout=60,
                         rlimits={resource.RLIMIT_FSIZE: 512 * 1024})
        self.assertExit(run, 1)
        self.assertRegex(run.stderr.decode("utf-8", "replace"),
                         r"File too large")
        self.check_durable("maildir", dest, mail, folders, run)
        big = [k for k, b in mail.items() if len(b) > 512 * 1024]
        self.assertEqual(len(big), 1)
        saved = 0
        for raw, f in folders.items():
            saved += len(runner.maildir_files(f.path(dest)))
        self.assertEqual(saved, len(mail) - 1, "all but the big one saved")
        again = runner.run(args, password=user.password, timeout=60)
        self.assertExit(again, 0)
        assert_backup_matches(self, user, dest)

    def test_mbox_file_reaches_the_limit(self):
        """mbox: the folder's one file cannot grow past the limit: a clear
        error, a non-zero exit, the state behind what is durable, and a
        run without the limit completes the backup."""
        user = harness.SERVER.new_user("fsizembox")
        user.load_corpus(seed=54, scale=0.5, big=False)
        mail, folders = self.server_mail(user)
        dest = workdir("fsizembox")
        args = ["backup", "--format", "mbox", "--tls", "none",
                harness.SERVER.url(user, "imap"), dest]
        run = runner.run(args, password=user.password, timeout=60,
                         rlimits={resource.RLIMIT_FSIZE: 64 * 1024})
        self.assertNotEqual(run.rc, 0, str(run))
        self.assertIsNone(run.signal, str(run))
        self.assertRegex(run.stderr.decode("utf-8", "replace"),
                         r"File too large")
        self.check_durable("mbox", dest, mail, folders, run)
        again = runner.run(args, password=user.password, timeout=60)
        self.assertExit(again, 0)
        self.check_complete("mbox", user, dest, mail, folders)


if __name__ == "__main__":
    unittest.main()
