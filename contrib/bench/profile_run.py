#!/usr/bin/env python3
"""Where imapsnap's time goes in a full backup of the benchmark corpus.

    profile_run.py --imapsnap BIN [--tls starttls|none] [--out DIR]

Starts a private Dovecot with the users of bench.py ("bench", about 5,300
messages; "small", a tenth of that), warms it up, and then looks at one
full backup of each in four ways:

  decompose.txt  median wall time of variants that change one thing at a
                 time: plaintext instead of STARTTLS, tmpfs instead of the
                 disk, and a minimal client that discards the bytes;
  syscalls.txt   `perf trace -s`: count and time of every system call of a
                 full backup of "bench" (strace -c -w -f where perf trace
                 cannot run; either inflates each call by the tracing);
  perf.txt       `perf record -a -e cpu-clock -g` over a full backup of
                 "bench": CPU time per process (imapsnap against Dovecot's
                 imap and imap-login), then imapsnap's hottest symbols,
                 kernel included.  cpu-clock is a software event: it works
                 in virtual machines without hardware counters;
  callgrind.txt  valgrind --tool=callgrind over a full backup of "small":
                 instructions per function, inclusive and self, for the
                 user-space side (valgrind slows a run about 50 times,
                 hence the smaller corpus).

Every raw file stays in DIR (default: build/bench/profile beside BIN).
Needs perf (linux-perf) and valgrind; what is missing is skipped.  Run it
at least 35 s after deleting many files on the destination's filesystem
(see docs/performance.md on ext4 without a journal).
"""

import argparse
import os
import re
import shutil
import statistics
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import bench  # noqa: E402


def have(prog):
    return shutil.which(prog) is not None


def head(text, n):
    return "\n".join(text.splitlines()[:n])


def classify(script):
    """Share of samples per system call (from the kernel frames of each
    callchain) or, outside the kernel, per shared object."""
    counts = {}
    total = recent = 0
    for sample in script.split("\n\n"):
        frames = [x.split(None, 1)[1] for x in sample.strip().splitlines()
                  if len(x.split(None, 1)) == 2]
        if not frames:
            continue
        total += 1
        recent += any(f.startswith("recently_deleted") for f in frames)
        key = None
        # The frame do_syscall_64 called names the call: __x64_sys_openat,
        # or ksys_write where the wrapper was inlined.
        for i, f in enumerate(frames):
            if f.startswith("do_syscall_64") and i > 0:
                name = frames[i - 1].split()[0]
                key = "syscall " + re.sub(
                    r"^(__x64_sys_|__do_sys_|ksys_|__sys_|do_sys_)", "",
                    name)
                break
        if key is None:
            top = frames[0]
            dso = re.search(r"\(([^)]*)\)\s*$", top)
            dso = os.path.basename(dso.group(1)) if dso else "?"
            key = ("kernel, no system call (faults, interrupts)"
                   if "kernel" in dso else "user " + dso)
        counts[key] = counts.get(key, 0) + 1
    rows = sorted(counts.items(), key=lambda kv: -kv[1])
    return "\n".join("%6.1f%%  %s" % (100.0 * n / total, k)
                     for k, n in rows[:20]) + (
        "\n(%d samples; %.1f%% of them in ext4's recently_deleted(), the "
        "cost of creating files soon after many were deleted)" % (
            total, 100.0 * recent / total))


