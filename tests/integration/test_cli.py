"""The command line as people and cron see it: help and version, what is
printed on a terminal and off it (progress, summary, -q, -v, --json),
--dry-run, folder and date selection, the exit status of every kind of
failure, and one run per destination."""

import calendar
import fcntl
import json
import os
import pty
import re
import select
import socket
import struct
import subprocess
import termios
import threading
import time

from harness import (TestCase, assert_backup_matches, backup, imapsnap,
                     saved_messages, simple_message, snapshot, workdir)
import harness

SUMMARY = re.compile(r"^imapsnap: (\d+) folders?, (\d+) messages?, "
                     r"(\d+) bytes? in [0-9.]+ s")
NOON = 12 * 3600


def day(s):
    """Noon UTC of an ISO day, far from any timezone's date line."""
    return calendar.timegm(time.strptime(s, "%Y-%m-%d")) + NOON


def user_with(prefix, folders):
    """A fresh user whose folders hold messages: {name: [date, ...]}."""
    user = harness.SERVER.new_user(prefix)
    with user.oracle() as o:
        for name, dates in folders.items():
            if name != "INBOX":
                o.create(name)
            for i, d in enumerate(dates):
                o.append(name, simple_message("%s %d" % (name, i),
                                              body="x" * (100 + 37 * i)),
                         date=d)
    return user


def lines(data):
    return [ln for ln in data.decode("utf-8", "replace").splitlines()
            if ln.strip()]


def run_on_tty(args, password, timeout=60):
    """Run imapsnap with stderr on a pseudo-terminal (80 columns), stdout on
    a pipe.  Returns (exit status, stdout bytes, terminal bytes)."""
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    env = dict(os.environ, IMAPSNAP_PASSWORD=password, TERM="xterm")
    proc = subprocess.Popen([harness.BINARY] + [str(a) for a in args],
                            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=slave, env=env, start_new_session=True)
    os.close(slave)
    term = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        r, _, _ = select.select([master], [], [], 0.5)
        if not r:
            if proc.poll() is not None:
                break
            continue
        try:
            chunk = os.read(master, 65536)
        except OSError:  # EIO: the terminal's other side is closed
            break
        if not chunk:
            break
        term += chunk
    os.close(master)
    out = proc.stdout.read()
    proc.stdout.close()
    rc = proc.wait(timeout=max(1, deadline - time.monotonic()))
    if harness.SANITIZER_REPORT.search(term):
        raise AssertionError("sanitizer report:\n%s"
                             % term.decode("utf-8", "replace"))
    return rc, out, term


class HoldingProxy:
    """A TCP relay to the server that passes what the client sends but holds
    back the server's answers until release(): a run through it waits for
    the greeting, holding its destination's lock meanwhile."""

    def __init__(self, port):
        self.target = port
        self.released = threading.Event()
        self.listener = socket.socket()
        self.listener.bind(("127.0.0.1", 0))
        self.listener.listen(4)
        self.port = self.listener.getsockname()[1]
        self.connected = threading.Event()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self):
        try:
            client, _ = self.listener.accept()
        except OSError:
            return
        server = socket.create_connection(("127.0.0.1", self.target))
        self.connected.set()
        threading.Thread(target=self._pipe, args=(client, server, False),
                         daemon=True).start()
        threading.Thread(target=self._pipe, args=(server, client, True),
                         daemon=True).start()

    def _pipe(self, src, dst, hold):
        if hold:
            self.released.wait(120)
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def release(self):
        self.released.set()
        self.listener.close()


class HelpAndVersion(TestCase):
    def test_help(self):
        run = imapsnap("--help")
        self.assertExit(run, 0)
        for cmd in (b"backup URL DEST", b"list URL", b"run [ACCOUNT",
                    b"verify DEST"):
            self.assertIn(cmd, run.stdout)

    def test_help_command(self):
        for cmd, want in (("backup", [b"--include", b"--exclude",
                                      b"--since", b"--before", b"--dry-run",
                                      b"--json", b"--oauth2-token-command"]),
                          ("list", [b"--json", b"--sizes"]),
                          ("run", [b"--config", b"--dry-run"]),
                          ("verify", [b"--expect", b"--json"])):
            for args in (("help", cmd), (cmd, "--help")):
                run = imapsnap(*args)
                self.assertExit(run, 0)
                self.assertIn(b"usage: imapsnap " + cmd.encode(), run.stdout)
                for w in want:
                    self.assertIn(w, run.stdout, "%s: %s" % (args, w))

    def test_help_unknown_command(self):
        run = imapsnap("help", "frobnicate")
        self.assertExit(run, 2)
        self.assertIn(b"frobnicate", run.stderr)

    def test_version(self):
        run = imapsnap("--version")
        self.assertExit(run, 0)
        self.assertRegex(run.stdout.decode(), r"^imapsnap \d+\.\d+\S*\n$")


