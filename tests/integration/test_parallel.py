"""--connections N: folders backed up over several sessions at once give
the same backup and the same state as one session, and survive SIGKILL.

The same account is backed up with --connections 1 and --connections 4;
the Maildir trees (every name and every byte) and the state files must be
equal, `imapsnap verify` must pass on both, and Dovecot's log must show
how many sessions each run opened.  A re-run with nothing new opens one
session whatever --connections says.  mbox with four sessions is killed
at random moments and re-run: every message ends up there exactly once.
"""

import os
import random
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakeimap"))

from harness import TestCase, assert_backup_matches, backup, imapsnap, \
    workdir  # noqa: E402
import harness  # noqa: E402
import runner  # noqa: E402
import test_crash  # noqa: E402


def tree(dest):
    """{relative path: bytes} of every file of a backup but imapsnap's own
    records (manifests name the run's time, the lock is the lock, the state
    is compared on its own, mbox indexes hold offsets)."""
    out = {}
    for d, dirs, files in os.walk(dest):
        rel = os.path.relpath(d, dest)
        if rel == ".imapsnap" or rel.startswith(".imapsnap" + os.sep):
            continue
        for f in files:
            with open(os.path.join(d, f), "rb") as fh:
                out[os.path.normpath(os.path.join(rel, f))] = fh.read()
        for x in dirs:
            out.setdefault(os.path.normpath(os.path.join(rel, x)) + "/", b"")
    return out


def state_of(dest):
    with open(os.path.join(dest, ".imapsnap", "state"), "rb") as f:
        return f.read()


