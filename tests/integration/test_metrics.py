"""--metrics FILE and metrics_file: the Prometheus text file each run
writes for node_exporter's textfile collector (docs/monitoring.md).

Every file written here is checked with `promtool check metrics` (Debian's
prometheus package; contrib/install-deps.sh installs it), and each metric
has a test of its own against what the server holds (the imaplib oracle),
the disk, or the clock.  The file is parsed here with a small reader of
the text format that shares nothing with imapsnap's."""

import json
import os
import re
import shutil
import stat
import subprocess
import sys
import threading
import time

from harness import TestCase, assert_backup_matches, imapsnap, workdir
import harness
import test_run

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakeimap"))
from fakeimap import FakeIMAP, Mailbox, Script, make_messages  # noqa: E402
import runner  # noqa: E402

FAMILIES = [
    "imapsnap_last_run_start_timestamp_seconds",
    "imapsnap_last_run_end_timestamp_seconds",
    "imapsnap_last_run_duration_seconds",
    "imapsnap_last_run_exit_status",
    "imapsnap_last_run_success",
    "imapsnap_last_run_interrupted",
    "imapsnap_last_success_timestamp_seconds",
    "imapsnap_last_run_folders",
    "imapsnap_last_run_folders_failed",
    "imapsnap_last_run_messages_planned",
    "imapsnap_last_run_messages_saved",
    "imapsnap_last_run_saved_bytes",
    "imapsnap_last_run_messages_skipped",
    "imapsnap_backup_size_bytes",
]

SAMPLE = re.compile(r'^(?P<name>[a-zA-Z_:][a-zA-Z0-9_:]*)'
                    r'\{(?P<labels>[^}]*)\} (?P<value>\S+)$')
LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:\\.|[^"\\])*)"')


def unescape(v):
    return re.sub(r'\\(.)', lambda m: "\n" if m.group(1) == "n"
                  else m.group(1), v)


def promtool(path):
    """`promtool check metrics` of the file: (exit status, output)."""
    exe = shutil.which("promtool")
    if not exe:
        raise AssertionError("promtool not found: install Debian's "
                             "prometheus package (contrib/install-deps.sh)")
    with open(path, "rb") as f:
        p = subprocess.run([exe, "check", "metrics"], stdin=f,
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                           timeout=60)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def read_metrics(tc, path):
    """{(name, account, other labels as a sorted tuple): float}, after
    checking the file with promtool and that each family has HELP and
    TYPE gauge lines before its samples."""
    rc, out = promtool(path)
    tc.assertEqual((rc, out), (0, ""), "promtool check metrics " + path)
    with open(path) as f:
        text = f.read()
    out, helped, typed = {}, set(), set()
    for line in text.splitlines():
        if line.startswith("# HELP "):
            helped.add(line.split()[2])
            continue
        if line.startswith("# TYPE "):
            tc.assertEqual(line.split()[3], "gauge", line)
            typed.add(line.split()[2])
            continue
        m = SAMPLE.match(line)
        tc.assertIsNotNone(m, "not a sample line: %r" % line)
        name = m.group("name")
        tc.assertIn(name, FAMILIES, "undocumented metric")
        tc.assertIn(name, helped, "sample before its HELP line")
        tc.assertIn(name, typed, "sample before its TYPE line")
        labels = {k: unescape(v) for k, v in LABEL.findall(m.group("labels"))}
        account = labels.pop("account")
        key = (name, account, tuple(sorted(labels.items())))
        tc.assertNotIn(key, out, "sample twice: " + line)
        out[key] = float(m.group("value"))
    tc.assertEqual(sorted(helped), sorted(FAMILIES))
    return out


def value(metrics, name, account, **labels):
    return metrics[(name, account, tuple(sorted(labels.items())))]


def accounts_in(metrics):
    return sorted({k[1] for k in metrics})


def du_bytes(path):
    """Allocated bytes under path, as `du -s --block-size=1` counts
    (without following symlinks or crossing filesystems)."""
    out = subprocess.run(["du", "-s", "-x", "-P", "--block-size=1", path],
                         stdout=subprocess.PIPE, check=True).stdout
    return int(out.split()[0])


def label_of(user):
    """The account label of `imapsnap backup`: user@host:port."""
    return "%s@%s:%d" % (user.name, user.server.host, user.server.imaps_port)


class Metrics(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.alice = test_run.mailbox("meta", ["Archive", "Lists/dev"])
        cls.bob = test_run.mailbox("metb")

    def backup(self, user, dest, metrics, *extra, **kw):
        return harness.backup(user, dest, "--metrics", metrics, *extra, **kw)

    def first_run(self, name):
        """A full backup of alice with --metrics; (run, metrics, dest,
        file, time before, time after)."""
        d = workdir(name)
        mfile = os.path.join(d, "imapsnap.prom")
        t0 = time.time()
        r = self.backup(self.alice, d + "/dest", mfile)
        t1 = time.time()
        self.assertExit(r, 0)
        return r, read_metrics(self, mfile), d + "/dest", mfile, t0, t1

    # --- one test per field ---------------------------------------------

    def test_start_and_end_timestamps(self):
        r, m, dest, mfile, t0, t1 = self.first_run("mts")
        a = label_of(self.alice)
        start = value(m, "imapsnap_last_run_start_timestamp_seconds", a)
        end = value(m, "imapsnap_last_run_end_timestamp_seconds", a)
        self.assertLessEqual(t0 - 0.01, start)
        self.assertLessEqual(start, end)
        self.assertLessEqual(end, t1 + 0.01)

    def test_duration(self):
        r, m, dest, mfile, t0, t1 = self.first_run("mdur")
        a = label_of(self.alice)
        dur = value(m, "imapsnap_last_run_duration_seconds", a)
        self.assertGreater(dur, 0)
        self.assertLessEqual(dur, r.elapsed + 0.01)
        span = (value(m, "imapsnap_last_run_end_timestamp_seconds", a) -
                value(m, "imapsnap_last_run_start_timestamp_seconds", a))
        self.assertAlmostEqual(dur, span, delta=0.05)

    def test_exit_status_and_success(self):
        r, m, dest, mfile, t0, t1 = self.first_run("mexit")
        a = label_of(self.alice)
        self.assertEqual(value(m, "imapsnap_last_run_exit_status", a), 0)
        self.assertEqual(value(m, "imapsnap_last_run_success", a), 1)
        # A refused login: exit 3, in the file too.
        r = harness.imapsnap("backup", "--cacert", self.alice.server.cacert,
                             "--metrics", mfile,
                             self.alice.server.url(self.alice, "imaps"), dest,
                             password="wrong")
        self.assertExit(r, 3)
        m = read_metrics(self, mfile)
        self.assertEqual(value(m, "imapsnap_last_run_exit_status", a), 3)
        self.assertEqual(value(m, "imapsnap_last_run_success", a), 0)

    def test_last_success_is_kept_across_failed_runs(self):
        r, m, dest, mfile, t0, t1 = self.first_run("mlast")
        a = label_of(self.alice)
        first = value(m, "imapsnap_last_success_timestamp_seconds", a)
        self.assertEqual(first,
                         value(m, "imapsnap_last_run_end_timestamp_seconds",
                               a))
        for attempt in range(2):
            r = harness.imapsnap(
                "backup", "--cacert", self.alice.server.cacert,
                "--metrics", mfile,
                self.alice.server.url(self.alice, "imaps"), dest,
                password="wrong")
            self.assertExit(r, 3)
            m = read_metrics(self, mfile)
            self.assertEqual(
                value(m, "imapsnap_last_success_timestamp_seconds", a), first,
                "a failed run keeps the last success (attempt %d)" % attempt)
            self.assertGreater(
                value(m, "imapsnap_last_run_start_timestamp_seconds", a),
                first)
        r = self.backup(self.alice, dest, mfile)
        self.assertExit(r, 0)
        m = read_metrics(self, mfile)
        self.assertGreater(
            value(m, "imapsnap_last_success_timestamp_seconds", a), first)

    def test_never_succeeded_is_zero(self):
        d = workdir("mnever")
        mfile = os.path.join(d, "imapsnap.prom")
        r = harness.imapsnap("backup", "--cacert", self.bob.server.cacert,
                             "--metrics", mfile,
                             self.bob.server.url(self.bob, "imaps"),
                             d + "/dest", password="wrong")
        self.assertExit(r, 3)
        m = read_metrics(self, mfile)
        self.assertEqual(value(m, "imapsnap_last_success_timestamp_seconds",
                               label_of(self.bob)), 0)

    def test_messages_and_bytes_saved(self):
        r, m, dest, mfile, t0, t1 = self.first_run("msaved")
        a = label_of(self.alice)
        folders, msgs, nbytes = assert_backup_matches(self, self.alice, dest)
        self.assertEqual(value(m, "imapsnap_last_run_messages_saved", a),
                         msgs)
        self.assertEqual(value(m, "imapsnap_last_run_messages_planned", a),
                         msgs)
        self.assertEqual(value(m, "imapsnap_last_run_saved_bytes", a),
                         nbytes)
        # Nothing new: nothing saved, and the file says so.
        self.assertExit(self.backup(self.alice, dest, mfile), 0)
        m = read_metrics(self, mfile)
        self.assertEqual(value(m, "imapsnap_last_run_messages_saved", a), 0)
        self.assertEqual(value(m, "imapsnap_last_run_saved_bytes", a), 0)
        self.assertEqual(value(m, "imapsnap_last_run_messages_planned", a),
                         0)

    def test_folders_and_folders_failed(self):
        user = test_run.mailbox("metf", ["Good", "Broken"])
        d = workdir("mfolders")
        mfile = os.path.join(d, "m.prom")
        broken = os.path.join(user.maildir, ".Broken")
        os.chmod(broken, 0)
        try:
            r = self.backup(user, d + "/dest", mfile)
        finally:
            os.chmod(broken, 0o700)
        self.assertExit(r, 1)
        m = read_metrics(self, mfile)
        a = label_of(user)
        with user.oracle() as o:
            selectable = len([f for f in o.folders() if f.selectable])
        self.assertEqual(value(m, "imapsnap_last_run_folders_failed", a), 1)
        # Broken could not even be opened: it counts as failed, not as
        # examined.
        self.assertEqual(value(m, "imapsnap_last_run_folders", a),
                         selectable - 1)
        self.assertEqual(value(m, "imapsnap_last_run_exit_status", a), 1)
        self.assertEqual(value(m, "imapsnap_last_run_success", a), 0)
        self.assertExit(self.backup(user, d + "/dest", mfile), 0)
        m = read_metrics(self, mfile)
        self.assertEqual(value(m, "imapsnap_last_run_folders_failed", a), 0)
        self.assertEqual(value(m, "imapsnap_last_run_folders", a),
                         selectable)

    def fake_run(self, script, name):
        d = workdir(name)
        mfile = os.path.join(d, "m.prom")
        with FakeIMAP(script) as srv:
            r = runner.backup_fake(srv, d + "/dest", "--timeout", "3",
                                   "--retries", "0", "--metrics", mfile,
                                   "--json")
            account = "user@127.0.0.1:%d" % srv.port
        return r, read_metrics(self, mfile), account

    class WithoutUid2(Script):
        """Answers every UID FETCH without UID 2, then `tagged`."""

        def __init__(self, tagged):
            super().__init__([Mailbox("INBOX", make_messages(3))])
            self.tagged = tagged

        def fetch(self, c, tag, uids, items):
            by_uid = c.selected.by_uid()
            for seq, uid in enumerate(uids, 1):
                if uid in by_uid and uid != 2:
                    self.send_message(c, seq, by_uid[uid])
            c.send(tag + b" " + self.tagged + b"\r\n")

    def test_messages_skipped_failed(self):
        """The server refuses the FETCH after sending UIDs 1 and 3: UID 2
        is a failed message (tried again next run), not an expunged one."""
        r, m, a = self.fake_run(
            self.WithoutUid2(b"NO [SERVERBUG] cannot read message 2"),
            "mskipf")
        self.assertExit(r, 1)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["failed"], 1, r)
        self.assertEqual(value(m, "imapsnap_last_run_messages_skipped", a,
                               reason="failed"), 1)
        self.assertEqual(value(m, "imapsnap_last_run_messages_skipped", a,
                               reason="expunged"), 0)
        self.assertEqual(value(m, "imapsnap_last_run_messages_saved", a), 2)

    def test_messages_skipped_expunged(self):
        """UID 2 is gone by the time it is fetched (the FETCH answers the
        others, OK): expunged meanwhile, and the run still succeeds."""
        r, m, a = self.fake_run(self.WithoutUid2(b"OK FETCH done"), "mskipe")
        self.assertExit(r, 0)
        self.assertEqual(json.loads(r.stdout)["vanished"], 1, r)
        self.assertEqual(value(m, "imapsnap_last_run_messages_skipped", a,
                               reason="expunged"), 1)
        self.assertEqual(value(m, "imapsnap_last_run_messages_skipped", a,
                               reason="failed"), 0)

    def test_backup_size_on_disk(self):
        user = test_run.mailbox("mets", ["Archive"])
        d = workdir("msize")
        mfile, dest = os.path.join(d, "m.prom"), d + "/dest"
        a = label_of(user)
        self.assertExit(self.backup(user, dest, mfile), 0)
        size = value(read_metrics(self, mfile), "imapsnap_backup_size_bytes",
                     a)
        self.assertEqual(size, du_bytes(dest))
        # Grows with the backup: a new message of 200 KB.
        with user.oracle() as o:
            o.append("Archive", harness.simple_message(
                "big", "x" * 200000 + "\n"), date=1600000100)
        self.assertExit(self.backup(user, dest, mfile), 0)
        grown = value(read_metrics(self, mfile),
                      "imapsnap_backup_size_bytes", a)
        self.assertEqual(grown, du_bytes(dest))
        self.assertGreaterEqual(grown - size, 200000)

    # --- the file as a whole -------------------------------------------

    def test_escaped_label_still_parses(self):
        """A login name with a quote, a backslash and a newline: the label
        is escaped and promtool accepts the file."""
        d = workdir("mesc")
        mfile = os.path.join(d, "m.prom")
        weird = 'we"ird\\na\nme'
        r = harness.imapsnap("backup", "--cacert", self.bob.server.cacert,
                             "--user", weird, "--metrics", mfile,
                             self.bob.server.url(None, "imaps"), d + "/dest",
                             password="x")
        self.assertExit(r, 3)
        m = read_metrics(self, mfile)
        self.assertEqual(accounts_in(m), ["%s@%s:%d" % (
            weird, self.bob.server.host, self.bob.server.imaps_port)])

    def test_run_writes_one_file_with_an_account_label_each(self):
        d = workdir("mrun")
        mfile = os.path.join(d, "imapsnap.prom")
        cfg = test_run.write_config(
            os.path.join(d, "config"),
            "metrics_file = %s\n\n" % mfile +
            test_run.account("alice", self.alice, d + "/alice") +
            test_run.account("bob", self.bob, d + "/bob"))
        self.assertExit(test_run.run("--config", cfg), 0)
        m = read_metrics(self, mfile)
        self.assertEqual(accounts_in(m), ["alice", "bob"])
        _, na, _ = assert_backup_matches(self, self.alice, d + "/alice")
        _, nb, _ = assert_backup_matches(self, self.bob, d + "/bob")
        self.assertEqual(value(m, "imapsnap_last_run_messages_saved",
                               "alice"), na)
        self.assertEqual(value(m, "imapsnap_last_run_messages_saved", "bob"),
                         nb)
        before = {k: v for k, v in m.items() if k[1] == "bob"}

        # Only alice now: bob's samples stay exactly as they were.
        self.assertExit(test_run.run("--config", cfg, "alice"), 0)
        m2 = read_metrics(self, mfile)
        self.assertEqual({k: v for k, v in m2.items() if k[1] == "bob"},
                         before)
        self.assertGreater(
            value(m2, "imapsnap_last_run_start_timestamp_seconds", "alice"),
            value(m, "imapsnap_last_run_start_timestamp_seconds", "alice"))

        # --metrics wins over metrics_file.
        other = os.path.join(d, "other.prom")
        self.assertExit(test_run.run("--config", cfg, "--metrics", other,
                                     "bob"), 0)
        self.assertEqual(accounts_in(read_metrics(self, other)), ["bob"])

    def test_accounts_with_files_of_their_own(self):
        d = workdir("mown")
        fa, fb = os.path.join(d, "a.prom"), os.path.join(d, "b.prom")
        cfg = test_run.write_config(
            os.path.join(d, "config"),
            test_run.account("alice", self.alice, d + "/alice",
                             metrics_file=fa) +
            test_run.account("bob", self.bob, d + "/bob", metrics_file=fb) +
            test_run.account("quiet", self.bob, d + "/quiet"))
        self.assertExit(test_run.run("--config", cfg), 0)
        self.assertEqual(accounts_in(read_metrics(self, fa)), ["alice"])
        self.assertEqual(accounts_in(read_metrics(self, fb)), ["bob"])
        self.assertEqual(sorted(os.listdir(d)),
                         sorted(["a.prom", "a.prom.lock", "alice", "b.prom",
                                 "b.prom.lock", "bob", "config", "quiet"]))

    def test_replaced_atomically_and_readable(self):
        r, m, dest, mfile, t0, t1 = self.first_run("matomic")
        st1 = os.stat(mfile)
        self.assertEqual(stat.S_IMODE(st1.st_mode), 0o644,
                         "node_exporter runs as another user")
        self.assertExit(self.backup(self.alice, dest, mfile), 0)
        st2 = os.stat(mfile)
        self.assertNotEqual(st1.st_ino, st2.st_ino,
                            "a new file renamed over the old one, not "
                            "rewritten in place")
        self.assertEqual(sorted(os.listdir(os.path.dirname(mfile))),
                         ["dest", "imapsnap.prom", "imapsnap.prom.lock"],
                         "no temporary file left behind")

    def test_concurrent_runs_keep_both(self):
        """Two accounts backed up at the same moment into one file: the
        lock keeps either from losing the other's update."""
        d = workdir("mconc")
        mfile = os.path.join(d, "imapsnap.prom")
        for attempt in range(3):
            os.path.exists(mfile) and os.unlink(mfile)
            runs = {}

            def go(user, name):
                runs[name] = self.backup(user, "%s/%s-%d" % (d, name,
                                                              attempt), mfile)
            ts = [threading.Thread(target=go, args=(u, n))
                  for u, n in ((self.alice, "a"), (self.bob, "b"))]
            for t in ts:
                t.start()
            for t in ts:
                t.join()
            for name in "ab":
                self.assertExit(runs[name], 0)
            self.assertEqual(accounts_in(read_metrics(self, mfile)),
                             sorted([label_of(self.alice),
                                     label_of(self.bob)]))

    def test_dry_run_writes_nothing(self):
        d = workdir("mdry")
        mfile = os.path.join(d, "m.prom")
        self.assertExit(self.backup(self.alice, d + "/dest", mfile,
                                    "--dry-run"), 0)
        self.assertFalse(os.path.exists(mfile))

    def test_missing_directory_is_a_usage_error_before_anything(self):
        d = workdir("mnodir")
        log = self.alice.server.log_mark()
        r = self.backup(self.alice, d + "/dest",
                        os.path.join(d, "no", "such", "m.prom"))
        self.assertExit(r, 2)
        self.assertIn(b"no/such", r.stderr)
        self.assertFalse(os.path.exists(d + "/dest"))
        self.assertEqual(log.logins(self.alice), [], "no login at all")

    def test_unwritable_file_fails_the_run(self):
        """The backup itself succeeded but the file could not be
        replaced: the run must not exit 0 (monitoring would go stale
        silently)."""
        d = workdir("mrofs")
        mdir = os.path.join(d, "metrics")
        os.makedirs(mdir)
        mfile = os.path.join(mdir, "m.prom")
        # A directory where the lock file goes: the write fails even as
        # root.
        os.makedirs(mfile + ".lock")
        r = self.backup(self.alice, d + "/dest", mfile)
        self.assertExit(r, 6)
        self.assertRegex(r.stderr.decode(), r"error: metrics: .*m\.prom\.lock")
        assert_backup_matches(self, self.alice, d + "/dest")

    def test_old_lines_not_understood_are_dropped(self):
        r, m, dest, mfile, t0, t1 = self.first_run("mjunk")
        with open(mfile, "a") as f:
            f.write("garbage line\nimapsnap_future_metric{account=\"x\"} 1\n"
                    "imapsnap_last_run_folders{account=\"kept\"} 7\n")
        self.assertExit(self.backup(self.alice, dest, mfile), 0)
        m = read_metrics(self, mfile)
        self.assertEqual(accounts_in(m), sorted([label_of(self.alice),
                                                 "kept"]))
        self.assertEqual(value(m, "imapsnap_last_run_folders", "kept"), 7)


class AlertRules(TestCase):
    """contrib/prometheus/imapsnap-rules.yml, the alert docs/monitoring.md
    gives: valid, and firing exactly when a success is over 26 hours old
    (tests/prometheus/imapsnap-rules.test.yml, run by promtool)."""

    def test_rules_check_and_fire_after_26_hours(self):
        exe = shutil.which("promtool")
        if not exe:
            raise AssertionError("promtool not found: install Debian's "
                                 "prometheus package")
        for args in (["check", "rules", os.path.join(
                          ROOT, "contrib", "prometheus",
                          "imapsnap-rules.yml")],
                     ["test", "rules", os.path.join(
                         ROOT, "tests", "prometheus",
                         "imapsnap-rules.test.yml")]):
            p = subprocess.run([exe] + args, stdout=subprocess.PIPE,
                               stderr=subprocess.STDOUT, timeout=60)
            self.assertEqual(p.returncode, 0, "promtool %s:\n%s" % (
                " ".join(args), p.stdout.decode("utf-8", "replace")))
            self.assertIn(b"SUCCESS", p.stdout)
