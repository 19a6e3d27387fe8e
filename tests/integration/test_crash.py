"""Crash safety: imapsnap killed with SIGKILL at random moments, again and
again, then allowed to finish, leaves every message exactly once and
byte-exact, in Maildir and in mbox (and mbox.gz).

After every kill the backup is checked as it stands: the state never
names a message the store does not hold complete (state behind store,
never ahead), and nothing torn counts as saved.  The kill times are
random; the seed is printed with any failure and can be fixed with
IMAPSNAP_TEST_SEED=N.
"""

import gzip
import os
import random
import shutil
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakeimap"))

from harness import TestCase, assert_backup_matches, workdir  # noqa: E402
import harness  # noqa: E402
import runner  # noqa: E402
from runner import as_mbox, mbox_split, read_index  # noqa: E402

SEED = int(os.environ.get("IMAPSNAP_TEST_SEED", "0")) or \
    random.SystemRandom().randrange(1, 1 << 30)


def server_mail(user):
    """{(raw folder, uidvalidity, uid): body} and {raw folder: Folder} of
    every selectable folder, through the oracle; each Folder gets the
    `uidvalidity` it has now."""
    out, names = {}, {}
    with user.oracle() as o:
        for f in o.folders():
            if not f.selectable:
                continue
            names[f.raw] = f
            msgs = o.messages(f)
            f.uidvalidity = o.info["UIDVALIDITY"]
            for uid in sorted(msgs):
                out[(f.raw, f.uidvalidity, uid)] = o.body(uid)
    return out, names


