"""imapsnap restore: a backup of one user, in several formats, put into
another user and compared through the oracle (bytes, flags with keywords,
INTERNALDATE, folder names); restored again without a second copy;
--into, --include, --dry-run; a restore killed midway and resumed."""

import hashlib
import json
import os
import signal
import sys
import subprocess
import time

from harness import TestCase, backup, imapsnap, simple_message, workdir
import harness


def restore(target, source, *extra, state=None, **kw):
    """`imapsnap restore SOURCE URL` into `target` over TLS."""
    args = ["restore", "--cacert", target.server.cacert]
    if state:
        args += ["--state-dir", state]
    args += list(extra)
    args += [source, target.server.url(target, "imaps")]
    return imapsnap(*args, password=target.password, **kw)


def account(user, prefix=None):
    """{folder name (UTF-8, below prefix): sorted [(internaldate, flags,
    body)]} of every selectable folder holding messages."""
    out = {}
    with user.oracle() as o:
        for f in o.folders():
            if not f.selectable:
                continue
            name = f.name
            if prefix is not None:
                if not name.startswith(prefix + f.delim):
                    continue
                name = name[len(prefix) + 1:]
            msgs = o.messages(f)
            if not msgs:
                continue
            out[name] = sorted((m.internaldate, tuple(sorted(m.flags)),
                                o.body(uid)) for uid, m in msgs.items())
    return out


def count(user):
    with user.oracle() as o:
        return sum(len(o.messages(f)) for f in o.folders() if f.selectable)


