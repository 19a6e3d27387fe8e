#!/usr/bin/env python3
"""What commits by time cost a full backup on loopback
(docs/performance.md, "Commits by time").

    commit_cost.py --imapsnap BIN [--messages N] [--reps R] [--work DIR]

Starts a private Dovecot (tests/dovecot/start.sh) with one user whose
INBOX holds N messages of 1 KiB (default 20,000), written straight into
its Maildir.  Then times R full Maildir backups (default 5, alternating,
each into a new DEST; the median is printed) with each
--commit-interval: 3600 (no commit by time: every 1,000 messages a
session), 5 (the default), 1 and 0.1, and counts the commits each made
(the manifest's `commit` lines).  The difference per extra commit is
what one commit by time costs here; the CPU time (imapsnap's, user and
system) is the figure a busy machine disturbs least.

Python 3 standard library only; plaintext IMAP on 127.0.0.1.
"""

import argparse
import os
import resource
import statistics
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from heal_cost import Run, write_messages  # noqa: E402

INTERVALS = ("3600", "5", "1", "0.1")


def commits(dest):
    d = os.path.join(dest, ".imapsnap", "manifest")
    n = 0
    for name in os.listdir(d):
        if name.endswith(".jsonl"):
            with open(os.path.join(d, name)) as f:
                n += sum(1 for ln in f if ln.startswith('{"type":"commit"'))
    return n


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--imapsnap", required=True)
    ap.add_argument("--messages", type=int, default=20000)
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--work")
    a = ap.parse_args()
    a.base = None
    r = Run(a)
    try:
        write_messages(r.add_user("one"), 0, a.messages)
        r.own("one")
        dests = 0
        times = {i: [] for i in INTERVALS}
        cpu = {i: [] for i in INTERVALS}
        counts = {i: [] for i in INTERVALS}
        r.backup(a.imapsnap, "one", os.path.join(r.work, "warm"), "maildir")
        for rep in range(a.reps):
            order = INTERVALS[rep % len(INTERVALS):] + \
                INTERVALS[:rep % len(INTERVALS)]
            for i in order:
                dests += 1
                dest = os.path.join(r.work, "d%d" % dests)
                os.sync()
                ru = resource.getrusage(resource.RUSAGE_CHILDREN)
                t = time.monotonic()
                r.backup_args(a.imapsnap, "one", dest,
                              ["--commit-interval", i])
                times[i].append(time.monotonic() - t)
                ru2 = resource.getrusage(resource.RUSAGE_CHILDREN)
                cpu[i].append(ru2.ru_utime + ru2.ru_stime - ru.ru_utime -
                              ru.ru_stime)
                counts[i].append(commits(dest))
        base = statistics.median(times["3600"])
        base_n = statistics.median(counts["3600"])
        print("%d messages of 1 KiB, %d runs each, Maildir, 4 sessions" % (
            a.messages, a.reps))
        for i in INTERVALS:
            m = statistics.median(times[i])
            n = statistics.median(counts[i])
            extra = n - base_n
            print("--commit-interval %-5s median %.3f s (min %.3f, max "
                  "%.3f), CPU %.2f s, %4.0f commits%s" % (
                      i, m, min(times[i]), max(times[i]),
                      statistics.median(cpu[i]), n,
                      ", %+.1f ms per commit more" % (
                          (m - base) * 1000 / extra) if extra > 0 else ""),
                  flush=True)
    finally:
        r.stop()


if __name__ == "__main__":
    sys.exit(main())
