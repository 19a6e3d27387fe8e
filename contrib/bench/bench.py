#!/usr/bin/env python3
"""imapsnap against mbsync on a private Dovecot: wall time, throughput, RSS.

    bench.py --imapsnap BIN [--quick] [--reps N] [--tls starttls|none]
             [--work DIR] [--keep] [--out FILE]

Usually run through contrib/bench/run.sh (`make bench`), which installs
mbsync and GNU time first.  Steps:

 1. Start a private Dovecot (tests/dovecot/start.sh) in a temporary
    directory, and fill three users with contrib/bench/gen_corpus.py:
    "bench" (about 5,300 messages, 72 MB, 7 folders), "small" (the same
    folders with a tenth of the messages, to show how a no-op re-run's
    round trips grow) and "big" (one 100 MB message).
 2. Start contrib/bench/latency_proxy.py in front of Dovecot, adding 10 ms
    each way (20 ms round trip).
 3. Warm up: one full backup by each tool, not counted, so that Dovecot's
    indexes and the page cache are the same for every counted run.
 4. Full backup into a new, empty destination, imapsnap and mbsync
    alternating (which goes first alternates too), REPS times each;
    sync(2) before every run, so that no run pays for another's
    writeback.  Destinations are only removed at the end (see new_dest).
    Then the same through the proxy, 3/5 as many times (at least 2).
    Before and after, two reference figures: a minimal client fetching
    every body and discarding it, and creating 5000 files of 4 KB where
    the backups go.
 5. No-op re-run: after a full backup, run each tool again with nothing
    new, REPS times, directly and through the proxy; the proxy counts the
    client's turns (how often it waited for the server), for "bench" and
    "small".
 6. One full backup of "big" by each tool, for peak RSS.
 7. Far away: a second proxy adds 50 ms each way (100 ms round trip).
    "many" (201 folders of 10 messages) and "three" (5,000 messages in
    3 folders) are backed up in full, directly and through it; "many"
    is re-run with nothing new, directly and through it, and "some"
    (20 folders of 10) too, to show that a no-op's round trips do not
    grow with folders.  mbsync, which takes a minute and more at this
    distance, runs once each; imapsnap 2 (quick) or 3 times.

Each run is `/usr/bin/time -v TOOL ...`; wall time is measured around it
with a monotonic clock, peak RSS is time's "Maximum resident set size".
Both tools use their defaults, over the same transport: STARTTLS with the
test CA (imapsnap --cacert, mbsync CertificateFile), or with --tls none
plaintext (imapsnap --tls none, mbsync SSLType None).  Results go to
stdout and to --out as Markdown and JSON (every run's figures).
"""

import argparse
import json
import os
import platform
import re
import shutil
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
DELAY_MS = 10  # one way; 20 ms round trip
FAR_MS = 50    # one way; 100 ms round trip, a server far away
USERS = {"bench": 1.0, "small": 0.1}
# Accounts by folder count: (folders, messages) spread evenly.
SPREAD = {"many": (201, 2010), "some": (20, 200), "three": (3, 5000)}
BIG_MB = 100
# imapsnap-c0.1: --commit-interval 0.1, a commit by time every 0.1 s in
# every session instead of every 5 s (which a loopback run, done in about
# a second, never reaches): what time commits cost, fifty times over.
COMMIT_PROBE_S = 0.1


def log(msg):
    print("bench: " + msg, file=sys.stderr, flush=True)


def sh(cmd, **kw):
    return subprocess.run(cmd, check=True, text=True, capture_output=True,
                          **kw).stdout


def first_line(cmd):
    try:
        out = subprocess.run(cmd, text=True, capture_output=True,
                             shell=isinstance(cmd, str))
        return (out.stdout or out.stderr).strip().splitlines()[0]
    except (OSError, IndexError):
        return "?"


