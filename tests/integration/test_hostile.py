"""A hostile IMAP server (tests/fakeimap): names that climb out of DEST,
impossible literal sizes, endless lines, unbalanced parentheses, UIDs that
cannot be, bodies nobody asked for, a literal cut short.

Whatever the server sends, imapsnap must never write outside DEST, never
crash, never hang, stay within 64 MB of memory, save what is valid, and
exit non-zero with a message saying what the server did wrong.  Every run
here is watched for all of that (HostileCase.watch); each test adds what
its case must save and say.
"""

import itertools
import os
import re
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakeimap"))

from fakeimap import FakeIMAP, Mailbox, Msg, Script, make_messages  # noqa
from harness import TestCase, workdir  # noqa: E402
import runner  # noqa: E402

MEMORY_LIMIT_KB = 64 * 1024
# imapsnap gets --timeout 3: no case here may take much longer than that.
RUN_TIMEOUT = 30


class HostileCase(TestCase):
    """Runs imapsnap against a script inside a fence: DEST is
    FENCE/dest, and nothing else may appear in FENCE."""

    def fenced(self, name):
        fence = workdir("hostile-" + name)
        with open(os.path.join(fence, "sentinel"), "w") as f:
            f.write("nothing may be written next to DEST\n")
        return fence, os.path.join(fence, "dest")

    def watch(self, script, name, *extra, retries=0, timeout=RUN_TIMEOUT):
        """Back up `script`'s mail; returns (run, server, dest).  Checks
        what holds for every hostile case."""
        fence, dest = self.fenced(name)
        args = ["--timeout", "3", "--retries", str(retries)] + list(extra)
        with FakeIMAP(script) as srv:
            run = runner.backup_fake(srv, dest, *args, timeout=timeout)
        self.assertEqual(srv.errors, [], "the test's script itself failed")
        self.assertIsNone(run.signal, "imapsnap was killed by signal %s:\n%s"
                          % (run.signal, run))
        self.assertNotIn(run.rc, (2,), "usage error:\n%s" % run)
        if not runner.sanitized():
            self.assertLess(run.maxrss_kb, MEMORY_LIMIT_KB,
                            "peak memory %d KB:\n%s" % (run.maxrss_kb, run))
        outside = [p for p in runner.tree(fence)
                   if p != "sentinel" and p != "dest/" and
                   not p.startswith("dest/")]
        self.assertEqual(outside, [], "written outside DEST:\n%s" % run)
        if os.path.isdir(dest):
            for d, dirs, files in os.walk(dest):
                for x in dirs + files:
                    p = os.path.join(d, x)
                    self.assertFalse(os.path.islink(p), "symlink %s" % p)
        return run, srv, dest

    def assertSaved(self, dest, rel, msgs, run):
        """DEST/rel/cur holds exactly `msgs`, byte for byte."""
        files = runner.maildir_files(os.path.join(dest, rel))
        self.assertEqual(sorted(files), sorted(m.uid for m in msgs),
                         "%s: UIDs saved\n%s" % (rel, run))
        for m in msgs:
            self.assertEqual(runner.read(files[m.uid][1]), m.body,
                             "%s UID %d: content\n%s" % (rel, m.uid, run))

    def assertSays(self, run, pattern, what):
        text = run.stderr.decode("utf-8", "replace")
        if not re.search(pattern, text, re.I):
            self.fail("no message saying %s (/%s/) on stderr:\n%s"
                      % (what, pattern, run))

    def assertNothingTorn(self, dest):
        """No file in any new/ (imapsnap delivers into cur/ only)."""
        for d, dirs, files in os.walk(dest):
            if os.path.basename(d) == "new":
                self.assertEqual(files, [], "files in %s" % d)


def all_files_under(dest):
    """{content: [paths]} of every message file under DEST."""
    out = {}
    for d, dirs, files in os.walk(dest):
        if os.path.basename(d) != "cur":
            continue
        for f in files:
            p = os.path.join(d, f)
            out.setdefault(runner.read(p), []).append(p)
    return out


