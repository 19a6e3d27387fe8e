#!/usr/bin/env python3
"""Integration tests: imapsnap against real, private servers.

    run.py --binary build/imapsnap [--jobs N] [--keep] [PATTERN...]

Runs the tests in tests/integration/test_*.py (only those whose id contains
one of the PATTERNs, if any are given) in N processes (--jobs, default
IMAPSNAP_TEST_JOBS or the processors + 1, at most 4).  Each process starts
a Dovecot of its own (tests/dovecot/start.sh) in a fresh temporary
directory, and the Cyrus, Courier and Gmail-like servers its tests ask for,
takes whole modules from a shared queue (the slow ones first), and stops
its servers whatever happens.  The run ends with the line `N passed, N
failed` (and `, N skipped`).  Exits 1 when a test failed, 2 when the run
itself could not start.  With --keep the temporary directory (server logs,
backups) is left in place and its path printed.

Python 3 standard library only.
"""

import argparse
import multiprocessing
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, HERE)

import harness  # noqa: E402
import servers  # noqa: E402


class Result(unittest.TestResult):
    """Reports one line per test as it ends, through `emit`."""

    def __init__(self, emit):
        super().__init__()
        self.passed = 0
        self._t0 = 0.0
        self._emit = emit

    def startTest(self, test):
        super().startTest(test)
        self._t0 = time.monotonic()

    def _line(self, word, test):
        self._emit("%-5s %s (%.2f s)" % (word, test.id(),
                                         time.monotonic() - self._t0))

    def addSuccess(self, test):
        super().addSuccess(test)
        self.passed += 1
        self._line("ok", test)

    def addFailure(self, test, err):
        super().addFailure(test, err)
        self._line("FAIL", test)

    def addError(self, test, err):
        super().addError(test, err)
        self._line("ERROR", test)

    def addSkip(self, test, reason):
        super().addSkip(test, reason)
        self._line("skip", test)
        self._emit("      " + reason)

    def addExpectedFailure(self, test, err):
        super().addExpectedFailure(test, err)
        self.passed += 1
        self._line("ok", test)

    def addUnexpectedSuccess(self, test):
        super().addUnexpectedSuccess(test)
        self._line("FAIL", test)


def flatten(suite):
    for t in suite:
        if isinstance(t, unittest.TestSuite):
            yield from flatten(t)
        else:
            yield t


# Modules that take longest go first, so that with --jobs the last one to
# finish is a short one.  Only an ordering hint: a module missing here runs
# after these, one missing there is ignored.
SLOW_FIRST = ("test_matrix", "test_reliability", "test_interrupt",
              "test_gmail_restore",
              "test_restore", "test_oauth2_refresh", "test_parallel",
              "test_flags_without_condstore", "test_throttle",
              "test_metrics", "test_formats", "test_crash", "test_disk")


def plan(patterns):
    """The tests to run, grouped by module, slowest modules first:
    [(module, [test id, ...]), ...]."""
    loader = unittest.TestLoader()
    suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
    by_module = {}
    for t in flatten(suite):
        if patterns and not any(p in t.id() for p in patterns):
            continue
        by_module.setdefault(t.id().split(".")[0], []).append(t.id())
    rank = {m: i for i, m in enumerate(SLOW_FIRST)}
    order = sorted(by_module, key=lambda m: (rank.get(m, len(rank)), m))
    return [(m, by_module[m]) for m in order]


