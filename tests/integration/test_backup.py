"""A full backup: every message byte-exact, nothing changed on the server."""

import re

from harness import TestCase, assert_backup_matches, backup, workdir
import harness

SUMMARY = re.compile(r"^imapsnap: (\d+) folders?, (\d+) messages?, "
                     r"(\d+) bytes? in [0-9.]+ s")


class FullBackup(TestCase):
    def test_every_message_byte_exact(self):
        """The demo corpus (awkward mail in nine folders, one of them empty,
        one message of 1 MB): every file matches BODY.PEEK[], flags,
        UIDVALIDITY and INTERNALDATE; the summary counts them."""
        user = harness.SERVER.new_user("exact")
        counts = user.load_corpus(seed=7)
        dest = workdir("exact")
        run = backup(user, dest, scheme="imaps")
        self.assertExit(run, 0)
        folders, msgs, nbytes = assert_backup_matches(self, user, dest)
        self.assertEqual(msgs, sum(counts.values()))
        self.assertEqual(folders, len(counts))
        m = SUMMARY.match(run.summary().decode("utf-8", "replace"))
        if not m:
            self.fail("last line on stderr is no summary:\n%s" % run)
        self.assertEqual(int(m.group(2)), msgs, "messages in the summary")
        self.assertEqual(int(m.group(3)), nbytes, "bytes in the summary")

    def test_server_unchanged(self):
        """Flags, MODSEQs and HIGHESTMODSEQ of every folder are exactly as
        before the backup (the corpus has seen, unseen, \\Recent, flagged,
        answered, deleted and keyword-flagged messages).  \\Recent too: it
        is still there only if no one SELECTed the folder (EXAMINE keeps
        it)."""
        user = harness.SERVER.new_user("readonly")
        user.load_corpus(seed=11, scale=0.5, big=False)

        def state():
            out = {}
            with user.oracle() as o:
                o.enable_condstore()
                for f in o.folders():
                    if not f.selectable:
                        continue
                    msgs = o.messages(f, recent=True)
                    out[f.name] = (
                        o.status(f, "MESSAGES UNSEEN HIGHESTMODSEQ"),
                        o.info.get("HIGHESTMODSEQ"),
                        {u: (sorted(m.flags), m.modseq)
                         for u, m in msgs.items()})
            return out

        before = state()
        unseen = sum(st[0]["UNSEEN"] for st in before.values())
        self.assertGreater(unseen, 10, "the corpus needs unseen messages")
        recent = sum(1 for st in before.values() for flags, _ in
                     st[2].values() if "\\Recent" in flags)
        self.assertGreater(recent, 10, "the corpus needs \\Recent mail")
        dest = workdir("readonly")
        run = backup(user, dest, scheme="imap")
        self.assertExit(run, 0)
        after = state()
        for name in sorted(before):
            self.assertEqual(after[name], before[name],
                             "%s changed on the server" % name)
        self.assertEqual(sorted(after), sorted(before))
