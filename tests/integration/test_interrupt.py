"""A run stopped by a signal keeps what it received.

Through a slow link (tests/faults/proxy.py at about 300 KB/s per
connection), imapsnap is stopped with SIGTERM, SIGINT or SIGHUP in the
middle of a backup: it must save the messages that arrived complete,
write the state and the manifest's end, and exit with status 1 within
2 seconds, saying it was interrupted; a second signal ends it at once.
Killed with SIGKILL, it keeps what it committed by time (every
--commit-interval seconds).  In every case the next run completes the
backup with nothing lost and nothing fetched twice, compared with the
server through the oracle.  Restore and migrate stopped the same way
resume without putting any message in twice.
"""

import collections
import hashlib
import json
import os
import signal
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakeimap"))
sys.path.insert(0, os.path.join(ROOT, "tests", "faults"))

from harness import TestCase, assert_backup_matches, workdir  # noqa: E402
from proxy import Proxy  # noqa: E402
import harness  # noqa: E402
import runner  # noqa: E402

RATE = 300 * 1000  # bytes per second, per connection


def slow_user(prefix, n=1200, size=3000):
    user = harness.SERVER.new_user(prefix)
    runner.fill_inbox(user, n, size=size, seed=7)
    return user


def start_backup(user, proxy, dest, *extra):
    url = "imap://%s@127.0.0.1:%d" % (user.name, proxy.port)
    return runner.start(["backup", "--tls", "none"] + list(extra) +
                        [url, dest], password=user.password)


def saved_in_state(dest):
    return sum(len(f["saved"]) for f in runner.load_state(dest).values())


def files_in(dest, sub):
    d = os.path.join(dest, "INBOX", sub)
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


def rerun(user, dest):
    """Back up again, through a proxy that keeps what the server sent:
    (the run, [(folder, uid)] of every body that arrived)."""
    with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
               keep_s2c=64 << 20) as p:
        url = "imap://%s@127.0.0.1:%d" % (user.name, p.port)
        run = runner.run(["backup", "--tls", "none", url, dest],
                         password=user.password, timeout=60)
        got = []
        for c in p.connections:
            got += runner.completed_fetches(c.c2s_data, c.s2c_data)
    return run, got