class Parallel(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.user = harness.SERVER.new_user("par")
        # INBOX 1,100 messages: three fetch commands and two group commits
        # in one folder; eight folders with mail, two nested.
        cls.counts = cls.user.load_corpus(seed=61, scale=10, big=True)

    def run_backup(self, dest, *extra):
        mark = harness.SERVER.log_mark()
        run = backup(self.user, dest, *extra, timeout=120)
        self.assertExit(run, 0)
        return run, mark.sessions(self.user)

    def verify(self, dest):
        run = imapsnap("verify", dest)
        self.assertExit(run, 0, "verify %s" % dest)

    def test_four_connections_same_as_one(self):
        one, four = workdir("par-1"), workdir("par-4")
        _, s1 = self.run_backup(one, "--connections", "1")
        _, s4 = self.run_backup(four, "--connections", "4")
        self.assertEqual(len(s1), 1, s1)
        # Dovecot lists INBOX last.  Archive/2019 (600 new) always opens
        # a second session: five folders still wait.  Sent (400) and
        # INBOX's shares open more only if the queue is not empty by the
        # time their searches are answered, which depends on timing.
        self.assertGreaterEqual(len(s4), 2, s4)
        self.assertLessEqual(len(s4), 4, s4)
        # Each message body was fetched once, by one of the sessions.
        self.assertEqual(sum(c for c, _ in s4), sum(c for c, _ in s1))
        t1, t4 = tree(one), tree(four)
        self.assertEqual(sorted(t1), sorted(t4))
        for k in t1:
            self.assertEqual(t1[k], t4[k], k)
        self.assertEqual(state_of(one), state_of(four))
        assert_backup_matches(self, self.user, four)
        self.verify(one)
        self.verify(four)

        # Nothing new: one session, whatever --connections says.
        _, again = self.run_backup(four, "--connections", "4")
        self.assertEqual(len(again), 1, again)
        self.assertEqual(sum(c for c, _ in again), 0)
        self.assertEqual(state_of(one), state_of(four))
        self.verify(four)

    def test_mbox_four_connections_same_as_one(self):
        """The same messages in the same files.  Not byte for byte: Dovecot
        answers the pipelined FETCH commands of one session interleaved,
        so even two runs over one connection can order a folder's mbox
        differently."""
        one, four = workdir("par-mbox-1"), workdir("par-mbox-4")
        self.run_backup(one, "--format", "mbox", "--connections", "1")
        _, s4 = self.run_backup(four, "--format", "mbox",
                                "--connections", "4")
        self.assertGreater(len(s4), 1, s4)
        t1, t4 = tree(one), tree(four)
        self.assertEqual(sorted(t1), sorted(t4))
        for k in t1:
            if k.endswith(".mbox"):
                self.assertEqual(sorted(runner.mbox_split(t1[k])),
                                 sorted(runner.mbox_split(t4[k])), k)
        self.assertEqual(state_of(one), state_of(four))
        self.verify(one)
        self.verify(four)

    def test_archives_use_one_connection(self):
        dest = workdir("par-tar")
        run, s = self.run_backup(dest, "--format", "tar.gz", "-v",
                                 "--connections", "4")
        self.assertEqual(len(s), 1, s)
        self.assertIn(b"one stream", run.stderr)
        self.verify(dest)

    def test_connections_out_of_range(self):
        dest = workdir("par-usage")
        for n in ("0", "65", "x"):
            run = backup(self.user, dest, "--connections", n)
            self.assertExit(run, 2, n)


class ParallelCrash(TestCase):
    """test_crash's kill-and-check cycle, with --connections 4."""

    def setUp(self):
        self.rng = random.Random("%d-%s" % (test_crash.SEED, self.id()))

    where = test_crash.CrashSafety.where
    check_consistent = test_crash.CrashSafety.check_consistent
    check_complete = test_crash.CrashSafety.check_complete

    def __getattr__(self, name):
        # The helpers check_* use, taken from test_crash as they are.
        f = getattr(test_crash.CrashSafety, name, None)
        if f is None or name.startswith("test_"):
            raise AttributeError(name)
        return f.__get__(self)

    def test_sigkill_mbox_four_connections(self):
        fmt = "mbox"
        user = harness.SERVER.new_user("parcrash")
        user.load_corpus(seed=67, scale=6, big=True)
        mail, folders = test_crash.server_mail(user)
        args = ["backup", "--connections", "4", "--format", fmt,
                "--cacert", harness.SERVER.cacert,
                harness.SERVER.url(user, "imaps")]
        ref = workdir("parcrash-ref")
        mark = harness.SERVER.log_mark()
        t0 = time.monotonic()
        run = runner.run(args + [ref], password=user.password, timeout=60)
        span = time.monotonic() - t0
        self.assertExit(run, 0)
        # INBOX (660) and Archive/2019 (360) each open one more.
        self.assertGreater(len(mark.sessions(user)), 1)

        kills = cycles = 0
        t_end = time.monotonic() + 60
        while kills < 10:
            self.assertLess(time.monotonic(), t_end,
                            "too slow: %d kills so far" % kills)
            cycles += 1
            dest = workdir("parcrash-%d" % cycles)
            for attempt in range(50):
                h = runner.start(args + [dest], password=user.password)
                time.sleep(self.rng.uniform(0, span * 1.1))
                runner.kill(h)
                run = runner.finish(h, 30)
                if run.signal is None:
                    self.assertExit(run, 0, self.where(fmt, kills))
                    break
                kills += 1
                self.check_consistent(fmt, dest, mail, folders,
                                      self.where(fmt, kills, run))
            run = runner.run(args + [dest], password=user.password,
                             timeout=60)
            self.assertExit(run, 0, self.where(fmt, kills))
            self.check_complete(fmt, user, dest, mail, folders,
                                self.where(fmt, kills, run))
            v = imapsnap("verify", dest)
            self.assertExit(v, 0, self.where(fmt, kills, v))


def load_one_big_folder(user, n, small=20):
    """INBOX with `n` small messages and a folder "Small" with `small`,
    written into the user's Maildir before the first login."""
    os.makedirs(user.maildir)
    for folder, count in (("", n), (".Small", small)):
        base = os.path.join(user.maildir, folder)
        for sub in ("cur", "new", "tmp"):
            os.makedirs(os.path.join(base, sub), exist_ok=True)
        for i in range(count):
            data = harness.simple_message(
                "message %d of %s" % (i, folder or "INBOX"),
                body=("line %d\n" % i) * (1 + i % 40),
                date=1577880000 + 3600 * i)
            name = "%d.M%dP1.imapsnap-test:2,%s" % (
                1577880000 + i, i, "S" if i % 3 else "")
            with open(os.path.join(base, "cur", name), "wb") as f:
                f.write(data)
    uid, gid = user.server.mail_owner
    for d, dirs, files in os.walk(user.home):
        shutil.chown(d, uid, gid)
        for f in files:
            shutil.chown(os.path.join(d, f), uid, gid)


class DominantFolder(TestCase):
    """One folder holding nearly everything is cut into shares by UID
    range, one per session; the Maildir comes out the same as with one
    session, also after SIGKILL at random moments."""

    N = 2400

    @classmethod
    def setUpClass(cls):
        cls.user = harness.SERVER.new_user("dom")
        load_one_big_folder(cls.user, cls.N)
        cls.ref = workdir("dom-1")
        mark = harness.SERVER.log_mark()
        run = backup(cls.user, cls.ref, "--connections", "1", timeout=120)
        if run.rc != 0:
            raise AssertionError("reference backup failed: %s" % run)
        cls.ref_sessions = mark.sessions(cls.user)

    def test_split_same_as_one(self):
        dest = workdir("dom-4")
        mark = harness.SERVER.log_mark()
        run = backup(self.user, dest, "--connections", "4", timeout=120)
        self.assertExit(run, 0)
        s4 = mark.sessions(self.user)
        self.assertEqual(len(self.ref_sessions), 1, self.ref_sessions)
        self.assertLessEqual(len(s4), 4, s4)
        # INBOX's 2,400 new messages make four shares of 600: at least
        # two sessions fetched a share of INBOX (Small has 20), and every
        # body was fetched once.
        sharing = [c for c, _ in s4 if c >= 500]
        self.assertGreaterEqual(len(sharing), 2, s4)
        self.assertEqual(sum(c for c, _ in s4), self.N + 20, s4)
        t1, t4 = tree(self.ref), tree(dest)
        self.assertEqual(sorted(t1), sorted(t4))
        for k in t1:
            self.assertEqual(t1[k], t4[k], k)
        self.assertEqual(state_of(self.ref), state_of(dest))
        assert_backup_matches(self, self.user, dest)
        self.assertExit(imapsnap("verify", dest), 0)

    def test_sigkill_while_split(self):
        rng = random.Random("%d-%s" % (test_crash.SEED, self.id()))
        args = ["backup", "--connections", "4",
                "--cacert", harness.SERVER.cacert,
                harness.SERVER.url(self.user, "imaps")]
        t0 = time.monotonic()
        run = runner.run(args + [workdir("dom-timing")],
                         password=self.user.password, timeout=60)
        span = time.monotonic() - t0
        self.assertExit(run, 0)
        ref = tree(self.ref)
        kills = 0
        for cycle in range(3):
            dest = workdir("dom-kill-%d" % cycle)
            for attempt in range(3):
                h = runner.start(args + [dest], password=self.user.password)
                time.sleep(rng.uniform(0.05, span * 0.9))
                runner.kill(h)
                run = runner.finish(h, 30)
                if run.signal is None:
                    self.assertExit(run, 0, "cycle %d" % cycle)
                    break
                kills += 1
                # Whatever is in cur/ is whole and named as in the
                # reference; nothing is there twice (saved_messages).
                for uid, m in harness.saved_messages(
                        os.path.join(dest, "INBOX")).items():
                    name = os.path.relpath(m.path, dest)
                    self.assertEqual(m.read(), ref.get(name), name)
            run = runner.run(args + [dest], password=self.user.password,
                             timeout=60)
            self.assertExit(run, 0, "after %d kills" % kills)
            got = tree(dest)
            self.assertEqual(sorted(ref), sorted(got), "after %d kills"
                             % kills)
            for k in ref:
                self.assertEqual(ref[k], got[k], k)
            self.assertExit(imapsnap("verify", dest), 0)
        self.assertGreater(kills, 0)

    def test_share_connection_lost(self):
        """The second connection (a share of INBOX) is cut mid-fetch: what
        it did not commit goes back into the queue and is fetched after a
        reconnection, and the backup is still complete and the same."""
        sys.path.insert(0, os.path.join(ROOT, "tests", "faults"))
        from proxy import Proxy
        import test_reliability
        dest = workdir("dom-cut")
        target = ("127.0.0.1", harness.SERVER.imap_port)
        with Proxy(target, plan="pass,eof@100000") as proxy:
            run = test_reliability.proxied_backup(
                self.user, proxy, dest, "--connections", "4", timeout=120)
            self.assertExit(run, 0)
            self.assertGreaterEqual(len(proxy.connections), 3)
            self.assertEqual(proxy.connections[1].action.kind, "eof")
        self.assertIn(b"reconnecting (retry 1 of", run.stderr)
        ref, got = tree(self.ref), tree(dest)
        self.assertEqual(sorted(ref), sorted(got))
        for k in ref:
            self.assertEqual(ref[k], got[k], k)
        self.assertEqual(state_of(self.ref), state_of(dest))
        self.assertExit(imapsnap("verify", dest), 0)