class FolderNames(HostileCase):
    def test_names_that_climb_out_of_dest(self):
        """../x, /etc/x, a/../../b, .., ., an absolute path into the fence,
        with '/' and '.' and NIL as delimiters: all saved, each in a
        directory of its own, all below DEST."""
        fence_probe = workdir("hostile-abs-target")
        absolute = (fence_probe + "/x").encode()
        names = [(b"../x", b"/"), (b"/etc/x", b"/"), (b"a/../../b", b"/"),
                 (b"..", b"/"), (b".", b"/"), (absolute, b"/"),
                 (b"../../y", b"."), (b"../..", None), (b"./z", None),
                 (b"...", b"."), (b"/", b"/"), (b"", b"/")]
        etc_x = os.path.exists("/etc/x")
        mbs = [Mailbox(n, make_messages(2, tag=b"n%d" % i), delim=d)
               for i, (n, d) in enumerate(names)]
        mbs.append(Mailbox("INBOX", make_messages(2, tag=b"inbox")))
        run, srv, dest = self.watch(Script(mbs), "climb")
        self.assertEqual(os.listdir(fence_probe), [],
                         "a folder named %s landed there:\n%s"
                         % (absolute, run))
        if not etc_x:
            self.assertFalse(os.path.exists("/etc/x"),
                             "a folder named /etc/x landed there")
        files = all_files_under(dest)
        dirs = set()
        for mb in mbs:
            for m in mb.msgs:
                paths = files.get(m.body, [])
                self.assertEqual(len(paths), 1, "%r UID %d saved at %s\n%s"
                                 % (mb.name, m.uid, paths, run))
                real = os.path.realpath(paths[0])
                self.assertTrue(real.startswith(os.path.realpath(dest) +
                                                "/"), real)
                dirs.add((mb.name, os.path.dirname(paths[0])))
        self.assertEqual(len({d for _, d in dirs}), len(mbs),
                         "folders share a directory: %s" % sorted(dirs))
        self.assertExit(run, 0)

    def test_control_characters_and_nul(self):
        """Control characters, CR, LF, DEL and 8-bit bytes are saved under
        an escaped name; a name with NUL cannot be sent back to the server
        (EXAMINE), so that folder fails with a message and the others are
        saved."""
        good = [b"ctl\x01\x1fx", b"cr\rlf\nx", b"del\x7fx", b"tab\tx",
                b"\xff\xfe8bit", b"esc\x1b[31mred"]
        mbs = [Mailbox(n, make_messages(1, tag=b"c%d" % i))
               for i, n in enumerate(good)]
        mbs.append(Mailbox(b"nul\x00x", make_messages(1, tag=b"nul")))
        run, srv, dest = self.watch(Script(mbs), "ctl")
        files = all_files_under(dest)
        for mb in mbs[:-1]:
            self.assertIn(mb.msgs[0].body, files,
                          "%r not saved\n%s" % (mb.name, run))
        self.assertNotIn(mbs[-1].msgs[0].body, files)
        self.assertExit(run, 1, "a folder could not be backed up")
        self.assertSays(run, r"NUL", "that a folder name holds NUL")
        # The terminal must not receive raw control characters from the
        # server (an escape sequence in a folder name).
        self.assertNotIn(b"\x1b", run.stderr, "raw ESC on stderr")

    def test_invalid_modified_utf7(self):
        """Names that are not valid modified UTF-7 are kept raw (escaped):
        saved, and apart from each other and from valid names."""
        names = [b"&Jjo!", b"&AAA-", b"&-&", b"&", b"&ZeVnLIqe", b"&AGE-",
                 b"&2D3eAA-", b"\xc3\xa4raw", b"&AOQ-&AOQ-"]
        mbs = [Mailbox(n, make_messages(1, tag=b"u%d" % i))
               for i, n in enumerate(names)]
        run, srv, dest = self.watch(Script(mbs), "mutf7")
        files = all_files_under(dest)
        where = set()
        for mb in mbs:
            paths = files.get(mb.msgs[0].body, [])
            self.assertEqual(len(paths), 1, "%r saved at %s\n%s"
                             % (mb.name, paths, run))
            where.add(os.path.dirname(paths[0]))
        self.assertEqual(len(where), len(mbs), "folders share a directory")
        self.assertIn(run.rc, (0, 1), str(run))

    def test_names_longer_than_name_max(self):
        """Components of 300 and 1000 bytes (NAME_MAX is 255), two that
        differ only at the end: saved, apart.  A name whose path would
        exceed PATH_MAX fails on its own, with a message that says why and
        does not drown in the name."""
        long_a = b"a" * 300
        long_b = b"a" * 299 + b"b"
        deep = b"/".join([b"d" * 200] * 30)
        mbs = [Mailbox(long_a, make_messages(1, tag=b"la")),
               Mailbox(long_b, make_messages(1, tag=b"lb")),
               Mailbox(b"x" * 1000 + b"/sub", make_messages(1, tag=b"lx")),
               Mailbox(deep, make_messages(1, tag=b"deep")),
               Mailbox("INBOX", make_messages(1, tag=b"inbox"))]
        run, srv, dest = self.watch(Script(mbs), "long")
        files = all_files_under(dest)
        where = set()
        for mb in mbs[:3] + mbs[4:]:
            paths = files.get(mb.msgs[0].body, [])
            self.assertEqual(len(paths), 1, "%r saved at %s\n%s"
                             % (mb.name[:40], paths, run))
            where.add(os.path.dirname(paths[0]))
            for part in os.path.relpath(paths[0], dest).split("/"):
                self.assertLessEqual(len(part.encode()), 255)
        self.assertEqual(len(where), 4, "long names share a directory")
        if mbs[3].msgs[0].body not in files:
            self.assertExit(run, 1, "the deep folder failed")
            line = [ln for ln in run.stderr.split(b"\n") if b"ddd" in ln]
            self.assertTrue(line, "no message about the deep folder:\n%s"
                            % run)
            self.assertRegex(line[0].decode("utf-8", "replace"),
                             r"(?i)too long",
                             "the message does not say why the folder "
                             "failed")
            self.assertLess(len(line[0]), 600,
                            "the reason is lost in a %d-byte line"
                            % len(line[0]))


