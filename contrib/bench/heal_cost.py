#!/usr/bin/env python3
"""What checking that the backup still holds every saved message costs a
run with nothing new (docs/performance.md, "Healing").

    heal_cost.py --imapsnap BIN [--base BIN] [--messages N] [--volumes V]
                 [--reps R] [--work DIR]

Starts a private Dovecot (tests/dovecot/start.sh) with two users written
straight into their Maildirs: "one" with a single folder of N messages
(default 100,000, of 1 KiB) and "vols" whose DEST is built by V runs
(default 100) of --format tar.gz, each after V-th of the messages were
added, so that DEST holds V volumes.  Then, for each binary (BIN, and
--base, e.g. one built without the healing check), it times R no-op
re-runs (default 5; the median is printed) of:

  - one's folder in --format mbox (the index read, the mbox file only
    stat'ed);
  - the same after a `touch` of the mbox file, i.e. the run that reads
    the whole file once (and re-arms the cheap check);
  - the V-volume tar.gz DEST (the records read, each volume stat'ed);
  - the same without records, i.e. every volume's entries read, which is
    what checking the volumes by reading them would cost every run.

Python 3 standard library only; plaintext IMAP on 127.0.0.1.
"""

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE,
                          **kw).stdout.decode()


def message(i):
    body = ("line %d of a test message, to give it some size\n" % i) * 18
    return ("From: a%d@example.org\nTo: b@example.org\nSubject: m %d\n"
            "Message-ID: <%d@heal.test>\nDate: Mon, 1 Jan 2024 00:00:00 "
            "+0000\n\n%s" % (i % 97, i, i, body)).encode()


def write_messages(maildir, first, n):
    cur = os.path.join(maildir, "cur")
    for d in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(maildir, d), exist_ok=True)
    for i in range(first, first + n):
        with open(os.path.join(cur, "%d.M%dP1.heal:2,S" % (
                1700000000 + i, i)), "wb") as f:
            f.write(message(i))


class Run:
    def __init__(self, a):
        self.a = a
        self.work = a.work or tempfile.mkdtemp(prefix="imapsnap-heal.")
        os.makedirs(self.work, exist_ok=True)
        os.chmod(self.work, 0o755)
        self.dv = os.path.join(self.work, "dovecot")
        sh(["sh", os.path.join(ROOT, "tests/dovecot/start.sh"), self.dv])
        self.env = {}
        with open(os.path.join(self.dv, "env")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                self.env[k] = v
        self.port = int(self.env["IMAP_PORT"])

    def add_user(self, name):
        sh(["sh", os.path.join(ROOT, "tests/dovecot/adduser.sh"), self.dv,
            name, name + "-pw"])
        return os.path.join(self.env["MAIL_ROOT"], name, "Maildir")

    def own(self, name):
        sh(["chown", "-R", self.env["MAIL_OWNER"],
            os.path.join(self.env["MAIL_ROOT"], name)])

    def backup(self, binary, user, dest, fmt):
        return self.backup_args(binary, user, dest, ["--format", fmt])

    def backup_args(self, binary, user, dest, extra):
        t = time.monotonic()
        p = subprocess.run(
            [binary, "backup", "--tls", "none"] + extra +
            ["imap://%s@127.0.0.1:%d" % (user, self.port), dest],
            env=dict(os.environ, IMAPSNAP_PASSWORD=user + "-pw"),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        dt = time.monotonic() - t
        if p.returncode != 0:
            raise RuntimeError("%s: %s" % (" ".join(p.args),
                                           p.stderr.decode()))
        return dt

    def median(self, binary, user, dest, fmt, before=None):
        times = []
        for _ in range(self.a.reps):
            if before:
                before()
            times.append(self.backup(binary, user, dest, fmt))
        return statistics.median(times), min(times), max(times)

    def stop(self):
        subprocess.run(["sh", os.path.join(ROOT, "tests/dovecot/stop.sh"),
                        self.dv])
        if not self.a.work:
            shutil.rmtree(self.work, ignore_errors=True)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--imapsnap", required=True)
    ap.add_argument("--base")
    ap.add_argument("--messages", type=int, default=100000)
    ap.add_argument("--volumes", type=int, default=100)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--work")
    a = ap.parse_args()
    r = Run(a)
    try:
        t = time.monotonic()
        write_messages(r.add_user("one"), 0, a.messages)
        r.own("one")
        print("one: %d messages written in %.1f s" % (
            a.messages, time.monotonic() - t), flush=True)
        mbox = os.path.join(r.work, "mbox")
        print("full mbox backup: %.1f s" % r.backup(
            a.imapsnap, "one", mbox, "mbox"), flush=True)
        vols = os.path.join(r.work, "vols")
        r.add_user("vols")
        per = a.messages // a.volumes
        t = time.monotonic()
        for v in range(a.volumes):
            write_messages(os.path.join(r.env["MAIL_ROOT"], "vols",
                                        "Maildir"), v * per, per)
            r.own("vols")
            r.backup(a.imapsnap, "vols", vols, "tar.gz")
        n = len([x for x in os.listdir(vols) if x.endswith(".tar.gz")])
        print("vols: %d volumes of %d messages in %.1f s" % (
            n, per, time.monotonic() - t), flush=True)
        path = os.path.join(mbox, "INBOX.mbox")
        print("mbox file %.1f MB, index %.1f MB" % (
            os.path.getsize(path) / 1e6,
            os.path.getsize(os.path.join(mbox, ".imapsnap", "mbox",
                                         "INBOX.mbox.idx")) / 1e6))
        for name, binary in (("imapsnap", a.imapsnap), ("base", a.base)):
            if not binary:
                continue
            for what, user, dest, fmt, before in (
                    ("no-op, mbox, %d messages" % a.messages, "one", mbox,
                     "mbox", None),
                    ("mbox file touched (read once)", "one", mbox, "mbox",
                     lambda: os.utime(path)),
                    ("no-op, %d tar.gz volumes" % n, "vols", vols,
                     "tar.gz", None)):
                r.backup(binary, user, dest, fmt)  # warm
                med, lo, hi = r.median(binary, user, dest, fmt, before)
                print("%-8s %-34s median %.3f s (min %.3f, max %.3f)" % (
                    name, what, med, lo, hi), flush=True)
            if binary == a.imapsnap:
                # What reading every volume would cost each run: the run
                # that has no records and reads every volume's entries.
                records = os.path.join(vols, ".imapsnap", "volumes")
                med, lo, hi = r.median(
                    binary, "vols", vols, "tar.gz",
                    lambda: shutil.rmtree(records))
                print("%-8s %-34s median %.3f s (min %.3f, max %.3f)" % (
                    name, "volumes read (no records)", med, lo, hi),
                    flush=True)
    finally:
        r.stop()


if __name__ == "__main__":
    sys.exit(main())
