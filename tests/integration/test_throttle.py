"""Providers that throttle or stop a client, and budgets per run.

Throttling answers come from tests/faults/throttle_proxy.py, in front of
the real Dovecot: it answers chosen message fetches as Microsoft 365
("Suggested Backoff Time: N milliseconds", NO or BAD then BYE), Yahoo
("Server error - Please try again later"), RFC 5530 ([UNAVAILABLE]) and
Gmail's download cap (BYE [OVERQUOTA] "Account exceeded command or
bandwidth limits") do.  imapsnap waits as told (bounded by --max-wait),
asks again and goes on; a quota for today, or a wait longer than
--max-wait, stops the run with exit 8 and keeps what was saved, and the
next run goes on from there.  --max-messages and --max-bytes stop a run
the same way, on purpose.
"""

import os
import re
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "faults"))

from harness import (TestCase, assert_backup_matches, imapsnap,  # noqa
                     simple_message, workdir)
import harness  # noqa: E402
from throttle_proxy import ThrottleProxy  # noqa: E402


def dovecot_plain():
    s = harness.SERVER
    return (s.host, s.imap_port)


class Throttled(TestCase):
    def setUp(self):
        self.user = harness.SERVER.new_user("thr")
        with self.user.oracle() as o:
            o.create("Archive")
            for i in range(40):
                o.append("INBOX" if i % 2 else "Archive",
                         simple_message("throttled %d" % i),
                         date=1600000000 + i)
        self.dest = os.path.join(workdir("throttle"), "b")

    def backup(self, proxy, *extra, dest=None):
        url = "imap://%s@127.0.0.1:%d" % (self.user.name, proxy.port)
        # Small commands, so that a throttled one is one of several.
        return imapsnap("backup", "--tls", "none", "--connections", "1",
                        *extra, url, dest or self.dest,
                        password=self.user.password)

    def saved(self):
        n = 0
        for d, dirs, files in os.walk(self.dest):
            dirs[:] = [x for x in dirs if x != ".imapsnap"]
            if os.path.basename(d) == "cur":
                n += len(files)
        return n

    def test_microsoft_backoff_is_waited_for(self):
        with ThrottleProxy(dovecot_plain(), {1: "backoff:700"}) as p:
            t0 = time.monotonic()
            run = self.backup(p)
            took = time.monotonic() - t0
        self.assertExit(run, 0)
        self.assertEqual(p.throttled, [(1, "backoff:700")])
        self.assertGreaterEqual(took, 0.7)
        self.assertRegex(run.stderr.decode(), r"throttles requests .*"
                         r"Suggested Backoff Time: 700 milliseconds.*"
                         r"waiting 0\.7 s")
        assert_backup_matches(self, self.user, self.dest)

    def test_microsoft_bad_then_bye(self):
        """BAD with a backoff, then BYE: wait, reconnect, go on."""
        with ThrottleProxy(dovecot_plain(), {1: "bye-backoff:300"}) as p:
            run = self.backup(p)
        self.assertExit(run, 0)
        assert_backup_matches(self, self.user, self.dest)

    def test_microsoft_bye_reconnects_after_the_suggested_wait(self):
        """The reconnection after BAD ... Suggested Backoff Time, BYE is
        the server's wait, not the backoff for a lost connection: it
        does not count in --retries, and is not added to the wait."""
        with ThrottleProxy(dovecot_plain(), {1: "bye-backoff:1500"}) as p:
            t0 = time.monotonic()
            run = self.backup(p, "--retries", "0")
            took = time.monotonic() - t0
        self.assertExit(run, 0)
        self.assertGreaterEqual(took, 1.5)
        self.assertRegex(run.stderr.decode(),
                         r"closed the session.*the server asked to wait "
                         r"1\.5 s: reconnecting")
        self.assertNotIn(b"retry 1 of", run.stderr)
        assert_backup_matches(self, self.user, self.dest)

    def test_yahoo_and_unavailable_wait_at_most_max_wait(self):
        with ThrottleProxy(dovecot_plain(),
                           {1: "yahoo", 3: "unavailable"}) as p:
            t0 = time.monotonic()
            run = self.backup(p, "--max-wait", "1")
            took = time.monotonic() - t0
        self.assertExit(run, 0)
        self.assertEqual(len(p.throttled), 2)
        self.assertGreaterEqual(took, 2.0)
        self.assertLess(took, 20, "the default waits were not bounded")
        assert_backup_matches(self, self.user, self.dest)

    def test_asked_to_wait_longer_than_max_wait_stops(self):
        with ThrottleProxy(dovecot_plain(), {2: "backoff:600000"}) as p:
            run = self.backup(p, "--max-wait", "5")
        self.assertExit(run, 8)
        self.assertIn(b"--max-wait", run.stderr)
        first = self.saved()
        self.assertGreater(first, 0, "what came before was not kept")
        with ThrottleProxy(dovecot_plain(), {}) as p:
            self.assertExit(self.backup(p), 0)
        assert_backup_matches(self, self.user, self.dest)

    def test_gmail_download_cap_stops_for_today(self):
        with ThrottleProxy(dovecot_plain(), {2: "overquota"}) as p:
            run = self.backup(p)
        self.assertExit(run, 8)
        self.assertIn(b"Account exceeded command or bandwidth limits",
                      run.stderr)
        self.assertIn(b"quota for today", run.stderr)
        first = self.saved()
        self.assertEqual(first, 20, "the first folder was not kept")
        # The next night: the rest, nothing twice.
        with ThrottleProxy(dovecot_plain(), {}) as p:
            run = self.backup(p)
        self.assertExit(run, 0)
        assert_backup_matches(self, self.user, self.dest)


