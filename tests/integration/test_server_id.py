"""The server's RFC 2971 ID in the acquisition log: `ID NIL` goes out in
the burst of commands that follows login (beside NAMESPACE and LIST), so
it costs no round trip of its own.  A latency proxy between imapsnap and
Dovecot counts the client's turns (how often it waited for the server);
a no-op re-run of two folders takes as many as it did before ID was
sent."""

import glob
import json
import os
import subprocess
import sys
import time

from harness import TestCase, backup, simple_message, workdir
import harness

PROXY = os.path.join(harness.ROOT, "contrib", "bench", "latency_proxy.py")

# Client turns of a no-op re-run of two unchanged folders over one plain
# session, measured through this proxy: the greeting's answer and the
# login steps, CAPABILITY, one burst for NAMESPACE and LIST, one for
# every folder's STATUS (LIST-STATUS), and the LOGOUT; unchanged folders
# get no EXAMINE.  ID rides in the LIST burst.
NOOP_TURNS = 6


class Proxy:
    def __init__(self, port):
        self.dir = workdir("id-proxy")
        self.stats = os.path.join(self.dir, "stats.jsonl")
        port_file = os.path.join(self.dir, "port")
        self.proc = subprocess.Popen(
            [sys.executable, PROXY, "--target", "127.0.0.1:%d" % port,
             "--delay-ms", "2", "--stats", self.stats,
             "--port-file", port_file],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 10
        while not (os.path.exists(port_file) and
                   open(port_file).read().strip()):
            if time.time() > deadline:
                self.proc.kill()
                raise AssertionError("the latency proxy did not start")
            time.sleep(0.05)
        self.port = int(open(port_file).read())

    def records(self):
        if not os.path.exists(self.stats):
            return []
        with open(self.stats) as f:
            return [json.loads(line) for line in f if line.strip()]

    def wait_records(self, n):
        deadline = time.time() + 10
        while len(self.records()) < n and time.time() < deadline:
            time.sleep(0.05)
        return self.records()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


class ServerID(TestCase):
    def test_id_recorded_without_a_round_trip(self):
        user = harness.SERVER.new_user("sid")
        with user.oracle() as o:
            o.create("Work")
            o.append("INBOX", simple_message("one"), ("\\Seen",))
            o.append("Work", simple_message("two"), ())
        proxy = Proxy(harness.SERVER.imap_port)
        self.addCleanup(proxy.stop)
        dest = workdir("sid")
        url = "imap://%s@127.0.0.1:%d" % (user.name, proxy.port)
        for n in (1, 2):
            run = harness.imapsnap("backup", "--tls", "none",
                                   "--connections", "1", url, dest,
                                   password=user.password)
            self.assertExit(run, 0)
            recs = proxy.wait_records(n)
            self.assertEqual(len(recs), n, recs)
        noop = recs[-1]["turns"]
        print("no-op turns:", noop)
        if NOOP_TURNS is not None:
            self.assertEqual(noop, NOOP_TURNS, recs)
        runs = sorted(glob.glob(os.path.join(
            dest, ".imapsnap", "manifest", "*.acquisition.txt")))
        self.assertEqual(len(runs), 2, runs)
        text = open(runs[-1]).read()
        line = [ln for ln in text.splitlines() if ln.startswith("server ID")]
        self.assertEqual(len(line), 1, text)
        self.assertIn('name "Dovecot"', line[0])
        with open(runs[-1].replace(".acquisition.txt", ".jsonl")) as f:
            lines = [json.loads(ln) for ln in f]
        ids = [ln for ln in lines if ln["type"] == "server_id"]
        self.assertEqual(len(ids), 1, lines)
        self.assertEqual(ids[0]["id"].get("name"), "Dovecot", ids)