def start_dovecot(tmp):
    """A private Dovecot in TMP/dovecot; returns its directory, or None
    (with the reason printed) when it did not start."""
    # Dovecot's mail processes run as another user: they must reach DIR.
    os.chmod(tmp, 0o755)
    dovecot_dir = os.path.join(tmp, "dovecot")
    start = subprocess.run(
        ["sh", os.path.join(ROOT, "tests", "dovecot", "start.sh"),
         dovecot_dir], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    if start.returncode != 0:
        sys.stdout.write(start.stdout.decode("utf-8", "replace"))
        return None
    return dovecot_dir


def stop_dovecot(dovecot_dir):
    if os.path.exists(os.path.join(dovecot_dir, "run", "master.pid")):
        subprocess.run(["sh", os.path.join(ROOT, "tests", "dovecot",
                                           "stop.sh"), dovecot_dir])


def on_term(signum, frame):
    raise KeyboardInterrupt()


def worker(binary, tmp, tasks, events):
    """Runs modules taken from TASKS (a queue of (module, ids), None to
    end) against a Dovecot of its own in TMP, and reports through EVENTS:
    ("line", text) per test, then one ("end", passed, failures, skipped,
    run) where failures is [(kind, test id, traceback)], or ("broken",
    reason) when it could not start."""
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    os.makedirs(tmp)
    dovecot_dir = None
    result = Result(lambda text: events.put(("line", text)))
    try:
        dovecot_dir = start_dovecot(tmp)
        if dovecot_dir is None:
            events.put(("broken", "could not start Dovecot"))
            return
        workdir = os.path.join(tmp, "work")
        os.makedirs(workdir)
        harness.configure(binary, dovecot_dir, workdir)
        loader = unittest.TestLoader()
        while True:
            task = tasks.get()
            if task is None:
                break
            _module, ids = task
            tests = list(flatten(loader.loadTestsFromNames(ids)))
            unittest.TestSuite(tests).run(result)
    except KeyboardInterrupt:
        pass
    finally:
        servers.stop_all()
        if dovecot_dir is not None:
            stop_dovecot(dovecot_dir)
    failures = [("FAIL", t.id(), tb) for t, tb in result.failures]
    failures += [("ERROR", t.id(), tb) for t, tb in result.errors]
    failures += [("unexpected success", t.id(), "")
                 for t in result.unexpectedSuccesses]
    events.put(("end", result.passed, failures, len(result.skipped),
                result.testsRun))


def default_jobs():
    """IMAPSNAP_TEST_JOBS, else one more than the processors: the tests
    mostly wait on servers and sleeps, not on the processor."""
    env = os.environ.get("IMAPSNAP_TEST_JOBS")
    if env:
        return max(1, int(env))
    return min(4, (os.cpu_count() or 1) + 1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True, help="the imapsnap to test")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory")
    ap.add_argument("--jobs", "-j", type=int, default=None,
                    help="test processes, each with its own servers "
                    "(default: IMAPSNAP_TEST_JOBS, else processors + 1, "
                    "at most 4)")
    ap.add_argument("patterns", nargs="*")
    args = ap.parse_args()

    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        print("run.py: %s is not an executable" % binary, file=sys.stderr)
        return 2

    t0 = time.monotonic()
    modules = plan(args.patterns)
    ntests = sum(len(ids) for _, ids in modules)
    jobs = max(1, min(args.jobs or default_jobs(), len(modules) or 1))
    tmp = tempfile.mkdtemp(prefix="imapsnap-it-")
    os.chmod(tmp, 0o755)
    print("imapsnap integration tests: %s, %d tests in %d modules, "
          "%d processes, each with its own Dovecot under %s"
          % (binary, ntests, len(modules), jobs, tmp), flush=True)

    ctx = multiprocessing.get_context("fork")
    tasks = ctx.Queue()
    events = ctx.Queue()
    for task in modules:
        tasks.put(task)
    for _ in range(jobs):
        tasks.put(None)
    procs = [ctx.Process(target=worker,
                         args=(binary, os.path.join(tmp, "w%d" % i),
                               tasks, events))
             for i in range(jobs)]

    # A SIGTERM (CI timeout, make interrupted) must still stop the servers:
    # the workers stop theirs when told to.
    signal.signal(signal.SIGTERM, on_term)
    for p in procs:
        p.start()
    passed = skipped = run = 0
    failures = []
    broken = []
    ended = 0
    try:
        while ended < jobs:
            try:
                ev = events.get(timeout=5)
            except queue.Empty:
                if not any(p.is_alive() for p in procs):
                    broken.append("a test process died")
                    break
                continue
            if ev[0] == "line":
                print(ev[1], flush=True)
            elif ev[0] == "broken":
                broken.append(ev[1])
            else:
                ended += 1
                passed += ev[1]
                failures += ev[2]
                skipped += ev[3]
                run += ev[4]
    except KeyboardInterrupt:
        print("run.py: interrupted", file=sys.stderr)
        for p in procs:
            if p.is_alive():
                p.terminate()
        broken.append("interrupted")
    for p in procs:
        p.join()

    for kind, test_id, tb in failures:
        print("\n" + "=" * 70)
        print("%s: %s" % (kind, test_id))
        print("-" * 70)
        print(tb.rstrip())
    for reason in broken:
        print("run.py: %s" % reason, file=sys.stderr)

    failed = len(failures)
    if failed and not args.keep:
        print("\n(rerun with --keep to keep the server logs and backups)")
    if args.keep:
        print("\nkept %s" % tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    print("integration tests took %.1f s" % (time.monotonic() - t0))
    line = "%d passed, %d failed" % (passed, failed)
    if skipped:
        line += ", %d skipped" % skipped
    print(line, flush=True)
    if broken and run == 0:
        return 2
    if run == 0 or broken:
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