class ThrottledLogin(TestCase):
    """A provider under load refuses the login itself (NO [UNAVAILABLE],
    or Microsoft's "Suggested Backoff Time"): imapsnap waits and logs in
    again, within --max-wait; a refusal of the credentials stays exit 3
    and is not tried again."""

    def setUp(self):
        self.user = harness.SERVER.new_user("thrl")
        with self.user.oracle() as o:
            for i in range(6):
                o.append("INBOX", simple_message("refused %d" % i),
                         date=1600000000 + i)
        self.dest = os.path.join(workdir("throttle-login"), "b")

    def backup(self, proxy, *extra, password=None):
        url = "imap://%s@127.0.0.1:%d" % (self.user.name, proxy.port)
        return imapsnap("backup", "--tls", "none", "--connections", "1",
                        *extra, url, self.dest,
                        password=password or self.user.password)

    def test_unavailable_login_is_waited_for(self):
        with ThrottleProxy(dovecot_plain(), {},
                           logins={1: "unavailable", 2: "unavailable"}) as p:
            t0 = time.monotonic()
            run = self.backup(p, "--max-wait", "1")
            took = time.monotonic() - t0
        self.assertExit(run, 0)
        self.assertEqual(p.logins, 3)
        self.assertGreaterEqual(took, 2.0)
        self.assertRegex(run.stderr.decode(),
                         r"at login .*\[UNAVAILABLE\].*waiting 1\.0 s")
        assert_backup_matches(self, self.user, self.dest)

    def test_backoff_at_login_waits_as_told(self):
        with ThrottleProxy(dovecot_plain(), {},
                           logins={1: "backoff:800"}) as p:
            t0 = time.monotonic()
            run = self.backup(p)
            took = time.monotonic() - t0
        self.assertExit(run, 0)
        self.assertEqual(p.logins, 2)
        self.assertGreaterEqual(took, 0.8)
        self.assertIn(b"waiting 0.8 s", run.stderr)
        assert_backup_matches(self, self.user, self.dest)

    def test_refused_credentials_stay_exit_3(self):
        with ThrottleProxy(dovecot_plain(), {},
                           logins={1: "refused"}) as p:
            run = self.backup(p)
        self.assertExit(run, 3)
        self.assertEqual(p.logins, 1, "a refusal was tried again")
        self.assertNotIn(b"waiting", run.stderr)

    def test_wrong_password_stays_exit_3(self):
        with ThrottleProxy(dovecot_plain(), {}) as p:
            run = self.backup(p, password="not-the-password")
        self.assertExit(run, 3)
        self.assertEqual(p.logins, 1)

    def test_longer_than_max_wait_stops(self):
        with ThrottleProxy(dovecot_plain(), {},
                           logins={1: "backoff:600000"}) as p:
            t0 = time.monotonic()
            run = self.backup(p, "--max-wait", "5")
            took = time.monotonic() - t0
        self.assertExit(run, 8)
        self.assertIn(b"--max-wait", run.stderr)
        self.assertLess(took, 5)

    def test_throttled_every_time_stops(self):
        with ThrottleProxy(dovecot_plain(), {}, logins={
                n: "backoff:100" for n in range(1, 20)}) as p:
            run = self.backup(p)
        self.assertExit(run, 8)
        self.assertIn(b"still after 5 waits", run.stderr)
        self.assertEqual(p.logins, 6)

    def test_restore_waits_too(self):
        self.assertExit(imapsnap(
            "backup", "--cacert", harness.SERVER.cacert,
            harness.SERVER.url(self.user, "imaps"), self.dest,
            password=self.user.password), 0)
        target = harness.SERVER.new_user("thrlr")
        state = os.path.join(workdir("throttle-login-state"), "s")
        with ThrottleProxy(dovecot_plain(), {},
                           logins={1: "backoff:500"}) as p:
            url = "imap://%s@127.0.0.1:%d" % (target.name, p.port)
            run = imapsnap("restore", "--tls", "none", "--state-dir",
                           state, self.dest, url, password=target.password)
        self.assertExit(run, 0)
        self.assertEqual(p.logins, 2, run.stderr)
        self.assertIn(b"at login", run.stderr)
        with target.oracle() as o:
            self.assertEqual(len(o.messages("INBOX")), 6)


