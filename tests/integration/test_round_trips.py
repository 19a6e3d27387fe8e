"""Round trips that do not grow with folders: a re-run with nothing new
waits for the server as often for 200 folders as for 20, with LIST-STATUS
(the test Dovecot) and without it (a second Dovecot that does not offer
it, where every STATUS goes out in one burst); a full backup of 200 small
folders does not wait for the server three times per folder.

Round trips are counted, not timed: contrib/bench/latency_proxy.py sits
between imapsnap and Dovecot with a delay of its own, and counts how often
the client sent something after the server had sent it something (the
login and the TLS handshake included).  The delay makes the count
deterministic: a burst of commands is all sent before any answer can
arrive."""

import importlib.util
import json
import os
import shutil
import subprocess
import sys
import time

import harness
from harness import TestCase, imapsnap, workdir
from second_dovecot import SecondDovecot

# The benchmark's corpus (tests/ has a gen_corpus of its own).
_spec = importlib.util.spec_from_file_location(
    "bench_corpus", os.path.join(harness.ROOT, "contrib", "bench",
                                 "gen_corpus.py"))
bench_corpus = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(bench_corpus)

PROXY = os.path.join(harness.ROOT, "contrib", "bench", "latency_proxy.py")
DELAY_MS = 25  # one way

SECOND = None
USERS = {}  # folders -> harness.User


def setUpModule():
    global SECOND
    for n in (20, 200):
        u = harness.SERVER.new_user("rt%d_" % n)
        os.makedirs(u.maildir)
        bench_corpus.write_corpus(u.maildir, 14, 1.0,
                                  bench_corpus.spread(n, 2 * n))
        uid, gid = harness.SERVER.mail_owner
        for d, _, files in os.walk(u.home):
            shutil.chown(d, uid, gid)
            for f in files:
                shutil.chown(os.path.join(d, f), uid, gid)
        USERS[n] = u
    # Without LIST-STATUS (and without STATUS=SIZE): the same mail.
    SECOND = SecondDovecot.start(harness.SERVER)


def tearDownModule():
    if SECOND:
        SECOND.stop()


class Proxy:
    """latency_proxy.py in front of 127.0.0.1:`port`."""

    def __init__(self, port):
        d = workdir("proxy")
        self.stats = os.path.join(d, "stats.jsonl")
        portfile = os.path.join(d, "port")
        self.proc = subprocess.Popen(
            [sys.executable, PROXY, "--target", "127.0.0.1:%d" % port,
             "--delay-ms", str(DELAY_MS), "--stats", self.stats,
             "--port-file", portfile], stdout=subprocess.DEVNULL)
        for _ in range(200):
            if os.path.exists(portfile):
                break
            time.sleep(0.05)
        with open(portfile) as f:
            self.port = int(f.read())

    def records(self):
        if not os.path.exists(self.stats):
            return []
        with open(self.stats) as f:
            return [json.loads(line) for line in f]

    def stop(self):
        self.proc.terminate()
        self.proc.wait()


class RoundTrips:
    """The tests; a subclass says which server (port_of: its imaps
    port)."""

    def backup(self, user, dest, port, *extra):
        return imapsnap("backup", "--cacert", harness.SERVER.cacert,
                        *extra, "imaps://%s@127.0.0.1:%d" % (user.name, port),
                        dest, password=user.password, timeout=120)

    def turns(self, user, dest, *extra):
        """Back up through the proxy; returns (run, turns of all its
        connections, connections)."""
        proxy = Proxy(self.port_of())
        try:
            run = self.backup(user, dest, proxy.port, *extra)
            # The proxy records a connection once both sides closed.
            for _ in range(100):
                recs = proxy.records()
                if recs:
                    break
                time.sleep(0.05)
            time.sleep(0.2)
            recs = proxy.records()
        finally:
            proxy.stop()
        return run, sum(r["turns"] for r in recs), len(recs)

    def noop_turns(self, n):
        dest = workdir("rt-%d" % n)
        run = self.backup(USERS[n], dest, self.port_of())
        self.assertExit(run, 0)
        run, turns, conns = self.turns(USERS[n], dest)
        self.assertExit(run, 0)
        self.assertIn(b"0 messages", run.stderr, run)
        return turns, conns

    def test_noop_same_for_20_and_200_folders(self):
        t20, c20 = self.noop_turns(20)
        t200, c200 = self.noop_turns(200)
        self.assertEqual((c20, c200), (1, 1))
        self.assertEqual(t20, t200, "a no-op waited %d times for 20 "
                         "folders, %d for 200" % (t20, t200))
        # The login, LIST, STATUS and LOGOUT: nothing per folder.
        self.assertLessEqual(t200, 12)

    def test_full_backup_does_not_wait_per_folder(self):
        dest = workdir("rt-full")
        run, turns, conns = self.turns(USERS[200], dest)
        self.assertExit(run, 0)
        self.assertIn(b"400 messages", run.stderr, run)
        # One folder after another, one session waited three times per
        # folder (608 turns).  Pipelined, the client still sends after
        # most answers it reads (each such send is a turn), but the
        # folders' round trips overlap.
        self.assertLess(turns, 300, "%d turns over %d connections"
                        % (turns, conns))


class WithListStatus(RoundTrips, TestCase):
    @staticmethod
    def port_of():
        return harness.SERVER.imaps_port


class WithoutListStatus(RoundTrips, TestCase):
    @staticmethod
    def port_of():
        return SECOND.imaps_port
