#!/usr/bin/env python3
"""deps.py — which files of lib/ call which, and whether they form a circle.

    contrib/dev/deps.py [--build DIR] [--dot] [PREFIX...]

Reads the object files make built (DIR, default build/) with nm: a file
depends on another when it uses a symbol the other defines (calls, or
takes the address of a function or table).  Also reads `#include "..."`
lines: a .c file depends on the .c file of each header it includes.  Prints
each dependency of the files whose path (below lib/) starts with one of
the PREFIXes (default: every file), and every cycle among them; exits 1
when there is a cycle.

Python 3 standard library only; needs nm (binutils).
"""

import argparse
import os
import re
import subprocess
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))


def symbols(obj):
    out = subprocess.run(["nm", "--defined-only", "-g", obj], text=True,
                         capture_output=True, check=True).stdout
    defined = {ln.split()[-1] for ln in out.splitlines() if ln.strip()}
    out = subprocess.run(["nm", "--undefined-only", obj], text=True,
                         capture_output=True, check=True).stdout
    used = {ln.split()[-1] for ln in out.splitlines() if ln.strip()}
    return defined, used


def includes(src):
    with open(src, encoding="utf-8", errors="replace") as f:
        return re.findall(r'^#include "([^"]+)"', f.read(), re.M)


def cycles(graph):
    """Every elementary cycle, each once (small graphs: plain DFS)."""
    found, seen = [], set()

    def walk(start, node, path):
        for nxt in sorted(graph.get(node, ())):
            if nxt == start:
                cyc = path[:]
                key = frozenset(cyc)
                if key not in seen:
                    seen.add(key)
                    found.append(cyc)
            elif nxt not in path and nxt > start:
                walk(start, nxt, path + [nxt])
    for n in sorted(graph):
        walk(n, n, [n])
    return found


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--build", default=os.path.join(ROOT, "build"))
    ap.add_argument("--dot", action="store_true", help="print Graphviz")
    ap.add_argument("prefix", nargs="*")
    a = ap.parse_args()
    lib = os.path.join(ROOT, "lib")
    files = []
    for d, _, names in os.walk(lib):
        for n in names:
            if n.endswith(".c"):
                files.append(os.path.relpath(os.path.join(d, n), lib))
    files.sort()
    defs, uses = {}, {}
    for f in files:
        obj = os.path.join(a.build, "lib", f[:-2] + ".o")
        if not os.path.exists(obj):
            sys.exit("deps: %s not built (make first)" % obj)
        defs[f], uses[f] = symbols(obj)
    owner = {}
    for f, ds in defs.items():
        for s in ds:
            owner[s] = f
    graph = {f: set() for f in files}
    for f in files:
        for s in uses[f]:
            if s in owner and owner[s] != f:
                graph[f].add(owner[s])
        for h in includes(os.path.join(lib, f)):
            c = h[:-2] + ".c" if h.endswith(".h") else None
            if c and c in graph and c != f:
                graph[f].add(c)
    want = [f for f in files if not a.prefix or
            any(f.startswith(p) for p in a.prefix)]
    sub = {f: {g for g in graph[f] if g in want} for f in want}
    if a.dot:
        print("digraph lib {")
        for f in want:
            for g in sorted(sub[f]):
                print('  "%s" -> "%s";' % (f, g))
        print("}")
    else:
        for f in want:
            print("%-24s -> %s" % (f, " ".join(sorted(sub[f])) or "-"))
    cyc = cycles(sub)
    for c in cyc:
        print("cycle: " + " -> ".join(c + [c[0]]))
    if not cyc:
        print("no cycle among %d files" % len(want))
    return 1 if cyc else 0


if __name__ == "__main__":
    sys.exit(main())
