"""Running imapsnap under watch, for the reliability tests: a hard time
limit (a hang is a failure, not a stuck test run), its peak memory, and
checks on what it left on disk.

Used by tests/integration/test_{hostile,reliability,crash,disk}.py next to
harness.py (whose Run this reuses, so failures print the same way).

Python 3 standard library only.
"""

import os
import re
import resource
import signal
import subprocess
import tempfile
import time

import harness

MAILDIR_NAME = re.compile(r"^(\d+)_(\d+)\.imapsnap(?::2,([A-Za-z]*))?$")


class Hang(AssertionError):
    pass


class _Proc:
    def __init__(self, rc, out, err):
        self.returncode, self.stdout, self.stderr = rc, out, err


def start(args, password=None, env=None, rlimits=None, ignore=()):
    """Start imapsnap (own session, stdin /dev/null, output to temporary
    files), with the signals in `ignore` ignored.  Returns a handle for
    finish()."""
    e = dict(os.environ)
    e.pop("IMAPSNAP_PASSWORD", None)
    if password is not None:
        e["IMAPSNAP_PASSWORD"] = password
    if env:
        e.update(env)
    args = [str(a) for a in args]
    out = tempfile.TemporaryFile()
    err = tempfile.TemporaryFile()

    def limits():
        # Keep SIGXFSZ from killing the process: with RLIMIT_FSIZE the
        # write must fail with EFBIG instead.
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        # As from a shell in the foreground, whatever the test process
        # ignores (run.py's workers ignore SIGINT): imapsnap keeps a
        # signal ignored by whoever started it.
        for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
            signal.signal(sig, signal.SIG_DFL)
        for sig in ignore:
            signal.signal(sig, signal.SIG_IGN)
        for what, value in (rlimits or {}).items():
            resource.setrlimit(what, (value, value))

    forked_kb = _status_kb("self", "VmRSS")
    proc = subprocess.Popen([harness.BINARY] + args, env=e,
                            stdin=subprocess.DEVNULL, stdout=out, stderr=err,
                            start_new_session=True, preexec_fn=limits)
    return {"proc": proc, "args": args, "out": out, "err": err,
            "t0": time.monotonic(), "forked_kb": forked_kb, "hwm_kb": 0}


def _status_kb(pid, field):
    """A "<field>: N kB" line of /proc/PID/status, or 0."""
    try:
        with open("/proc/%s/status" % pid) as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return 0


def _peak_kb(h, rusage):
    """imapsnap's peak resident memory.  ru_maxrss also counts the copy of
    this (Python) process that fork made before exec: preexec_fn rules
    out vfork, and the copy's resident pages are all this process's.  A
    worker of run.py that earlier tests made large would make every run
    look that large.  So when ru_maxrss is no more than this process's
    size at the fork, the peak of imapsnap's own image is taken from its
    VmHWM, read while it ran."""
    maxrss = rusage.ru_maxrss if rusage else 0
    if maxrss > h["forked_kb"] or not h["hwm_kb"]:
        return maxrss
    return h["hwm_kb"]


def kill(h, sig=signal.SIGKILL):
    try:
        os.killpg(h["proc"].pid, sig)
    except ProcessLookupError:
        pass


def finish(h, timeout):
    """Wait at most `timeout` seconds.  Returns a harness.Run with
    `.maxrss_kb` (peak resident memory) and `.signal` (the signal that
    ended it, or None).  A process still running after `timeout` is killed
    and Hang raised: imapsnap must never hang."""
    proc = h["proc"]
    deadline = h["t0"] + timeout
    status = rusage = None
    while True:
        h["hwm_kb"] = max(h["hwm_kb"], _status_kb(proc.pid, "VmHWM"))
        pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
        if pid:
            break
        if time.monotonic() > deadline:
            kill(h)
            pid, status, rusage = os.wait4(proc.pid, 0)
            proc.returncode = -9
            run = _collect(h, -9, rusage)
            raise Hang("imapsnap did not exit within %.0f s (killed):\n%s"
                       % (timeout, run))
        time.sleep(0.01)
    if os.WIFSIGNALED(status):
        rc = -os.WTERMSIG(status)
    else:
        rc = os.WEXITSTATUS(status)
    proc.returncode = rc
    run = _collect(h, rc, rusage)
    if harness.SANITIZER_REPORT.search(run.stderr):
        raise AssertionError("sanitizer report:\n%s" % run)
    return run


def _collect(h, rc, rusage):
    h["out"].seek(0)
    h["err"].seek(0)
    proc = _Proc(rc, h["out"].read(), h["err"].read())
    h["out"].close()
    h["err"].close()
    run = harness.Run(h["args"], proc, time.monotonic() - h["t0"])
    run.maxrss_kb = _peak_kb(h, rusage)
    run.signal = -rc if rc < 0 else None
    return run


