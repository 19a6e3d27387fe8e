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


def rerun(user, dest, *extra):
    """Back up again, through a proxy that keeps what the server sent:
    (the run, [(folder, uid)] of every body that arrived)."""
    with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
               keep_s2c=64 << 20) as p:
        url = "imap://%s@127.0.0.1:%d" % (user.name, p.port)
        run = runner.run(["backup", "--tls", "none"] + list(extra) +
                         [url, dest],
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
        n = 2400  # four shares of 600: about 6 s each
        user = slow_user("sig", n=n)
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
        self.assertLess(saved, n, "the run was not cut short")
        # The manifest was ended: its last line is the run's end.
        man = manifest_lines(dest)
        self.assertEqual(man[-1].get("type"), "end", man[-1])
        self.assertEqual(man[-1].get("status"), "interrupted", man[-1])

        again, got = rerun(user, dest)
        self.assertExit(again, 0)
        assert_backup_matches(self, user, dest)
        self.assertEqual(len(got), n - saved, "fetched by the next run")
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

    def stop_format(self, fmt):
        """Another store: the state and the store agree after the stop,
        the next run completes, and verify finds every message once."""
        user = slow_user("sig" + fmt.replace(".", ""), n=900)
        dest = workdir("sig-" + fmt)
        with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
                   rate=RATE) as p:
            h = start_backup(user, p, dest, "--format", fmt)
            time.sleep(3)
            t0 = time.monotonic()
            runner.kill(h, signal.SIGTERM)
            run = runner.finish(h, 30)
            took = time.monotonic() - t0
        self.assertExit(run, 1)
        self.assertLess(took, 2.0, str(run))
        saved = saved_in_state(dest)
        self.assertGreater(saved, 50, str(run))
        self.assertLess(saved, 900, str(run))
        again, got = rerun(user, dest, "--format", fmt)
        self.assertExit(again, 0)
        self.assertEqual(len(got), 900 - saved, "fetched by the next run")
        self.assertEqual(saved_in_state(dest), 900)
        check = harness.imapsnap("verify", dest)
        self.assertExit(check, 0, "verify")

    def test_sigterm_mbox(self):
        self.stop_format("mbox")

    def test_sigterm_tar_gz(self):
        self.stop_format("tar.gz")

    def test_json_and_metrics_say_interrupted(self):
        user = slow_user("sigjson", n=600)
        dest = workdir("sigjson")
        prom = os.path.join(workdir("sigjson-metrics"), "imapsnap.prom")
        with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
                   rate=RATE) as p:
            h = start_backup(user, p, dest, "--json", "--metrics", prom)
            time.sleep(2.5)
            runner.kill(h, signal.SIGTERM)
            run = runner.finish(h, 30)
        self.assertExit(run, 1)
        doc = json.loads(run.stdout)
        self.assertTrue(doc.get("interrupted"), doc)
        self.assertGreater(doc["messages"], 0, doc)
        self.assertEqual(doc["messages"], saved_in_state(dest), doc)
        with open(prom) as f:
            text = f.read()
        self.assertRegex(text, r'(?m)^imapsnap_last_run_interrupted\{'
                         r'account="[^"]*"\} 1$')
        self.assertRegex(text, r'(?m)^imapsnap_last_run_exit_status\{'
                         r'account="[^"]*"\} 1$')

    def test_run_stops_after_the_current_account(self):
        """imapsnap run with two accounts, stopped during the first: it
        keeps what the first received and does not start the second."""
        a, b = slow_user("siga", n=600), slow_user("sigb", n=10)
        work = workdir("sigrun")
        cfg = os.path.join(work, "config")
        with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
                   rate=RATE) as p:
            text = ""
            for name, user in (("a", a), ("b", b)):
                text += ("[%s]\nurl = imap://%s@127.0.0.1:%d\ntls = none\n"
                         "destination = %s/%s\npassword_command = printf "
                         "'%%s\\n' '%s'\n\n" % (name, user.name, p.port,
                                                 work, name, user.password))
            with open(cfg, "w") as f:
                f.write(text)
            os.chmod(cfg, 0o600)
            h = runner.start(["run", "--config", cfg],
                             env={"HOME": "/nonexistent",
                                  "XDG_CONFIG_HOME": ""})
            time.sleep(2.5)
            runner.kill(h, signal.SIGTERM)
            run = runner.finish(h, 30)
        self.assertExit(run, 1)
        self.assertIn(b"1 account not started", run.stderr, str(run))
        self.assertGreater(saved_in_state(os.path.join(work, "a")), 0)
        self.assertFalse(os.path.exists(os.path.join(work, "b")), str(run))

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
        user = slow_user("kill", n=2400)
        dest = workdir("kill")
        with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
                   rate=RATE, keep_s2c=8 << 20) as p:
            h = start_backup(user, p, dest, "--commit-interval", "1")
            time.sleep(4)
            runner.kill(h, signal.SIGKILL)
            run = runner.finish(h, 30)
            # What each connection (one share of the folder each) had
            # received whole when the kill came.
            shares = [{uid for _, uid in runner.completed_fetches(
                c.c2s_data, c.s2c_data)} for c in p.connections]
        self.assertEqual(run.signal, signal.SIGKILL)
        saved = runner.load_state(dest)[b"INBOX"]["saved"]
        shares = [x for x in shares if x]
        self.assertGreater(len(shares), 1, "the folder was not split")
        for i, got in enumerate(shares):
            # Received for about 3 s, committed every second: most of it
            # is saved, whatever share it belongs to.
            self.assertGreater(len(got & saved), len(got) // 3,
                               "share %d: %d received, %d committed"
                               % (i, len(got), len(got & saved)))
        self.assertLessEqual(saved, set().union(*shares))
        saved = len(saved)
        self.assertEqual(saved, len(files_in(dest, "cur")))
        again, got = rerun(user, dest)
        self.assertExit(again, 0)
        assert_backup_matches(self, user, dest)
        self.assertEqual(len(got), 2400 - saved, "fetched by the next run")

    def test_committed_before_a_throttling_wait(self):
        """A server that asks to wait: what came before the answer is
        committed before the wait, not after it (a kill during a long
        wait would lose it)."""
        from throttle_proxy import ThrottleProxy
        user = slow_user("killthr", n=1200)
        dest = workdir("killthr")
        with ThrottleProxy((harness.SERVER.host, harness.SERVER.imap_port),
                           {2: "backoff:20000"}) as p:
            h = start_backup(user, p, dest, "--connections", "1")
            deadline = time.monotonic() + 10
            while not p.throttled and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(1)
            runner.kill(h, signal.SIGKILL)
            run = runner.finish(h, 30)
        self.assertEqual(run.signal, signal.SIGKILL, str(run))
        self.assertTrue(p.throttled, "the proxy never throttled")
        # The first command's 500 messages came before the answer to
        # the second.
        self.assertGreaterEqual(saved_in_state(dest), 500, str(run))

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


