#!/usr/bin/env python3
"""Back up the Gmail-like test server (tests/gmail) with a corpus of N
messages and print how many copies and bytes the backup holds against the
number and bytes of distinct messages.

    python3 contrib/gmail_measure.py BINARY N [CERT_DIR] [-- backup options]

Then it runs the same backup again three times with nothing new (a
no-op re-run, as a nightly cron job mostly is) and prints how long each
took, and the size of the manifests.

CERT_DIR holds the test CA's ca.pem, cert.pem and key.pem (what
tests/dovecot/start.sh writes); a throwaway one is made when not given.
Python 3 standard library only.
"""

import hashlib
import os
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
from gmail_server import GmailServer, gmail_corpus  # noqa: E402


class Certs:
    def __init__(self, d):
        self.dir = d
        self.cacert = os.path.join(d, "ca.pem")


def main():
    args = sys.argv[1:]
    extra = []
    if "--" in args:
        extra = args[args.index("--") + 1:]
        args = args[:args.index("--")]
    binary, n = args[0], int(args[1])
    if len(args) > 2:
        certs = args[2]
    else:
        certs = tempfile.mkdtemp(prefix="imapsnap-certs-")
        subprocess.run(["sh", os.path.join(ROOT, "tests", "dovecot",
                                           "start.sh"), certs], check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["sh", os.path.join(ROOT, "tests", "dovecot",
                                           "stop.sh"), certs],
                       stdout=subprocess.DEVNULL)
    msgs, labels = gmail_corpus(n)
    srv = GmailServer.start(Certs(certs), msgs, labels)
    dest = tempfile.mkdtemp(prefix="imapsnap-gmail-measure-")
    t0 = time.monotonic()
    run = subprocess.run([binary, "backup", "-q", "--cacert",
                          os.path.join(certs, "ca.pem")] + extra +
                         [srv.url(), os.path.join(dest, "b")],
                         env=dict(os.environ, IMAPSNAP_PASSWORD=srv.password))
    took = time.monotonic() - t0
    reruns = []
    for _ in range(3):
        t1 = time.monotonic()
        again = subprocess.run([binary, "backup", "-q", "--cacert",
                                os.path.join(certs, "ca.pem")] + extra +
                               [srv.url(), os.path.join(dest, "b")],
                               env=dict(os.environ,
                                        IMAPSNAP_PASSWORD=srv.password))
        reruns.append((again.returncode, time.monotonic() - t1))
    srv.stop()
    files = copies = nbytes = 0
    seen = set()
    for d, dirs, fs in os.walk(os.path.join(dest, "b")):
        dirs[:] = [x for x in dirs if x != ".imapsnap"]
        if os.path.basename(d) != "cur":
            continue
        for f in fs:
            with open(os.path.join(d, f), "rb") as fh:
                data = fh.read()
            copies += 1
            nbytes += len(data)
            seen.add(hashlib.sha256(data).hexdigest())
            files += 1
    unique = sum(len(m.raw) for m in msgs)
    unlabelled = sum(1 for m in msgs if not m.labels)
    print("exit %d in %.2f s" % (run.returncode, took))
    for rc, t in reruns:
        print("no-op re-run: exit %d in %.3f s" % (rc, t))
    mdir = os.path.join(dest, "b", ".imapsnap", "manifest")
    print("manifests: %d bytes" % sum(
        os.path.getsize(os.path.join(mdir, f)) for f in os.listdir(mdir)
        if f.endswith(".jsonl")))
    print("messages on the server: %d (%d bytes), %d without a label"
          % (n, unique, unlabelled))
    print("copies in the backup:   %d (%d bytes), %d distinct"
          % (copies, nbytes, len(seen)))
    print("ratio: %.2f copies, %.2f bytes" % (copies / n, nbytes / unique))


if __name__ == "__main__":
    main()