def machine_info(dest_dir, binary):
    cpu = "?"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    mem = "?"
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal"):
                mem = "%.1f GiB" % (int(line.split()[1]) / 1048576)
    fs = "?"
    with open("/proc/mounts") as f:
        best = ""
        real = os.path.realpath(dest_dir)
        for line in f:
            p = line.split()
            if (real + "/").startswith(p[1].rstrip("/") + "/") and \
                    len(p[1]) >= len(best):
                best = p[1]
                fs = "%s on %s mounted at %s (%s)" % (p[2], p[0], p[1], p[3])
    if "ext4" in fs:
        dev = os.path.basename(fs.split()[2])
        fs += ", %s" % ("with a journal" if os.path.exists(
            "/proc/fs/jbd2/%s-8" % dev) else "no journal")
    # The tree's commit says what the binary is only when it was built
    # from this tree; say which binary ran either way.
    commit = first_line(["git", "-C", ROOT, "rev-parse", "--short=12",
                         "HEAD"])
    dirty = subprocess.run(["git", "-C", ROOT, "diff", "--quiet", "HEAD",
                            "--", "lib", "cmd"]).returncode != 0
    tree = "tree at %s%s" % (commit, ", lib/ or cmd/ modified" if dirty
                             else "")
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory": mem,
        "kernel": platform.release(),
        "dest_fs": fs,
        "imapsnap": "%s (%s; %s)" % (first_line([binary, "--version"]),
                                     binary, tree),
        "mbsync": first_line(["mbsync", "--version"]),
        "dovecot": first_line(["dovecot", "--version"]),
        "python": platform.python_version(),
    }