def bodies(user):
    """Counter of the SHA-256 of every message the account holds."""
    out = collections.Counter()
    with user.oracle() as o:
        for f in o.folders():
            if f.selectable:
                for uid in o.messages(f):
                    out[hashlib.sha256(o.body(uid)).hexdigest()] += 1
    return out


class Transfers(TestCase):
    """restore and migrate, stopped by a signal on a slow link, then run
    again: every message once in the target."""

    def stopped(self, h, sig=signal.SIGTERM, after=3.0):
        time.sleep(after)
        t0 = time.monotonic()
        runner.kill(h, sig)
        run = runner.finish(h, 30)
        return run, time.monotonic() - t0

    def check_stopped(self, run, took):
        self.assertIsNone(run.signal, str(run))
        self.assertExit(run, 1, "interrupted")
        self.assertLess(took, 2.0, "exit %.2f s after the signal\n%s"
                        % (took, run))
        self.assertIn(b"interrupted", run.stderr, str(run))

    def assertSameBodies(self, dst, src):
        got, want = bodies(dst), bodies(src)
        twice = {k: n for k, n in got.items() if n > 1}
        self.assertEqual(twice, {}, "in the target more than once")
        self.assertEqual(len(got), len(want), "messages in the target")
        self.assertEqual(got, want)

    def test_restore(self):
        src = slow_user("rsig", n=900)
        work = workdir("restore-sig")
        backup = os.path.join(work, "backup")
        state = os.path.join(work, "state")
        self.assertExit(harness.backup(src, backup), 0)
        dst = harness.SERVER.new_user("rsigdst")
        mark = harness.SERVER.log_mark()
        with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
                   rate_up=RATE) as p:
            url = "imap://%s@127.0.0.1:%d" % (dst.name, p.port)
            h = runner.start(["restore", "--tls", "none", "--state-dir",
                              state, "--json", backup, url],
                             password=dst.password)
            run, took = self.stopped(h)
            port = p.port
        self.check_stopped(run, took)
        # An APPEND sent whole but not answered when the run stopped may
        # still be saved by the server after it left: resuming before
        # that would not see it (docs/restore.md, limits).
        mark.sessions(dst)
        first = json.loads(run.stdout)
        self.assertTrue(first.get("interrupted"), first)
        self.assertGreater(first["appended"], 50, first)
        self.assertLess(first["appended"], 900, first)
        # The state log kept the progress: the next run knows them.  (The
        # state is the target's, host and port: the same port again.)
        with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
                   port=port):
            again = harness.imapsnap("restore", "--tls", "none",
                                     "--state-dir", state, "--json", backup,
                                     url, password=dst.password)
        self.assertExit(again, 0)
        doc = json.loads(again.stdout)
        self.assertGreaterEqual(doc["present"], first["appended"], doc)
        self.assertSameBodies(dst, src)

    def test_migrate(self):
        src = slow_user("msig", n=900)
        dst = harness.SERVER.new_user("msigdst")
        state = workdir("migrate-sig") + "/state"
        env = {"IMAPSNAP_SRC_PASSWORD": src.password,
               "IMAPSNAP_DST_PASSWORD": dst.password}
        mark = harness.SERVER.log_mark()
        with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
                   rate=RATE) as p:
            url = "imap://%s@127.0.0.1:%d" % (src.name, p.port)
            h = runner.start(["migrate", "--tls", "none", "--state-dir",
                              state, "--json", url,
                              harness.SERVER.url(dst, "imap")], env=env)
            run, took = self.stopped(h, signal.SIGINT)
        self.check_stopped(run, took)
        mark.sessions(dst)  # as for restore
        first = json.loads(run.stdout)
        self.assertTrue(first.get("interrupted"), first)
        self.assertGreater(first["appended"], 50, first)
        again = harness.imapsnap("migrate", "--tls", "none", "--state-dir",
                                 state, harness.SERVER.url(src, "imap"),
                                 harness.SERVER.url(dst, "imap"), env=env,
                                 timeout=120)
        self.assertExit(again, 0)
        self.assertSameBodies(dst, src)