class Output(TestCase):
    """Who sees what: a terminal, cron, -q, -v, --json."""

    @classmethod
    def setUpClass(cls):
        base = 1600000000
        cls.user = user_with("out", {
            "INBOX": [base + i for i in range(40)],
            "Work": [base + i for i in range(25)],
        })

    def test_progress_on_a_terminal(self):
        dest = workdir("tty")
        rc, out, term = run_on_tty(
            ["backup", "--cacert", harness.SERVER.cacert,
             harness.SERVER.url(self.user, "imaps"), dest],
            self.user.password)
        text = term.decode("utf-8", "replace")
        self.assertEqual(rc, 0, text)
        self.assertEqual(out, b"", "stdout must stay empty")
        # Redrawn in place: carriage return, the line, erase to the end.
        for folder, n in (("INBOX", 40), ("Work", 25)):
            self.assertRegex(
                text, r"\r%s: \d+/%d messages, [0-9.]+ (B|KiB), "
                      r"(-|[0-9.]+ (B|KiB|MiB))/s(, ETA \d+:\d\d)?\x1b\[K"
                % (folder, n))
            self.assertIn("\r%s: %d/%d messages" % (folder, n, n), text)
        # Cleared before the summary, which ends the output.
        self.assertIn("\r\x1b[K", text)
        last = text.split("\r\x1b[K")[-1].strip()
        m = SUMMARY.match(last)
        self.assertTrue(m, "no summary at the end:\n%r" % text)
        self.assertEqual(int(m.group(2)), 65)
        assert_backup_matches(self, self.user, dest)

    def test_restore_progress_on_a_terminal(self):
        """restore shows one line for the whole run, cleared before its
        summary."""
        dest = workdir("tty-restore-src")
        self.assertExit(harness.backup(self.user, dest), 0)
        target = harness.SERVER.new_user("ttyr")
        rc, out, term = run_on_tty(
            ["restore", "--cacert", harness.SERVER.cacert,
             "--state-dir", workdir("tty-restore-state"), dest,
             harness.SERVER.url(target, "imaps")], target.password)
        text = term.decode("utf-8", "replace")
        self.assertEqual(rc, 0, text)
        self.assertEqual(out, b"", "stdout must stay empty")
        self.assertIn("\rrestore: 65/65 messages", text)
        last = text.split("\r\x1b[K")[-1].strip()
        self.assertRegex(last, r"^imapsnap: restore: 65 messages appended")

    def test_no_terminal_means_summary_only(self):
        """Cron: stderr is a pipe or a file.  A clean run says one line."""
        dest = workdir("cron")
        run = backup(self.user, dest)
        self.assertExit(run, 0)
        self.assertEqual(run.stdout, b"")
        got = lines(run.stderr)
        self.assertEqual(len(got), 1, "more than the summary:\n%s" % run)
        self.assertRegex(got[0], SUMMARY)
        # The run's manifest hash, to check the backup against later.
        self.assertRegex(got[0], r", manifest sha256 [0-9a-f]{64}$")
        self.assertNotIn(b"\r", run.stderr)
        self.assertNotIn(b"\x1b", run.stderr)

    def test_quiet(self):
        run = backup(self.user, workdir("quiet"), "-q")
        self.assertExit(run, 0)
        self.assertEqual(run.stdout + run.stderr, b"", str(run))
        run = backup(self.user, workdir("quiet"), "--quiet",
                     password=False, env={"IMAPSNAP_PASSWORD": "wrong"})
        self.assertExit(run, 3)
        self.assertIn(b"error", run.stderr, "errors are shown even with -q")

    def test_verbose_traces_the_protocol(self):
        run = backup(self.user, workdir("verbose"), "-v")
        self.assertExit(run, 0)
        text = run.stderr.decode("utf-8", "replace")
        self.assertRegex(text, r"(?m)^C i\d+ CAPABILITY$")
        self.assertRegex(text, r"(?m)^C i\d+ EXAMINE ")
        self.assertRegex(text, r"(?m)^S \* ")
        self.assertRegex(text, r"(?m)^imapsnap: INBOX: 40 new, 0 saved before")
        self.assertNotLeaked(run, self.user.password)

    def test_json_summary(self):
        dest = workdir("json")
        run = backup(self.user, dest, "--json")
        self.assertExit(run, 0)
        self.assertEqual(run.stderr, b"", "--json: stderr only for errors")
        doc = json.loads(run.stdout)
        _, msgs, nbytes = assert_backup_matches(self, self.user, dest)
        self.assertEqual(doc["messages"], msgs)
        self.assertEqual(doc["bytes"], nbytes)
        self.assertEqual(doc["folders"], 2)
        self.assertEqual(doc["exit"], 0)
        self.assertEqual(doc["status"], "ok")
        self.assertEqual(doc["errors"], [])
        self.assertIsNone(doc["error"])
        self.assertEqual(doc["destination"], dest)
        self.assertFalse(doc["dry_run"])
        self.assertRegex(doc["manifest_sha256"], r"^[0-9a-f]{64}$")
        run = backup(self.user, dest, "--json")
        self.assertEqual(json.loads(run.stdout)["messages"], 0,
                         "nothing new the second time")

    def test_json_on_failure(self):
        run = backup(self.user, workdir("jsonfail"), "--json",
                     password=False, env={"IMAPSNAP_PASSWORD": "wrong"})
        self.assertExit(run, 3)
        doc = json.loads(run.stdout)
        self.assertEqual(doc["exit"], 3)
        self.assertEqual(doc["status"], "auth")
        self.assertTrue(doc["error"])
        self.assertTrue(run.stderr, "the error is on stderr too")


