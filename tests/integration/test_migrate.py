"""imapsnap migrate: one user copied into another on the test Dovecot and
compared through the oracle; copied again without a second copy; the
source left as it was; per-side credentials."""

import json
import os
import re
import signal
import subprocess
import time

from harness import TestCase, imapsnap, workdir
import harness
from test_restore import account, count


def migrate(src, dst, *extra, state=None, env=None):
    args = ["migrate", "--cacert", src.server.cacert]
    if state:
        args += ["--state-dir", state]
    args += list(extra)
    args += [src.server.url(src, "imaps"), dst.server.url(dst, "imaps")]
    e = {"IMAPSNAP_SRC_PASSWORD": src.password,
         "IMAPSNAP_DST_PASSWORD": dst.password}
    e.update(env or {})
    return imapsnap(*args, env=e, timeout=120)


def source_state(user):
    """What a read-only copy must not change: flags and HIGHESTMODSEQ."""
    out = {}
    with user.oracle() as o:
        o.enable_condstore()
        for f in o.folders():
            if f.selectable:
                msgs = o.messages(f)
                out[f.raw] = (o.info.get("HIGHESTMODSEQ"),
                              {u: m.flags for u, m in msgs.items()})
    return out


class Migrate(TestCase):
    def test_migrate_twice(self):
        src = harness.SERVER.new_user("msrc")
        src.load_corpus(seed=11, scale=0.3)
        expected = account(src)
        before = source_state(src)
        dst = harness.SERVER.new_user("mdst")
        state = workdir("migrate") + "/state"
        run = migrate(src, dst, state=state)
        self.assertExit(run, 0)
        got = account(dst)
        self.assertEqual(sorted(got), sorted(expected))
        for k in expected:
            self.assertEqual(got[k], expected[k], k)
        self.assertEqual(source_state(src), before, "the source changed")
        n = count(dst)
        run = migrate(src, dst, "--json", state=state)
        self.assertExit(run, 0)
        self.assertIn(b'"appended": 0', run.stdout, str(run))
        self.assertEqual(count(dst), n)
        # Without the state: found by content, still nothing twice.
        run = migrate(src, dst, "--json", state=state + "2")
        self.assertExit(run, 0)
        self.assertIn(b'"appended": 0', run.stdout, str(run))
        self.assertEqual(count(dst), n)

    def test_per_side_password_files_and_dry_run(self):
        src = harness.SERVER.new_user("msrc")
        src.load_corpus(seed=12, scale=0.05, big=False)
        dst = harness.SERVER.new_user("mdst")
        work = workdir("migrate-pw")
        for who in (src, dst):
            with open(os.path.join(work, who.name), "w") as f:
                f.write(who.password + "\n")
        args = ["--src-password-file", os.path.join(work, src.name),
                "--dst-password-file", os.path.join(work, dst.name)]
        run = migrate(src, dst, "--dry-run", *args, state=work + "/s",
                      env={"IMAPSNAP_SRC_PASSWORD": "wrong",
                           "IMAPSNAP_DST_PASSWORD": "wrong"})
        self.assertExit(run, 0)
        self.assertEqual(count(dst), 0, "a dry run copied")
        run = migrate(src, dst, "--into", "Old", *args, state=work + "/s")
        self.assertExit(run, 0)
        self.assertEqual(account(dst, prefix="Old"), account(src))
        self.assertNotLeaked(run, src.password)
        self.assertNotLeaked(run, dst.password)

    def test_wrong_destination_password(self):
        src = harness.SERVER.new_user("msrc")
        dst = harness.SERVER.new_user("mdst")
        run = migrate(src, dst, state=workdir("migrate-auth") + "/s",
                      env={"IMAPSNAP_DST_PASSWORD": "wrong"})
        self.assertExit(run, 3)
        self.assertIn(b"destination", run.stderr)


class MigrateCrash(TestCase):
    def test_kill_and_resume(self):
        src = harness.SERVER.new_user("mksrc")
        src.load_corpus(seed=13, scale=1.0)
        expected = account(src)
        dst = harness.SERVER.new_user("mkdst")
        state = workdir("migrate-kill") + "/state"
        e = dict(os.environ, IMAPSNAP_SRC_PASSWORD=src.password,
                 IMAPSNAP_DST_PASSWORD=dst.password)
        args = [harness.BINARY, "migrate", "--cacert", src.server.cacert,
                "--state-dir", state, src.server.url(src, "imaps"),
                dst.server.url(dst, "imaps")]
        kills = 0
        for delay in (0.2, 0.35, 0.25):
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
            mark.sessions(dst)  # see test_restore.RestoreCrash
        self.assertGreater(kills, 0, "every migrate ended before its kill")
        run = migrate(src, dst, state=state)
        self.assertExit(run, 0, "after %d kills" % kills)
        got = account(dst)
        self.assertEqual(sorted(got), sorted(expected))
        for k in expected:
            self.assertEqual(got[k], expected[k],
                             "%s: duplicates or missing after %d kills"
                             % (k, kills))