_sanitized = None


def sanitized():
    """Whether the imapsnap under test is built with AddressSanitizer,
    whose shadow memory makes peak memory meaningless as a measure."""
    global _sanitized
    if _sanitized is None:
        with open(harness.BINARY, "rb") as f:
            _sanitized = b"__asan_init" in f.read()
    return _sanitized


def run(args, password=None, timeout=60, env=None, rlimits=None):
    return finish(start(args, password, env, rlimits), timeout)


def backup_fake(srv, dest, *extra, timeout=30, password="secret", **kw):
    """imapsnap backup of a FakeIMAP server (plaintext, --tls none)."""
    args = ["backup", "--tls", "none"] + list(extra) + [srv.url(), dest]
    return run(args, password=password, timeout=timeout, **kw)


# --- what is on disk ------------------------------------------------------


def tree(root):
    """Every path below root (relative, '/'-separated), directories with a
    trailing '/'."""
    out = []
    for d, dirs, files in os.walk(root):
        rel = os.path.relpath(d, root)
        for x in dirs:
            out.append(os.path.normpath(os.path.join(rel, x)) + "/")
        for x in files:
            out.append(os.path.normpath(os.path.join(rel, x)))
    return sorted(out)


def maildir_files(folder_dir):
    """{uid: (uidvalidity, path)} of DEST/<folder>/cur; AssertionError on a
    UID present twice or a name that is not imapsnap's."""
    out = {}
    d = os.path.join(folder_dir, "cur")
    if not os.path.isdir(d):
        return out
    for name in os.listdir(d):
        m = MAILDIR_NAME.match(name)
        if not m:
            raise AssertionError("unexpected file %s/%s" % (d, name))
        uid = int(m.group(2))
        if uid in out:
            raise AssertionError("UID %d twice in %s" % (uid, d))
        out[uid] = (int(m.group(1)), os.path.join(d, name))
    return out


def read(path):
    with open(path, "rb") as f:
        return f.read()


# --- the state file (docs/state.md), read independently of imapsnap -------

_FOLDER = re.compile(r'^folder "((?:[^"\\]|\\.)*)" delim (?:"(?:[^"\\]|'
                     r'\\.)*"|nil)$')


def _unquote(s):
    out, i = bytearray(), 0
    while i < len(s):
        if s[i] == "\\":
            if s[i + 1] == "x":
                out.append(int(s[i + 2:i + 4], 16))
                i += 4
            else:
                out += s[i + 1].encode()
                i += 2
        else:
            out += s[i].encode()
            i += 1
    return bytes(out)


def uids_of(text):
    """'1:3,7' -> {1, 2, 3, 7}"""
    out = set()
    for part in text.split(","):
        if not part:
            continue
        a, _, b = part.partition(":")
        a, b = int(a), int(b or a)
        out.update(range(min(a, b), max(a, b) + 1))
    return out


def load_state(dest):
    """{raw folder name: {"uidvalidity", "uidnext", "saved" (a set),
    "old" (list)}} from DEST/.imapsnap/state; {} when there is none."""
    path = os.path.join(dest, ".imapsnap", "state")
    if not os.path.exists(path):
        return {}
    out, cur = {}, None
    with open(path, encoding="ascii") as f:
        lines = f.read().split("\n")
    if lines[0] != "imapsnap-state 1":
        raise AssertionError("%s: bad first line %r" % (path, lines[0]))
    for ln in lines[1:]:
        ln = ln.strip()
        if not ln or ln.startswith("#"):
            continue
        m = _FOLDER.match(ln)
        if m:
            cur = out[_unquote(m.group(1))] = {"saved": set(), "old": [],
                                               "uidvalidity": 0,
                                               "uidnext": 0}
            continue
        word, _, rest = ln.partition(" ")
        if word in ("uidvalidity", "uidnext"):
            cur[word] = int(rest)
        elif word == "saved":
            cur["saved"] |= uids_of(rest)
        elif word == "old-uidvalidity":
            cur["old"].append(int(rest))
    return out


# --- what a connection carried (for tests/faults/proxy.py) -----------------

_LITERAL = re.compile(rb"\{(\d+)\+?\}$")
_UID = re.compile(rb"\bUID (\d+)")


