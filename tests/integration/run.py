#!/usr/bin/env python3
"""Integration tests: imapsnap against a real, private Dovecot.

    run.py --binary build/imapsnap [--keep] [PATTERN...]

Starts one Dovecot for the whole run (tests/dovecot/start.sh) in a fresh
temporary directory, runs the tests in tests/integration/test_*.py (only
those whose id contains one of the PATTERNs, if any are given), stops the
server whatever happens, and ends with the line `N passed, N failed` (and
`, N skipped`).  Exits 1 when a test failed, 2 when the run itself could not
start.  With --keep the temporary directory (server log, backups) is left
in place and its path printed.

Python 3 standard library only.
"""

import argparse
import os
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
    """Prints one line per test as it ends."""

    def __init__(self):
        super().__init__()
        self.passed = 0
        self._t0 = 0.0

    def startTest(self, test):
        super().startTest(test)
        self._t0 = time.monotonic()

    def _line(self, word, test):
        print("%-5s %s (%.2f s)" % (word, test.id(),
                                    time.monotonic() - self._t0), flush=True)

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
        print("      " + reason, flush=True)

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


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--binary", required=True, help="the imapsnap to test")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory")
    ap.add_argument("patterns", nargs="*")
    args = ap.parse_args()

    binary = os.path.abspath(args.binary)
    if not os.access(binary, os.X_OK):
        print("run.py: %s is not an executable" % binary, file=sys.stderr)
        return 2

    tmp = tempfile.mkdtemp(prefix="imapsnap-it-")
    # Dovecot's mail processes run as another user: they must reach DIR.
    os.chmod(tmp, 0o755)
    dovecot_dir = os.path.join(tmp, "dovecot")
    workdir = os.path.join(tmp, "work")
    os.makedirs(workdir)

    # A SIGTERM (CI timeout, make interrupted) must still stop Dovecot.
    def on_term(signum, frame):
        raise KeyboardInterrupt()
    signal.signal(signal.SIGTERM, on_term)

    started = False
    result = None
    t0 = time.monotonic()
    try:
        start = subprocess.run(
            ["sh", os.path.join(ROOT, "tests", "dovecot", "start.sh"),
             dovecot_dir], stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        started = os.path.exists(os.path.join(dovecot_dir, "run",
                                              "master.pid"))
        if start.returncode != 0:
            sys.stdout.write(start.stdout.decode("utf-8", "replace"))
            print("run.py: could not start Dovecot", file=sys.stderr)
            return 2
        harness.configure(binary, dovecot_dir, workdir)

        loader = unittest.TestLoader()
        suite = loader.discover(HERE, pattern="test_*.py", top_level_dir=HERE)
        tests = list(flatten(suite))
        if args.patterns:
            tests = [t for t in tests
                     if any(p in t.id() for p in args.patterns)]
        print("imapsnap integration tests: %s, Dovecot in %s, %d tests"
              % (binary, dovecot_dir, len(tests)), flush=True)

        result = Result()
        unittest.TestSuite(tests).run(result)
    except KeyboardInterrupt:
        print("run.py: interrupted", file=sys.stderr)
    finally:
        servers.stop_all()
        if started:
            subprocess.run(["sh", os.path.join(ROOT, "tests", "dovecot",
                                               "stop.sh"), dovecot_dir])

    if result is None:
        return 2
    for kind, items in (("FAIL", result.failures), ("ERROR", result.errors)):
        for test, tb in items:
            print("\n" + "=" * 70)
            print("%s: %s" % (kind, test.id()))
            print("-" * 70)
            print(tb.rstrip())
    for test in result.unexpectedSuccesses:
        print("\nunexpected success: %s" % test.id())

    failed = len(result.failures) + len(result.errors) + \
        len(result.unexpectedSuccesses)
    if failed and not args.keep:
        print("\n(rerun with --keep to keep the server log and backups)")
    if args.keep:
        print("\nkept %s" % tmp)
    else:
        shutil.rmtree(tmp, ignore_errors=True)
    print("integration tests took %.1f s" % (time.monotonic() - t0))
    line = "%d passed, %d failed" % (result.passed, failed)
    if result.skipped:
        line += ", %d skipped" % len(result.skipped)
    print(line, flush=True)
    if result.testsRun == 0:
        return 1
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
