"""The forensic record beside each run's manifest (docs/manifest.md): the
acquisition log, the exception list, the TSV item list, and an RFC 3161
timestamp from a local TSA this test starts (`openssl ts -reply` behind
a small HTTP server on loopback), checked with `openssl ts -verify` and
by `imapsnap verify`.

Python 3 standard library and the openssl command only."""

import csv
import hashlib
import http.server
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading

from harness import TestCase, backup, imapsnap, simple_message, workdir
import harness

sys.path.insert(0, os.path.join(harness.ROOT, "tests", "fakeimap"))
from fakeimap import FakeIMAP, Mailbox, Script, make_messages  # noqa: E402

TSA_CONF = """\
[ tsa ]
default_tsa = tsa1
[ tsa1 ]
dir = {dir}
serial = $dir/serial
crypto_device = builtin
signer_cert = $dir/tsa.pem
certs = $dir/ca.pem
signer_key = $dir/tsa.key
signer_digest = sha256
default_policy = 1.2.3.4.1
digests = sha256
accuracy = secs:1
ordering = yes
tsa_name = no
ess_cert_id_chain = no
ess_cert_id_alg = sha256
"""


def openssl(*args, **kw):
    return subprocess.run(["openssl"] + list(args), check=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          **kw)


class LocalTSA:
    """A Time Stamping Authority on 127.0.0.1: its own CA, a signing
    certificate for timestamping, and `openssl ts -reply` for each POST."""

    def __init__(self):
        self.dir = tempfile.mkdtemp(prefix="imapsnap-tsa-")
        d = self.dir
        openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days",
                "2", "-subj", "/CN=imapsnap test TSA CA", "-keyout",
                d + "/ca.key", "-out", d + "/ca.pem")
        with open(d + "/ext.cnf", "w") as f:
            f.write("extendedKeyUsage = critical,timeStamping\n"
                    "basicConstraints = CA:FALSE\n")
        openssl("req", "-newkey", "rsa:2048", "-nodes", "-subj",
                "/CN=imapsnap test TSA", "-keyout", d + "/tsa.key",
                "-out", d + "/tsa.csr")
        openssl("x509", "-req", "-in", d + "/tsa.csr", "-CA", d + "/ca.pem",
                "-CAkey", d + "/ca.key", "-CAcreateserial", "-days", "2",
                "-extfile", d + "/ext.cnf", "-out", d + "/tsa.pem")
        with open(d + "/serial", "w") as f:
            f.write("01\n")
        self.conf = d + "/tsa.cnf"
        with open(self.conf, "w") as f:
            f.write(TSA_CONF.format(dir=d))
        self.cacert = d + "/ca.pem"
        self.requests = 0
        self.lock = threading.Lock()
        tsa = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                n = int(self.headers.get("Content-Length", "0"))
                query = self.rfile.read(n)
                with tsa.lock:
                    tsa.requests += 1
                    tsa.content_type = self.headers.get("Content-Type")
                    reply = tsa.reply(query)
                self.send_response(200)
                self.send_header("Content-Type",
                                 "application/timestamp-reply")
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0),
                                                     Handler)
        self.url = "http://127.0.0.1:%d/" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever,
                         daemon=True).start()

    def reply(self, query):
        q, r = self.dir + "/q.der", self.dir + "/r.der"
        with open(q, "wb") as f:
            f.write(query)
        openssl("ts", "-reply", "-config", self.conf, "-queryfile", q,
                "-out", r)
        with open(r, "rb") as f:
            return f.read()

    def stamp_file(self, path, out):
        """A token for another file, made the same way."""
        q = self.dir + "/other.tsq"
        openssl("ts", "-query", "-data", path, "-sha256", "-cert", "-out", q)
        openssl("ts", "-reply", "-config", self.conf, "-queryfile", q,
                "-out", out)

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def the_run(dest):
    mdir = os.path.join(dest, ".imapsnap", "manifest")
    (sha, name), = [ln.rstrip("\n").split("  ") for ln in
                    open(os.path.join(mdir, "chain"))]
    return mdir, name[:-len(".jsonl")], sha


