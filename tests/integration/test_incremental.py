"""Re-runs: fetch only what is new; keep old generations on UIDVALIDITY
change."""

import os

from harness import (TestCase, assert_backup_matches, backup, saved_messages,
                     simple_message, snapshot, workdir)
import harness


class Incremental(TestCase):
    def test_noop_rerun_fetches_no_body(self):
        user = harness.SERVER.new_user("noop")
        counts = user.load_corpus(seed=3, scale=0.3, big=False)
        dest = workdir("noop")
        mark = harness.SERVER.log_mark()
        self.assertExit(backup(user, dest), 0)
        # The log shows the bodies a run fetched (and this test can see
        # them): the first run fetched each message once.
        self.assertEqual(sum(c for c, _ in mark.sessions(user)),
                         sum(counts.values()),
                         "bodies fetched by the first run:\n" + mark.text())
        folders = [os.path.join(dest, n) for n in ("INBOX", "Sent",
                                                    "Archive/2019")]
        before = {d: snapshot(d) for d in folders}

        mark = harness.SERVER.log_mark()
        run = backup(user, dest)
        self.assertExit(run, 0)
        sessions = mark.sessions(user)
        self.assertTrue(sessions, "no session of the re-run in the log")
        self.assertEqual(sum(c for c, _ in sessions), 0,
                         "bodies fetched by a no-op re-run:\n" + mark.text())
        for d in folders:
            self.assertEqual(snapshot(d), before[d],
                             "%s changed in a no-op re-run" % d)
        assert_backup_matches(self, user, dest)

    def test_noop_rerun_writes_no_state(self):
        """A run with nothing new changes nothing in the state, so the
        file is not written again (each write costs three syncs, per
        folder); the run's manifest still has every folder's record."""
        import json
        user = harness.SERVER.new_user("nostate")
        user.load_corpus(seed=5, scale=0.2, big=False)
        dest = workdir("nostate")
        for fmt in ("maildir", "mbox"):
            d = os.path.join(dest, fmt)
            self.assertExit(backup(user, d, "--format", fmt), 0)
            state = os.path.join(d, ".imapsnap", "state")
            before = os.stat(state)
            with open(state, "rb") as f:
                text = f.read()
            run = backup(user, d, "--format", fmt)
            self.assertExit(run, 0)
            after = os.stat(state)
            self.assertEqual((after.st_ino, after.st_mtime_ns),
                             (before.st_ino, before.st_mtime_ns),
                             "%s: the state was written again" % fmt)
            with open(state, "rb") as f:
                self.assertEqual(f.read(), text)
            mdir = os.path.join(d, ".imapsnap", "manifest")
            runs = []
            for x in sorted(os.listdir(mdir)):
                if x.endswith(".jsonl"):
                    with open(os.path.join(mdir, x)) as f:
                        runs.append([json.loads(ln) for ln in f])
            first, lines = runs[-2], runs[-1]
            self.assertEqual(
                sorted(x["folder"] for x in lines
                       if x.get("type") == "folder"),
                sorted(x["folder"] for x in first
                       if x.get("type") == "folder"),
                "%s: the no-op run's folder records" % fmt)
            self.assertEqual(lines[-1].get("type"), "end")
        assert_backup_matches(self, user, os.path.join(dest, "maildir"))

    def test_only_new_messages_fetched(self):
        user = harness.SERVER.new_user("incr")
        user.load_corpus(seed=4, scale=0.3, big=False)
        dest = workdir("incr")
        self.assertExit(backup(user, dest), 0)
        inbox = os.path.join(dest, "INBOX")
        sent = os.path.join(dest, "Sent")
        old = {d: snapshot(d) for d in (inbox, sent)}

        with user.oracle() as o:
            for i, flags in enumerate([(), ("\\Seen",),
                                       ("\\Flagged", "$Forwarded")]):
                o.append("INBOX", simple_message("new in INBOX %d" % i),
                         flags, date=1600000000 + i * 3600)
            for i in range(2):
                o.append("Sent", simple_message("new in Sent %d" % i),
                         ("\\Seen",), date=1610000000 + i)

        mark = harness.SERVER.log_mark()
        run = backup(user, dest)
        self.assertExit(run, 0)
        sessions = mark.sessions(user)
        self.assertTrue(sessions, "no session of the re-run in the log")
        self.assertEqual(sum(c for c, _ in sessions), 5,
                         "bodies fetched; 5 messages were new:\n"
                         + mark.text())
        for d in (inbox, sent):
            now = snapshot(d)
            for name, st in old[d].items():
                self.assertEqual(now.get(name), st,
                                 "%s/cur/%s was rewritten or lost" % (d, name))
            self.assertEqual(len(now) - len(old[d]),
                             3 if d == inbox else 2, d)
        assert_backup_matches(self, user, dest)

    def test_uidvalidity_change_keeps_old_copy(self):
        user = harness.SERVER.new_user("uidv")
        with user.oracle() as o:
            o.create("Projects")
            for i in range(3):
                o.append("Projects", simple_message("old project %d" % i),
                         ("\\Seen",), date=1500000000 + i)
            o.append("INBOX", simple_message("stays"), date=1500000000)
            old_uidvalidity = o.status("Projects")["UIDVALIDITY"]
        dest = workdir("uidv")
        self.assertExit(backup(user, dest), 0)
        pdir = os.path.join(dest, "Projects")
        old = {s.path.rsplit("/", 1)[1]: s.read()
               for s in saved_messages(pdir).values()}
        self.assertEqual(len(old), 3)
        inbox_before = snapshot(os.path.join(dest, "INBOX"))

        with user.oracle() as o:
            o.delete("Projects")
            o.create("Projects")
            for i in range(2):
                o.append("Projects", simple_message("new project %d" % i),
                         date=1700000000 + i)
            new_uidvalidity = o.status("Projects")["UIDVALIDITY"]
        self.assertNotEqual(new_uidvalidity, old_uidvalidity,
                            "test setup: Dovecot kept the UIDVALIDITY")

        run = backup(user, dest)
        self.assertExit(run, 0)
        kept = os.path.join(pdir, ".uidvalidity-%d" % old_uidvalidity)
        self.assertTrue(os.path.isdir(os.path.join(kept, "cur")),
                        "old generation not kept in %s; DEST/Projects has %s"
                        % (kept, sorted(os.listdir(pdir))))
        kept_files = {}
        for name in os.listdir(os.path.join(kept, "cur")):
            with open(os.path.join(kept, "cur", name), "rb") as f:
                kept_files[name] = f.read()
        self.assertEqual(sorted(kept_files), sorted(old),
                         "file names of the kept generation")
        for name in old:
            self.assertEqual(kept_files[name], old[name],
                             "kept %s differs from the first backup" % name)
        new = saved_messages(pdir)
        self.assertEqual(len(new), 2)
        for s in new.values():
            self.assertEqual(s.uidvalidity, new_uidvalidity)
        self.assertEqual(snapshot(os.path.join(dest, "INBOX")), inbox_before)
        assert_backup_matches(self, user, dest)