# --- a scripted source (tests/fakeimap) --------------------------------------

import sys  # noqa: E402
sys.path.insert(0, os.path.join(harness.ROOT, "tests", "fakeimap"))
from fakeimap import FakeIMAP, Mailbox, Script, make_messages  # noqa: E402


class Unordered(Script):
    """Answers each size listing in reverse UID order, as RFC 3501 allows
    (it orders no FETCH responses)."""

    def list_uids(self, c, tag, uids, items):
        mb = c.selected
        order = [m.uid for m in mb.msgs] if mb else []
        for uid in reversed(uids):
            if uid in order:
                m = mb.msgs[order.index(uid)]
                c.send(b"* %d FETCH (UID %d RFC822.SIZE %d)\r\n" % (
                    order.index(uid) + 1, uid, len(m.body)))
        c.send(tag + b" OK FETCH done\r\n")


class MigrateScripted(TestCase):
    def test_fetch_responses_out_of_order(self):
        msgs = make_messages(7)
        script = Unordered(mailboxes=[Mailbox(b"INBOX", msgs)])
        dst = harness.SERVER.new_user("mood")
        state = workdir("migrate-unordered") + "/state"
        with FakeIMAP(script) as srv:
            run = imapsnap(
                "migrate", "--tls", "none", "--json", "--state-dir", state,
                srv.url(), dst.server.url(dst, "imap"),
                env={"IMAPSNAP_SRC_PASSWORD": "secret",
                     "IMAPSNAP_DST_PASSWORD": dst.password})
        self.assertExit(run, 0)
        self.assertIn(b'"appended": 7', run.stdout, str(run))
        got = account(dst)
        self.assertEqual(sorted(b for _, _, b in got["INBOX"]),
                         sorted(m.body for m in msgs))


class MigrateVerbose(TestCase):
    def test_protocol_trace_of_both_sides(self):
        src = harness.SERVER.new_user("mvsrc")
        with src.oracle() as o:
            o.append("INBOX", harness.simple_message("traced"))
        dst = harness.SERVER.new_user("mvdst")
        run = migrate(src, dst, "-v", state=workdir("migrate-v") + "/s")
        self.assertExit(run, 0)
        err = run.stderr.decode("utf-8", "replace")
        self.assertRegex(err, r"(?m)^source C i\d+ UID FETCH ")
        self.assertRegex(err, r"(?m)^destination C i\d+ APPEND \"INBOX\" ")
        self.assertNotLeaked(run, src.password)
        self.assertNotLeaked(run, dst.password)


sys.path.insert(0, os.path.join(harness.ROOT, "tests", "faults"))
from proxy import Proxy  # noqa: E402


class MigrateReconnects(TestCase):
    def test_source_cut_twice_finishes_in_one_run(self):
        """The source's connection is cut twice midway (a fault-injecting
        proxy): the run reconnects with backoff, resumes, and copies every
        message once, exit 0."""
        src = harness.SERVER.new_user("mrsrc")
        src.load_corpus(seed=41, scale=0.3)
        expected = account(src)
        dst = harness.SERVER.new_user("mrdst")
        state = workdir("migrate-reconnect") + "/state"
        with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
                   plan="eof@60000,eof@150000,pass") as p:
            run = imapsnap(
                "migrate", "--tls", "none", "--json", "--state-dir", state,
                "imap://%s@127.0.0.1:%d" % (src.name, p.port),
                dst.server.url(dst, "imap"),
                env={"IMAPSNAP_SRC_PASSWORD": src.password,
                     "IMAPSNAP_DST_PASSWORD": dst.password}, timeout=120)
            conns = len(p.connections)
        self.assertExit(run, 0)
        self.assertEqual(len(re.findall(rb"reconnecting \(retry",
                                        run.stderr)), 2, run)
        self.assertGreaterEqual(conns, 3)
        got = account(dst)
        self.assertEqual(sorted(got), sorted(expected))
        for k in expected:
            self.assertEqual(got[k], expected[k], k)
        s = json.loads(run.stdout)
        self.assertEqual(s["appended"] + s["found"] + s["present"],
                         s["planned"], s)

    def test_retries_zero_stops_at_the_first_cut(self):
        src = harness.SERVER.new_user("mrsrc")
        src.load_corpus(seed=42, scale=0.3)
        dst = harness.SERVER.new_user("mrdst")
        with Proxy((harness.SERVER.host, harness.SERVER.imap_port),
                   plan="eof@60000,pass") as p:
            run = imapsnap(
                "migrate", "--tls", "none", "--retries", "0", "--state-dir",
                workdir("migrate-noretry") + "/state",
                "imap://%s@127.0.0.1:%d" % (src.name, p.port),
                dst.server.url(dst, "imap"),
                env={"IMAPSNAP_SRC_PASSWORD": src.password,
                     "IMAPSNAP_DST_PASSWORD": dst.password})
        self.assertExit(run, 4)
