"""DEST in a directory others can write: symbolic links and FIFOs planted
inside it (docs/reliability.md, "Links and FIFOs in DEST").

imapsnap often runs as root from cron.  A symbolic link at DEST/INBOX,
DEST/INBOX/cur, DEST/.imapsnap or DEST/.imapsnap/lock must not make it
write anywhere else, and a FIFO in place of the state, a manifest or the
chain must not make it wait forever (holding the lock, so that every later
run exits 5).  Each case checks that nothing was written through the link
(the target stays exactly as it was), that the run ends in time with a
message naming the culprit and a non-zero exit, and that what could be
saved was.  verify and restore read a backup the same way: they follow no
link and open no FIFO.  DEST itself may be a symbolic link."""

import json
import os
import subprocess

from harness import TestCase, backup, imapsnap, simple_message, workdir
import harness

EXIT_PARTIAL = 1
EXIT_LOCAL = 6
EXIT_INTEGRITY = 7
# A FIFO that blocked imapsnap would hold it far longer than this.
QUICK = 30


def small_account(prefix):
    """INBOX with 3 messages and Work with 2."""
    user = harness.SERVER.new_user(prefix)
    with user.oracle() as o:
        o.create("Work")
        for i in range(3):
            o.append("INBOX", simple_message("inbox %d" % i,
                                             body="Inbox body %d.\n" % i))
        for i in range(2):
            o.append("Work", simple_message("work %d" % i,
                                            body="Work body %d.\n" % i))
    return user


def tree(path):
    """{relative path: bytes or '<dir>'} of everything below `path`."""
    out = {}
    for d, dirs, files in os.walk(path):
        for x in dirs:
            out[os.path.relpath(os.path.join(d, x), path)] = "<dir>"
        for x in files:
            p = os.path.join(d, x)
            with open(p, "rb") as f:
                out[os.path.relpath(p, path)] = f.read()
    return out


def cur_files(folder_dir):
    d = os.path.join(folder_dir, "cur")
    return sorted(os.listdir(d)) if os.path.isdir(d) else []


