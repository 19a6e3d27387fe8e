"""Lost connections and silent servers: reconnect, resume, give up in time.

A connection lost mid-folder (EOF, reset, * BYE, a silent server) is
retried --retries times (default 3) with backoff: imapsnap reconnects,
logs in, EXAMINEs the folder again, checks UIDVALIDITY and goes on after
the last committed UID.  When the connection is lost for good it exits 4;
a server that stops sending is an error after --timeout seconds, never a
hang.

Faults come from tests/faults/proxy.py (in front of the real Dovecot) and
tests/fakeimap (scripted, where the exact resume point must be checked).
"""

import os
import re
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakeimap"))
sys.path.insert(0, os.path.join(ROOT, "tests", "faults"))

from fakeimap import FakeIMAP, Mailbox, Script, make_messages  # noqa
from harness import TestCase, assert_backup_matches, workdir  # noqa: E402
from proxy import Proxy  # noqa: E402
import harness  # noqa: E402
import runner  # noqa: E402


def proxied_backup(user, proxy, dest, *extra, timeout=60):
    """imapsnap backup of `user` through `proxy` (plaintext to Dovecot's
    IMAP port: the proxy counts IMAP bytes, not TLS records)."""
    url = "imap://%s@127.0.0.1:%d" % (user.name, proxy.port)
    return runner.run(["backup", "--tls", "none"] + list(extra) +
                      [url, dest], password=user.password, timeout=timeout)


def body_fetch_sets(srv, conn):
    """The UID sets of connection `conn`'s body fetches (UID listings,
    UID FETCH … (UID), excluded)."""
    return [c.split(b" ")[2] for c in srv.commands(conn, b"UID FETCH")
            if b"BODY" in c]


def retries_announced(run):
    return len(re.findall(rb"reconnecting \(retry \d+ of \d+\)",
                          run.stderr))


