"""Secrets and configuration (docs/reliability.md, "Secrets").

- A config file its group may write is refused (its password_command
  would run as the user running imapsnap, often root from cron), unless
  the group is the owner's own user private group.
- A password file others can read is warned about.
- imapsnap writes no core dump, whatever `ulimit -c` says: a crash's core
  would hold the password.
- Once logged in, libcurl's freed copies of the password and of the SASL
  message are wiped: the password is in memory no more often than the
  live connection needs.

Memory is read through /proc/PID/mem (the tests run as root, like CI)."""

import grp
import os
import resource
import signal
import subprocess
import sys
import time

from harness import TestCase, imapsnap, simple_message, workdir
import harness

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(harness.ROOT, "tests", "fakeimap"))
from fakeimap import FakeIMAP, Mailbox, Script, make_messages  # noqa: E402

PASSWORD = "Pw-secret-c0re-9f3a!q"
EXIT_USAGE = 2


class StallAfterLogin(Script):
    """Logs the client in, then answers LIST only after `stall` seconds:
    the window in which the test looks at the process."""

    stall = 20.0
    logged_in = False

    def login(self, c, tag, user, password):
        Script.login(self, c, tag, user, password)
        self.logged_in = c.user is not None

    def list(self, c, tag, ref, pattern):
        time.sleep(self.stall)
        Script.list(self, c, tag, ref, pattern)


CHUNK = 16 << 20
# Larger mappings are a sanitizer's shadow memory, not data.
MAX_REGION = 1 << 30


def occurrences(pid, needle):
    """How often `needle` is in the readable memory of process `pid`."""
    n = 0
    with open("/proc/%d/maps" % pid) as maps, \
            open("/proc/%d/mem" % pid, "rb", 0) as mem:
        for line in maps:
            f = line.split()
            if "r" not in f[1] or (len(f) > 5 and f[5] == "[vvar]"):
                continue
            a, b = (int(x, 16) for x in f[0].split("-"))
            if b - a > MAX_REGION:
                continue
            # In chunks that overlap by the needle's length, so that one
            # across a boundary counts once.
            pos = a
            while pos < b:
                try:
                    mem.seek(pos)
                    data = mem.read(min(CHUNK + len(needle), b - pos))
                except (OSError, ValueError, OverflowError):
                    break
                n += data.count(needle)
                if len(data) > CHUNK:
                    n -= data[CHUNK:].count(needle)
                pos += CHUNK
    return n


def core_limit(pid):
    with open("/proc/%d/limits" % pid) as f:
        for line in f:
            if line.startswith("Max core file size"):
                return line.split()[4]
    return None