class Restore(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.src = harness.SERVER.new_user("rsrc")
        cls.src.load_corpus(seed=8, scale=0.25)
        cls.expected = account(cls.src)

    def assertSame(self, got, why):
        self.assertEqual(sorted(got), sorted(self.expected),
                         why + ": folders")
        for name in self.expected:
            a, b = self.expected[name], got[name]
            self.assertEqual(len(a), len(b), "%s: %s: messages" % (why, name))
            for x, y in zip(a, b):
                self.assertEqual(x[0], y[0], "%s: %s: INTERNALDATE"
                                 % (why, name))
                self.assertEqual(x[1], y[1], "%s: %s: flags" % (why, name))
                if x[2] != y[2]:
                    self.fail("%s: %s: a message differs (%d bytes vs %d)"
                              % (why, name, len(x[2]), len(y[2])))

    def roundtrip(self, fmt, dest_name=None):
        work = workdir("restore-" + fmt.replace(".", "-"))
        dest = os.path.join(work, dest_name) if dest_name else \
            os.path.join(work, "backup")
        args = [] if dest_name else ["--format", fmt]
        run = backup(self.src, dest, *args)
        self.assertExit(run, 0, "backup")
        dst = harness.SERVER.new_user("rdst")
        state = os.path.join(work, "state")
        run = restore(dst, dest, state=state)
        self.assertExit(run, 0, "restore")
        self.assertSame(account(dst), "restore from %s" % fmt)
        with dst.oracle() as o:
            names = {f.name for f in o.folders()}
        self.assertIn("Empty", names, "an empty folder was not created")
        n = count(dst)
        # Again: nothing appended, nothing doubled.
        run = restore(dst, dest, "--json", state=state)
        self.assertExit(run, 0, "second restore")
        self.assertIn(b'"appended": 0', run.stdout, str(run))
        self.assertEqual(count(dst), n, "second restore added messages")
        return dst, dest, state

    def test_maildir(self):
        self.roundtrip("maildir")

    def test_mbox(self):
        self.roundtrip("mbox")

    def test_mbox_gz(self):
        self.roundtrip("mbox.gz")

    def test_tar_gz_volumes(self):
        self.roundtrip("tar.gz")

    def test_zip_single_file(self):
        self.roundtrip("zip", "export.zip")

    def test_state_lost_no_duplicates(self):
        """Without its state, a restore finds by content what is there."""
        dst, dest, state = self.roundtrip("maildir")
        n = count(dst)
        run = restore(dst, dest, "--json", state=state + "-new")
        self.assertExit(run, 0)
        self.assertIn(b'"appended": 0', run.stdout, str(run))
        self.assertEqual(count(dst), n)

    def test_into_include_dry_run(self):
        work = workdir("restore-into")
        dest = os.path.join(work, "backup")
        self.assertExit(backup(self.src, dest), 0)
        dst = harness.SERVER.new_user("rdst")
        state = os.path.join(work, "state")
        run = restore(dst, dest, "--dry-run", "--json", state=state)
        self.assertExit(run, 0, "dry run")
        self.assertEqual(count(dst), 0, "a dry run appended")
        self.assertNotIn(b'"appended": 0', run.stdout)
        run = restore(dst, dest, "--into", "Restored", "--include", "日本語*",
                      "--include", "INBOX", state=state)
        self.assertExit(run, 0)
        got = account(dst, prefix="Restored")
        want = {k: v for k, v in self.expected.items()
                if k.startswith("日本語") or k == "INBOX"}
        self.assertEqual(sorted(got), sorted(want))
        for k in want:
            self.assertEqual(got[k], want[k], k)
        with dst.oracle() as o:
            self.assertEqual(o.messages("INBOX"), {}, "INBOX itself touched")

    def test_folder_refused_fails_the_run(self):
        """A folder the target refuses to create: exit 1, named."""
        work = workdir("restore-refused-folder")
        user = harness.SERVER.new_user("rone")
        with user.oracle() as o:
            o.append("INBOX", simple_message("one"), date=1600000000)
        dest = os.path.join(work, "backup")
        self.assertExit(backup(user, dest), 0)
        dst = harness.SERVER.new_user("rdst")
        run = restore(dst, dest, "--into", "a//b", state=work + "/s")
        self.assertExit(run, 1)
        self.assertIn(b"a//b/INBOX: folder failed", run.stderr)

    def test_refused_append_fails_the_run(self):
        """A message the target refuses (Dovecot saves no empty message):
        exit 1 with the message and the server's answer named; the other
        message is restored."""
        work = workdir("restore-refused")
        user = harness.SERVER.new_user("rone")
        with user.oracle() as o:
            o.append("INBOX", simple_message("one"), date=1600000000)
            o.append("INBOX", simple_message("two"), date=1600000001)
        dest = os.path.join(work, "backup")
        self.assertExit(backup(user, dest), 0)
        # Empty the first message, in the backup and in its manifest
        # line alike, as if the server had sent it so.
        cur = os.path.join(dest, "INBOX", "cur")
        name = sorted(os.listdir(cur))[0]
        bad = b""
        with open(os.path.join(cur, name), "wb") as f:
            f.write(bad)
        mdir = os.path.join(dest, ".imapsnap", "manifest")
        for m in os.listdir(mdir):
            if not m.endswith(".jsonl"):
                continue
            path = os.path.join(mdir, m)
            with open(path) as f:
                lines = f.read().split("\n")
            for i, line in enumerate(lines):
                if '"type":"message"' in line and '"uid":1,' in line:
                    o = json.loads(line)
                    o["sha256"] = hashlib.sha256(bad).hexdigest()
                    o["received"] = len(bad)
                    lines[i] = json.dumps(o, separators=(",", ":"),
                                          ensure_ascii=False)
            with open(path, "w") as f:
                f.write("\n".join(lines))
        dst = harness.SERVER.new_user("rdst")
        run = restore(dst, dest, state=work + "/s")
        self.assertExit(run, 1)
        self.assertIn(b"INBOX UID 1", run.stderr)
        self.assertIn(b"the server said NO", run.stderr)
        self.assertEqual(count(dst), 1)


class RestoreFlags(TestCase):
    def later_flag_changes_win(self, fmt):
        """Flags changed after the message was saved (a `flags` line in a
        later manifest) are the ones restored: Maildir renames its copy,
        mbox and archive volumes cannot, and the manifest has them."""
        user = harness.SERVER.new_user("rfl")
        with user.oracle() as o:
            for i in range(3):
                o.append("INBOX", simple_message("f%d" % i),
                         date=1600000000 + i)
        work = workdir("restore-flags-" + fmt)
        dest = os.path.join(work, "backup")
        self.assertExit(backup(user, dest, "--format", fmt), 0)
        with user.oracle() as o:
            o.m.select('"INBOX"')
            o.m.uid("STORE", "2", "+FLAGS", "(\\Flagged Later)")
            o.m.uid("STORE", "3", "+FLAGS", "(\\Seen)")
        self.assertExit(backup(user, dest, "--format", fmt), 0)
        dst = harness.SERVER.new_user("rfld")
        self.assertExit(restore(dst, dest, state=work + "/s"), 0)
        self.assertEqual(account(dst), account(user))

    def test_later_flag_changes_win_maildir(self):
        self.later_flag_changes_win("maildir")

    def test_later_flag_changes_win_mbox(self):
        self.later_flag_changes_win("mbox")

    def test_later_flag_changes_win_tar_gz(self):
        self.later_flag_changes_win("tar.gz")


class RestoreCrash(TestCase):
    def test_kill_and_resume(self):
        src = harness.SERVER.new_user("rksrc")
        src.load_corpus(seed=9, scale=1.0)
        work = workdir("restore-kill")
        dest = os.path.join(work, "backup")
        self.assertExit(backup(src, dest), 0)
        expected = account(src)
        dst = harness.SERVER.new_user("rkdst")
        state = os.path.join(work, "state")
        e = dict(os.environ, IMAPSNAP_PASSWORD=dst.password)
        args = [harness.BINARY, "restore", "--cacert", dst.server.cacert,
                "--state-dir", state, dest, dst.server.url(dst, "imaps")]
        kills = 0
        for delay in (0.15, 0.3, 0.2, 0.45):
            mark = harness.SERVER.log_mark()
            p = subprocess.Popen(args, env=e, stdin=subprocess.DEVNULL,
                                 stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL,
                                 start_new_session=True)
            time.sleep(delay)
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                kills += 1
            p.wait()
            # The server may still be saving what the killed connection
            # sent last; a restore started before that ends cannot see
            # those messages (docs/restore.md, limits).
            mark.sessions(dst)
        self.assertGreater(kills, 0, "every restore ended before its kill")
        run = imapsnap("restore", "--cacert", dst.server.cacert,
                       "--state-dir", state, dest,
                       dst.server.url(dst, "imaps"), password=dst.password,
                       timeout=120)
        self.assertExit(run, 0, "after %d kills" % kills)
        got = account(dst)
        self.assertEqual(sorted(got), sorted(expected))
        for k in expected:
            self.assertEqual(len(got[k]), len(expected[k]),
                             "%s: duplicates or missing after %d kills"
                             % (k, kills))
            self.assertEqual(got[k], expected[k], k)


# --- a scripted target (tests/fakeimap) --------------------------------------

sys.path.insert(0, os.path.join(harness.ROOT, "tests", "fakeimap"))
from fakeimap import FakeIMAP, Mailbox, Msg, Script, split_args  # noqa: E402


class Target(Script):
    """A target without LITERAL+ or UIDPLUS: every body must wait for the
    server's "+".  Keeps what it is given; `refuse` answers NO to the
    APPENDs whose body holds that text."""

    capabilities = b"IMAP4rev1 AUTH=PLAIN SASL-IR"
    refuse = None
    hangup_at = None  # keep the n-th message appended, then hang up
    appended = 0

    def other(self, c, tag, cmd, rest):
        a = split_args(rest, c.literals)
        if cmd == b"STATUS":
            mb = self.mailbox(a[0])
            if mb is None:
                c.send(tag + b" NO [NONEXISTENT] no such mailbox\r\n")
                return
            c.send(b'* STATUS "%s" (UIDVALIDITY %d UIDNEXT %d)\r\n' % (
                mb.name, mb.uidvalidity, mb.uidnext))
            c.send(tag + b" OK STATUS done\r\n")
        elif cmd == b"CREATE":
            if self.mailbox(a[0]) is None:
                self.mailboxes.append(Mailbox(a[0], uidvalidity=77))
            c.send(tag + b" OK CREATE done\r\n")
        elif cmd == b"APPEND":
            mb = self.mailbox(a[0])
            body = a[-1]
            if self.refuse and self.refuse in body:
                c.send(tag + b" NO [OVERQUOTA] no room for this one\r\n")
                return
            mb.msgs.append(Msg(mb.uidnext, body, flags=tuple(
                a[1].strip(b"()").split()), date=a[2].decode()))
            self.appended += 1
            if self.appended == self.hangup_at:
                c.hangup()  # stored, and the client never hears of it
            c.send(tag + b" OK APPEND done\r\n")
        else:
            Script.other(self, c, tag, cmd, rest)

    def list_uids(self, c, tag, uids, items):
        mb = c.selected
        for n, m in enumerate(mb.msgs if mb else [], 1):
            if m.uid in uids:
                c.send(b"* %d FETCH (UID %d RFC822.SIZE %d)\r\n"
                       % (n, m.uid, len(m.body)))
        c.send(tag + b" OK FETCH done\r\n")


class ScriptedBackup(TestCase):
    """A small backup (mbox) to restore into scripted targets."""

    def setUp(self):
        self.user = harness.SERVER.new_user("rfk")
        with self.user.oracle() as o:
            o.create("Entwürfe")
            for i in range(5):
                o.append("INBOX", simple_message("m%d" % i, "body %d\n" % i),
                         flags=("\\Seen", "Work") if i % 2 else (),
                         date=1600000000 + i)
            o.append("Entwürfe", simple_message("draft"),
                     flags=("\\Draft",), date=1500000000)
        self.work = workdir("restore-scripted")
        self.dest = os.path.join(self.work, "backup")
        self.assertExit(backup(self.user, self.dest, "--format", "mbox"), 0)

    def run_restore(self, srv, state="s", *extra):
        return imapsnap("restore", "--tls", "none", "--state-dir",
                        os.path.join(self.work, state), *extra, self.dest,
                        srv.url("user"), password="secret")


class RestoreScripted(ScriptedBackup):
    def test_continuation_literals(self):
        script = Target(mailboxes=[Mailbox(b"INBOX")])
        with FakeIMAP(script) as srv:
            run = self.run_restore(srv)
        self.assertExit(run, 0)
        want = account(self.user)
        inbox = sorted(m.body for m in script.mailbox(b"INBOX").msgs)
        self.assertEqual(inbox, sorted(b for _, _, b in want["INBOX"]))
        drafts = script.mailbox(b"Entw&APw-rfe").msgs
        self.assertEqual([m.flags for m in drafts], [(b"\\Draft",)])
        self.assertEqual(drafts[0].date, "14-Jul-2017 02:40:00 +0000")
        flags = sorted(m.flags for m in script.mailbox(b"INBOX").msgs)
        self.assertEqual(flags.count((b"\\Seen", b"Work")), 2)

    def test_refused_messages_are_named_and_retried(self):
        script = Target(mailboxes=[Mailbox(b"INBOX")])
        script.refuse = b"body 3"
        inbox = script.mailbox(b"INBOX")
        with FakeIMAP(script) as srv:
            run = self.run_restore(srv)
            self.assertExit(run, 1)
            self.assertIn(b"INBOX UID 4", run.stderr)
            self.assertIn(b"OVERQUOTA", run.stderr)
            self.assertEqual(len(inbox.msgs), 4)
            # Once the server takes it, only that one is appended.
            script.refuse = None
            run = self.run_restore(srv)
            self.assertExit(run, 0)
            self.assertEqual(len(inbox.msgs), 5)
            # Without the state, found by size and content.
            run = self.run_restore(srv, state="s2")
            self.assertExit(run, 0)
            self.assertEqual(len(inbox.msgs), 5)
            self.assertEqual(len(script.mailbox(b"Entw&APw-rfe").msgs), 1)

    def test_connection_lost_after_a_stored_append(self):
        """The server stores a message and the connection drops before
        its OK: without retries, exit 4; the next run finds that message
        by content and appends only the rest."""
        script = Target(mailboxes=[Mailbox(b"INBOX")])
        script.hangup_at = 3
        inbox = script.mailbox(b"INBOX")
        with FakeIMAP(script) as srv:
            run = self.run_restore(srv, "s", "--retries", "0")
            self.assertExit(run, 4)
            drafts = script.mailbox(b"Entw&APw-rfe")
            self.assertEqual(len(inbox.msgs) + len(drafts.msgs), 3)
            run = self.run_restore(srv)
            self.assertExit(run, 0)
            self.assertEqual(len(drafts.msgs), 1)
            self.assertEqual(sorted(m.body for m in inbox.msgs),
                             sorted(b for _, _, b in
                                    account(self.user)["INBOX"]))


class RestoreManyFolders(TestCase):
    def test_forty_folders_twice(self):
        """More folders than the restore state first makes room for: the
        state grows while folders being restored point into it."""
        src = harness.SERVER.new_user("rmany")
        names = ["F%02d" % i for i in range(40)]
        with src.oracle() as o:
            for i, name in enumerate(names):
                o.create(name)
                o.append(name, simple_message("in %s" % name),
                         flags=("\\Seen",), date=1600000000 + i)
        work = workdir("restore-many")
        dest = os.path.join(work, "backup")
        self.assertExit(backup(src, dest), 0, "backup")
        dst = harness.SERVER.new_user("rmanyd")
        state = os.path.join(work, "state")
        run = restore(dst, dest, "--json", state=state)
        self.assertExit(run, 0, "restore")
        self.assertIn(b'"appended": 40', run.stdout, str(run))
        got = account(dst)
        self.assertEqual(sorted(got), names)
        for name in names:
            self.assertEqual(len(got[name]), 1, name)
        # Into the same target again: the state now holds 41 folders
        # from the start.
        run = restore(dst, dest, "--json", state=state)
        self.assertExit(run, 0, "second restore")
        self.assertIn(b'"appended": 0', run.stdout, str(run))


class RestoreVerbose(TestCase):
    def test_protocol_trace(self):
        """-v traces the target's protocol as backup's -v does, with the
        credentials masked."""
        src = harness.SERVER.new_user("rvsrc")
        with src.oracle() as o:
            o.append("INBOX", simple_message("traced"))
        work = workdir("restore-verbose")
        dest = os.path.join(work, "backup")
        self.assertExit(backup(src, dest), 0)
        dst = harness.SERVER.new_user("rvdst")
        run = restore(dst, dest, "-v", state=os.path.join(work, "s"))
        self.assertExit(run, 0)
        err = run.stderr.decode("utf-8", "replace")
        self.assertRegex(err, r"(?m)^C i\d+ APPEND \"INBOX\" ")
        self.assertRegex(err, r"(?m)^S i\d+ OK ")
        self.assertNotLeaked(run, dst.password)


class RestoreNoselectParents(TestCase):
    def test_parents_only_as_the_target_needs(self):
        """A folder whose parent is \\Noselect on the source is created
        on the target without making the parent a folder of its own."""
        src = harness.SERVER.new_user("rnosel")
        with src.oracle() as o:
            o.create("Top/Sub")
            o.append("Top/Sub", simple_message("deep"))
            parent = [f for f in o.folders() if f.name == "Top"]
        self.assertTrue(parent and not parent[0].selectable,
                        "the test needs Top to be \\Noselect on the source")
        work = workdir("restore-noselect")
        dest = os.path.join(work, "backup")
        self.assertExit(backup(src, dest), 0)
        dst = harness.SERVER.new_user("rnoseld")
        run = restore(dst, dest, state=os.path.join(work, "s"))
        self.assertExit(run, 0)
        with dst.oracle() as o:
            folders = {f.name: f for f in o.folders()}
        self.assertIn("Top/Sub", folders)
        self.assertTrue("Top" not in folders or
                        not folders["Top"].selectable,
                        "Top was created as a folder: %s"
                        % folders["Top"].attrs)
        self.assertEqual(len(account(dst)["Top/Sub"]), 1)


class RestoreStateKey(TestCase):
    def test_two_spellings_of_one_account_share_state_and_lock(self):
        """localhost and 127.0.0.1 (in any case) are one
        account: one state, one lock; two restores at once through two
        spellings append everything once."""
        src = harness.SERVER.new_user("rkey")
        src.load_corpus(seed=21, scale=0.3, big=False)
        work = workdir("restore-key")
        dest = os.path.join(work, "backup")
        self.assertExit(backup(src, dest), 0)
        dst = harness.SERVER.new_user("rkeyd")
        base = os.path.join(work, "state")
        port = dst.server.imaps_port
        urls = ["imaps://%s@127.0.0.1:%d" % (dst.name, port),
                "imaps://%s@LocalHost:%d" % (dst.name, port)]
        e = dict(os.environ, IMAPSNAP_PASSWORD=dst.password)
        procs = [subprocess.Popen(
            [harness.BINARY, "restore", "--cacert", dst.server.cacert,
             "--state-dir", base, dest, url], env=e,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True)
            for url in urls]
        codes = sorted(p.wait(timeout=120) for p in procs)
        for p in procs:
            p.stdout.close()
            p.stderr.close()
        self.assertIn(codes, ([0, 0], [0, 5]),
                      "one must win, the other wait its turn or stop")
        self.assertEqual(os.listdir(base), ["localhost:%d" % port])
        got, want = account(dst), account(src)
        for k in want:
            self.assertEqual(len(got.get(k, [])), len(want[k]),
                             "%s: duplicates or missing" % k)
        # And the other spelling finds everything in the same state.
        run = imapsnap("restore", "--json", "--cacert", dst.server.cacert,
                       "--state-dir", base, dest, urls[1],
                       password=dst.password)
        self.assertExit(run, 0)
        self.assertIn(b'"appended": 0', run.stdout, str(run))
        self.assertIn(b'"found": 0', run.stdout, str(run))


class BadForMissing(Target):
    """Answers BAD, not NO, to STATUS of a folder that does not exist (as
    the Gmail-like test server does), and refuses to create one."""

    def other(self, c, tag, cmd, rest):
        a = split_args(rest, c.literals)
        if cmd == b"STATUS" and self.mailbox(a[0]) is None:
            c.send(tag + b" BAD no such mailbox\r\n")
        elif cmd == b"CREATE" and a[0] == b"Entw&APw-rfe":
            c.send(tag + b" BAD [CANNOT] not that name\r\n")
        else:
            Target.other(self, c, tag, cmd, rest)


class RestoreReconnects(ScriptedBackup):
    def test_connection_lost_is_resumed_in_the_run(self):
        """The same loss with retries (the default): the run reconnects,
        finds the message stored before the loss by content, and ends
        with every message once."""
        script = Target(mailboxes=[Mailbox(b"INBOX")])
        script.hangup_at = 3
        inbox = script.mailbox(b"INBOX")
        with FakeIMAP(script) as srv:
            run = self.run_restore(srv, "s", "--json")
            self.assertExit(run, 0)
            self.assertIn(b"reconnecting (retry 1 of 3)", run.stderr)
            self.assertGreaterEqual(srv.connections, 2)
        drafts = script.mailbox(b"Entw&APw-rfe")
        self.assertEqual(len(drafts.msgs), 1)
        self.assertEqual(sorted(m.body for m in inbox.msgs),
                         sorted(b for _, _, b in
                                account(self.user)["INBOX"]))
        s = json.loads(run.stdout)
        self.assertEqual(s["appended"] + s["found"] + s["present"], 6, s)


class RestoreFolderFailures(ScriptedBackup):
    def test_bad_fails_the_folder_only(self):
        script = BadForMissing(mailboxes=[Mailbox(b"INBOX")])
        with FakeIMAP(script) as srv:
            run = imapsnap("restore", "--tls", "none", "--json",
                           "--state-dir", os.path.join(self.work, "s"),
                           self.dest, srv.url("user"), password="secret")
        self.assertExit(run, 1)
        s = json.loads(run.stdout)
        self.assertEqual((s["folders_failed"], s["appended"]), (1, 5), run)
        self.assertEqual(len(script.mailbox(b"INBOX").msgs), 5)
        self.assertIn(b"Entw", run.stderr)