class CrashSafety(TestCase):
    """For each format: cycles of (kill, kill, ..., finish) on a fresh
    destination, until enough kills have landed."""

    def setUp(self):
        self.rng = random.Random("%d-%s" % (SEED, self.id()))

    def where(self, fmt, kills, run=None):
        return "format %s, after %d kills, IMAPSNAP_TEST_SEED=%d%s" % (
            fmt, kills, SEED, ("\n%s" % run) if run else "")

    def crash_cycles(self, fmt, want_kills, max_seconds=40):
        user = harness.SERVER.new_user("crash")
        user.load_corpus(seed=31 + len(fmt), scale=0.6, big=True)
        mail, folders = server_mail(user)
        args = ["backup", "--format", fmt, "--cacert",
                harness.SERVER.cacert, harness.SERVER.url(user, "imaps")]

        # How long an uninterrupted run takes, to spread kills over it.
        ref = workdir("crash-ref-" + fmt)
        t0 = time.monotonic()
        run = runner.run(args + [ref], password=user.password, timeout=60)
        span = time.monotonic() - t0
        self.assertExit(run, 0)

        kills = cycles = 0
        t_end = time.monotonic() + max_seconds
        while kills < want_kills:
            self.assertLess(time.monotonic(), t_end,
                            "too slow: %d kills so far" % kills)
            cycles += 1
            dest = workdir("crash-%s-%d" % (fmt, cycles))
            for attempt in range(50):
                h = runner.start(args + [dest], password=user.password)
                time.sleep(self.rng.uniform(0, span * 1.1))
                runner.kill(h)
                run = runner.finish(h, 30)
                if run.signal is None:
                    # It finished before the kill: the cycle is over.
                    self.assertExit(run, 0, self.where(fmt, kills))
                    break
                kills += 1
                if os.environ.get("CRASH_DEBUG"):
                    st = runner.load_state(dest)
                    print("kill %d at %.3f/%.3f s: %d saved in state" % (
                        kills, run.elapsed, span,
                        sum(len(x["saved"]) for x in st.values())))
                self.check_consistent(fmt, dest, mail, folders,
                                      self.where(fmt, kills, run))
            run = runner.run(args + [dest], password=user.password,
                             timeout=60)
            self.assertExit(run, 0, self.where(fmt, kills))
            self.check_complete(fmt, user, dest, mail, folders,
                                self.where(fmt, kills, run))
        return kills

    # --- checks ------------------------------------------------------------

    def check_consistent(self, fmt, dest, mail, folders, where):
        """After a kill: whatever the state calls saved is in the store,
        complete and exact; whatever the store shows as saved is exact."""
        state = runner.load_state(dest)
        for raw, f in folders.items():
            st = state.get(raw.encode(), {"saved": set(), "uidvalidity": 0})
            if fmt == "maildir":
                files = runner.maildir_files(f.path(dest))
                held = {(uv, uid) for uid, (uv, path) in files.items()}
                if st["uidvalidity"]:
                    # Killed after the store moved this generation aside
                    # and before the state said so: the messages are
                    # there, durable.
                    aside = runner.maildir_files(os.path.join(
                        f.path(dest), ".uidvalidity-%d" % st["uidvalidity"]))
                    held |= {(uv, uid) for uid, (uv, path) in aside.items()}
                    for uid, (uv, path) in aside.items():
                        self.assertEqual(runner.read(path),
                                         mail[(raw, uv, uid)],
                                         "%s UID %d torn or wrong in the "
                                         "generation kept aside; %s"
                                         % (f.name, uid, where))
                for uid, (uv, path) in files.items():
                    self.assertIn((raw, uv, uid), mail, "%s: a file for "
                                  "UIDVALIDITY %d UID %d; %s"
                                  % (f.name, uv, uid, where))
                    self.assertEqual(runner.read(path),
                                     mail[(raw, uv, uid)],
                                     "%s UID %d torn or wrong in cur/; %s"
                                     % (f.name, uid, where))
            else:
                held = self.mbox_committed(fmt, dest, f, raw, mail, where,
                                           st["uidvalidity"])
            held = {uid for uv, uid in held if uv == st["uidvalidity"]}
            missing = st["saved"] - held
            self.assertEqual(missing, set(), "%s: the state says saved, "
                             "the store lacks them; %s" % (f.name, where))

    def mbox_file(self, fmt, dest, f):
        return f.path(dest) + "." + fmt

    def mbox_committed(self, fmt, dest, f, raw, mail, where, aside_uv=0):
        """(UIDVALIDITY, UID) of what the folder's index says is committed,
        each checked in the file; with aside_uv, also what the index of
        that generation, kept aside, says."""
        path = self.mbox_file(fmt, dest, f)
        d, name = os.path.split(path)
        base = name[:-len("." + fmt)]
        held = self.mbox_index_check(fmt, dest, path, f, raw, mail, where)
        if aside_uv:
            # Killed after the store moved this generation aside and
            # before the state said so: the messages are there, durable.
            aside = os.path.join(d, ".%s.uidvalidity-%d.%s" % (
                base, aside_uv, fmt))
            more = self.mbox_index_check(fmt, dest, aside, f, raw, mail,
                                         where)
            self.assertEqual(held & more, set(), "the same messages in "
                             "%s and %s; %s" % (path, aside, where))
            held |= more
        return held

    def mbox_index_check(self, fmt, dest, path, f, raw, mail, where):
        rel = os.path.relpath(path, dest)
        index = read_index(os.path.join(dest, ".imapsnap", "mbox",
                                        rel + ".idx"))
        if not index:
            return set()
        if not os.path.exists(path):
            # Killed while moving a generation aside: the file went first,
            # its index follows; the messages are in the aside file.
            d, name = os.path.split(path)
            base = name[:-len("." + fmt)]
            path = os.path.join(d, ".%s.uidvalidity-%d.%s" % (
                base, index[0][0], fmt))
            self.assertTrue(os.path.exists(path), "%s names messages, but "
                            "neither the file nor %s exists; %s"
                            % (rel + ".idx", path, where))
        with open(path, "rb") as fh:
            data = fh.read()
        size = len(data)
        self.assertGreaterEqual(size, index[-1][4], "%s: the file is "
                                "shorter than its last commit; %s"
                                % (path, where))
        if fmt == "mbox.gz":
            # Only the committed part needs to be whole gzip members.
            data = gzip.decompress(data[:index[-1][4]])
        held = set()
        for uv, uid, off, length, end in index:
            msgs = mbox_split(data[off:off + length])
            self.assertEqual(len(msgs), 1, "%s UID %d: index entry is not "
                             "one message; %s" % (f.name, uid, where))
            self.assertIn((raw, uv, uid), mail, "%s: an index entry for "
                          "UIDVALIDITY %d UID %d; %s"
                          % (f.name, uv, uid, where))
            self.assertEqual(msgs[0], as_mbox(mail[(raw, uv, uid)]),
                             "%s UID %d differs; %s" % (f.name, uid, where))
            self.assertNotIn((uv, uid), held, "%s UID %d twice in the "
                             "index; %s" % (f.name, uid, where))
            held.add((uv, uid))
        return held

    def check_complete(self, fmt, user, dest, mail, folders, where):
        if fmt == "maildir":
            assert_backup_matches(self, user, dest)
            return
        for raw, f in folders.items():
            path = self.mbox_file(fmt, dest, f)
            want = sorted(as_mbox(b) for (r, uv, u), b in mail.items()
                          if r == raw and uv == f.uidvalidity)
            if not os.path.exists(path):
                self.assertEqual(want, [], "%s missing; %s" % (path, where))
                continue
            with open(path, "rb") as fh:
                data = fh.read()
            if fmt == "mbox.gz":
                data = gzip.decompress(data)
            got = sorted(mbox_split(data))
            self.assertEqual(len(got), len(want), "%s: %d messages, the "
                             "server has %d; %s" % (path, len(got),
                                                    len(want), where))
            self.assertEqual(got, want, "%s: contents differ; %s"
                             % (path, where))
        # Nothing left behind by the killed runs counts as a message.
        for d, dirs, files in os.walk(dest):
            for x in files:
                self.assertFalse(x.endswith(".tmp") and ".imapsnap" not in d,
                                 "left over: %s" % os.path.join(d, x))

    # --- the tests -----------------------------------------------------------

    def test_sigkill_maildir(self):
        kills = self.crash_cycles("maildir", 16)
        self.assertGreaterEqual(kills, 16)

    def test_sigkill_mbox(self):
        kills = self.crash_cycles("mbox", 12)
        self.assertGreaterEqual(kills, 12)

    def test_sigkill_mbox_gz(self):
        kills = self.crash_cycles("mbox.gz", 8)
        self.assertGreaterEqual(kills, 8)

    # --- a new generation --------------------------------------------------

    def new_generation(self, fmt, want_kills):
        """A folder is deleted and made anew on the server (new
        UIDVALIDITY, other messages) between runs; the re-run, which moves
        the old copy aside and fetches the new one, is killed at random
        moments.  In the end the old generation is intact and the new one
        complete.  Rounds (each with a fresh account) go on until enough
        kills have landed."""
        kills = rounds = 0
        while kills < want_kills:
            rounds += 1
            self.assertLessEqual(rounds, 20, "%d kills in 20 rounds" % kills)
            kills += self.new_generation_round(fmt, kills)
        return kills

    def new_generation_round(self, fmt, kills_before):
        user = harness.SERVER.new_user("crashgen")
        user.load_corpus(seed=41, scale=0.4, big=False)
        dest = workdir("crashgen-" + fmt)
        args = ["backup", "--format", fmt, "--cacert",
                harness.SERVER.cacert, harness.SERVER.url(user, "imaps")]
        self.assertExit(runner.run(args + [dest], password=user.password), 0)
        with user.oracle() as o:
            old_uv = o.examine("Sent")["UIDVALIDITY"]
            old = {u: o.body(u) for u in o.messages("Sent")}
        with user.oracle() as o:
            o.delete("Sent")
            o.create("Sent")
            for i in range(12):
                o.append("Sent", harness.simple_message("new gen %d" % i),
                         ("\\Seen",), date=1620000000 + i)
        mail, folders = server_mail(user)
        self.assertNotEqual(folders["Sent"].uidvalidity, old_uv)
        # Until the re-run moves it aside, the old copy is where the new
        # one will be: the checks after each kill must know its messages.
        for uid, body in old.items():
            mail[("Sent", old_uv, uid)] = body

        # How long the re-run takes, measured on a copy.
        probe = workdir("crashgen-probe-" + fmt)
        os.rmdir(probe)
        shutil.copytree(dest, probe)
        t0 = time.monotonic()
        self.assertExit(runner.run(args + [probe], password=user.password),
                        0)
        span = time.monotonic() - t0

        kills = 0
        for attempt in range(50):
            h = runner.start(args + [dest], password=user.password)
            time.sleep(self.rng.uniform(0, span * 0.8))
            runner.kill(h)
            run = runner.finish(h, 30)
            where = self.where(fmt, kills_before + kills, run)
            if run.signal is None:
                self.assertExit(run, 0, where)
                break
            kills += 1
            if os.environ.get("CRASH_DEBUG"):
                print("generation kill %d at %.3f/%.3f s" % (
                    kills, run.elapsed, span))
            self.check_consistent(fmt, dest, mail, folders, where)
        run = runner.run(args + [dest], password=user.password)
        where = self.where(fmt, kills_before + kills, run)
        self.assertExit(run, 0, where)
        self.check_complete(fmt, user, dest, mail, folders, where)
        self.check_old_generation(fmt, dest, old_uv, old, where)
        return kills

    def check_old_generation(self, fmt, dest, uv, old, where):
        if fmt == "maildir":
            found = {}
            for d, dirs, files in os.walk(dest):
                for x in files:
                    m = runner.MAILDIR_NAME.match(x)
                    if m and int(m.group(1)) == uv:
                        uid = int(m.group(2))
                        self.assertNotIn(uid, found, "old UID %d twice; %s"
                                         % (uid, where))
                        found[uid] = runner.read(os.path.join(d, x))
            self.assertEqual(found, old, "the old generation; " + where)
        else:
            path = os.path.join(dest, ".Sent.uidvalidity-%d.%s" % (uv, fmt))
            self.assertTrue(os.path.exists(path), "%s missing; %s; DEST "
                            "has %s" % (path, where, runner.tree(dest)))
            with open(path, "rb") as fh:
                data = fh.read()
            if fmt == "mbox.gz":
                data = gzip.decompress(data)
            self.assertEqual(sorted(mbox_split(data)),
                             sorted(as_mbox(b) for b in old.values()),
                             "the old generation; " + where)

    def test_sigkill_new_generation_maildir(self):
        self.new_generation("maildir", 6)

    def test_sigkill_new_generation_mbox(self):
        self.new_generation("mbox", 6)