class LinkCase(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.user = small_account("links")

    def setUp(self):
        # DEST and an "elsewhere" a link points to, side by side.
        self.work = workdir("links-" + self._testMethodName[5:30])
        self.dest = os.path.join(self.work, "dest")
        self.elsewhere = os.path.join(self.work, "elsewhere")
        os.makedirs(self.dest)
        os.makedirs(self.elsewhere)
        with open(os.path.join(self.elsewhere, "keep"), "w") as f:
            f.write("not imapsnap's\n")
        self.before = tree(self.elsewhere)

    def assertUntouched(self, run):
        self.assertEqual(tree(self.elsewhere), self.before,
                         "written through the link:\n%s" % run)

    def assertSays(self, run, *words):
        text = run.output().decode("utf-8", "replace")
        for w in words:
            self.assertIn(w, text, "no %r in the output:\n%s" % (w, run))

    def run_backup(self, *extra):
        return backup(self.user, self.dest, *extra, timeout=QUICK)


class BackupThroughLinks(LinkCase):
    def test_folder_directory_is_a_link(self):
        """DEST/INBOX -> elsewhere: INBOX fails with a message naming it,
        Work is saved, nothing lands in elsewhere, exit 1; the state does
        not call INBOX's messages saved."""
        os.symlink(self.elsewhere, os.path.join(self.dest, "INBOX"))
        run = self.run_backup()
        self.assertExit(run, EXIT_PARTIAL, "one folder failed")
        self.assertSays(run, "INBOX", "symbolic link")
        self.assertUntouched(run)
        self.assertEqual(len(cur_files(os.path.join(self.dest, "Work"))), 2,
                         "Work is saved:\n%s" % run)
        with open(os.path.join(self.dest, ".imapsnap", "state")) as f:
            state = f.read()
        self.assertNotIn("saved 1:3", state, "INBOX counted as saved")

    def test_cur_is_a_link(self):
        """DEST/INBOX/cur -> elsewhere: INBOX fails, nothing lands in
        elsewhere (no message renamed into it), exit 1."""
        inbox = os.path.join(self.dest, "INBOX")
        os.makedirs(os.path.join(inbox, "tmp"))
        os.makedirs(os.path.join(inbox, "new"))
        os.symlink(self.elsewhere, os.path.join(inbox, "cur"))
        run = self.run_backup()
        self.assertExit(run, EXIT_PARTIAL, "one folder failed")
        self.assertSays(run, "INBOX/cur", "symbolic link")
        self.assertUntouched(run)
        self.assertEqual(os.listdir(os.path.join(inbox, "tmp")), [],
                         "a message left in tmp/:\n%s" % run)
        self.assertEqual(len(cur_files(os.path.join(self.dest, "Work"))), 2)

    def test_tmp_is_a_link(self):
        """DEST/INBOX/tmp -> elsewhere: no message is written there."""
        inbox = os.path.join(self.dest, "INBOX")
        os.makedirs(inbox)
        os.symlink(self.elsewhere, os.path.join(inbox, "tmp"))
        run = self.run_backup()
        self.assertExit(run, EXIT_PARTIAL, "one folder failed")
        self.assertSays(run, "INBOX/tmp", "symbolic link")
        self.assertUntouched(run)

    def test_state_directory_is_a_link(self):
        """DEST/.imapsnap -> elsewhere: the run stops before writing any
        state, lock or manifest there, exit 6."""
        os.symlink(self.elsewhere, os.path.join(self.dest, ".imapsnap"))
        run = self.run_backup()
        self.assertExit(run, EXIT_LOCAL, "the state cannot be kept")
        self.assertSays(run, ".imapsnap", "symbolic link")
        self.assertUntouched(run)

    def test_lock_is_a_link(self):
        """DEST/.imapsnap/lock -> a file the user can write: the file is
        neither truncated nor overwritten with the pid, exit 6."""
        state = os.path.join(self.dest, ".imapsnap")
        os.makedirs(state)
        victim = os.path.join(self.elsewhere, "keep")
        os.symlink(victim, os.path.join(state, "lock"))
        run = self.run_backup()
        self.assertExit(run, EXIT_LOCAL, "no lock")
        self.assertSays(run, "lock", "symbolic link")
        self.assertUntouched(run)

    def test_lock_with_another_name(self):
        """DEST/.imapsnap/lock hard-linked to another file: not written."""
        state = os.path.join(self.dest, ".imapsnap")
        os.makedirs(state)
        victim = os.path.join(self.elsewhere, "keep")
        os.link(victim, os.path.join(state, "lock"))
        run = self.run_backup()
        self.assertExit(run, EXIT_LOCAL, "no lock")
        self.assertSays(run, "lock", "hard link")
        self.assertUntouched(run)

    def test_mbox_file_and_index_directory_are_links(self):
        """mbox: DEST/INBOX.mbox -> a file elsewhere fails INBOX; a link
        at DEST/.imapsnap/mbox (the indexes) fails every folder; neither
        target changes."""
        victim = os.path.join(self.elsewhere, "keep")
        os.symlink(victim, os.path.join(self.dest, "INBOX.mbox"))
        run = self.run_backup("--format", "mbox")
        self.assertExit(run, EXIT_PARTIAL, "INBOX failed")
        self.assertSays(run, "INBOX.mbox", "symbolic link")
        self.assertTrue(os.path.getsize(os.path.join(self.dest,
                                                     "Work.mbox")) > 0)
        self.assertUntouched(run)

        dest2 = os.path.join(self.work, "dest2")
        os.makedirs(os.path.join(dest2, ".imapsnap"))
        os.symlink(self.elsewhere, os.path.join(dest2, ".imapsnap", "mbox"))
        run = backup(self.user, dest2, "--format", "mbox", timeout=QUICK)
        self.assertNotEqual(run.rc, 0, "the indexes cannot be kept:\n%s"
                            % run)
        self.assertSays(run, ".imapsnap/mbox", "symbolic link")
        self.assertUntouched(run)

    def test_dest_itself_may_be_a_link(self):
        """DEST -> a directory: followed, as the user asked for it."""
        real = os.path.join(self.work, "real")
        os.makedirs(real)
        os.rmdir(self.dest)
        os.symlink(real, self.dest)
        run = self.run_backup()
        self.assertExit(run, 0)
        self.assertEqual(len(cur_files(os.path.join(real, "INBOX"))), 3)
        run = imapsnap("verify", self.dest, timeout=QUICK)
        self.assertExit(run, 0, "verify through the link")


class Fifos(LinkCase):
    """A FIFO nobody writes to: opening it for reading without O_NONBLOCK
    would wait forever."""

    def plant(self, *rel):
        path = os.path.join(self.dest, *rel)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.mkfifo(path)
        return path

    def assertQuick(self, run, *words):
        self.assertNotEqual(run.rc, 0, "a FIFO is no state:\n%s" % run)
        self.assertLess(run.elapsed, QUICK / 2)
        self.assertSays(run, "FIFO", *words)

    def test_state_is_a_fifo(self):
        """DEST/.imapsnap/state a FIFO: backup ends at once, exit 6, and
        the lock is free again (a second run is not told "locked")."""
        self.plant(".imapsnap", "state")
        for attempt in range(2):
            run = self.run_backup()
            self.assertExit(run, EXIT_LOCAL, "attempt %d" % attempt)
            self.assertQuick(run, ".imapsnap/state")
        run = backup(self.user, self.dest, "--dry-run", timeout=QUICK)
        self.assertQuick(run, ".imapsnap/state")

    def test_run_file_is_a_fifo(self):
        """A FIFO named like a run file in DEST/.imapsnap/manifest: backup
        stops at once (it would chain it); verify and restore -n report
        it without waiting."""
        run = self.run_backup()
        self.assertExit(run, 0)
        fifo = self.plant(".imapsnap", "manifest",
                          "29990101T000000.000000Z.jsonl")
        run = self.run_backup()
        self.assertExit(run, EXIT_LOCAL)
        self.assertQuick(run, os.path.basename(fifo))
        run = imapsnap("verify", self.dest, timeout=QUICK)
        self.assertExit(run, EXIT_INTEGRITY)
        self.assertQuick(run, os.path.basename(fifo))
        target = harness.SERVER.new_user("fiforst")
        run = imapsnap("restore", "-n", "--cacert", target.server.cacert,
                       "--state-dir", os.path.join(self.work, "rstate"),
                       self.dest, target.server.url(target, "imaps"),
                       password=target.password, timeout=QUICK)
        self.assertQuick(run, os.path.basename(fifo))

    def test_chain_is_a_fifo(self):
        """DEST/.imapsnap/manifest/chain a FIFO: backup and verify end at
        once with an error naming it; restore -n does not wait either."""
        run = self.run_backup()
        self.assertExit(run, 0)
        chain = os.path.join(self.dest, ".imapsnap", "manifest", "chain")
        os.unlink(chain)
        os.mkfifo(chain)
        run = self.run_backup()
        self.assertExit(run, EXIT_LOCAL)
        self.assertQuick(run, "chain")
        run = imapsnap("verify", self.dest, timeout=QUICK)
        self.assertExit(run, EXIT_LOCAL)
        self.assertQuick(run, "chain")
        # restore reads the run files, not the chain: it must not wait.
        run = self.restore_dry_run()
        self.assertExit(run, 0)
        self.assertLess(run.elapsed, QUICK / 2)

    def restore_dry_run(self):
        target = harness.SERVER.new_user("fiforst")
        return imapsnap("restore", "-n", "--cacert", target.server.cacert,
                        "--state-dir", os.path.join(self.work, "rstate"),
                        self.dest, target.server.url(target, "imaps"),
                        password=target.password, timeout=QUICK)

    def test_state_is_a_fifo_for_verify_and_restore(self):
        """verify and restore -n do not read DEST/.imapsnap/state: a FIFO
        there changes nothing for them, and neither waits."""
        run = self.run_backup()
        self.assertExit(run, 0)
        state = os.path.join(self.dest, ".imapsnap", "state")
        os.unlink(state)
        os.mkfifo(state)
        run = imapsnap("verify", self.dest, timeout=QUICK)
        self.assertExit(run, 0)
        self.assertLess(run.elapsed, QUICK / 2)
        run = self.restore_dry_run()
        self.assertExit(run, 0)
        self.assertLess(run.elapsed, QUICK / 2)

    def test_timestamp_is_a_fifo(self):
        """A FIFO as a run's RFC 3161 token (<run>.tsr, backup --tsa):
        verify reports the token unreadable without waiting for it."""
        run = self.run_backup()
        self.assertExit(run, 0)
        mdir = os.path.join(self.dest, ".imapsnap", "manifest")
        name = [n for n in os.listdir(mdir) if n.endswith(".jsonl")][0]
        tsr = name[:-len(".jsonl")] + ".tsr"
        os.mkfifo(os.path.join(mdir, tsr))
        run = imapsnap("verify", self.dest, timeout=QUICK)
        self.assertExit(run, EXIT_INTEGRITY)
        self.assertQuick(run, tsr)

    def test_message_file_is_a_fifo(self):
        """A FIFO under a message's name in cur/: verify reports it (not
        read) and does not wait."""
        run = self.run_backup()
        self.assertExit(run, 0)
        cur = os.path.join(self.dest, "Work", "cur")
        name = sorted(os.listdir(cur))[0]
        os.unlink(os.path.join(cur, name))
        os.mkfifo(os.path.join(cur, name))
        run = imapsnap("verify", self.dest, timeout=QUICK)
        self.assertExit(run, EXIT_INTEGRITY)
        self.assertQuick(run, name, "is a FIFO where a message should be")


class ReadingThroughLinks(LinkCase):
    """verify and restore follow no link inside a backup either."""

    def backed_up(self):
        run = self.run_backup()
        self.assertExit(run, 0)

    def move_out(self, rel):
        """Move DEST/rel to elsewhere and leave a link in its place: the
        messages are all there, but outside DEST."""
        src = os.path.join(self.dest, rel)
        moved = os.path.join(self.elsewhere, os.path.basename(rel))
        os.rename(src, moved)
        os.symlink(moved, src)
        self.before = tree(self.elsewhere)

    def test_verify_names_the_link(self):
        """DEST/INBOX -> elsewhere: verify names DEST/INBOX as a
        symbolic link it did not follow, and says of each of INBOX's
        messages why it was not read, exit 7."""
        self.backed_up()
        self.move_out("INBOX")
        run, report = self.verify_json()
        self.assertExit(run, EXIT_INTEGRITY)
        self.assertTrue(any(f.get("location") == "INBOX" and
                            "symbolic link" in f["detail"]
                            for f in report["findings"]), report["findings"])
        missing = [f for f in report["findings"] if f["kind"] == "missing"]
        self.assertEqual(len(missing), 3, report["findings"])
        for f in missing:
            self.assertIn("not read: INBOX is a symbolic link", f["detail"])
        self.assertUntouched(run)

    def test_verify_state_directory_is_a_link(self):
        """DEST/.imapsnap -> elsewhere (a copy of the real one): verify
        refuses to read it, exit 6."""
        self.backed_up()
        self.move_out(".imapsnap")
        run = imapsnap("verify", self.dest, timeout=QUICK)
        self.assertExit(run, EXIT_LOCAL)
        self.assertSays(run, ".imapsnap", "symbolic link")

    def test_restore_does_not_follow(self):
        """DEST/Work/cur -> elsewhere: restore puts INBOX back, says it
        did not read DEST/Work/cur, counts Work's two messages as not
        restored, and exits non-zero."""
        self.backed_up()
        self.move_out(os.path.join("Work", "cur"))
        target = harness.SERVER.new_user("linkrst")
        run = imapsnap("restore", "--cacert", target.server.cacert,
                       "--state-dir", os.path.join(self.work, "rstate"),
                       self.dest, target.server.url(target, "imaps"),
                       password=target.password, timeout=QUICK)
        self.assertNotEqual(run.rc, 0, "two messages not restored:\n%s"
                            % run)
        self.assertSays(run, "Work/cur", "symbolic link")
        with target.oracle() as o:
            got = {f.name: len(o.messages(f)) for f in o.folders()
                   if f.selectable}
        self.assertEqual(got.get("INBOX"), 3, run)
        self.assertFalse(got.get("Work"), run)

    def verify_json(self):
        run = imapsnap("verify", "--json", self.dest, timeout=QUICK)
        try:
            return run, json.loads(run.stdout)
        except ValueError:
            self.fail("verify --json printed no JSON:\n%s" % run)


class RestoreStateDirectory(LinkCase):
    """The restore state directory (--state-dir BASE: BASE/<host>/<user>)
    is opened the same way: it may itself be a link, nothing in it is
    followed."""

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.target = harness.SERVER.new_user("rstlink")

    def restore(self, base, *extra):
        t = self.target
        return imapsnap("restore", *extra, "--cacert", t.server.cacert,
                        "--state-dir", base, self.dest,
                        t.server.url(t, "imaps"), password=t.password,
                        timeout=QUICK)

    def state_dir(self):
        """A backup restored once: (BASE, the directory it made)."""
        run = self.run_backup()
        self.assertExit(run, 0)
        base = os.path.join(self.work, "rstate")
        run = self.restore(base)
        self.assertExit(run, 0)
        found = [d for d, dirs, files in os.walk(base)
                 if "restore.jsonl" in files]
        self.assertEqual(len(found), 1, run)
        return base, found[0]

    def test_lock_is_a_link(self):
        base, state = self.state_dir()
        os.unlink(os.path.join(state, "lock"))
        os.symlink(os.path.join(self.elsewhere, "keep"),
                   os.path.join(state, "lock"))
        run = self.restore(base)
        self.assertExit(run, EXIT_LOCAL)
        self.assertSays(run, "lock", "symbolic link")
        self.assertUntouched(run)

    def test_log_is_a_fifo(self):
        base, state = self.state_dir()
        os.unlink(os.path.join(state, "restore.jsonl"))
        os.mkfifo(os.path.join(state, "restore.jsonl"))
        for extra in ((), ("-n",)):
            run = self.restore(base, *extra)
            self.assertExit(run, EXIT_LOCAL, " ".join(extra))
            self.assertLess(run.elapsed, QUICK / 2)
            self.assertSays(run, "restore.jsonl", "FIFO")

    def test_log_is_a_link(self):
        base, state = self.state_dir()
        os.unlink(os.path.join(state, "restore.jsonl"))
        os.symlink(os.path.join(self.elsewhere, "keep"),
                   os.path.join(state, "restore.jsonl"))
        for extra in ((), ("-n",)):
            run = self.restore(base, *extra)
            self.assertExit(run, EXIT_LOCAL, " ".join(extra))
            self.assertSays(run, "restore.jsonl", "symbolic link")
        self.assertUntouched(run)

    def test_directory_itself_may_be_a_link(self):
        run = self.run_backup()
        self.assertExit(run, 0)
        real = os.path.join(self.work, "rstate-real")
        os.makedirs(real)
        base = os.path.join(self.work, "rstate")
        os.symlink(real, base)
        run = self.restore(base)
        self.assertExit(run, 0)
        self.assertTrue(any("restore.jsonl" in files
                            for d, dirs, files in os.walk(real)), run)