class Reconnect(TestCase):
    """Against Dovecot, through the proxy."""

    def assertNoMessageTwice(self, proxy, run):
        """No message that arrived complete on a connection cut with a
        clean EOF is fetched again later: imapsnap kept it and resumed
        after it.  (After a reset the kernel may drop what the client had
        not read yet, so those connections are not counted.)"""
        seen = {}
        for c in proxy.connections:
            done = runner.completed_fetches(c.c2s_data, c.s2c_data)
            for key in done:
                if key in seen:
                    self.fail("%s UID %d arrived complete on connection %d "
                              "and was fetched again on connection %d:\n%s"
                              % (key[0], key[1], seen[key], c.index, run))
            if c.action.kind != "reset":
                for key in done:
                    seen[key] = c.index

    def test_cut_twice_then_pass(self):
        """EOF after 50000 bytes on the first connection, a reset after
        120000 on the second, the third passes: everything saved exactly,
        and the folders resume where they stopped."""
        user = harness.SERVER.new_user("cut2")
        counts = user.load_corpus(seed=5)
        dest = workdir("cut2")
        with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
                   plan="eof@50000,reset@120000,pass",
                   keep_s2c=8 << 20) as p:
            # -v: notices (the reconnections) are shown only on a terminal
            # otherwise.  One session, so that the plan's cuts fall on
            # its connections (its folders would be spread over more).
            run = proxied_backup(user, p, dest, "-v", "--connections", "1")
        self.assertExit(run, 0)
        self.assertEqual(len(p.connections), 3, str(run))
        self.assertTrue(all(c.fault_fired for c in p.connections[:2]))
        self.assertEqual(retries_announced(run), 2, str(run))
        assert_backup_matches(self, user, dest)
        self.assertNoMessageTwice(p, run)
        # A folder examined again after a reconnection is still one folder.
        m = re.search(rb"(\d+) folders?, (\d+) messages?", run.summary())
        self.assertTrue(m, str(run))
        self.assertEqual((int(m.group(1)), int(m.group(2))),
                         (len(counts), sum(counts.values())),
                         "folders and messages in the summary:\n%s" % run)

    def test_many_cuts_in_one_run(self):
        """Seven cuts, EOF and reset, at offsets that fall in login, in
        message headers, inside the 1 MB message and between folders."""
        user = harness.SERVER.new_user("cut7")
        user.load_corpus(seed=6)
        dest = workdir("cut7")
        # The corpus's 1.4 MB message is in Archive/2019; cuts land in
        # a&b, Archive (twice, once in login), Archive/2019, Sent and
        # INBOX (twice).  At most two per folder keeps the backoff short
        # (0.25 s, then 1 s).
        plan = ("eof@30000,reset@70000,eof@1500,eof@200000,eof@1700000,"
                "reset@300000,eof@100000,pass")
        with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
                   plan=plan, keep_s2c=8 << 20) as p:
            t0 = time.monotonic()
            run = proxied_backup(user, p, dest, "--retries", "10",
                                 "--connections", "1")
            elapsed = time.monotonic() - t0
        self.assertExit(run, 0)
        self.assertEqual(len(p.connections), 8, str(run))
        self.assertLess(elapsed, 15, str(run))
        assert_backup_matches(self, user, dest)
        self.assertNoMessageTwice(p, run)

    def test_retries_exhausted(self):
        """Every connection is cut in the same folder: --retries 2 means
        three connections, then exit 4 with a message; what was saved is
        exact, and a later run completes it with every message once."""
        user = harness.SERVER.new_user("giveup")
        runner.fill_inbox(user, 120, size=3000)
        dest = workdir("giveup")
        with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
                   then="eof@40000") as p:
            t0 = time.monotonic()
            run = proxied_backup(user, p, dest, "--retries", "2")
            elapsed = time.monotonic() - t0
        self.assertExit(run, 4, "the connection was lost for good")
        self.assertEqual(len(p.connections), 3, str(run))
        self.assertRegex(run.stderr.decode("utf-8", "replace"),
                         r"(?i)closed|connection|lost",
                         "the message says the connection was lost")
        # Backoff 0.25 s + 1 s; not much more.
        self.assertLess(elapsed, 10, str(run))
        self.assertStateBehindStore(user, dest)
        run2 = harness.backup(user, dest, scheme="imap", timeout=60)
        self.assertExit(run2, 0)
        assert_backup_matches(self, user, dest)

    def test_default_is_three_retries(self):
        """Without --retries, every connection cut in one folder: exactly
        four connections (the first and three retries), then exit 4."""
        user = harness.SERVER.new_user("default3")
        runner.fill_inbox(user, 200, size=3000)
        dest = workdir("default3")
        with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
                   then="eof@40000") as p:
            run = proxied_backup(user, p, dest, "-v")
        self.assertExit(run, 4)
        self.assertEqual(len(p.connections), 4, str(run))
        self.assertEqual(retries_announced(run), 3, str(run))
        self.assertStateBehindStore(user, dest)

    def test_no_retries(self):
        """--retries 0: the first cut ends the run with exit 4."""
        user = harness.SERVER.new_user("noretry")
        user.load_corpus(seed=8, scale=0.3, big=False)
        dest = workdir("noretry")
        with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
                   plan="eof@20000,pass") as p:
            run = proxied_backup(user, p, dest, "--retries", "0")
        self.assertExit(run, 4)
        self.assertEqual(len(p.connections), 1, str(run))
        self.assertStateBehindStore(user, dest)

    def test_reconnect_refused(self):
        """The server goes away for good after a cut (connections are
        refused): exit 4 after the retries, quickly."""
        user = harness.SERVER.new_user("refused")
        user.load_corpus(seed=9, scale=0.3, big=False)
        dest = workdir("refused")
        with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
                   plan="eof@20000", then="refuse") as p:
            t0 = time.monotonic()
            run = proxied_backup(user, p, dest, "--retries", "2")
            elapsed = time.monotonic() - t0
        self.assertExit(run, 4)
        self.assertEqual(len(p.connections), 3, str(run))
        self.assertLess(elapsed, 10, str(run))

    def test_cut_during_login_of_a_reconnect(self):
        """The reconnection itself is cut during login: that counts as one
        more retry, and the next one succeeds."""
        user = harness.SERVER.new_user("relogin")
        user.load_corpus(seed=10, scale=0.3, big=False)
        dest = workdir("relogin")
        with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
                   plan="eof@20000,eof@60,pass") as p:
            run = proxied_backup(user, p, dest)
        self.assertExit(run, 0)
        self.assertEqual(len(p.connections), 3, str(run))
        assert_backup_matches(self, user, dest)

    def test_cut_over_tls(self):
        """imaps:// through the proxy: the cut lands inside a TLS record."""
        user = harness.SERVER.new_user("cuttls")
        user.load_corpus(seed=12, scale=0.5)
        dest = workdir("cuttls")
        with Proxy((harness.SERVER.host, harness.SERVER.imaps_port),
                   plan="eof@45000,reset@200001,pass") as p:
            url = "imaps://%s@127.0.0.1:%d" % (user.name, p.port)
            run = runner.run(["backup", "--cacert", harness.SERVER.cacert,
                              url, dest], password=user.password,
                             timeout=60)
        self.assertExit(run, 0)
        self.assertEqual(len(p.connections), 3, str(run))
        assert_backup_matches(self, user, dest)

    def assertStateBehindStore(self, user, dest):
        """Every UID the state calls saved has its file, byte-exact."""
        state = runner.load_state(dest)
        with user.oracle() as o:
            for f in o.folders():
                st = state.get(f.raw.encode())
                if not st or not st["saved"]:
                    continue
                o.examine(f)
                files = runner.maildir_files(f.path(dest))
                for uid in sorted(st["saved"]):
                    self.assertIn(uid, files, "%s UID %d in the state, not "
                                  "in the store" % (f.name, uid))
                    self.assertEqual(runner.read(files[uid][1]),
                                     o.body(uid), "%s UID %d" % (f.name,
                                                                 uid))


