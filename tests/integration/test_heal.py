"""A backup heals itself: a message file deleted from a Maildir backup is
fetched again by the next run while the server has it, and the summary
says so; a run with nothing missing fetches nothing (Dovecot's session
counters, read from its log, are the oracle)."""

import glob
import json
import os

from harness import TestCase, backup, imapsnap, simple_message, workdir
import harness


class Heal(TestCase):
    def test_deleted_messages_are_fetched_again(self):
        user = harness.SERVER.new_user("heal")
        with user.oracle() as o:
            o.create("Work")
            for i in range(4):
                o.append("INBOX", simple_message("inbox %d" % i),
                         ("\\Seen",), date=1600000000 + i)
            o.append("Work", simple_message("work"), (), date=1610000000)
        dest = workdir("heal")
        self.assertExit(backup(user, dest), 0)
        files = sorted(glob.glob(os.path.join(dest, "INBOX", "cur", "*")))
        gone = files[1:3]
        for p in gone:
            os.unlink(p)
        self.assertExit(imapsnap("verify", dest), 7)
        mark = harness.SERVER.log_mark()
        run = backup(user, dest)
        self.assertExit(run, 0)
        self.assertIn(b"2 missing from the backup and fetched again",
                      run.stderr)
        self.assertEqual(sum(n for n, _ in mark.sessions(user)), 2)
        for p in gone:
            self.assertTrue(os.path.exists(p), p)
        self.assertExit(imapsnap("verify", dest), 0)
        # Nothing missing: nothing fetched, nothing said.
        mark = harness.SERVER.log_mark()
        run = backup(user, dest, "--json")
        self.assertExit(run, 0)
        summary = json.loads(run.stdout)
        self.assertEqual((summary["healed"], summary["planned"]), (0, 0),
                         summary)
        self.assertEqual(sum(n for n, _ in mark.sessions(user)), 0)