class LoggedIn:
    """imapsnap backing up from a StallAfterLogin server, with core dumps
    allowed by its parent (`ulimit -c unlimited`) and `cwd` as its working
    directory (where a core named "core" would land)."""

    def __init__(self, tc, cwd, *extra):
        self.script = StallAfterLogin([Mailbox("INBOX", make_messages(2))],
                                      user="user", password=PASSWORD)
        self.srv = FakeIMAP(self.script).__enter__()
        with open(os.path.join(cwd, "pw"), "w") as f:
            f.write(PASSWORD + "\n")
        os.chmod(os.path.join(cwd, "pw"), 0o600)

        def unlimited():
            resource.setrlimit(resource.RLIMIT_CORE,
                               (resource.RLIM_INFINITY,
                                resource.RLIM_INFINITY))
            # A shell without job control starts background commands with
            # SIGQUIT ignored, and the ignoring is inherited: the test needs
            # its default action (a core dump).
            signal.signal(signal.SIGQUIT, signal.SIG_DFL)

        self.proc = subprocess.Popen(
            [harness.BINARY, "backup", "--tls", "none", "--connections",
             "1", "--password-file", os.path.join(cwd, "pw")] +
            list(extra) + [self.srv.url("user"), os.path.join(cwd, "dest")],
            cwd=cwd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True,
            preexec_fn=unlimited)
        deadline = time.monotonic() + 10
        while not self.script.logged_in and time.monotonic() < deadline:
            time.sleep(0.05)
        tc.assertTrue(self.script.logged_in, "imapsnap never logged in")
        time.sleep(0.3)  # past login, into LIST

    def close(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.communicate()
        self.srv.__exit__(None, None, None)


class CoreDumps(TestCase):
    def test_no_core_dump_and_none_with_the_password(self):
        """`ulimit -c unlimited`, then SIGQUIT after login (its default
        action dumps core, and no sanitizer catches it): the process has
        a core size limit of 0, no core file appears, and if one did it
        would have to be free of the password."""
        cwd = workdir("core")
        run = LoggedIn(self, cwd)
        try:
            limit = core_limit(run.proc.pid)
            os.kill(run.proc.pid, signal.SIGQUIT)
            run.proc.wait(timeout=20)
        finally:
            run.close()
        self.assertEqual(run.proc.returncode, -signal.SIGQUIT)
        self.assertEqual(limit, "0", "core dumps are allowed")
        cores = [n for n in os.listdir(cwd) if n.startswith("core")]
        for name in cores:
            with open(os.path.join(cwd, name), "rb") as f:
                self.assertNotIn(PASSWORD.encode(), f.read(),
                                 "the password is in %s" % name)
        with open("/proc/sys/kernel/core_pattern") as f:
            pattern = f.read().strip()
        if not pattern.startswith("|"):
            self.assertEqual(cores, [], "a core was written (%s)" % pattern)

    def test_password_copies_after_login(self):
        """Logged in, waiting for LIST: the password is in memory at most
        three times (the copy kept for reconnections, and the two libcurl
        keeps for the live connection); the SASL PLAIN message at most
        once (libcurl's send buffer)."""
        import base64
        cwd = workdir("copies")
        run = LoggedIn(self, cwd)
        try:
            plain = occurrences(run.proc.pid, PASSWORD.encode())
            sasl = occurrences(run.proc.pid, base64.b64encode(
                b"\0user\0" + PASSWORD.encode()))
        finally:
            run.close()
        print("      password in memory after login: %d times, SASL "
              "message %d" % (plain, sasl), flush=True)
        self.assertGreaterEqual(plain, 1, "the test found no copy at all")
        self.assertLessEqual(plain, 3)
        self.assertLessEqual(sasl, 1)


class ConfigFiles(TestCase):
    def write_config(self, mode, gid=None, extra=""):
        d = workdir("cfg")
        marker = os.path.join(d, "ran")
        path = os.path.join(d, "config")
        with open(path, "w") as f:
            f.write("[acct]\nurl = imap://user@127.0.0.1:1\n"
                    "destination = %s/dest\n"
                    "password_command = touch %s; echo pw\n%s"
                    % (d, marker, extra))
        os.chmod(path, mode)
        if gid is not None:
            os.chown(path, -1, gid)
        return path, marker

    def test_group_writable_config_is_refused(self):
        """0664 in a group that others may be in: refused before anything
        runs; its password_command never runs."""
        # A group that is nobody's private group here.
        group = next((g for g in grp.getgrall()
                      if g.gr_name in ("users", "staff", "adm", "mail")),
                     None)
        if group is None:
            group = grp.getgrgid(0)
        path, marker = self.write_config(0o664, gid=group.gr_gid)
        run = imapsnap("run", "--config", path)
        self.assertExit(run, EXIT_USAGE)
        self.assertIn(b"its group may write it", run.stderr, run)
        self.assertFalse(os.path.exists(marker), "password_command ran")

    def test_others_writable_config_is_refused(self):
        path, marker = self.write_config(0o646)
        run = imapsnap("run", "--config", path)
        self.assertExit(run, EXIT_USAGE)
        self.assertIn(b"anyone may write it", run.stderr, run)
        self.assertFalse(os.path.exists(marker), "password_command ran")

    def test_fifo_as_config_does_not_hang(self):
        d = workdir("cfgfifo")
        path = os.path.join(d, "config")
        os.mkfifo(path)
        run = imapsnap("run", "--config", path, timeout=20)
        self.assertExit(run, EXIT_USAGE)
        self.assertIn(b"not a regular file", run.stderr, run)


class PasswordFiles(TestCase):
    def test_readable_password_file_is_warned_about(self):
        user = harness.SERVER.new_user("pwwarn")
        with user.oracle() as o:
            o.append("INBOX", simple_message("m"))
        d = workdir("pwwarn")
        pw = os.path.join(d, "pw")
        with open(pw, "w") as f:
            f.write(user.password + "\n")
        for mode, said in ((0o644, b"its group and others"),
                           (0o604, b"others"), (0o600, None)):
            os.chmod(pw, mode)
            run = imapsnap("backup", "--cacert", user.server.cacert,
                           "--password-file", pw,
                           user.server.url(user, "imaps"),
                           os.path.join(d, "dest"))
            self.assertExit(run, 0, "a warning, not a refusal")
            if said:
                self.assertIn(b"warning: the password file", run.stderr,
                              run)
                self.assertIn(b"readable by " + said, run.stderr, run)
            else:
                self.assertNotIn(b"password file", run.stderr, run)
            self.assertNotLeaked(run, user.password)