class LargeFolder(TestCase):
    def test_folder_of_1600_messages(self):
        """More UIDs than fit in the commands kept in flight at once (500
        per command, 3 in flight): later commands go out as earlier ones
        complete."""
        user = harness.SERVER.new_user("large")
        bodies = runner.fill_inbox(user, 1600, size=200)
        dest = workdir("large")
        run = harness.backup(user, dest, scheme="imap", timeout=120)
        self.assertIsNotNone(run.rc)
        self.assertGreaterEqual(run.rc, 0, "killed by a signal:\n%s" % run)
        self.assertExit(run, 0)
        files = runner.maildir_files(os.path.join(dest, "INBOX"))
        self.assertEqual(len(files), len(bodies))
        for uid, body in enumerate(bodies, 1):
            self.assertEqual(runner.read(files[uid][1]), body, "UID %d" % uid)


# --- exact resume points, with the scripted server -----------------------


class Interrupting(Script):
    """Folder INBOX, 30 messages; on connection `cut_on`, after message
    `after` has gone out complete, `interrupt(c)` runs (and must end the
    connection)."""

    cut_on = 1
    after = 10
    mid_body = False

    def interrupt(self, c):
        c.hangup()

    def send_message(self, c, seq, msg):
        if c.index == self.cut_on and msg.uid == self.after + 1 and \
                self.mid_body:
            r = self.fetch_response(c, seq, msg)
            c.send(r[:len(r) - len(msg.body) // 2])
            self.interrupt(c)
        Script.send_message(self, c, seq, msg)
        if c.index == self.cut_on and msg.uid == self.after and \
                not self.mid_body:
            self.interrupt(c)


class Resume(TestCase):
    def run_interrupted(self, script, name, *extra):
        dest = workdir("resume-" + name)
        with FakeIMAP(script) as srv:
            run = runner.backup_fake(srv, dest, "--timeout", "3", *extra)
        self.assertEqual(srv.errors, [])
        return run, srv, dest

    def assertAllSaved(self, dest, mb, run, uidvalidity=None):
        files = runner.maildir_files(os.path.join(dest, mb.name.decode()))
        self.assertEqual(sorted(files), [m.uid for m in mb.msgs], str(run))
        for m in mb.msgs:
            self.assertEqual(runner.read(files[m.uid][1]), m.body)
            if uidvalidity:
                self.assertEqual(files[m.uid][0], uidvalidity)

    def fetch_sets(self, srv, conn):
        return body_fetch_sets(srv, conn)

    def test_bye_mid_folder(self):
        """'* BYE' after message 10 of 30: the reconnection asks for
        exactly 11:30."""
        s = Interrupting([Mailbox("INBOX", make_messages(30, 2000))])

        def bye(c):
            c.send(b"* BYE [UNAVAILABLE] server shutting down\r\n")
            c.hangup()
        s.interrupt = bye
        run, srv, dest = self.run_interrupted(s, "bye", "-v")
        self.assertExit(run, 0)
        self.assertEqual(srv.connections, 2)
        self.assertEqual(self.fetch_sets(srv, 2), [b"11:30"], str(run))
        self.assertIn(b"shutting down", run.stderr,
                      "the server's BYE text is shown (with -v)")
        self.assertAllSaved(dest, s.mailboxes[0], run)

    def test_reset_mid_body(self):
        """A reset halfway through message 11: nothing of it is kept, and
        the reconnection asks for 11:30."""
        s = Interrupting([Mailbox("INBOX", make_messages(30, 20000))])
        s.mid_body = True

        def reset(c):
            # A reset throws away what the client has not read yet: give
            # it time to read messages 1 to 10 first.
            time.sleep(0.5)
            c.reset()
        s.interrupt = reset
        run, srv, dest = self.run_interrupted(s, "reset")
        self.assertExit(run, 0)
        self.assertEqual(self.fetch_sets(srv, 2), [b"11:30"], str(run))
        self.assertAllSaved(dest, s.mailboxes[0], run)

    def test_eof_between_folders(self):
        """The connection ends right after folder A is complete: folder B
        is fetched on the next connection, A is not fetched again."""
        class AfterA(Script):
            def fetch(self, c, tag, uids, items):
                Script.fetch(self, c, tag, uids, items)
                if c.index == 1 and c.selected.name == b"A":
                    c.hangup()
        s = AfterA([Mailbox("A", make_messages(5, tag=b"a")),
                    Mailbox("B", make_messages(5, tag=b"b"))])
        run, srv, dest = self.run_interrupted(s, "between")
        self.assertExit(run, 0)
        self.assertEqual(srv.commands(2, b"EXAMINE"), [b'EXAMINE "B"'],
                         str(run))
        for mb in s.mailboxes:
            self.assertAllSaved(dest, mb, run)

    def test_uidvalidity_changes_on_reconnect(self):
        """After the cut the folder comes back with a new UIDVALIDITY and
        other messages: the 10 saved under the old one are kept aside,
        untouched, and the new generation is fetched whole."""
        old = Mailbox("INBOX", make_messages(30, 1000, tag=b"old"),
                      uidvalidity=1000)
        new = Mailbox("INBOX", make_messages(30, 1000, tag=b"new"),
                      uidvalidity=2000)

        class Changing(Interrupting):
            def examine(self, c, tag, name, rest):
                self.mailboxes = [old if c.index == 1 else new]
                Interrupting.examine(self, c, tag, name, rest)

            def list(self, c, tag, ref, pattern):
                self.mailboxes = [old if c.index == 1 else new]
                Interrupting.list(self, c, tag, ref, pattern)
        s = Changing([old])
        run, srv, dest = self.run_interrupted(s, "uidvalidity", "-v")
        self.assertExit(run, 0)
        self.assertAllSaved(dest, new, run, uidvalidity=2000)
        kept = {}
        for d, dirs, files in os.walk(dest):
            for f in files:
                m = runner.MAILDIR_NAME.match(f)
                if m and m.group(1) == "1000":
                    kept[int(m.group(2))] = runner.read(os.path.join(d, f))
        self.assertEqual(sorted(kept), list(range(1, 11)),
                         "the old generation's messages, kept aside")
        for m in old.msgs[:10]:
            self.assertEqual(kept[m.uid], m.body)
        self.assertRegex(run.stderr.decode("utf-8", "replace"),
                         r"UIDVALIDITY changed",
                         "a notice (with -v) says the folder changed")


# --- timeouts ---------------------------------------------------------------


class Silent(Script):
    """Stops answering at `where` on connections listed in `on` (all when
    None)."""

    where = None
    on = None

    def stalls(self, c, where):
        return where == self.where and (self.on is None or c.index in
                                        self.on)

    def greeting(self, c):
        if self.stalls(c, "greeting"):
            c.stall()
        Script.greeting(self, c)

    def login(self, c, tag, user, password):
        if self.stalls(c, "login"):
            c.stall()
        Script.login(self, c, tag, user, password)

    def capability(self, c, tag):
        if c.user is not None and self.stalls(c, "capability"):
            c.stall()
        Script.capability(self, c, tag)

    def list(self, c, tag, ref, pattern):
        if self.stalls(c, "list"):
            c.send(b'* LIST () "/" "INBOX"\r\n')
            c.stall()
        Script.list(self, c, tag, ref, pattern)

    def examine(self, c, tag, name, rest):
        if self.stalls(c, "examine"):
            c.send(b"* 30 EXISTS\r\n")
            c.stall()
        Script.examine(self, c, tag, name, rest)

    def search(self, c, tag, args):
        if self.stalls(c, "search"):
            c.stall()
        Script.search(self, c, tag, args)

    def list_uids(self, c, tag, uids, items):
        """Without ESEARCH the UID listing is a UID FETCH (UID)."""
        if self.stalls(c, "search"):
            c.stall()
        Script.list_uids(self, c, tag, uids, items)

    def send_message(self, c, seq, msg):
        if msg.uid == 11 and self.stalls(c, "body"):
            r = self.fetch_response(c, seq, msg)
            c.send(r[:len(r) // 2])
            c.stall()
        Script.send_message(self, c, seq, msg)

    def fetch(self, c, tag, uids, items):
        if self.stalls(c, "tagged"):
            mb = c.selected
            for i, m in enumerate(mb.msgs):
                c.send(self.fetch_response(c, i + 1, m))
            c.stall()
        Script.fetch(self, c, tag, uids, items)


class Timeouts(TestCase):
    POINTS = ("greeting", "login", "capability", "list", "examine", "search",
              "body", "tagged")

    def test_silent_server_is_an_error_not_a_hang(self):
        """The server stops sending at each point of a session in turn:
        with --timeout 1 and --retries 0 imapsnap exits 4 within a few
        seconds (login has its own overall limit of 4 x --timeout), saying
        the server went silent."""
        for where in self.POINTS:
            with self.subTest(where=where):
                s = Silent([Mailbox("INBOX", make_messages(30))])
                s.where = where
                dest = workdir("silent-" + where)
                with FakeIMAP(s, stall_limit=20) as srv:
                    t0 = time.monotonic()
                    run = runner.backup_fake(srv, dest, "--timeout", "1",
                                             "--retries", "0", timeout=20)
                    elapsed = time.monotonic() - t0
                self.assertExit(run, 4)
                self.assertLess(elapsed, 6, str(run))
                self.assertRegex(run.stderr.decode("utf-8", "replace"),
                                 r"(?i)nothing for 1 s|timed? ?out",
                                 "the message says the server went silent")

    def test_silent_once_then_resume(self):
        """Silent in the middle of a body on the first connection only:
        one retry, and the backup completes."""
        s = Silent([Mailbox("INBOX", make_messages(30, 5000))])
        s.where, s.on = "body", (1,)
        dest = workdir("silent-once")
        with FakeIMAP(s, stall_limit=20) as srv:
            t0 = time.monotonic()
            run = runner.backup_fake(srv, dest, "--timeout", "1",
                                     "--retries", "1", timeout=20)
            elapsed = time.monotonic() - t0
        self.assertExit(run, 0)
        self.assertLess(elapsed, 5, str(run))
        self.assertEqual(body_fetch_sets(srv, 2), [b"11:30"])
        files = runner.maildir_files(os.path.join(dest, "INBOX"))
        self.assertEqual(sorted(files), list(range(1, 31)))

    def test_dovecot_stalls_through_proxy(self):
        """The proxy stops forwarding after 200000 bytes: after --timeout
        2 imapsnap reconnects and completes."""
        user = harness.SERVER.new_user("stall")
        user.load_corpus(seed=13, scale=0.5)
        dest = workdir("stall")
        with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
                   plan="stall@200000,pass") as p:
            t0 = time.monotonic()
            run = proxied_backup(user, p, dest, "--timeout", "2")
            elapsed = time.monotonic() - t0
        self.assertExit(run, 0)
        self.assertEqual(len(p.connections), 2)
        self.assertLess(elapsed, 10, str(run))
        assert_backup_matches(self, user, dest)


class OutOfMemory(TestCase):
    """Memory running out anywhere in a folder: each allocation imapsnap
    makes from the moment the folder's directory is first opened fails in
    turn (tests/faults/oom_after.c), one per run.  No run may crash or
    hang; whatever it says, the run after it, with memory, must leave a
    backup that verify finds complete.  (A folder opened in the store is
    closed on every way out of it, out of memory included.)"""

    def test_every_allocation_after_the_folder_opens(self):
        if runner.sanitized():
            self.skipTest("the sanitizer's allocator comes before the shim")
        work = workdir("oom")
        shim = os.path.join(work, "oom_after.so")
        subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", shim,
                        os.path.join(ROOT, "tests", "faults", "oom_after.c"),
                        "-ldl"], check=True)
        mbs = [Mailbox("Starved", make_messages(5, tag=b"starved")),
               Mailbox("zAfter", make_messages(3, tag=b"after"))]
        outcomes = {}
        with FakeIMAP(Script(mbs)) as srv:
            for n in range(1, 1000):
                dest = os.path.join(work, "dest%d" % n)
                report = os.path.join(work, "report%d" % n)
                args = ["backup", "--tls", "none", "--retries", "0",
                        "--timeout", "5", srv.url(), dest]
                run = runner.run(args, password="secret", timeout=30, env={
                    "LD_PRELOAD": shim,
                    "IMAPSNAP_FAULT_OOM_MARK": "Starved",
                    "IMAPSNAP_FAULT_OOM_AFTER": str(n),
                    "IMAPSNAP_FAULT_OOM_REPORT": report})
                self.assertIsNone(run.signal, "allocation %d:\n%s"
                                  % (n, run))
                with open(report) as f:
                    said = f.read().split()
                self.assertEqual(said[:2], ["armed", "1"],
                                 "the folder was never opened:\n%s" % run)
                if said[3] == "0":
                    break  # fewer than n allocations: all were tried
                outcomes[run.rc] = outcomes.get(run.rc, 0) + 1
                again = runner.run(args, password="secret", timeout=30)
                self.assertExit(again, 0, "the run after allocation %d "
                                "failed" % n)
                check = runner.run(["verify", dest], timeout=30)
                self.assertExit(check, 0, "verify after allocation %d"
                                % n)
                for mb in mbs:
                    files = runner.maildir_files(os.path.join(
                        dest, mb.name.decode()))
                    self.assertEqual(sorted(files),
                                     [m.uid for m in mb.msgs],
                                     "allocation %d: %s" % (n, mb.name))
                shutil.rmtree(dest)
        self.assertGreater(sum(outcomes.values()), 20,
                           "too few allocations tried: %s" % outcomes)
