#!/usr/bin/env python3
"""What following flags without CONDSTORE costs (docs/performance.md,
"Flags without CONDSTORE").

    python3 contrib/bench/flags_cost.py --imapsnap build/imapsnap \\
        [--baseline OLD_IMAPSNAP] [--messages 10000] [--reps 5]

Starts, privately on loopback, the test Dovecot (tests/dovecot/start.sh),
a second Dovecot on the same mail that offers no CONDSTORE
(tests/integration/second_dovecot.py) and Courier (tests/courier/), fills
one folder of --messages small messages with a mix of flags (most \\Seen,
some answered or flagged; written into the Maildir before the server
first opens it), backs it up to Maildir, and
then times --reps no-op re-runs of each binary through a byte-counting
proxy (plaintext, so that the bytes are IMAP's), and one run after the
flags of 1 % of the messages changed.  Prints a Markdown table: the median
time, and the bytes the server sent and received, per run.

Needs root (the servers' mail processes change user), Python 3's standard
library, and what tests/install-servers.sh installs.
"""

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "integration"))
sys.path.insert(0, os.path.join(ROOT, "tests", "faults"))

import harness  # noqa: E402
import servers  # noqa: E402
from proxy import Proxy  # noqa: E402
from second_dovecot import CAPABILITIES, SecondDovecot  # noqa: E402

NO_CONDSTORE = " ".join(c for c in CAPABILITIES.split()
                        if c not in ("CONDSTORE", "QRESYNC"))


def flags_for(rng):
    r = rng.random()
    if r < 0.70:
        return "(\\Seen)"
    if r < 0.80:
        return "(\\Seen \\Answered)"
    if r < 0.85:
        return "(\\Seen \\Flagged)"
    if r < 0.87:
        return "(\\Seen \\Draft)"
    return None


def fill(maildir, owner, n, seed=12):
    """n messages written straight into a Maildir that no server has
    opened yet (it numbers them in name order): much faster than APPEND."""
    rng = random.Random(seed)
    letters = {"(\\Seen)": "S", "(\\Seen \\Answered)": "RS",
               "(\\Seen \\Flagged)": "FS", "(\\Seen \\Draft)": "DS"}
    cur = os.path.join(maildir, "cur")
    os.makedirs(cur, exist_ok=True)
    for i in range(n):
        flags = flags_for(rng)
        name = "%010d.m%d.bench:2,%s" % (1600000000 + i, i,
                                         letters.get(flags, ""))
        with open(os.path.join(cur, name), "wb") as f:
            f.write(harness.simple_message("message %d" % i,
                                           body="line %d\n" % i * 4,
                                           date=1600000000 + i))
    for d, _, files in os.walk(os.path.dirname(maildir)):
        shutil.chown(d, *owner)
        for f in files:
            shutil.chown(os.path.join(d, f), *owner)


def change(user, n, seed=13):
    """Toggle \\Flagged on n messages."""
    rng = random.Random(seed)
    with user.oracle() as o:
        o._ok(o.m.select("INBOX"), "SELECT")
        uids = sorted(o.messages("INBOX"))
        o._ok(o.m.select("INBOX"), "SELECT")
        for uid in rng.sample(uids, n):
            o._ok(o.m.uid("STORE", str(uid), "+FLAGS", "(\\Flagged)"),
                  "STORE")