class Interrupted(TestCase):

    def stop_and_check(self, sig, *extra, after=3.0):
        """Backup through the slow link, `sig` after `after` seconds: exit
        1 within 2 s, interrupted, what arrived is saved; then a re-run
        fetches exactly the rest."""
        user = slow_user("sig")
        dest = workdir("sig-%d" % sig)
        with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
                   rate=RATE) as p:
            h = start_backup(user, p, dest, *extra)
            time.sleep(after)
            t0 = time.monotonic()
            runner.kill(h, sig)
            run = runner.finish(h, 30)
            took = time.monotonic() - t0
        self.assertIsNone(run.signal, str(run))
        self.assertExit(run, 1, "interrupted")
        self.assertLess(took, 2.0, "exit %.2f s after the signal\n%s"
                        % (took, run))
        self.assertIn(b"interrupted", run.stderr.lower(), str(run))
        saved = saved_in_state(dest)
        cur = files_in(dest, "cur")
        self.assertGreater(saved, 50, "saved before the signal\n%s" % run)
        self.assertEqual(saved, len(cur), str(run))
        self.assertLess(saved, 1200, "the run was not cut short")
        # The manifest was ended: its last line is the run's end.
        man = manifest_lines(dest)
        self.assertEqual(man[-1].get("type"), "end", man[-1])
        self.assertEqual(man[-1].get("status"), "interrupted", man[-1])

        again, got = rerun(user, dest)
        self.assertExit(again, 0)
        assert_backup_matches(self, user, dest)
        self.assertEqual(len(got), 1200 - saved,
                         "fetched by the next run")
        self.assertEqual(len(set(got)), len(got), "fetched twice")
        return run

    def test_sigterm(self):
        self.stop_and_check(signal.SIGTERM)

    def test_sigint(self):
        self.stop_and_check(signal.SIGINT)

    def test_sighup(self):
        self.stop_and_check(signal.SIGHUP)

    def test_sigterm_one_session(self):
        self.stop_and_check(signal.SIGTERM, "--connections", "1")

    def test_json_says_interrupted(self):
        user = slow_user("sigjson", n=600)
        dest = workdir("sigjson")
        with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
                   rate=RATE) as p:
            h = start_backup(user, p, dest, "--json")
            time.sleep(2.5)
            runner.kill(h, signal.SIGTERM)
            run = runner.finish(h, 30)
        self.assertExit(run, 1)
        doc = json.loads(run.stdout)
        acct = doc["accounts"][0] if "accounts" in doc else doc
        self.assertTrue(acct.get("interrupted"), doc)
        self.assertGreater(acct["messages"], 0, doc)

    def test_stalled_link(self):
        """A link that stops forwarding altogether: the signal still ends
        the run within 2 s, not after --timeout."""
        user = slow_user("sigstall", n=600)
        dest = workdir("sigstall")
        with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
                   plan="stall@400000", then="stall@400000") as p:
            h = start_backup(user, p, dest, "--timeout", "60")
            time.sleep(3)
            t0 = time.monotonic()
            runner.kill(h, signal.SIGTERM)
            run = runner.finish(h, 30)
            took = time.monotonic() - t0
        self.assertExit(run, 1)
        self.assertLess(took, 2.0, str(run))
        self.assertGreater(saved_in_state(dest), 0, str(run))

    def test_second_signal_exits_at_once(self):
        """While the first signal's work is going on (here: waiting for a
        password command that takes its time), a second one ends the run
        at once, with status 1."""
        user = harness.SERVER.new_user("sig2")
        dest = workdir("sig2")
        h = runner.start(["backup", "--tls", "none", "--password-command",
                          "sleep 20; echo %s" % user.password,
                          harness.SERVER.url(user, "imap"), dest])
        # To imapsnap alone: the password command must not see them.
        time.sleep(0.5)
        os.kill(h["proc"].pid, signal.SIGTERM)
        time.sleep(0.5)
        t0 = time.monotonic()
        os.kill(h["proc"].pid, signal.SIGTERM)
        run = runner.finish(h, 30)
        took = time.monotonic() - t0
        self.assertExit(run, 1)
        self.assertLess(took, 1.0, str(run))


    def test_ignored_signal_stays_ignored(self):
        """Started under nohup (SIGHUP ignored), imapsnap does not stop
        for a SIGHUP."""
        user = slow_user("signohup", n=300)
        dest = workdir("signohup")
        with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
                   rate=RATE) as p:
            url = "imap://%s@127.0.0.1:%d" % (user.name, p.port)
            h = runner.start(["backup", "--tls", "none", url, dest],
                             password=user.password,
                             rlimits={}, ignore=(signal.SIGHUP,))
            time.sleep(1)
            runner.kill(h, signal.SIGHUP)
            run = runner.finish(h, 30)
        self.assertExit(run, 0)
        self.assertEqual(saved_in_state(dest), 300)


class Killed(TestCase):

    def test_sigkill_keeps_commits_by_time(self):
        """SIGKILL after a few seconds on the slow link: what the run
        committed by time is there, and the re-run fetches only the
        rest.  Every share of the split folder commits."""
        user = slow_user("kill")
        dest = workdir("kill")
        with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
                   rate=RATE) as p:
            h = start_backup(user, p, dest, "--commit-interval", "1")
            time.sleep(3.5)
            runner.kill(h, signal.SIGKILL)
            run = runner.finish(h, 30)
            shares = len(p.connections)
        self.assertEqual(run.signal, signal.SIGKILL)
        saved = saved_in_state(dest)
        # Four shares of 300 messages each arrived at ~100 a second for
        # about 3 s; at most the last second of each is lost.
        self.assertGreater(saved, 100 * shares, "committed by time")
        self.assertEqual(saved, len(files_in(dest, "cur")))
        again, got = rerun(user, dest)
        self.assertExit(again, 0)
        assert_backup_matches(self, user, dest)
        self.assertEqual(len(got), 1200 - saved, "fetched by the next run")

    def test_default_interval_is_five_seconds(self):
        user = slow_user("kill5", n=2400)
        dest = workdir("kill5")
        with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
                   rate=RATE) as p:
            h = start_backup(user, p, dest, "--connections", "1")
            time.sleep(7)
            runner.kill(h, signal.SIGKILL)
            run = runner.finish(h, 30)
        self.assertEqual(run.signal, signal.SIGKILL, str(run))
        self.assertGreater(saved_in_state(dest), 300, str(run))


def manifest_lines(dest):
    d = os.path.join(dest, ".imapsnap", "manifest")
    names = sorted(n for n in os.listdir(d) if n.endswith(".jsonl"))
    with open(os.path.join(d, names[-1])) as f:
        return [json.loads(ln) for ln in f if ln.strip()]
