#!/usr/bin/env python3
"""What a run with nothing new costs on a large account, per format.

    noop_cost.py --imapsnap BIN [--base BIN] [--scale F] [--formats LIST]
                 [--servers LIST] [--reps R] [--work DIR] [--mbsync]

Starts a private Dovecot (tests/dovecot/start.sh) with one user whose
Maildir is contrib/bench/gen_corpus.py's corpus at --scale F (default
18.8: about 100,000 messages in seven folders, 1.4 GB), backs it up once
in each format of --formats (default maildir,mbox,mbox.gz,tar.zst,zip),
then times R no-op re-runs of each (default 7; median, min and max
printed), for BIN and for --base if given.  --servers (default
dovecot,nocondstore) says against what: the Dovecot, and a second one
that offers no CONDSTORE (tests/integration/second_dovecot.py), on a
copy of the same mail, where every saved message's flags are fetched on
every run (docs/decisions.md, "Flags without CONDSTORE").  With --mbsync, the same for
mbsync (isync) syncing the account into a Maildir of its own (`FSync
no`, which only the full run notices), from the first Dovecot.

With --work DIR the server and the backups stay in DIR and a later run
with the same DIR reuses them (the server is started again if needed).
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
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
USER = "big"
PASSWORD = "big-pw"


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, stdout=subprocess.PIPE,
                          **kw).stdout.decode()


def read_env(dv):
    env = {}
    with open(os.path.join(dv, "env")) as f:
        for line in f:
            k, _, v = line.strip().partition("=")
            env[k] = v
    return env


def running(dv):
    try:
        with open(os.path.join(dv, "run", "master.pid")) as f:
            os.kill(int(f.read().strip()), 0)
        return True
    except (OSError, ValueError):
        return False


class Account:
    def __init__(self, a):
        self.a = a
        self.work = a.work or tempfile.mkdtemp(prefix="imapsnap-noop.")
        os.makedirs(self.work, exist_ok=True)
        os.chmod(self.work, 0o755)
        self.dv = os.path.join(self.work, "dovecot")
        fresh = not os.path.exists(os.path.join(self.dv, "env"))
        if fresh:
            sh(["sh", os.path.join(ROOT, "tests/dovecot/start.sh"),
                self.dv])
        elif not running(self.dv):
            sh(["dovecot", "-c", os.path.join(self.dv, "dovecot.conf")])
            time.sleep(1)
        self.env = read_env(self.dv)
        self.port = int(self.env["IMAP_PORT"])
        self.ports = {"dovecot": self.port}
        self.second = None
        if fresh:
            sh(["sh", os.path.join(ROOT, "tests/dovecot/adduser.sh"),
                self.dv, USER, PASSWORD])
            md = os.path.join(self.env["MAIL_ROOT"], USER, "Maildir")
            t = time.monotonic()
            out = sh([sys.executable, os.path.join(HERE, "gen_corpus.py"),
                      "--scale", str(a.scale), md]).split()
            sh(["chown", "-R", self.env["MAIL_OWNER"],
                os.path.join(self.env["MAIL_ROOT"], USER)])
            print("corpus: %s messages, %.0f MB, %s folders, in %.0f s"
                  % (out[0], int(out[1]) / 1e6, out[2],
                     time.monotonic() - t), flush=True)

    def start_nocondstore(self):
        """A second Dovecot without CONDSTORE, on a copy of the mail
        without Dovecot's indexes: indexes that once had CONDSTORE keep
        their MODSEQs, and Dovecot then reports HIGHESTMODSEQ in EXAMINE
        whatever it advertises."""
        from second_dovecot import CAPABILITIES, SecondDovecot

        mail = os.path.join(self.work, "mail-nocondstore")
        if not os.path.isdir(mail):
            src = os.path.join(self.env["MAIL_ROOT"], USER, "Maildir")
            shutil.copytree(src, os.path.join(mail, USER, "Maildir"),
                            ignore=shutil.ignore_patterns("dovecot*"),
                            symlinks=True)
            sh(["chown", "-R", self.env["MAIL_OWNER"], mail])
            os.chmod(mail, 0o755)

        class Base:
            dir = self.dv
            host = "127.0.0.1"
            imap_port = self.port
            imaps_port = int(self.env["IMAPS_PORT"])
            cacert = self.env["CACERT"]
        caps = " ".join(c for c in CAPABILITIES.split()
                        if c not in ("CONDSTORE", "QRESYNC"))
        self.second = SecondDovecot.start(
            Base, capabilities=caps,
            mail_location="maildir:%s/%%u/Maildir" % mail)
        self.ports["nocondstore"] = self.second.imap_port

    def dest(self, server, fmt):
        return os.path.join(self.work, "dest-%s-%s" % (server, fmt))

    def backup(self, binary, server, fmt, extra=()):
        url = "imap://%s@127.0.0.1:%d" % (USER, self.ports[server])
        t = time.monotonic()
        p = subprocess.run(
            [binary, "backup", "--tls", "none", "--format", fmt] +
            list(extra) + [url, self.dest(server, fmt)],
            env=dict(os.environ, IMAPSNAP_PASSWORD=PASSWORD),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        dt = time.monotonic() - t
        if p.returncode != 0:
            raise RuntimeError("%s: %s" % (" ".join(p.args),
                                           p.stderr.decode()))
        return dt

    def mbsync_config(self):
        path = os.path.join(self.work, "mbsyncrc")
        box = os.path.join(self.work, "mbsync") + "/"
        os.makedirs(box, exist_ok=True)
        with open(path, "w") as f:
            f.write("FSync no\n\n"
                    "IMAPAccount big\nHost 127.0.0.1\nPort %d\n"
                    "User %s\nPass %s\nSSLType None\n\n"
                    "IMAPStore remote\nAccount big\n\n"
                    "MaildirStore local\nPath %s\nInbox %sINBOX\n"
                    "SubFolders Verbatim\n\n"
                    "Channel big\nFar :remote:\nNear :local:\n"
                    "Patterns *\nCreate Near\nSync Pull\nSyncState *\n"
                    % (self.port, USER, PASSWORD, box, box))
        return path

    def mbsync(self, config):
        t = time.monotonic()
        subprocess.run(["mbsync", "-a", "-q", "-c", config], check=True,
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        return time.monotonic() - t


def timed(fn, reps):
    times = [fn() for _ in range(reps)]
    return statistics.median(times), min(times), max(times)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--imapsnap", required=True)
    ap.add_argument("--base")
    ap.add_argument("--scale", type=float, default=18.8)
    ap.add_argument("--formats", default="maildir,mbox,mbox.gz,tar.zst,zip")
    ap.add_argument("--servers", default="dovecot,nocondstore")
    ap.add_argument("--reps", type=int, default=7)
    ap.add_argument("--work")
    ap.add_argument("--mbsync", action="store_true")
    ap.add_argument("--keep", action="store_true",
                    help="leave the server running")
    a = ap.parse_args()
    acc = Account(a)
    servers = a.servers.split(",")
    try:
        if "nocondstore" in servers:
            acc.start_nocondstore()
        for server in servers:
            for fmt in a.formats.split(","):
                if not os.path.isdir(os.path.join(acc.dest(server, fmt),
                                                  ".imapsnap")):
                    print("full backup, %s, %s: %.1f s" % (
                        server, fmt, acc.backup(a.imapsnap, server, fmt)),
                        flush=True)
        for name, binary in (("imapsnap", a.imapsnap), ("base", a.base)):
            if not binary:
                continue
            for server in servers:
                for fmt in a.formats.split(","):
                    acc.backup(binary, server, fmt)  # warm
                    med, lo, hi = timed(
                        lambda: acc.backup(binary, server, fmt), a.reps)
                    print("%-8s %-11s no-op %-8s median %.3f s "
                          "(min %.3f, max %.3f)"
                          % (name, server, fmt, med, lo, hi), flush=True)
        if a.mbsync:
            cfg = acc.mbsync_config()
            t = acc.mbsync(cfg)
            print("mbsync full: %.1f s" % t, flush=True)
            acc.mbsync(cfg)
            med, lo, hi = timed(lambda: acc.mbsync(cfg), a.reps)
            print("mbsync   no-op          median %.3f s (min %.3f, "
                  "max %.3f)" % (med, lo, hi), flush=True)
    finally:
        if acc.second:
            acc.second.stop()
        if not a.keep:
            subprocess.run(["sh", os.path.join(ROOT, "tests/dovecot/stop.sh"),
                            acc.dv])
            if not a.work:
                shutil.rmtree(acc.work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