class ForensicRecord(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tsa = LocalTSA()
        cls.user = harness.SERVER.new_user("fr")
        with cls.user.oracle() as o:
            o.create("Work")
            for i in range(3):
                o.append("INBOX", simple_message("inbox %d" % i),
                         ("\\Seen",), date=1600000000 + i)
            o.append("Work", simple_message("work"), (), date=1610000000)

    @classmethod
    def tearDownClass(cls):
        cls.tsa.stop()

    def test_records_and_timestamp_beside_the_manifest(self):
        dest = workdir("fr")
        run = backup(self.user, dest, "--tsa", self.tsa.url,
                     "--tsa-cacert", self.tsa.cacert)
        self.assertExit(run, 0)
        self.assertEqual(self.tsa.requests, 1)
        self.assertEqual(self.tsa.content_type,
                         "application/timestamp-query")
        mdir, stem, sha = the_run(dest)
        base = os.path.join(mdir, stem)
        # The token, checked by OpenSSL itself against the run file.
        ok = subprocess.run(["openssl", "ts", "-verify", "-data",
                             base + ".jsonl", "-in", base + ".tsr",
                             "-CAfile", self.tsa.cacert,
                             "-untrusted", self.tsa.dir + "/tsa.pem"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        self.assertEqual(ok.returncode, 0, ok.stdout)
        self.assertIn(b"Verification: OK", ok.stdout)
        # The item list: one row per message, as the server has it.
        with open(base + ".items.tsv", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        self.assertEqual([k for k in rows[0]], ["folder", "uidvalidity",
                                                "uid", "sha256", "size",
                                                "path"])
        with self.user.oracle() as o:
            want = set()
            for folder in ("INBOX", "Work"):
                for uid in o.messages(folder):
                    body = o.body(uid)
                    want.add((folder, str(o.info["UIDVALIDITY"]), str(uid),
                              hashlib.sha256(body).hexdigest(),
                              str(len(body))))
        self.assertEqual({(r["folder"], r["uidvalidity"], r["uid"],
                           r["sha256"], r["size"]) for r in rows}, want)
        for r in rows:
            self.assertTrue(os.path.exists(os.path.join(dest, r["path"]) +
                                           ":2," + ("S" if r["folder"] ==
                                                    "INBOX" else "")))
        with open(base + ".exceptions.tsv") as f:
            self.assertEqual(f.read(), "folder\tuidvalidity\tuid\twhat\t"
                             "reason\n")
        # The acquisition log: the server's own words and counts.
        text = open(base + ".acquisition.txt").read()
        lines = [json.loads(ln) for ln in open(base + ".jsonl")]
        server = next(ln for ln in lines if ln["type"] == "server")
        self.assertIn(server["greeting"], text)
        self.assertIn("IMAP4REV1", text.upper())
        self.assertIn(sha, text)
        self.assertIn(stem + ".tsr", text)
        self.assertRegex(text, r"time zone\s+\S+")
        self.assertRegex(text, r"saved\s+4\n")
        self.assertRegex(text, r"accounted\s+yes")
        for ln in lines:
            if ln["type"] == "folder":
                self.assertRegex(text, r"%d\s+%d\s+%d\s+%d\s+\d+\s+\d+\s+%s"
                                 % (ln["uidvalidity"], ln["exists"],
                                    ln["uidnext"], ln["highestmodseq"],
                                    ln["folder"]))
        # verify checks the token against the run file.
        run = imapsnap("verify", "--json", "--tsa-cacert", self.tsa.cacert,
                       dest)
        self.assertExit(run, 0)
        report = json.loads(run.stdout)
        self.assertEqual(report["timestamps"], 1)
        self.assertTrue(any("signature checked" in f["detail"]
                            for f in report["findings"]))
        # A token for another file is caught.
        other = os.path.join(workdir("fr-other"), "x")
        with open(other, "w") as f:
            f.write("not the manifest\n")
        self.tsa.stamp_file(other, base + ".tsr")
        run = imapsnap("verify", "--json", dest)
        self.assertExit(run, 7)
        report = json.loads(run.stdout)
        self.assertEqual(report["timestamps"], 0)
        self.assertEqual([f["kind"] for f in report["findings"]
                          if f["kind"] != "note"], ["chain"], report)

    def test_unreachable_tsa_fails_the_run_but_keeps_the_backup(self):
        dest = workdir("fr-down")
        run = backup(self.user, dest, "--tsa",
                     "http://127.0.0.1:%d/" % free_port())
        self.assertExit(run, 4)
        self.assertIn(b"timestamp of", run.stderr)
        mdir, stem, _ = the_run(dest)
        self.assertFalse(os.path.exists(os.path.join(mdir, stem + ".tsr")))
        self.assertTrue(os.path.exists(os.path.join(mdir, stem +
                                                    ".items.tsv")))
        self.assertExit(imapsnap("verify", dest), 0)


class Exceptions(TestCase):
    def test_a_message_not_saved_is_in_the_exception_list(self):
        """From a scripted server that refuses one message (Dovecot
        refuses none on demand): the exception list names it and why,
        and the acquisition log says the run was not complete."""
        class Refuses(Script):
            def fetch(self, c, tag, uids, items):
                if 2 not in uids:
                    return Script.fetch(self, c, tag, uids, items)
                by_uid = c.selected.by_uid()
                order = [m.uid for m in c.selected.msgs]
                for uid in uids:
                    if uid != 2 and uid in by_uid:
                        self.send_message(c, order.index(uid) + 1,
                                          by_uid[uid])
                c.send(tag + b" NO [SERVERBUG] message 2 is unreadable\r\n")

        dest = workdir("fr-exc")
        with FakeIMAP(Refuses(mailboxes=[Mailbox("INBOX",
                                                 make_messages(3))])) as srv:
            run = imapsnap("backup", "--tls", "none",
                           "imap://user@127.0.0.1:%d" % srv.port, dest,
                           password="secret")
        self.assertExit(run, 1)
        mdir, stem, _ = the_run(dest)
        base = os.path.join(mdir, stem)
        with open(base + ".exceptions.tsv", newline="") as f:
            rows = list(csv.DictReader(f, delimiter="\t"))
        self.assertEqual([(r["folder"], r["uid"], r["what"]) for r in rows],
                         [("INBOX", "2", "message")], rows)
        self.assertIn("unreadable", rows[0]["reason"])
        with open(base + ".items.tsv", newline="") as f:
            self.assertEqual(sorted(r["uid"] for r in
                                    csv.DictReader(f, delimiter="\t")),
                             ["1", "3"])
        text = open(base + ".acquisition.txt").read()
        self.assertRegex(text, r"failed\s+1\n")
        self.assertRegex(text, r"1000\s+3\s+4\s+0\s+2\s+1\s+INBOX")