class DryRun(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.user = user_with("dry", {
            "INBOX": [1600000000 + i for i in range(7)],
            "Archive/2019": [1560000000 + i for i in range(4)],
            "Entwürfe": [1600000000],
        })

    def plan(self, run):
        """{folder: (messages, bytes)} from the table on stdout."""
        rows = lines(run.stdout)
        self.assertRegex(rows[0], r"^FOLDER +MESSAGES +BYTES +SIZE$")
        out = {}
        for row in rows[1:]:
            m = re.match(r"^(.*?) +(\d+) +(\d+) +[0-9.]+ \S+$", row)
            self.assertTrue(m, "bad row %r in\n%s" % (row, run))
            out[m.group(1)] = (int(m.group(2)), int(m.group(3)))
        return out

    def expected(self, only_new=None):
        out = {}
        with self.user.oracle() as o:
            for f in o.folders():
                if not f.selectable:
                    continue
                msgs = o.messages(f)
                if only_new is not None:
                    msgs = {u: m for u, m in msgs.items()
                            if u not in only_new.get(f.name, ())}
                out[f.name] = (len(msgs), sum(m.size for m in msgs.values()))
        return out

    def test_plans_and_writes_nothing(self):
        dest = os.path.join(workdir("dry"), "backup")
        mark = harness.SERVER.log_mark()
        run = backup(self.user, dest, "--dry-run")
        self.assertExit(run, 0)
        self.assertFalse(os.path.exists(dest), "a dry run created DEST")
        plan = self.plan(run)
        total = plan.pop("(total)")
        want = self.expected()
        self.assertEqual(plan, want)
        self.assertEqual(total, (sum(v[0] for v in want.values()),
                                 sum(v[1] for v in want.values())))
        self.assertRegex(lines(run.stderr)[-1],
                         r"^imapsnap: dry run: would fetch 12 messages in 3 "
                         r"folders \(nothing written\)")
        # Not one body was fetched (by imapsnap, or by the oracle).
        self.assertEqual({c for c, _ in mark.sessions(self.user)}, {0})

    def test_plans_only_what_is_new(self):
        dest = workdir("drynew")
        self.assertExit(backup(self.user, dest), 0)
        before = snapshot(os.path.join(dest, "INBOX"))
        state = os.path.join(dest, ".imapsnap", "state")
        with open(state, "rb") as f:
            state_before = f.read()
        saved = {}
        with self.user.oracle() as o:
            for f in o.folders():
                if f.selectable:
                    saved[f.name] = set(o.messages(f))
            o.append("INBOX", simple_message("new 1", body="y" * 500),
                     date=1600000100)
            o.append("INBOX", simple_message("new 2", body="z" * 900),
                     date=1600000101)
        run = backup(self.user, dest, "-n", "--json")
        self.assertExit(run, 0)
        doc = json.loads(run.stdout)
        self.assertTrue(doc["dry_run"])
        self.assertEqual(doc["planned"], 2)
        self.assertEqual(doc["messages"], 0)
        plan = {p["folder"]: (p["messages"], p["bytes"]) for p in doc["plan"]}
        self.assertEqual(plan, self.expected(only_new=saved))
        self.assertEqual(plan["INBOX"][0], 2)
        self.assertEqual(snapshot(os.path.join(dest, "INBOX")), before)
        with open(state, "rb") as f:
            self.assertEqual(f.read(), state_before, "state rewritten")


class Selection(TestCase):
    def test_include_exclude(self):
        user = user_with("sel", {
            "INBOX": [1600000000, 1600000001],
            "Archive/2019": [1560000000],
            "Archive/2020": [1590000000],
            "日本語/Sub": [1600000000],
            "Trash": [1600000000],
            "Spam": [1600000000],
        })
        dest = workdir("sel")
        run = backup(user, dest, "--include", "INBOX", "--include",
                     "Archive*", "--include", "日本語*", "--exclude",
                     "Archive/2019", "--exclude", "Spam")
        self.assertExit(run, 0)
        taken = ["INBOX", "Archive/2020", "日本語/Sub"]
        _, msgs, _ = assert_backup_matches(self, user, dest, only=taken)
        self.assertEqual(msgs, 4)
        for name in ("Archive/2019", "Trash", "Spam"):
            self.assertFalse(os.path.exists(os.path.join(dest, name)),
                             "%s backed up against the selection" % name)
        self.assertRegex(lines(run.stderr)[-1], r"^imapsnap: 3 folders, 4 ")

    def test_exclude_only(self):
        user = user_with("excl", {"INBOX": [1600000000],
                                  "Junk": [1600000000, 1600000001]})
        dest = workdir("excl")
        self.assertExit(backup(user, dest, "--exclude", "Junk"), 0)
        assert_backup_matches(self, user, dest, only=["INBOX"])
        self.assertFalse(os.path.exists(os.path.join(dest, "Junk")))

    def test_since_before(self):
        dates = [day("2024-01-10"), day("2024-02-01"), day("2024-02-20"),
                 day("2024-03-01"), day("2024-03-02")]
        user = user_with("dates", {"INBOX": dates})
        dest = workdir("dates")
        run = backup(user, dest, "--since", "2024-02-01", "--before",
                     "2024-03-01")
        self.assertExit(run, 0)
        with user.oracle() as o:
            msgs = o.messages("INBOX")
        want = sorted(u for u, m in msgs.items()
                      if day("2024-02-01") <= m.internaldate
                      < day("2024-03-01"))
        self.assertEqual(len(want), 2)
        self.assertEqual(sorted(saved_messages(os.path.join(dest, "INBOX"))),
                         want)
        # A later run without the filter still finds the older messages.
        self.assertExit(backup(user, dest), 0)
        assert_backup_matches(self, user, dest)

    def test_bad_dates_are_usage_errors(self):
        url = "imaps://u@127.0.0.1:9"
        for args in (("--since", "2024-02-30"), ("--before", "yesterday"),
                     ("--since", "2024-03-01", "--before", "2024-03-01")):
            dest = os.path.join(workdir("baddate"), "d")
            run = imapsnap("backup", *args, url, dest, password="x")
            self.assertExit(run, 2, " ".join(args))
            self.assertFalse(os.path.exists(dest))


class ExitStatus(TestCase):
    """Each kind of failure has its own exit status, for backup and list."""

    @classmethod
    def setUpClass(cls):
        cls.user = user_with("exit", {"INBOX": [1600000000],
                                      "Broken": [1600000000],
                                      "Fine": [1600000000, 1600000001]})

    def both(self, *args, password=None, **kw):
        """backup and list with the same connection arguments."""
        pw = self.user.password if password is None else password
        dest = workdir("exit")
        return (imapsnap("backup", *args, dest, password=pw, **kw),
                imapsnap("list", *args, password=pw, **kw))

    def url(self, scheme="imaps", host=None, port=None):
        return harness.SERVER.url(self.user, scheme, host, port)

    def test_0_success(self):
        for run in self.both("--cacert", harness.SERVER.cacert, self.url()):
            self.assertExit(run, 0)

    def test_1_partial(self):
        """A folder the server cannot open (its Maildir made unreadable):
        the rest is saved, and the status is 1, never 0."""
        broken = os.path.join(self.user.maildir, ".Broken")
        os.chmod(broken, 0)
        try:
            dest = workdir("partial")
            run = backup(self.user, dest)
            lst = imapsnap("list", "--cacert", harness.SERVER.cacert,
                           self.url(), password=self.user.password)
        finally:
            os.chmod(broken, 0o700)
        self.assertExit(run, 1)
        self.assertRegex(run.stderr.decode(), r"(?m)^imapsnap: error: Broken: ")
        self.assertRegex(lines(run.stderr)[-1], r", 1 folders failed(,|$)")
        assert_backup_matches(self, self.user, dest, only=["INBOX", "Fine"])
        self.assertExit(lst, 1)
        self.assertIn(b"Broken", lst.stderr)
        self.assertRegex(lst.stdout.decode(), r"(?m)^Fine +2 +2 ")

    def test_2_usage(self):
        for run in self.both("--frobnicate", self.url()):
            self.assertExit(run, 2)
        for run in self.both("--timeout", "0", self.url()):
            self.assertExit(run, 2)
        for run in self.both("http://127.0.0.1:9"):
            self.assertExit(run, 2)
        run = imapsnap("list", password="x")
        self.assertExit(run, 2, "list without URL")

    def test_3_authentication(self):
        for run in self.both("--cacert", harness.SERVER.cacert, self.url(),
                             password="wrong-" + self.user.password):
            self.assertExit(run, 3)
            self.assertNotLeaked(run, self.user.password)

    def test_4_connection(self):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
        s.close()
        for run in self.both(self.url(port=closed)):
            self.assertExit(run, 4, "nothing listens")
        s = harness.SERVER
        for run in self.both("--cacert", s.cacert,
                             self.url(host=s.mismatch_host,
                                      port=s.mismatch_port)):
            self.assertExit(run, 4, "certificate for another name")
        for run in self.both(self.url("imaps")):
            self.assertExit(run, 4, "certificate from an unknown CA")

    def test_5_locked_by_a_concurrent_run(self):
        """A second run on the same DEST while the first is under way exits
        5 at once, naming the first run's pid; the first is unharmed."""
        dest = workdir("locked")
        proxy = HoldingProxy(harness.SERVER.imaps_port)
        env = dict(os.environ, IMAPSNAP_PASSWORD=self.user.password)
        first = subprocess.Popen(
            [harness.BINARY, "backup", "--cacert", harness.SERVER.cacert,
             self.url(port=proxy.port), dest],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, env=env, start_new_session=True)
        try:
            self.assertTrue(proxy.connected.wait(30),
                            "the first run never connected")
            second = backup(self.user, dest, timeout=60)
        finally:
            proxy.release()
            out, err = first.communicate(timeout=60)
        self.assertExit(second, 5)
        self.assertLess(second.elapsed, 10, "the second run waited")
        self.assertRegex(second.stderr.decode(),
                         r"another imapsnap run \(pid %d\)" % first.pid)
        self.assertIn(dest.encode(), second.stderr)
        self.assertEqual(first.returncode, 0, err.decode())
        assert_backup_matches(self, self.user, dest)

    def test_6_destination_not_writable(self):
        blocker = os.path.join(workdir("notwritable"), "file")
        with open(blocker, "w") as f:
            f.write("in the way\n")
        run = backup(self.user, os.path.join(blocker, "dest"))
        self.assertExit(run, 6)