def run_once(binary, host, port, user, dest):
    with Proxy((host, port), plan="pass") as p:
        t0 = time.monotonic()
        proc = subprocess.run(
            [binary, "backup", "--json", "--tls", "none",
             "imap://%s@127.0.0.1:%d" % (user.name, p.port), dest],
            env=dict(os.environ, IMAPSNAP_PASSWORD=user.password),
            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        elapsed = time.monotonic() - t0
        time.sleep(0.1)  # the proxy counts the last bytes
        s2c = sum(c.s2c_bytes for c in p.connections)
        c2s = sum(c.c2s_bytes for c in p.connections)
    if proc.returncode != 0:
        raise RuntimeError("%s failed:\n%s" % (binary, proc.stderr.decode()))
    return elapsed, s2c, c2s, json.loads(proc.stdout)


def measure(name, binary, host, port, user, dest, reps):
    runs = [run_once(binary, host, port, user, dest) for _ in range(reps)]
    return {
        "server": name,
        "binary": binary,
        "seconds": statistics.median(r[0] for r in runs),
        "s2c": statistics.median(r[1] for r in runs),
        "c2s": statistics.median(r[2] for r in runs),
        "flags_changed": runs[-1][3]["flags_changed"],
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--imapsnap", required=True)
    ap.add_argument("--baseline")
    ap.add_argument("--messages", type=int, default=10000)
    ap.add_argument("--reps", type=int, default=5)
    args = ap.parse_args()
    binaries = [os.path.abspath(args.imapsnap)]
    if args.baseline:
        binaries.append(os.path.abspath(args.baseline))

    tmp = tempfile.mkdtemp(prefix="imapsnap-flags-cost-")
    os.chmod(tmp, 0o755)
    dovecot_dir = os.path.join(tmp, "dovecot")
    work = os.path.join(tmp, "work")
    os.makedirs(work)
    plain = None
    rows = []
    try:
        subprocess.run(["sh", os.path.join(ROOT, "tests", "dovecot",
                                           "start.sh"), dovecot_dir],
                       check=True, stdout=subprocess.DEVNULL)
        harness.configure(binaries[0], dovecot_dir, work)
        plain = SecondDovecot.start(harness.SERVER,
                                    capabilities=NO_CONDSTORE)
        courier = servers.get("courier")
        # One user per server: once a session enables CONDSTORE on a
        # Dovecot mailbox, it reports HIGHESTMODSEQ to every session, and
        # imapsnap follows it by MODSEQ even where CONDSTORE is not
        # offered.
        duser = harness.SERVER.new_user("cost")
        puser = harness.SERVER.new_user("costplain")
        cuser = courier.new_user("cost")
        t0 = time.monotonic()
        for u in (duser, puser):
            fill(u.maildir, harness.SERVER.mail_owner, args.messages)
        fill(os.path.join(courier.mail_root, cuser.name, "Maildir"),
             ("nobody", "nogroup"), args.messages)
        # Courier numbers files it did not deliver on the first SELECT
        # (read-write): before that, an EXAMINE's UIDs do not last.
        with cuser.oracle() as o:
            o._ok(o.m.select("INBOX"), "SELECT")
        print("filled in %.0f s" % (time.monotonic() - t0), file=sys.stderr)
        targets = [
            ("Dovecot (CONDSTORE)", harness.SERVER.host,
             harness.SERVER.imap_port, duser),
            ("Dovecot without CONDSTORE", plain.host, plain.imap_port,
             puser),
            ("Courier", courier.host, courier.imap_port, cuser),
        ]
        for t, (name, host, port, user) in enumerate(targets):
            for b, binary in enumerate(binaries):
                dest = os.path.join(work, "t%d-b%d" % (t, b))
                if os.path.exists(dest):
                    shutil.rmtree(dest)
                full = run_once(binary, host, port, user, dest)
                row = measure(name, binary, host, port, user, dest,
                              args.reps)
                row["full_seconds"], row["full_s2c"] = full[0], full[1]
                rows.append(row)
        # 1 % of the messages' flags change: one run of the new binary.
        for t, (name, host, port, user) in enumerate(targets):
            if t == 0:
                continue
            dest = os.path.join(work, "t%d-b0" % t)
            change(user, args.messages // 100)
            r = run_once(binaries[0], host, port, user, dest)
            rows.append({"server": name + ", 1 % changed",
                         "binary": binaries[0], "seconds": r[0],
                         "s2c": r[1], "c2s": r[2],
                         "flags_changed": r[3]["flags_changed"],
                         "full_seconds": None, "full_s2c": None})
    finally:
        if plain:
            plain.stop()
        servers.stop_all()
        subprocess.run(["sh", os.path.join(ROOT, "tests", "dovecot",
                                           "stop.sh"), dovecot_dir])
        shutil.rmtree(tmp, ignore_errors=True)

    print("| server | imapsnap | no-op re-run (median of %d) | bytes from "
          "the server | bytes to it | flags changed |" % args.reps)
    print("| --- | --- | --- | --- | --- | --- |")
    for r in rows:
        print("| %s | %s | %.3f s | %d | %d | %d |" % (
            r["server"], r["binary"], r["seconds"], r["s2c"], r["c2s"],
            r["flags_changed"]))


if __name__ == "__main__":
    sys.exit(main())