def completed_fetches(c2s, s2c):
    """[(folder, uid)] of every FETCH response with a body that arrived
    complete (up to its final CRLF) in the server->client bytes `s2c`,
    the folder being the one the client's EXAMINE (in `c2s`) opened."""
    tags = {}
    for line in bytes(c2s).split(b"\r\n"):
        tag, _, rest = line.partition(b" ")
        if rest.upper().startswith(b"EXAMINE "):
            name = rest[8:].split(b" (")[0]
            tags[tag] = name.strip(b'"')
    data = bytes(s2c)
    pos, folder, out = 0, None, []
    while True:
        parts = []
        while True:
            eol = data.find(b"\r\n", pos)
            if eol < 0:
                return out
            line = data[pos:eol]
            parts.append(line)
            pos = eol + 2
            m = _LITERAL.search(line)
            if not m:
                break
            n = int(m.group(1))
            if pos + n > len(data):
                return out
            pos += n
        head = parts[0]
        if head.startswith(b"* ") and b" FETCH " in head[:20] and \
                b"BODY[]" in head:
            m = _UID.search(head)
            if m:
                out.append((folder, int(m.group(1))))
        elif not head.startswith((b"* ", b"+")):
            tag, _, rest = head.partition(b" ")
            if tag in tags and rest.startswith(b"OK"):
                folder = tags[tag]


# --- mail for the real Dovecot ----------------------------------------------


def fill_inbox(user, n, size=300, seed=0):
    """Put n messages of about `size` bytes into the INBOX of a `user`
    (harness.User) that has never logged in; returns their bodies in UID
    order (Dovecot gives UIDs in file name order)."""
    import shutil
    import random
    rnd = random.Random(seed)
    if os.path.exists(user.home):
        raise RuntimeError("fill_inbox after first login")
    bodies = []
    for sub in ("cur", "new", "tmp"):
        os.makedirs(os.path.join(user.maildir, sub))
    for i in range(n):
        head = (b"From: a@example.org\r\nTo: b@example.org\r\nSubject: "
                b"message %d\r\nMessage-ID: <%d.%d@fill.test>\r\n\r\n"
                % (i, i, seed))
        filler = bytes(rnd.choice(b"abcdefghij \r\n") for _ in
                       range(max(0, size - len(head))))
        body = head + filler.replace(b"\r", b"") + b"\r\n"
        body = body.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        name = "%010d.M%dP1.fill:2,S" % (1500000000 + i, i)
        with open(os.path.join(user.maildir, "cur", name), "wb") as f:
            f.write(body)
        os.utime(os.path.join(user.maildir, "cur", name),
                 (1500000000 + i, 1500000000 + i))
        bodies.append(body)
    uid, gid = user.server.mail_owner
    for d, dirs, files in os.walk(user.home):
        shutil.chown(d, uid, gid)
        for f in files:
            shutil.chown(os.path.join(d, f), uid, gid)
    return bodies


# --- mbox (docs/formats.md), read independently of imapsnap --------------


def as_mbox(body):
    """A message as the mbox store keeps it (docs/formats.md): LF line
    ends, a final line end, unquoted."""
    b = body.replace(b"\r\n", b"\n")
    if b and not b.endswith(b"\n"):
        b += b"\n"
    return b


FROM_QUOTED = re.compile(rb"^>+From ", re.M)


def unquote(b):
    return FROM_QUOTED.sub(lambda m: m.group(0)[1:], b)


STATUS_LINES = re.compile(rb"Status: (?:RO|O)\n(?:X-Status: A?F?T?D?\n)?")


def mbox_split(data):
    """The messages of an mbox file (From line, the Status: lines the store
    writes after it, and separator removed; unquoted).  The Status: lines
    must be there; tests/integration/test_readers.py checks what they
    say."""
    out = []
    if not data:
        return out
    if not data.startswith(b"From "):
        raise AssertionError("an mbox that does not start with a From line")
    starts = [0] + [m.start() + 2 for m in re.finditer(rb"\n\nFrom ", data)]
    for i, s in enumerate(starts):
        end = starts[i + 1] if i + 1 < len(starts) else len(data)
        chunk = data[s:end]
        if not chunk.endswith(b"\n\n") and not (chunk == data[s:] and
                                                 chunk.endswith(b"\n")):
            raise AssertionError("mbox message not followed by a blank "
                                 "line: %r" % chunk[-40:])
        nl = chunk.index(b"\n")
        status = STATUS_LINES.match(chunk, nl + 1)
        if not status:
            raise AssertionError("mbox message without its Status: line: "
                                 "%r" % chunk[nl + 1:nl + 40])
        out.append(unquote(chunk[status.end():-1]))
    return out


def read_index(path):
    """The valid part of an mbox index, read as strictly as
    lib/store/mbox_index.h describes: [(uidvalidity, uid, offset, length,
    file end)]."""
    out = []
    if not os.path.exists(path):
        return out
    with open(path, "rb") as f:
        data = f.read()
    for line in data.split(b"\n")[:-1]:
        m = re.match(rb"^(\d+) (\d+) (\d+) (\d+) (\d+)$", line)
        if not m:
            break
        e = tuple(int(x) for x in m.groups())
        if out and (e[0] != out[-1][0] or e[2] != out[-1][2] + out[-1][3]
                    or e[4] < out[-1][4]):
            break
        out.append(e)
    return out