# --- responses that break the protocol ------------------------------------


def two_folders():
    """A good folder, then the one the script misbehaves in."""
    return [Mailbox("Good", make_messages(3, tag=b"good")),
            Mailbox("Bad", make_messages(3, tag=b"bad"))]


class BadFetch(Script):
    """Misbehaves in folder Bad's UID FETCH through `self.answer`."""

    def fetch(self, c, tag, uids, items):
        if c.selected.name != b"Bad":
            return Script.fetch(self, c, tag, uids, items)
        self.answer(c, tag, uids)


class Protocol(HostileCase):
    def run_bad_fetch(self, name, answer, **kw):
        s = BadFetch(two_folders())
        s.answer = answer
        run, srv, dest = self.watch(s, name, **kw)
        self.assertSaved(dest, "Good", s.mailboxes[0].msgs, run)
        return run, srv, dest, s

    def test_literal_size_2_63(self):
        def answer(c, tag, uids):
            c.send(b"* 1 FETCH (UID 1 FLAGS () BODY[] "
                   b"{9223372036854775808}\r\nxxxx")
            c.stall()
        run, srv, dest, s = self.run_bad_fetch("lit63", answer)
        self.assertExit(run, 1)
        self.assertSays(run, r"literal", "that the literal size is wrong")
        self.assertEqual(runner.maildir_files(os.path.join(dest, "Bad")),
                         {})

    def test_literal_size_overflows_64_bits(self):
        def answer(c, tag, uids):
            c.send(b"* 1 FETCH (UID 1 BODY[] "
                   b"{99999999999999999999999999}\r\n")
            c.stall()
        run, srv, dest, s = self.run_bad_fetch("lit99", answer)
        self.assertExit(run, 1)
        self.assertSays(run, r"literal", "that the literal size is wrong")

    def test_endless_line(self):
        """A FETCH response line that never ends (up to 256 MB, as long as
        imapsnap listens): refused early, memory bounded."""
        def answer(c, tag, uids):
            c.send(b"* 1 FETCH (UID 1 FLAGS (")
            for _ in range(4096):
                c.send(b"x" * 65536)
            c.hangup()
        run, srv, dest, s = self.run_bad_fetch("endless", answer)
        self.assertExit(run, 1)
        self.assertSays(run, r"longer than|too long", "that the line is "
                        "too long")

    def test_endless_greeting(self):
        """Before login (libcurl reads the greeting): no hang, no memory
        growth, exit 4."""
        class Endless(Script):
            def greeting(self, c):
                c.send(b"* OK ")
                for _ in range(4096):
                    c.send(b"x" * 65536)
                c.hangup()
        run, srv, dest = self.watch(Endless(two_folders()), "endgreet")
        self.assertExit(run, 4)

    def test_unbalanced_parentheses(self):
        for i, bad in enumerate([
                b"* 1 FETCH (UID 1 FLAGS (\\Seen) BODY[] {5}\r\nhello))\r\n",
                b"* 1 FETCH (UID 1 FLAGS (\\Seen BODY[] {5}\r\nhello\r\n",
                b"* 1 FETCH UID 1 FLAGS (\\Seen)) BODY[] {5}\r\nhello\r\n",
                b"* 1 FETCH (" + b"(" * 5000 + b"\r\n"]):
            with self.subTest(i=i):
                def answer(c, tag, uids, bad=bad):
                    c.send(bad + tag + b" OK done\r\n")
                    c.stall()
                run, srv, dest, s = self.run_bad_fetch("paren%d" % i,
                                                       answer)
                self.assertExit(run, 1)
                self.assertSays(run, r"parenthes|malformed|nest|deep",
                                "that the parentheses do not match")
                self.assertEqual(
                    runner.maildir_files(os.path.join(dest, "Bad")), {})

    def test_two_bodies_in_one_fetch_response(self):
        """'* 2 FETCH (UID 2 BODY[] {5} hello BODY[] {5} world)': the
        server's fault, not a usage error; UID 2 is either not saved or
        saved with one of the two bodies whole, and the other messages
        are saved."""
        class TwoBodies(Script):
            def send_message(self, c, seq, msg):
                if c.selected.name == b"Bad" and msg.uid == 2:
                    c.send(b"* 2 FETCH (UID 2 BODY[] {5}\r\nhello "
                           b"BODY[] {5}\r\nworld)\r\n")
                else:
                    Script.send_message(self, c, seq, msg)
        s = TwoBodies(two_folders())
        run, srv, dest = self.watch(s, "twobodies")
        self.assertNotEqual(run.rc, 2, "a usage error for the server's "
                            "fault:\n%s" % run)
        self.assertNotEqual(run.rc, 0, str(run))
        files = runner.maildir_files(os.path.join(dest, "Bad"))
        bad = s.mailboxes[1].msgs
        self.assertIn(3, files, "UID 3, after the bad response, is saved\n%s"
                      % run)
        self.assertEqual(runner.read(files[3][1]), bad[2].body)
        if 2 in files:
            self.assertIn(runner.read(files[2][1]), (b"hello", b"world"))

    def test_literal_shorter_than_announced_before_eof(self):
        """The server announces {N}, sends fewer bytes and closes: nothing
        torn is kept, what came before is, and a later run with a good
        server completes with every message exactly once."""
        class Short(Script):
            cut = True

            def send_message(self, c, seq, msg):
                if self.cut and c.selected.name == b"Bad" and msg.uid == 3:
                    r = self.fetch_response(c, seq, msg)
                    c.send(r[:len(r) - len(msg.body) // 2 - 3])
                    c.hangup()
                Script.send_message(self, c, seq, msg)
        s = Short(two_folders())
        run, srv, dest = self.watch(s, "short", retries=1)
        self.assertExit(run, 4, "the connection was lost for good")
        self.assertSays(run, r"closed|connection", "that the connection "
                        "was lost")
        bad = s.mailboxes[1]
        self.assertSaved(dest, "Bad", bad.msgs[:2], run)
        self.assertNothingTorn(dest)
        self.assertEqual(srv.connections, 2, "one retry means two "
                         "connections")
        s.cut = False
        with FakeIMAP(s) as srv2:
            again = runner.backup_fake(srv2, dest, "--timeout", "3")
        self.assertExit(again, 0)
        self.assertSaved(dest, "Bad", bad.msgs, again)
        self.assertSaved(dest, "Good", s.mailboxes[0].msgs, again)
        self.assertEqual([c.split(b" ")[2] for c in
                          srv2.commands(prefix=b"UID FETCH")
                          if b"BODY" in c], [b"3"],
                         "the second run fetches only what is missing")


# --- UIDs that cannot be ----------------------------------------------------


class SearchAnswers(Script):
    """Folder Bad's UID SEARCH answers `self.uids` (bytes), as ESEARCH
    when `esearch` is set (and the server then offers ESEARCH)."""

    esearch = False

    @property
    def capabilities(self):
        return Script.capabilities + (b" ESEARCH" if self.esearch else b"")

    def search(self, c, tag, args):
        if c.selected.name != b"Bad":
            return Script.search(self, c, tag, args)
        if self.esearch:
            c.send(b'* ESEARCH (TAG "%s") UID ALL %s\r\n' % (
                tag, self.uids.replace(b" ", b",")))
        else:
            c.send(b"* SEARCH " + self.uids + b"\r\n")
        c.send(tag + b" OK done\r\n")

    def list_uids(self, c, tag, uids, items):
        """Without ESEARCH imapsnap lists UIDs with UID FETCH (UID)."""
        if c.selected.name != b"Bad":
            return Script.list_uids(self, c, tag, uids, items)
        c.send(b"".join(b"* %d FETCH (UID %s)\r\n" % (i + 1, u)
                        for i, u in enumerate(self.uids.split())) +
               tag + b" OK done\r\n")


class BadUIDs(HostileCase):
    # How imapsnap learns a folder's UIDs: UID FETCH (UID) by default,
    # UID SEARCH when a date limits the backup, ESEARCH when offered.
    LISTINGS = (("fetch", False, ()), ("search", False, ("--since",
                                                          "1990-01-01")),
                ("esearch", True, ()))

    def test_search_uids_out_of_range(self):
        """The UID listing answers UID 0, -1, 2^32, 2^64: the folder fails
        with a message; the folder before it is saved."""
        for (how, esearch, extra), bad in itertools.product(
                self.LISTINGS, (b"0", b"-1", b"4294967296",
                                b"18446744073709551617", b"1 2 x3")):
            with self.subTest(listing=how, uid=bad):
                s = SearchAnswers(two_folders())
                s.uids = b"1 " + bad
                s.esearch = esearch
                run, srv, dest = self.watch(s, "search", *extra)
                searched = srv.commands(prefix=b"UID SEARCH")
                self.assertEqual(bool(searched), how != "fetch",
                                 "the %s listing was not used: %s"
                                 % (how, srv.log))
                self.assertSaved(dest, "Good", s.mailboxes[0].msgs, run)
                self.assertExit(run, 1)
                self.assertSays(run, r"invalid UID|UID", "that a UID is "
                                "invalid")
                self.assertEqual(
                    runner.maildir_files(os.path.join(dest, "Bad")), {})

    def test_search_repeats_uids(self):
        """SEARCH names UIDs twice: each is saved once."""
        s = SearchAnswers(two_folders())
        s.uids = b"1 1 2 3 2 3 3"
        run, srv, dest = self.watch(s, "searchrep")
        self.assertSaved(dest, "Bad", s.mailboxes[1].msgs, run)
        fetches = srv.commands(prefix=b"UID FETCH")
        self.assertEqual(fetches[-1].split(b" ")[2], b"1:3",
                         "UIDs asked for twice:\n%s" % fetches)

    def fetch_uid_replaced(self, name, fake_uid):
        """Folder Bad's message 2 arrives labelled `fake_uid`."""
        class Relabel(Script):
            def send_message(self, c, seq, msg):
                r = self.fetch_response(c, seq, msg)
                if c.selected.name == b"Bad" and msg.uid == 2:
                    r = r.replace(b"(UID 2 ", b"(UID " + fake_uid + b" ", 1)
                c.send(r)
        s = Relabel(two_folders())
        return self.watch(s, name) + (s,)

    def test_fetch_uid_out_of_range_is_reported_and_retried(self):
        """A body labelled UID 0, -1 or 2^32+1 instead of 2: the valid
        messages are saved, the run says what went wrong and exits 1, and
        UID 2 is not written off: a later run against a sane server saves
        it."""
        for fake in (b"0", b"-1", b"4294967297"):
            with self.subTest(uid=fake):
                run, srv, dest, s = self.fetch_uid_replaced("fuid", fake)
                bad = s.mailboxes[1].msgs
                self.assertSaved(dest, "Bad", [bad[0], bad[2]], run)
                self.assertNotEqual(run.rc, 0, "exit status; UID 2 was "
                                    "not saved:\n%s" % run)
                self.assertSays(run, r"UID", "what was wrong with the UID")
                self.assertNotRegex(run.summary().decode(), r"expunged",
                                    "a message the server sent is not "
                                    "'expunged'")
                sane = Script(s.mailboxes)
                with FakeIMAP(sane) as srv2:
                    again = runner.backup_fake(srv2, dest, "--timeout", "3")
                self.assertExit(again, 0)
                self.assertSaved(dest, "Bad", bad, again)

    def test_fetch_repeated_uid(self):
        """Message 2 arrives labelled UID 1 (already received): UID 1 is
        kept once, with its first content, and UID 2 is not written off."""
        run, srv, dest, s = self.fetch_uid_replaced("frep", b"1")
        bad = s.mailboxes[1].msgs
        self.assertSaved(dest, "Bad", [bad[0], bad[2]], run)
        self.assertNotEqual(run.rc, 0, "exit status:\n%s" % run)
        sane = Script(s.mailboxes)
        with FakeIMAP(sane) as srv2:
            again = runner.backup_fake(srv2, dest, "--timeout", "3")
        self.assertExit(again, 0)
        self.assertSaved(dest, "Bad", bad, again)

    def test_fetch_for_uids_not_asked_for(self):
        """Bodies for UIDs nobody asked for (one unknown, one a repeat of a
        message already received) are dropped; the rest is saved once; the
        run says the server sent what was not asked for."""
        class Unasked(Script):
            def fetch(self, c, tag, uids, items):
                if c.selected.name != b"Bad":
                    return Script.fetch(self, c, tag, uids, items)
                mb = c.selected
                for i, m in enumerate(mb.msgs):
                    c.send(self.fetch_response(c, i + 1, m))
                c.send(self.fetch_response(
                    c, 9, Msg(77, b"Subject: unasked\r\n\r\nnot mine\r\n")))
                c.send(self.fetch_response(
                    c, 1, Msg(1, b"Subject: again\r\n\r\nsecond copy\r\n")))
                c.send(tag + b" OK done\r\n")
        s = Unasked(two_folders())
        run, srv, dest = self.watch(s, "unasked")
        self.assertSaved(dest, "Bad", s.mailboxes[1].msgs, run)
        self.assertNotIn(b"not mine", all_files_under(dest))
        self.assertNotEqual(run.rc, 0, "exit status:\n%s" % run)
        self.assertSays(run, r"not asked|unasked|unexpected|unsolicited",
                        "that the server sent bodies nobody asked for")


class Examine(HostileCase):
    def test_examine_without_uidvalidity(self):
        """No UIDVALIDITY, or one that is 0 or does not fit 32 bits: the
        folder fails with a message, the others are saved."""
        for uv in (None, b"0", b"4294967296", b"-5"):
            with self.subTest(uidvalidity=uv):
                class NoUV(Script):
                    def examine(self, c, tag, name, rest):
                        if name != b"Bad":
                            return Script.examine(self, c, tag, name, rest)
                        mb = self.mailbox(name)
                        c.selected = mb
                        c.send(b"* 3 EXISTS\r\n")
                        if uv is not None:
                            c.send(b"* OK [UIDVALIDITY %s] x\r\n" % uv)
                        c.send(tag + b" OK [READ-ONLY] done\r\n")
                mbs = two_folders()
                mbs.append(Mailbox("Last", make_messages(2, tag=b"last")))
                run, srv, dest = self.watch(NoUV(mbs), "nouv")
                self.assertSaved(dest, "Good", mbs[0].msgs, run)
                self.assertSaved(dest, "Last", mbs[2].msgs, run)
                self.assertExit(run, 1)
                self.assertSays(run, r"UIDVALIDITY", "that UIDVALIDITY is "
                                "missing or invalid")


class AfterAProtocolError(HostileCase):
    """'Saves what is valid': one folder's broken answer must not cost the
    folders after it."""

    def check_later_folder_saved(self, name, script_cls, setup=None):
        mbs = two_folders()
        mbs.append(Mailbox("Later", make_messages(3, tag=b"later")))
        s = script_cls(mbs)
        if setup:
            setup(s)
        run, srv, dest = self.watch(s, name, retries=1)
        self.assertSaved(dest, "Good", mbs[0].msgs, run)
        self.assertSaved(dest, "Later", mbs[2].msgs, run)
        self.assertExit(run, 1)

    def test_after_an_invalid_search_answer(self):
        def setup(s):
            s.uids = b"1 0"
        self.check_later_folder_saved("later-search", SearchAnswers, setup)

    def test_after_a_malformed_fetch_response(self):
        """The stream is unusable after a parse error; reconnecting gets
        the remaining folders."""
        def setup(s):
            def answer(c, tag, uids):
                c.send(b"* 1 FETCH (UID 1 FLAGS (\\Seen BODY[] {5}\r\n"
                       b"hello\r\n" + tag + b" OK done\r\n")
            s.answer = answer
        self.check_later_folder_saved("later-parse", BadFetch, setup)


class AfterAStoreError(HostileCase):
    """A store that refuses a message in the middle of a FETCH fails its
    folder; the bodies still on their way are read and dropped, and the
    next folder on the same connection is saved."""

    def test_archive_path_too_long_mid_fetch(self):
        """tar: a folder whose path in the archive (each '%' written as
        "%25", 20 components of 198 bytes and one of 165: 4,145 bytes)
        leaves room for its cur/, new/ and tmp/ entries but not for a
        message's name, so the archive refuses the first body (a folder
        error, not a message error) with the other two of the same UID
        FETCH still coming.  The folder after it goes over the same
        connection and must be saved whole."""
        import tarfile
        long_name = b"/".join([b"%" * 66] * 20 + [b"q" * 165])
        mbs = [Mailbox(long_name, make_messages(3, size=300000,
                                                    tag=b"long")),
               Mailbox("zAfter", make_messages(3, tag=b"after"))]
        run, srv, dest = self.watch(Script(mbs), "store-error", "--format",
                                    "tar", "--connections", "1")
        self.assertNotRegex(run.stderr.decode("utf-8", "replace"),
                            r"neither inlined nor consumed|zAfter.*error",
                            "the next folder paid for the long one")
        self.assertSays(run, r"too long", "why the long folder failed")
        bodies = set()
        for name in os.listdir(dest):
            if ".tar" not in name:
                continue
            with tarfile.open(os.path.join(dest, name)) as t:
                for m in t.getmembers():
                    if m.isfile() and m.name.startswith("zAfter/cur/"):
                        bodies.add(t.extractfile(m).read())
        self.assertEqual(bodies, set(m.body for m in mbs[1].msgs),
                         "zAfter's messages in the archive\n%s" % run)
        self.assertEqual(len(srv.commands(prefix=b"LOGIN")) +
                         len(srv.commands(prefix=b"AUTHENTICATE")), 1,
                         "one connection was enough\n%s" % run)
        self.assertExit(run, 1)


class Resources(HostileCase):
    def test_many_huge_folder_names(self):
        """200 LIST entries with 1 MB names each (a name is at most 1 MB:
        the parser's inline literal limit): memory stays bounded."""
        class Flood(Script):
            def list(self, c, tag, ref, pattern):
                for i in range(200):
                    name = b"%06d" % i + b"n" * (1000000 - 6)
                    c.send(b'* LIST () "/" {%d}\r\n%s\r\n' % (len(name),
                                                              name))
                Script.list(self, c, tag, ref, pattern)

            def examine(self, c, tag, name, rest):
                if self.mailbox(name) is None:
                    c.send(tag + b" NO no such folder\r\n")
                    return
                Script.examine(self, c, tag, name, rest)
        mbs = [Mailbox("INBOX", make_messages(2))]
        run, srv, dest = self.watch(Flood(mbs), "listflood", timeout=60)
        self.assertSaved(dest, "INBOX", mbs[0].msgs, run)

    def test_search_answer_of_a_large_folder(self):
        """A server without ESEARCH answers UID SEARCH for a folder of
        150000 messages with one line of 150000 UIDs (1 MB): a legitimate
        answer, which must not be refused as too long.  (The script serves
        only the first three bodies; the rest count as expunged.)"""
        class Big(Script):
            def search(self, c, tag, args):
                c.send(b"* SEARCH " + b" ".join(
                    b"%d" % u for u in range(1, 150001)) + b"\r\n")
                c.send(tag + b" OK done\r\n")

            def list_uids(self, c, tag, uids, items):
                c.send(b"".join(b"* %d FETCH (UID %d)\r\n" % (u, u)
                                for u in range(1, 150001)))
                c.send(tag + b" OK done\r\n")
        mbs = [Mailbox("INBOX", make_messages(3))]
        run, srv, dest = self.watch(Big(mbs), "bigsearch", timeout=60)
        self.assertNotRegex(run.stderr.decode("utf-8", "replace"),
                            r"longer than|more than \d+ arguments",
                            "a legitimate SEARCH answer refused")
        self.assertSaved(dest, "INBOX", mbs[0].msgs, run)
        self.assertExit(run, 0)

    def test_dated_search_answer_of_a_large_folder(self):
        """With --since/--before and no ESEARCH, the listing has to be a
        plain UID SEARCH, whose one line holds every UID that matches:
        250,000 UIDs in 1.7 MB, past both the line and the argument
        limits of the parser.  Legitimate: read as it comes, into a UID
        set, in bounded memory.  (The script serves three bodies; the
        other UIDs count as vanished.)"""
        n = 250000

        class Big(Script):
            def search(self, c, tag, args):
                self.searched = b" ".join(args)
                c.send(b"* SEARCH")
                for first in range(1, n + 1, 10000):
                    c.send(b"".join(b" %d" % u for u in range(
                        first, min(first + 10000, n + 1))))
                c.send(b"\r\n" + tag + b" OK done\r\n")
        mbs = [Mailbox("INBOX", make_messages(3)),
               Mailbox("Later", make_messages(2, tag=b"later"))]
        s = Big(mbs)
        run, srv, dest = self.watch(s, "bigdatedsearch", "--since",
                                    "1990-01-01", timeout=60)
        self.assertIn(b"SINCE", s.searched.upper())
        self.assertNotRegex(run.stderr.decode("utf-8", "replace"),
                            r"longer than|more than \d+ arguments",
                            "a legitimate SEARCH answer refused")
        self.assertSaved(dest, "INBOX", mbs[0].msgs, run)
        self.assertSaved(dest, "Later", mbs[1].msgs, run)

    def test_many_commands_in_flight(self):
        """A folder whose SEARCH names 10000 UIDs, of which the server has
        three (the rest vanished): many UID FETCH commands go out, one
        after another, and imapsnap must neither crash nor lose track."""
        class Sparse(Script):
            def search(self, c, tag, args):
                c.send(b"* SEARCH " + b" ".join(
                    b"%d" % u for u in range(1, 10001)) + b"\r\n")
                c.send(tag + b" OK done\r\n")

            def list_uids(self, c, tag, uids, items):
                c.send(b"".join(b"* %d FETCH (UID %d)\r\n" % (u, u)
                                for u in range(1, 10001)))
                c.send(tag + b" OK done\r\n")
        mbs = [Mailbox("INBOX", make_messages(3))]
        run, srv, dest = self.watch(Sparse(mbs), "sparse")
        self.assertSaved(dest, "INBOX", mbs[0].msgs, run)
        self.assertExit(run, 0)