class Budget(TestCase):
    def setUp(self):
        self.user = harness.SERVER.new_user("bud")
        with self.user.oracle() as o:
            o.create("Archive")
            for i in range(25):
                o.append("INBOX" if i < 15 else "Archive",
                         simple_message("budget %d" % i, body="x" * 400),
                         date=1600000000 + i)
        self.dest = os.path.join(workdir("budget"), "b")

    def backup(self, *extra):
        return imapsnap("backup", "--cacert", harness.SERVER.cacert,
                        *extra, harness.SERVER.url(self.user, "imaps"),
                        self.dest, password=self.user.password)

    def counts(self):
        out = {}
        for d, dirs, files in os.walk(self.dest):
            dirs[:] = [x for x in dirs if x != ".imapsnap"]
            if os.path.basename(d) == "cur":
                out[os.path.relpath(os.path.dirname(d), self.dest)] = \
                    sorted(files)
        return out

    def total(self):
        return sum(len(v) for v in self.counts().values())

    def test_max_messages_over_several_runs(self):
        run = self.backup("--max-messages", "10")
        self.assertExit(run, 8)
        self.assertRegex(run.stderr.decode(),
                         r"budget .*15 messages are left for the next run")
        self.assertEqual(self.total(), 10)
        run = self.backup("--max-messages", "10")
        self.assertExit(run, 8)
        self.assertEqual(self.total(), 20)
        run = self.backup("--max-messages", "10")
        self.assertExit(run, 0)
        self.assertEqual(self.total(), 25)
        assert_backup_matches(self, self.user, self.dest)

    def test_max_bytes(self):
        with self.user.oracle() as o:
            size = max(m.size for m in o.messages("INBOX").values())
        runs = 0
        while True:
            before = self.total()
            run = self.backup("--max-bytes", "4K")
            runs += 1
            got = self.total() - before
            self.assertLessEqual(got * size, 4096 + size, run)
            if run.rc == 0:
                break
            self.assertExit(run, 8)
            self.assertGreater(got, 0, "no progress")
            self.assertLess(runs, 20)
        self.assertGreater(runs, 2)
        assert_backup_matches(self, self.user, self.dest)

    def test_in_the_config_file(self):
        d = os.path.dirname(self.dest)
        config = os.path.join(d, "config")
        pw = os.path.join(d, "pw")
        with open(pw, "w") as f:
            f.write(self.user.password + "\n")
        with open(config, "w") as f:
            f.write("max_messages = 20\n[acct]\nurl = %s\n"
                    "cacert = %s\npassword_file = %s\ndestination = %s\n"
                    % (harness.SERVER.url(self.user, "imaps"),
                       harness.SERVER.cacert, pw, self.dest))
        run = imapsnap("run", "--config", config)
        self.assertExit(run, 8)
        self.assertEqual(self.total(), 20)
        with open(config, "a") as f:
            f.write("max_bytes = lots\n")
        self.assertExit(imapsnap("run", "--config", config), 2)

    def test_bad_values(self):
        for opt, val in (("--max-bytes", "0"), ("--max-bytes", "3X"),
                         ("--max-messages", "-1"), ("--max-wait", "0")):
            run = self.backup(opt, val)
            self.assertExit(run, 2, "%s %s" % (opt, val))