class Bench:
    def __init__(self, a):
        self.a = a
        self.bin = os.path.abspath(a.imapsnap)
        self.work = a.work or tempfile.mkdtemp(prefix="imapsnap-bench.")
        os.makedirs(self.work, exist_ok=True)
        os.chmod(self.work, 0o755)
        self.dv = os.path.join(self.work, "dovecot")
        self.runlog = open(os.path.join(self.work, "runs.log"), "a")
        self.proxies = []
        self.results = {}
        self.corpus = {}

    # --- setup -------------------------------------------------------------

    def start_dovecot(self):
        log("starting a private Dovecot in %s" % self.dv)
        sh(["sh", os.path.join(ROOT, "tests/dovecot/start.sh"), self.dv])
        env = {}
        with open(os.path.join(self.dv, "env")) as f:
            for line in f:
                k, _, v = line.strip().partition("=")
                env[k] = v
        self.env = env
        self.port = int(env["IMAP_PORT"])

    def fill(self, big=True):
        gen = os.path.join(HERE, "gen_corpus.py")
        for user, scale in list(USERS.items()) + (
                [("big", None)] if big else []) + list(SPREAD.items()):
            sh(["sh", os.path.join(ROOT, "tests/dovecot/adduser.sh"),
                self.dv, user, self.password(user)])
            home = os.path.join(self.env["MAIL_ROOT"], user)
            os.makedirs(home)
            if isinstance(scale, tuple):
                args = ["--folders", str(scale[0]), "--messages",
                        str(scale[1])]
            else:
                args = ["--big", str(BIG_MB)] if scale is None else [
                    "--scale", str(scale)]
            t = time.monotonic()
            out = sh([sys.executable, gen] + args + [home + "/Maildir"])
            msgs, size, folders = (int(x) for x in out.split())
            self.corpus[user] = {"messages": msgs, "bytes": size,
                                 "folders": folders}
            sh(["chown", "-R", self.env["MAIL_OWNER"], home])
            log("%s: %d messages, %.1f MB in %d folders (%.1f s)" % (
                user, msgs, size / 1e6, folders, time.monotonic() - t))

    def start_proxy(self, delay_ms=DELAY_MS, name="proxy"):
        """A latency proxy adding `delay_ms` each way; returns its port.
        Every proxy's connections are recorded in one stats file."""
        stats = os.path.join(self.work, "proxy.jsonl")
        portfile = os.path.join(self.work, name + ".port")
        self.proxy_stats = stats
        proc = subprocess.Popen(
            [sys.executable, os.path.join(HERE, "latency_proxy.py"),
             "--target", "127.0.0.1:%d" % self.port,
             "--delay-ms", str(delay_ms), "--stats", stats,
             "--port-file", portfile],
            stdout=subprocess.DEVNULL, stderr=self.runlog)
        self.proxies.append(proc)
        for _ in range(100):
            if os.path.exists(portfile):
                with open(portfile) as f:
                    return int(f.read())
            time.sleep(0.05)
        raise RuntimeError("the latency proxy did not start")

    def stop(self):
        for proc in self.proxies:
            proc.terminate()
            proc.wait()
        if os.path.exists(os.path.join(self.dv, "run")):
            subprocess.run(["sh", os.path.join(ROOT, "tests/dovecot/stop.sh"),
                            self.dv])
        if not self.a.keep and not self.a.work:
            shutil.rmtree(self.work, ignore_errors=True)

    @staticmethod
    def password(user):
        return user + "-Pa55word"

    # --- the two tools -----------------------------------------------------

    def imapsnap_cmd(self, user, port, dest, connections=None,
                     commit_interval=None):
        """imapsnap with its defaults (4 connections, commits by time
        every 5 s), or with --connections N, --commit-interval S."""
        tls = (["--tls", "none"] if self.a.tls == "none" else
               ["--cacert", self.env["CACERT"]])
        if connections:
            tls += ["--connections", str(connections)]
        if commit_interval:
            tls += ["--commit-interval", str(commit_interval)]
        return ([self.bin, "backup"] + tls +
                ["imap://%s@localhost:%d" % (user, port), dest])

    def mbsync_cmd(self, user, port, dest):
        rc = dest.rstrip("/") + ".mbsyncrc"
        tls = ("SSLType None\n" if self.a.tls == "none" else
               "SSLType STARTTLS\nCertificateFile %s\n" % self.env["CACERT"])
        with open(rc, "w") as f:
            f.write(
                "IMAPAccount %(u)s\nHost localhost\nPort %(p)d\nUser %(u)s\n"
                "Pass %(pw)s\n%(tls)s\n"
                "IMAPStore far\nAccount %(u)s\n\n"
                "MaildirStore near\nPath %(d)s/\nInbox %(d)s/INBOX\n"
                "SubFolders Verbatim\n\n"
                "Channel bench\nFar :far:\nNear :near:\nPatterns *\n"
                "Create Near\nSync Pull\nSyncState *\n"
                % {"u": user, "p": port, "pw": self.password(user),
                   "tls": tls, "d": dest})
        os.makedirs(dest, exist_ok=True)  # mbsync wants the store's root
        return ["mbsync", "-a", "-c", rc]

    def dest(self, tool, tag):
        return os.path.join(self.work, "dest", "%s-%s" % (tool, tag))

    def new_dest(self, tool, tag):
        """A destination no run has used.  Old ones stay until the end:
        on ext4 without a journal (this machine), creating files soon
        after deleting thousands makes every create scan the recently
        deleted inodes (recently_deleted() in find_inode_bit), which
        would cost either tool seconds that have nothing to do with it."""
        self.ndest = getattr(self, "ndest", 0) + 1
        return self.dest(tool, "%s-%d" % (tag, self.ndest))

    def run(self, tool, user, port, dest):
        """One timed run into `dest` (new, or a backup to re-run);
        returns {wall, rss_kb, user, sys}."""
        os.makedirs(os.path.dirname(dest), exist_ok=True)
        os.sync()  # the previous run's writeback is not this run's
        if tool == "imapsnap-1":  # one connection, for comparison
            cmd = self.imapsnap_cmd(user, port, dest, 1)
        elif tool == "imapsnap-c0.1":  # what commits by time cost
            cmd = self.imapsnap_cmd(user, port, dest,
                                    commit_interval=COMMIT_PROBE_S)
        else:
            cmd = (self.imapsnap_cmd if tool == "imapsnap" else
                   self.mbsync_cmd)(user, port, dest)
        tfile = os.path.join(self.work, "time.txt")
        env = dict(os.environ, IMAPSNAP_PASSWORD=self.password(user))
        self.runlog.write("$ %s\n" % " ".join(cmd))
        self.runlog.flush()
        t0 = time.monotonic()
        p = subprocess.run(["/usr/bin/time", "-v", "-o", tfile] + cmd,
                           env=env, stdout=self.runlog, stderr=self.runlog)
        wall = time.monotonic() - t0
        with open(tfile) as f:
            tv = f.read()
        if p.returncode != 0:
            raise RuntimeError("%s exited with %d; see %s/runs.log" % (
                " ".join(cmd), p.returncode, self.work))

        def field(name):
            return float(re.search(re.escape(name) + r": ([0-9.]+)",
                                   tv).group(1))
        return {"wall": wall, "rss_kb": int(field("Maximum resident set "
                                                  "size (kbytes)")),
                "user": field("User time (seconds)"),
                "sys": field("System time (seconds)")}

    def count_messages(self, dest):
        n = 0
        for d, _, files in os.walk(dest):
            if os.path.basename(d) in ("cur", "new"):
                n += len(files)
        return n

    def full_runs(self, name, user, port, reps, probe_commits=False):
        runs = {"imapsnap": [], "imapsnap-1": [], "mbsync": []}
        if probe_commits:
            runs["imapsnap-c0.1"] = []
        tools = list(runs)
        for r in range(reps):
            k = r % len(tools)
            order = tools[k:] + tools[:k]
            for tool in order:
                dest = self.new_dest(tool, name)
                res = self.run(tool, user, port, dest)
                got = self.count_messages(dest)
                want = self.corpus[user]["messages"]
                if got != want:
                    raise RuntimeError("%s saved %d messages of %d in %s" % (
                        tool, got, want, dest))
                runs[tool].append(res)
                log("%-22s %-8s %6.2f s  %6d KB" % (
                    name, tool, res["wall"], res["rss_kb"]))
        self.results[name] = runs

    def proxy_turns(self, before):
        """Sum the proxy's records after the first `before` lines."""
        for _ in range(100):  # the proxy logs once both sides closed
            with open(self.proxy_stats) as f:
                recs = [json.loads(x) for x in f.readlines()[before:]]
            if recs:
                break
            time.sleep(0.05)
        time.sleep(0.1)  # any other connection of the same run
        with open(self.proxy_stats) as f:
            recs = [json.loads(x) for x in f.readlines()[before:]]
        return {k: sum(r[k] for r in recs) for k in
                ("turns", "c2s_bytes", "s2c_bytes", "c2s_lines")} | {
                    "connections": len(recs)}

    def proxy_lines(self):
        if not os.path.exists(self.proxy_stats):
            return 0
        with open(self.proxy_stats) as f:
            return len(f.readlines())

    def noop_runs(self, reps):
        out = {}
        for user in USERS:
            # A backup to re-run against, made directly.
            for tool in ("imapsnap", "mbsync"):
                self.run(tool, user, self.port,
                         self.dest(tool, "noop-" + user))
        # mbsync waits a second when a folder changed within the last one.
        time.sleep(1.5)
        for name, port in (("noop", self.port), ("noop-proxy",
                                                 self.proxy_port)):
            runs = {"imapsnap": [], "mbsync": [], "turns": {}}
            for r in range(reps):
                order = ["imapsnap", "mbsync"] if r % 2 == 0 else [
                    "mbsync", "imapsnap"]
                for tool in order:
                    mark = self.proxy_lines()
                    res = self.run(tool, "bench", port,
                                   self.dest(tool, "noop-bench"))
                    if port == self.proxy_port:
                        res.update(self.proxy_turns(mark))
                    runs[tool].append(res)
                    log("%-22s %-8s %6.3f s  %6d KB%s" % (
                        name, tool, res["wall"], res["rss_kb"],
                        "  %d turns" % res["turns"] if "turns" in res
                        else ""))
            self.results[name] = runs
        # Round trips against a tenth of the messages, same folders.
        turns = {}
        for user in USERS:
            for tool in ("imapsnap", "mbsync"):
                mark = self.proxy_lines()
                self.run(tool, user, self.proxy_port,
                         self.dest(tool, "noop-" + user))
                turns["%s/%s" % (tool, user)] = self.proxy_turns(mark)
        self.results["noop-turns"] = turns

    def big_runs(self):
        runs = {"imapsnap": [], "mbsync": []}
        for tool in ("imapsnap", "mbsync"):
            dest = self.new_dest(tool, "big")
            res = self.run(tool, "big", self.port, dest)
            if self.count_messages(dest) != 1:
                raise RuntimeError("%s did not save the big message" % tool)
            runs[tool].append(res)
            log("%-22s %-8s %6.2f s  %6d KB" % ("big", tool, res["wall"],
                                                res["rss_kb"]))
        self.results["big"] = runs

    def timed(self, tool, user, port, dest, counted=True):
        """One run; through a proxy, with its turns."""
        mark = self.proxy_lines()
        res = self.run(tool, user, port, dest)
        if port != self.port:
            res.update(self.proxy_turns(mark))
        if counted:
            log("%-22s %-8s %6.2f s%s" % (
                user + ("" if port == self.port else " far"), tool,
                res["wall"], "  %d turns over %d connections" % (
                    res["turns"], res["connections"]) if "turns" in res
                else ""))
        return res

    def far_runs(self, reps):
        """Step 7: many folders and a far server (see the docstring)."""
        out = {}
        # Warm-up, not counted: Dovecot's indexes for these users.
        for user in SPREAD:
            self.run("imapsnap", user, self.port,
                     self.new_dest("imapsnap", "warmup-" + user))
        for user in ("many", "three"):
            for where, port in (("loopback", self.port),
                                ("far", self.far_port)):
                runs = out.setdefault("full/%s/%s" % (user, where), {})
                for tool in ("imapsnap", "mbsync"):
                    n = reps if tool == "imapsnap" or where == "loopback" \
                        else 1
                    for _ in range(n):
                        dest = self.new_dest(tool, "%s-%s" % (user, where))
                        res = self.timed(tool, user, port, dest)
                        got = self.count_messages(dest)
                        if got != self.corpus[user]["messages"]:
                            raise RuntimeError("%s saved %d messages of %d"
                                               " in %s" % (tool, got,
                                                           self.corpus[user]
                                                           ["messages"],
                                                           dest))
                        runs.setdefault(tool, []).append(res)
        for user in ("many", "some"):
            for tool in ("imapsnap", "mbsync"):
                self.run(tool, user, self.port,
                         self.dest(tool, "noop-" + user))
        time.sleep(1.5)  # mbsync waits when a folder changed in the last s
        for user in ("many", "some"):
            for where, port in (("loopback", self.port),
                                ("far", self.far_port)):
                runs = out.setdefault("noop/%s/%s" % (user, where), {})
                for tool in ("imapsnap", "mbsync"):
                    n = reps if tool == "imapsnap" or where == "loopback" \
                        else 1
                    for _ in range(n):
                        res = self.timed(tool, user, port,
                                         self.dest(tool, "noop-" + user))
                        runs.setdefault(tool, []).append(res)
        self.results["far"] = out

    def raw_fetch(self, reps):
        """Reference: every body fetched and thrown away by a minimal
        client (Python), one UID FETCH 1:* per folder."""
        times = []
        for _ in range(reps):
            t0 = time.monotonic()
            raw_fetch(self.port, "bench", self.password("bench"),
                      self.a.tls != "none", self.env["CACERT"])
            times.append(time.monotonic() - t0)
        self.results["raw"] = times
        log("raw fetch, bytes discarded: %.2f s" % statistics.median(times))

    def probe_fs(self, tag):
        """Reference: create 5000 files of 4 KB where the backups go, the
        per-file work both tools cannot avoid.  Files stay until the end
        (see new_dest)."""
        d = self.new_dest("probe", tag)
        os.makedirs(d)
        os.sync()
        t0 = time.monotonic()
        for i in range(5000):
            fd = os.open(os.path.join(d, str(i)),
                         os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, b"x" * 4096)
            os.close(fd)
        t = time.monotonic() - t0
        self.results.setdefault("probe", []).append(t)
        log("creating 5000 files of 4 KB (%s): %.2f s" % (tag, t))

    # --- the whole run -----------------------------------------------------

    def main(self):
        t_start = time.monotonic()
        self.start_dovecot()
        self.info = machine_info(self.work, self.bin)
        self.fill()
        self.proxy_port = self.start_proxy()
        self.far_port = self.start_proxy(FAR_MS, "far")
        log("warming up")
        for user in USERS:
            for tool in ("imapsnap", "mbsync"):
                self.run(tool, user, self.port,
                         self.new_dest(tool, "warmup-" + user))
        reps, preps = self.a.reps, max(2, self.a.reps * 3 // 5)
        self.raw_fetch(3)
        self.probe_fs("before")
        self.full_runs("full", "bench", self.port, reps, probe_commits=True)
        self.full_runs("full-proxy", "bench", self.proxy_port, preps)
        self.noop_runs(reps)
        self.big_runs()
        self.far_runs(2 if self.a.quick else 3)
        self.probe_fs("after")
        self.elapsed = time.monotonic() - t_start
        report = self.report()
        print(report)
        if self.a.out:
            os.makedirs(os.path.dirname(os.path.abspath(self.a.out)),
                        exist_ok=True)
            with open(self.a.out, "w") as f:
                f.write(report)
            with open(os.path.splitext(self.a.out)[0] + ".json", "w") as f:
                json.dump({"info": self.info, "corpus": self.corpus,
                           "results": self.results,
                           "elapsed": self.elapsed}, f, indent=1)
            log("results in %s" % self.a.out)

    # --- report ------------------------------------------------------------

    def far_report(self, w):
        F = self.results["far"]
        med = statistics.median
        w("\nMany folders, and a server 100 ms away (a proxy adding 50 ms "
          "each way); turns as above, summed over the run's connections "
          "(for the first run):\n")
        w("| account | run | where | imapsnap s (n) | mbsync s (n) | "
          "imapsnap turns (connections) | mbsync turns (connections) |")
        w("| --- | --- | --- | --- | --- | --- | --- |")
        names = {"many": "201 folders × 10", "some": "20 folders × 10",
                 "three": "5,000 in 3 folders"}
        for key in sorted(F, key=lambda k: (k.split("/")[1] != "many",
                                            k.split("/")[1],
                                            k.split("/")[0], k)):
            kind, user, where = key.split("/")
            cells = []
            for tool in ("imapsnap", "mbsync"):
                rs = F[key][tool]
                cells.append("%.2f (%d)" % (med(x["wall"] for x in rs),
                                            len(rs)))
            for tool in ("imapsnap", "mbsync"):
                r0 = F[key][tool][0]
                cells.append("%d (%d)" % (r0["turns"], r0["connections"])
                             if "turns" in r0 else "–")
            w("| %s | %s | %s | %s |" % (
                names[user], "full backup" if kind == "full" else
                "no-op re-run", "100 ms RTT" if where == "far" else
                "loopback", " | ".join(cells)))

    def report(self):
        R, C = self.results, self.corpus["bench"]
        med = statistics.median
        mb = C["bytes"] / 1e6
        lines = []
        w = lines.append
        w("## Results (%s, %s)\n" % (
            "quick" if self.a.quick else "full",
            "STARTTLS" if self.a.tls != "none" else "plaintext"))
        w("Machine: %(nproc)d × %(cpu)s, %(memory)s, Linux %(kernel)s; "
          "destination: %(dest_fs)s." % self.info)
        w("imapsnap %(imapsnap)s; %(mbsync)s; Dovecot %(dovecot)s." %
          self.info)
        w("Corpus \"bench\": %d messages, %.1f MB, %d folders (plus "
          "\"small\": %d messages; \"big\": one message of %.1f MB).\n" % (
              C["messages"], mb, C["folders"],
              self.corpus["small"]["messages"],
              self.corpus["big"]["bytes"] / 1e6))
        w("| run | tool | median wall s (min–max, n) | imapsnap/mbsync | "
          "msgs/s | MB/s | CPU s (user+sys) | peak RSS KB (max) |")
        w("| --- | --- | --- | --- | --- | --- | --- | --- |")
        labels = {"full": "full backup", "full-proxy":
                  "full backup, 20 ms RTT proxy",
                  "noop": "no-op re-run", "noop-proxy":
                  "no-op re-run, 20 ms RTT proxy",
                  "big": "one %d MB message" % BIG_MB}
        for key in ("full", "full-proxy", "noop", "noop-proxy", "big"):
            runs = R[key]
            ratio = med(x["wall"] for x in runs["imapsnap"]) / med(
                x["wall"] for x in runs["mbsync"])
            for tool in [t for t in ("imapsnap", "imapsnap-1",
                                     "imapsnap-c0.1", "mbsync")
                         if t in runs]:
                rs = runs[tool]
                walls = [x["wall"] for x in rs]
                ratio = med(walls) / med(x["wall"] for x in runs["mbsync"])
                m = med(walls)
                if key.startswith("full"):
                    tput = "%.0f | %.1f" % (C["messages"] / m, mb / m)
                elif key == "big":
                    tput = "– | %.1f" % (self.corpus["big"]["bytes"] / 1e6 /
                                         m)
                else:
                    tput = "– | –"
                w("| %s | %s | %.3f (%.3f–%.3f, %d) | %s | %s | %.2f | %d |" %
                  (labels[key], tool, m, min(walls), max(walls), len(walls),
                   "%.2f" % ratio if tool != "mbsync" else "",
                   tput, med(x["user"] + x["sys"] for x in rs),
                   max(x["rss_kb"] for x in rs)))
        if "imapsnap-c0.1" in R["full"]:
            d = med(x["wall"] for x in R["full"]["imapsnap-c0.1"]) - med(
                x["wall"] for x in R["full"]["imapsnap"])
            w("\nCommits by time: imapsnap-c0.1 commits every %.1f s in "
              "every session (the default, 5 s, is never reached on "
              "loopback): %+.3f s of median wall time against the "
              "default." % (COMMIT_PROBE_S, d))
        w("\nReference: a minimal client (Python) fetching every body with "
          "one `UID FETCH 1:* BODY.PEEK[]` per folder and discarding the "
          "bytes: median %.2f s.  Creating 5000 files of 4 KB (Python, no "
          "sync) where the backups go: %s s (before and after the runs; "
          "this filesystem's speed at it varies a lot, see "
          "docs/performance.md)." % (
              med(R["raw"]), " and ".join("%.2f" % x for x in R["probe"])))
        w("\nNo-op re-run through the proxy: client turns (times the client "
          "waited for the server, login and TLS included), connections, "
          "bytes each way:\n")
        w("| tool | user (messages) | turns | connections | bytes sent | "
          "bytes received |")
        w("| --- | --- | --- | --- | --- | --- |")
        for k, t in R["noop-turns"].items():
            tool, user = k.split("/")
            w("| %s | %s (%d) | %d | %d | %d | %d |" % (
                tool, user, self.corpus[user]["messages"], t["turns"],
                t["connections"], t["c2s_bytes"], t["s2c_bytes"]))
        self.far_report(w)
        w("\nTargets:\n")
        r_full = med(x["wall"] for x in R["full"]["imapsnap"]) / med(
            x["wall"] for x in R["full"]["mbsync"])
        r_proxy = med(x["wall"] for x in R["full-proxy"]["imapsnap"]) / med(
            x["wall"] for x in R["full-proxy"]["mbsync"])
        n_i = med(x["wall"] for x in R["noop"]["imapsnap"])
        n_m = med(x["wall"] for x in R["noop"]["mbsync"])
        T = R["noop-turns"]
        same = T["imapsnap/bench"]["turns"] == T["imapsnap/small"]["turns"]
        rss = max(x["rss_kb"] for k in ("full", "full-proxy", "noop",
                                        "noop-proxy", "big")
                  for x in R[k]["imapsnap"])

        def ok(b):
            return "met" if b else "**missed**"
        w("- full backup ≤ 0.25 × mbsync: %.2f, %s" % (r_full,
                                                       ok(r_full <= 0.25)))
        w("- 20 ms RTT ≤ 0.6 × mbsync: %.2f, %s" % (r_proxy,
                                                    ok(r_proxy <= 0.6)))
        w("- no-op re-run no slower than mbsync: %.3f s vs %.3f s, %s" % (
            n_i, n_m, ok(n_i <= n_m)))
        w("- no-op round trips independent of the message count: %d turns "
          "for %d messages, %d for %d, %s" % (
              T["imapsnap/bench"]["turns"], C["messages"],
              T["imapsnap/small"]["turns"],
              self.corpus["small"]["messages"], ok(same)))
        w("- peak RSS ≤ 16 MB (16384 KB) in every run, the %d MB message "
          "included: %d KB, %s" % (BIG_MB, rss, ok(rss <= 16384)))
        F = R["far"]

        def fmed(key, tool="imapsnap"):
            return med(x["wall"] for x in F[key][tool])
        far_full, far_noop = fmed("full/many/far"), fmed("noop/many/far")
        three_far = fmed("full/three/far")
        three_lo = fmed("full/three/loopback")
        t_many = F["noop/many/far"]["imapsnap"][0]["turns"]
        t_some = F["noop/some/far"]["imapsnap"][0]["turns"]
        w("- 201 folders × 10 messages at 100 ms RTT, full backup ≤ 5 s: "
          "%.2f s, %s" % (far_full, ok(far_full <= 5)))
        w("- the same, no-op re-run ≤ 1.5 s: %.2f s, %s" % (
            far_noop, ok(far_noop <= 1.5)))
        w("- 5,000 messages in 3 folders at 100 ms RTT within loopback + "
          "1.5 s: %.2f s against %.2f s, %s" % (
              three_far, three_lo, ok(three_far <= three_lo + 1.5)))
        w("- no-op round trips the same for 20 and 201 folders: %d and %d "
          "turns, %s" % (t_some, t_many, ok(t_some == t_many)))
        w("\nThe whole benchmark took %.0f s." % self.elapsed)
        return "\n".join(lines) + "\n"


def raw_fetch(port, user, password, tls, cacert):
    """Fetch every body of every folder, discard it; returns the bytes."""
    s = socket.create_connection(("127.0.0.1", port))
    f = s.makefile("rb", buffering=1 << 18)
    n = [0]

    def cmd(line):
        n[0] += 1
        tag = b"r%d" % n[0]
        s.sendall(tag + b" " + line + b"\r\n")
        return tag

    def until(tag, lines=None):
        got = 0
        while True:
            line = f.readline()
            if not line:
                raise RuntimeError("connection closed")
            m = re.search(rb"\{(\d+)\}\r\n$", line)
            if m:
                left = int(m.group(1))
                got += left
                while left:
                    chunk = f.read(min(left, 1 << 18))
                    left -= len(chunk)
                continue
            if lines is not None and line.startswith(b"* "):
                lines.append(line)
            if line.startswith(tag + b" "):
                if not line.startswith(tag + b" OK"):
                    raise RuntimeError(line.decode())
                return got

    f.readline()
    if tls:
        until(cmd(b"STARTTLS"))
        ctx = ssl.create_default_context(cafile=cacert)
        s = ctx.wrap_socket(s, server_hostname="localhost")
        f = s.makefile("rb", buffering=1 << 18)
    until(cmd(b'LOGIN "%s" "%s"' % (user.encode(), password.encode())))
    lst = []
    until(cmd(b'LIST "" "*"'), lst)
    total = 0
    for line in lst:
        if b"\\Noselect" in line:
            continue
        name = line.rstrip(b"\r\n").rsplit(b" ", 1)[1]
        until(cmd(b"EXAMINE " + name))
        total += until(cmd(b"UID FETCH 1:* BODY.PEEK[]"))
    until(cmd(b"LOGOUT"))
    s.close()
    return total


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--imapsnap", required=True)
    ap.add_argument("--quick", action="store_true",
                    help="fewer repetitions (2 instead of 5)")
    ap.add_argument("--reps", type=int)
    ap.add_argument("--tls", choices=("starttls", "none"),
                    default="starttls")
    ap.add_argument("--work", help="work here (kept) instead of a "
                    "temporary directory")
    ap.add_argument("--keep", action="store_true",
                    help="keep the temporary directory")
    ap.add_argument("--out", help="write the report here (and .json)")
    a = ap.parse_args()
    if a.reps is None:
        a.reps = 2 if a.quick else 5
    b = Bench(a)
    try:
        b.main()
    except (RuntimeError, subprocess.CalledProcessError) as e:
        msg = str(e)
        if isinstance(e, subprocess.CalledProcessError):
            msg += "\n" + (e.stderr or "")
        log("failed: " + msg)
        b.a.keep = True
        log("kept %s" % b.work)
        return 1
    finally:
        b.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