class Profile(bench.Bench):
    def wrapped(self, wrapper, user, dest):
        """Run imapsnap under `wrapper` (a list) into `dest`."""
        os.sync()
        env = dict(os.environ, IMAPSNAP_PASSWORD=self.password(user))
        cmd = wrapper + self.imapsnap_cmd(user, self.port, dest)
        self.runlog.write("$ %s\n" % " ".join(cmd))
        self.runlog.flush()
        t0 = time.monotonic()
        p = subprocess.run(cmd, env=env, stdout=self.runlog,
                           stderr=subprocess.PIPE, text=True)
        if p.returncode != 0:
            raise RuntimeError("%s: %s" % (" ".join(cmd), p.stderr[-2000:]))
        return time.monotonic() - t0, p.stderr

    def syscalls(self, out):
        path = os.path.join(out, "syscalls.txt")
        if have("perf") and subprocess.run(
                ["perf", "trace", "-s", "-o", "/dev/null", "true"],
                capture_output=True).returncode == 0:
            self.wrapped(["perf", "trace", "-s", "-o", path], "bench",
                         self.new_dest("imapsnap", "trace"))
        elif have("strace"):
            self.wrapped(["strace", "-f", "-c", "-w", "-o", path], "bench",
                         self.new_dest("imapsnap", "trace"))
        else:
            return "(neither perf trace nor strace)"
        with open(path) as f:
            return head(f.read().strip(), 22)

    def perf(self, out):
        if not have("perf"):
            return "(no perf)"
        data = os.path.join(out, "perf.data")
        self.wrapped(["perf", "record", "-q", "-a", "-g", "-e", "cpu-clock",
                      "-o", data, "--"], "bench",
                     self.new_dest("imapsnap", "perf"))

        def report(*args):
            return subprocess.run(
                ["perf", "report", "-i", data, "--stdio", "--no-children",
                 "-g", "none"] + list(args), capture_output=True,
                text=True).stdout

        def rows(text, n):
            return "\n".join([x for x in text.splitlines()
                              if x.strip() and not x.startswith("#")][:n])
        by_comm = rows(report("--sort", "comm"), 8)
        syms = rows(report("--comm", "imapsnap", "--percentage", "relative",
                           "--sort", "dso,sym"), 30)
        calls = classify(subprocess.run(
            ["perf", "script", "-i", data, "--comm", "imapsnap", "-F",
             "ip,sym,dso"], capture_output=True, text=True).stdout)
        text = ("CPU samples per process, whole machine (other processes "
                "are other work on it):\n" + by_comm +
                "\n\nimapsnap's CPU samples by the system call they were "
                "in, else by the library they were in:\n" + calls +
                "\n\nimapsnap's hottest symbols (share of its own samples):\n" +
                syms)
        with open(os.path.join(out, "perf.txt"), "w") as f:
            f.write(text + "\n")
        return text

    def callgrind(self, out):
        if not have("valgrind"):
            return "(no valgrind)"
        cg = os.path.join(out, "callgrind.out")
        self.wrapped(["valgrind", "--tool=callgrind", "--callgrind-out-file="
                      + cg], "small", self.new_dest("imapsnap", "callgrind"))
        incl = subprocess.run(["callgrind_annotate", "--inclusive=yes", cg],
                              capture_output=True, text=True).stdout
        self_ = subprocess.run(["callgrind_annotate", cg],
                               capture_output=True, text=True).stdout

        def table(text, n, own=False):
            lines = text.split("file:function", 1)[-1].splitlines()[2:]
            if own:
                lines = [x for x in lines if "imapsnap]" in x]
            return "\n".join(x[:150] for x in lines[:n] if x.strip())
        total = [x for x in self_.splitlines() if "PROGRAM TOTALS" in x]
        text = ("Instructions, full backup of \"small\" (%d messages): %s\n\n"
                "Inclusive, imapsnap's own functions:\n%s\n\n"
                "Self, every object:\n%s" % (
                    self.corpus["small"]["messages"],
                    total[0].strip() if total else "?",
                    table(incl, 25, own=True), table(self_, 25)))
        with open(os.path.join(out, "callgrind.txt"), "w") as f:
            f.write(text + "\n")
        return text

    def decompose(self, out, reps=3):
        """Median wall time of variants of one full backup of "bench",
        each changing one thing: transport, destination filesystem."""
        tmpfs = "/dev/shm" if os.path.isdir("/dev/shm") else None
        rows = []

        def timed(label, fn):
            walls = []
            for _ in range(reps):
                walls.append(fn())
            rows.append("%-58s %6.2f s  (%s)" % (
                label, statistics.median(walls),
                " ".join("%.2f" % w for w in walls)))
            bench.log(rows[-1])

        def isnap(tls, where):
            def go():
                saved, self.a.tls = self.a.tls, tls
                try:
                    if where == "disk":
                        dest = self.new_dest("imapsnap", "dec")
                    else:
                        dest = os.path.join(where, "imapsnap-dec-%d-%d" % (
                            os.getpid(), time.monotonic_ns()))
                    res = self.run("imapsnap", "bench", self.port, dest)
                    if where != "disk":
                        shutil.rmtree(dest, ignore_errors=True)
                    return res["wall"]
                finally:
                    self.a.tls = saved
            return go

        def raw(tls):
            def go():
                t0 = time.monotonic()
                bench.raw_fetch(self.port, "bench", self.password("bench"),
                                tls, self.env["CACERT"])
                return time.monotonic() - t0
            return go
        timed("imapsnap, STARTTLS, into %s" % self.info_fs, isnap(
            "starttls", "disk"))
        timed("imapsnap, plaintext, into the same", isnap("none", "disk"))
        if tmpfs:
            timed("imapsnap, STARTTLS, into tmpfs (%s)" % tmpfs,
                  isnap("starttls", tmpfs))
            timed("imapsnap, plaintext, into tmpfs", isnap("none", tmpfs))
        timed("raw fetch (Python), STARTTLS, bytes discarded", raw(True))
        timed("raw fetch (Python), plaintext, bytes discarded", raw(False))
        text = "\n".join(rows)
        with open(os.path.join(out, "decompose.txt"), "w") as f:
            f.write(text + "\n")
        return text

    def main(self):
        out = self.a.out
        os.makedirs(out, exist_ok=True)
        self.start_dovecot()
        self.fill(big=False)
        for user in bench.USERS:
            self.run("imapsnap", user, self.port,
                     self.new_dest("imapsnap", "warmup-" + user))
        self.info_fs = bench.machine_info(self.work, self.bin)[
            "dest_fs"].split(" (")[0]
        for name, fn in (("wall time, one change at a time", self.decompose),
                         ("system calls", self.syscalls),
                         ("perf", self.perf), ("callgrind", self.callgrind)):
            bench.log("profiling: " + name)
            print("== %s\n%s\n" % (name, fn(out)), flush=True)
        bench.log("raw files in %s" % out)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--imapsnap", required=True)
    ap.add_argument("--tls", choices=("starttls", "none"),
                    default="starttls")
    ap.add_argument("--out")
    a = ap.parse_args()
    a.out = os.path.abspath(a.out or os.path.join(
        os.path.dirname(a.imapsnap), "bench", "profile"))
    a.work, a.keep, a.quick = None, False, False
    p = Profile(a)
    try:
        p.main()
    except (RuntimeError, subprocess.CalledProcessError) as e:
        bench.log("failed: %s %s" % (e, getattr(e, "stderr", "") or ""))
        p.a.keep = True
        bench.log("kept %s" % p.work)
        return 1
    finally:
        p.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
