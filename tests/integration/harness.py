"""Shared pieces of the integration tests: the Dovecot started by run.py,
fresh users, running imapsnap, reading the Dovecot log, and an imaplib
oracle for what the server holds.

Nothing here uses imapsnap's code: what the server holds is always read
through Python's imaplib, independently of the program under test.

run.py calls configure() before it loads the test modules.
"""

import base64
import datetime
import imaplib
import itertools
import os
import re
import shutil
import subprocess
import sys
import time
import unittest

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
sys.path.insert(0, os.path.join(ROOT, "contrib", "demo"))
import gen_corpus  # noqa: E402

BINARY = None   # absolute path of the imapsnap under test
SERVER = None   # Server
WORKDIR = None  # scratch space for destinations and password files


def configure(binary, dovecot_dir, workdir):
    global BINARY, SERVER, WORKDIR
    BINARY = binary
    SERVER = Server(dovecot_dir)
    WORKDIR = workdir


# --- the server ----------------------------------------------------------


class Server:
    """The Dovecot that tests/dovecot/start.sh runs in `dir`."""

    def __init__(self, dir):
        self.dir = dir
        self.env = {}
        with open(os.path.join(dir, "env")) as f:
            for line in f:
                k, _, v = line.rstrip("\n").partition("=")
                self.env[k] = v
        self.host = self.env["HOST"]
        self.imap_port = int(self.env["IMAP_PORT"])
        self.imaps_port = int(self.env["IMAPS_PORT"])
        self.plain_host = self.env["PLAIN_HOST"]
        self.plain_port = int(self.env["PLAIN_PORT"])
        self.mismatch_host = self.env["MISMATCH_HOST"]
        self.mismatch_port = int(self.env["MISMATCH_PORT"])
        self.cacert = self.env["CACERT"]
        self.log = self.env["LOG"]
        self.mail_root = self.env["MAIL_ROOT"]
        self.mail_owner = self.env["MAIL_OWNER"].split(":")
        self._n = itertools.count(1)

    def new_user(self, prefix="u"):
        """A user no other test uses, with an empty mailbox."""
        name = "%s%d" % (prefix, next(self._n))
        # Distinctive, so that a leak is easy to spot in any output; the
        # characters are ones that need care in SASL and shells alike.
        password = "Pw-%s-%s!q" % (name, os.urandom(6).hex())
        subprocess.run(["sh", os.path.join(ROOT, "tests", "dovecot",
                                           "adduser.sh"),
                        self.dir, name, password], check=True)
        return User(self, name, password)

    def url(self, user=None, scheme="imap", host=None, port=None):
        if port is None:
            port = self.imaps_port if scheme == "imaps" else self.imap_port
        host = host or self.host
        who = (user.name + "@") if user else ""
        return "%s://%s%s:%d" % (scheme, who, host, port)

    def log_mark(self):
        return LogWindow(self)


class User:
    def __init__(self, server, name, password):
        self.server, self.name, self.password = server, name, password
        self.home = os.path.join(server.mail_root, name)
        self.maildir = os.path.join(self.home, "Maildir")

    def load_corpus(self, seed=1, scale=1.0, big=True):
        """Write the demo corpus into the Maildir; only before the first
        login.  Returns {folder: count}."""
        if os.path.exists(self.home):
            raise RuntimeError("corpus after first login: %s" % self.name)
        os.makedirs(self.maildir)
        counts = gen_corpus.write_corpus(self.maildir, seed, scale, big)
        uid, gid = self.server.mail_owner
        for d, dirs, files in os.walk(self.home):
            shutil.chown(d, uid, gid)
            for f in files:
                shutil.chown(os.path.join(d, f), uid, gid)
        return counts

    def oracle(self):
        return Oracle(self.server, self.name, self.password)


# --- the Dovecot log -----------------------------------------------------

SESSION_END = re.compile(
    r"imap\((?P<user>[^)]*)\)<\d+><(?P<sid>[^>]*)>: Info: Disconnected: .*?"
    r"\bin=\d+ out=\d+ .*?body_count=(?P<count>\d+) "
    r"body_bytes=(?P<bytes>\d+)")
LOGIN = re.compile(r"imap-login: Info: Login: user=<(?P<user>[^>]*)>"
                   r"(?:.*?session=<(?P<sid>[^>]*)>)?")


class LogWindow:
    """The Dovecot log from the moment it was created on."""

    def __init__(self, server):
        self.path = server.log
        self.offset = os.path.getsize(self.path)

    def text(self):
        with open(self.path, "rb") as f:
            f.seek(self.offset)
            return f.read().decode("utf-8", "replace")

    def sessions(self, user, timeout=30.0):
        """[(body_count, body_bytes)] of `user`'s IMAP sessions logged since
        the mark.  Waits until every login has its logout line (Dovecot
        logs through a separate process, a moment after the client left)."""
        deadline = time.time() + timeout
        while True:
            text = self.text()
            logins = [m for m in LOGIN.finditer(text)
                      if m.group("user") == user.name]
            # Only the sessions that logged in since the mark: the end of
            # one that began before it (a test's setUp) may be logged a
            # moment later, inside the window.
            sids = {m.group("sid") for m in logins}
            ends = [(int(m.group("count")), int(m.group("bytes")))
                    for m in SESSION_END.finditer(text)
                    if m.group("user") == user.name and
                    (None in sids or m.group("sid") in sids)]
            if len(ends) >= len(logins) or time.time() > deadline:
                if len(ends) < len(logins):
                    raise AssertionError(
                        "%d logins of %s but %d session ends in the log"
                        % (len(logins), user.name, len(ends)))
                return ends

    def logins(self, user):
        return [m for m in LOGIN.finditer(self.text())
                if m.group("user") == user.name]


# --- running imapsnap ----------------------------------------------------


class Run:
    def __init__(self, args, proc, elapsed):
        self.args = args
        self.rc = proc.returncode
        self.stdout = proc.stdout
        self.stderr = proc.stderr
        self.elapsed = elapsed

    def output(self):
        return self.stdout + self.stderr

    def __str__(self):
        return ("imapsnap %s\n  exit %s after %.2f s\n  stdout: %s\n"
                "  stderr: %s" % (" ".join(self.args), self.rc, self.elapsed,
                                  _indent(self.stdout), _indent(self.stderr)))

    def summary(self):
        """The last non-empty line on stderr."""
        lines = [ln for ln in self.stderr.splitlines() if ln.strip()]
        return lines[-1] if lines else ""


def _indent(b):
    s = b.decode("utf-8", "replace").rstrip("\n")
    if not s:
        return "(empty)"
    return "\n    " + s.replace("\n", "\n    ")


def imapsnap(*args, password=None, env=None, timeout=60, stdin=None):
    """Run imapsnap with `args`; the password, if given, through
    IMAPSNAP_PASSWORD.  stdin is /dev/null unless given."""
    e = dict(os.environ)
    e.pop("IMAPSNAP_PASSWORD", None)
    if password is not None:
        e["IMAPSNAP_PASSWORD"] = password
    if env:
        e.update(env)
    args = [str(a) for a in args]
    t0 = time.monotonic()
    # A new session has no controlling terminal: a password prompt on
    # /dev/tty fails instead of waiting for a developer's keyboard.
    proc = subprocess.run([BINARY] + args, env=e, timeout=timeout,
                          stdin=stdin if stdin is not None
                          else subprocess.DEVNULL,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          start_new_session=True)
    run = Run(args, proc, time.monotonic() - t0)
    # In a sanitizer build a report is a failure whatever the exit status.
    if SANITIZER_REPORT.search(proc.stderr):
        raise AssertionError("sanitizer report:\n%s" % run)
    return run


SANITIZER_REPORT = re.compile(
    rb"ERROR: (?:Address|Leak|Memory|Thread)Sanitizer|: runtime error: ")


def backup(user, dest, *extra, scheme="imaps", password=True, **kw):
    """`imapsnap backup` of `user` into `dest`, over TLS checked against the
    test CA unless `extra` says otherwise."""
    args = ["backup"]
    if "--insecure" not in extra and "--tls" not in extra:
        args += ["--cacert", user.server.cacert]
    args += list(extra)
    args += [user.server.url(user, scheme), dest]
    return imapsnap(*args, password=user.password if password else None,
                    **kw)


def workdir(name):
    """A fresh directory under the run's scratch space."""
    d = os.path.join(WORKDIR, name)
    n = 1
    while os.path.exists(d):
        n += 1
        d = os.path.join(WORKDIR, "%s-%d" % (name, n))
    os.makedirs(d)
    return d


# --- modified UTF-7 (RFC 3501 5.1.3) --------------------------------------


def mutf7_encode(name):
    return gen_corpus.mutf7(name)


def mutf7_decode(raw):
    out, i = [], 0
    while i < len(raw):
        c = raw[i]
        if c != "&":
            out.append(c)
            i += 1
            continue
        j = raw.index("-", i)
        if j == i + 1:
            out.append("&")
        else:
            b64 = raw[i + 1:j].replace(",", "/")
            b64 += "=" * (-len(b64) % 4)
            out.append(base64.b64decode(b64).decode("utf-16-be"))
        i = j + 1
    return "".join(out)


def quote(s):
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --- the oracle ----------------------------------------------------------


class Message:
    def __init__(self, uid, flags, internaldate, size, modseq=None):
        self.uid, self.flags, self.internaldate = uid, flags, internaldate
        self.size, self.modseq = size, modseq


class Folder:
    def __init__(self, raw, delim, attrs):
        self.raw, self.delim, self.attrs = raw, delim, attrs
        self.name = mutf7_decode(raw)

    @property
    def selectable(self):
        return not ({"\\noselect", "\\nonexistent"} &
                    {a.lower() for a in self.attrs})

    def path(self, dest):
        """Where imapsnap must put this folder (names used in the tests
        need no escaping)."""
        parts = self.name.split(self.delim) if self.delim else [self.name]
        return os.path.join(dest, *parts)


LIST_LINE = re.compile(
    rb'^\((?P<attrs>[^)]*)\) (?:NIL|"(?P<delim>(?:\\.|[^"\\])*)") ?'
    rb'(?P<name>.*)$')
FETCH_UID = re.compile(rb"\bUID (\d+)")
FETCH_FLAGS = re.compile(rb"\bFLAGS \(([^)]*)\)")
FETCH_DATE = re.compile(rb'\bINTERNALDATE "([^"]+)"')
FETCH_SIZE = re.compile(rb"\bRFC822\.SIZE (\d+)")
FETCH_MODSEQ = re.compile(rb"\bMODSEQ \((\d+)\)")


def internaldate_ts(s):
    """Seconds since the epoch of an IMAP date-time ("1-Jan-2019 ...")."""
    return int(datetime.datetime.strptime(
        s.strip(), "%d-%b-%Y %H:%M:%S %z").timestamp())


class Oracle:
    """What the server holds, seen through imaplib on the plain port of
    127.0.0.1 (loopback: no need for TLS here).  Opens folders with
    EXAMINE only and reads bodies with BODY.PEEK[], so it changes nothing
    on the server itself."""

    def __init__(self, server, user, password):
        self.m = imaplib.IMAP4(server.host, server.imap_port)
        self.m.login(user, password)
        self.condstore = False
        self.info = {}

    def close(self):
        try:
            self.m.logout()
        except (imaplib.IMAP4.error, OSError):
            pass

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _ok(self, res, what):
        typ, data = res
        if typ != "OK":
            raise AssertionError("oracle: %s: %s %r" % (what, typ, data))
        return data

    def folders(self):
        data = self._ok(self.m.list('""', "*"), "LIST")
        out = []
        for item in data:
            if item is None:
                continue
            if isinstance(item, tuple):  # name sent as a literal
                head, name = item
                m = LIST_LINE.match(head)
                raw = name
            else:
                m = LIST_LINE.match(item)
                raw = m.group("name")
                if raw.startswith(b'"'):
                    raw = re.sub(rb'\\(.)', rb"\1", raw[1:-1])
            delim = m.group("delim")
            delim = re.sub(rb'\\(.)', rb"\1", delim).decode() if delim else ""
            attrs = m.group("attrs").decode().split()
            out.append(Folder(raw.decode("ascii"), delim, attrs))
        return out

    def enable_condstore(self):
        if not self.condstore:
            self._ok(self.m._simple_command("ENABLE", "CONDSTORE"), "ENABLE")
            self.condstore = True

    def examine(self, folder):
        """EXAMINE; returns {UIDVALIDITY, UIDNEXT, EXISTS, HIGHESTMODSEQ}
        as ints (those the server sent)."""
        raw = folder.raw if isinstance(folder, Folder) else folder
        self._ok(self.m.select(quote(raw), readonly=True), "EXAMINE " + raw)
        info = {}
        for key in ("UIDVALIDITY", "UIDNEXT", "EXISTS", "HIGHESTMODSEQ"):
            typ, val = self.m.response(key)
            if val and val[-1] is not None:
                info[key] = int(val[-1].split()[0])
        return info

    def messages(self, folder, recent=False):
        """{uid: Message} of the folder (EXAMINEs it; the EXAMINE's
        information is left in self.info).  \\Recent is left out of the
        flags unless `recent`."""
        info = self.info = self.examine(folder)
        if not info.get("EXISTS"):
            return {}
        items = "(UID FLAGS INTERNALDATE RFC822.SIZE%s)" % (
            " MODSEQ" if self.condstore else "")
        data = self._ok(self.m.uid("FETCH", "1:*", items), "UID FETCH")
        out = {}
        for line in data:
            if not isinstance(line, bytes):
                continue
            uid = int(FETCH_UID.search(line).group(1))
            flags = FETCH_FLAGS.search(line).group(1).decode().split()
            flags = frozenset(f for f in flags
                              if recent or f.lower() != "\\recent")
            date = internaldate_ts(FETCH_DATE.search(line).group(1).decode())
            size = int(FETCH_SIZE.search(line).group(1))
            ms = FETCH_MODSEQ.search(line)
            out[uid] = Message(uid, flags, date, size,
                               int(ms.group(1)) if ms else None)
        return out

    def body(self, uid):
        """UID FETCH uid BODY.PEEK[] in the folder last examined."""
        data = self._ok(self.m.uid("FETCH", str(uid), "BODY.PEEK[]"),
                        "UID FETCH %d BODY.PEEK[]" % uid)
        for item in data:
            if isinstance(item, tuple) and b"BODY[]" in item[0] and \
                    int(FETCH_UID.search(item[0]).group(1)) == uid:
                return item[1]
        raise AssertionError("oracle: no body for UID %d: %r" % (uid, data))

    def status(self, folder, items="MESSAGES UIDNEXT UIDVALIDITY UNSEEN "
               "HIGHESTMODSEQ"):
        raw = folder.raw if isinstance(folder, Folder) else folder
        data = self._ok(self.m.status(quote(raw), "(%s)" % items), "STATUS")
        inner = data[0].rsplit(b"(", 1)[1].rstrip(b")").split()
        return {inner[i].decode(): int(inner[i + 1])
                for i in range(0, len(inner), 2)}

    def create(self, name):
        self._ok(self.m.create(quote(mutf7_encode(name))), "CREATE " + name)

    def delete(self, name):
        self._ok(self.m.delete(quote(mutf7_encode(name))), "DELETE " + name)

    def append(self, name, data, flags=(), date=None):
        """APPEND raw bytes (imaplib turns bare LF into CRLF) with flags and
        an INTERNALDATE (seconds since the epoch)."""
        flagstr = "(%s)" % " ".join(flags) if flags else None
        when = None
        if date is not None:
            when = imaplib.Time2Internaldate(date)
        self._ok(self.m.append(quote(mutf7_encode(name)), flagstr, when,
                               data), "APPEND " + name)


def simple_message(subject, body="Hello.\n", date=None,
                   sender="a@example.org"):
    date = date or 1577880000
    return ("From: %s\nTo: b@example.org\nSubject: %s\n"
            "Date: %s\nMessage-ID: <%s.%d@imapsnap.test>\n\n%s" % (
                sender, subject, gen_corpus.rfc5322_date(date, 0),
                os.urandom(4).hex(), date, body)).encode("utf-8")


# --- the backup as it is on disk -----------------------------------------

MAILDIR_NAME = re.compile(r"^(\d+)_(\d+)\.imapsnap:2,([A-Za-z]*)$")

FLAG_LETTERS = {
    "\\draft": "D",
    "\\flagged": "F",
    "$forwarded": "P",
    "\\answered": "R",
    "\\seen": "S",
    "\\deleted": "T",
}


def maildir_flags(flags):
    """The Maildir info letters for a set of IMAP flags (others have none)."""
    return "".join(sorted(FLAG_LETTERS[f.lower()] for f in flags
                          if f.lower() in FLAG_LETTERS))


class Saved:
    def __init__(self, path, uidvalidity, uid, flags):
        self.path, self.uidvalidity, self.uid = path, uidvalidity, uid
        self.flags = flags

    def read(self):
        with open(self.path, "rb") as f:
            return f.read()


def saved_messages(folder_dir, sub="cur"):
    """{uid: Saved} of DEST/<folder>/<sub>; raises AssertionError on a name
    that is not imapsnap's or on a UID present twice."""
    d = os.path.join(folder_dir, sub)
    out = {}
    if not os.path.isdir(d):
        return out
    for name in sorted(os.listdir(d)):
        m = MAILDIR_NAME.match(name)
        if not m:
            raise AssertionError("unexpected file %s" % os.path.join(d, name))
        uid = int(m.group(2))
        if uid in out:
            raise AssertionError("UID %d twice in %s" % (uid, d))
        out[uid] = Saved(os.path.join(d, name), int(m.group(1)), uid,
                         m.group(3))
    return out


class TestCase(unittest.TestCase):
    """unittest.TestCase with helpers that name the run in failures."""

    maxDiff = 4000

    def assertExit(self, run, code, why=""):
        if run.rc != code:
            self.fail("expected exit %d%s, got:\n%s" % (
                code, (" (" + why + ")") if why else "", run))

    def assertNotLeaked(self, run, secret, what="password"):
        for stream, data in (("stdout", run.stdout), ("stderr", run.stderr)):
            if secret.encode() in data:
                self.fail("%s appears on %s:\n%s" % (what, stream, run))


def snapshot(folder_dir, sub="cur"):
    """{file name: (inode, mtime_ns, size)} of DEST/<folder>/<sub>, to tell
    later whether imapsnap rewrote or touched anything."""
    d = os.path.join(folder_dir, sub)
    out = {}
    for name in os.listdir(d):
        st = os.stat(os.path.join(d, name))
        out[name] = (st.st_ino, st.st_mtime_ns, st.st_size)
    return out


def assert_backup_matches(tc, user, dest, only=None):
    """Check DEST against the server through the oracle: for every
    selectable folder (or those named in `only`), DEST/<folder>/cur holds
    exactly one file per message, named <uidvalidity>_<uid>.imapsnap:2,<flags>
    with the server's flags, holding exactly the bytes of BODY.PEEK[], with
    INTERNALDATE as mtime; new/ and tmp/ hold no files.  Also checks that no
    directory with a cur/ exists for a folder the server does not have.
    Returns (folders, messages, bytes) checked."""
    n_folders = n_msgs = n_bytes = 0
    with user.oracle() as o:
        folders = o.folders()
        known = {os.path.normpath(f.path(dest)) for f in folders}
        for f in folders:
            if not f.selectable or (only is not None and f.name not in only):
                continue
            n_folders += 1
            fdir = f.path(dest)
            msgs = o.messages(f)
            uidvalidity = o.info["UIDVALIDITY"]
            saved = saved_messages(fdir)
            tc.assertEqual(sorted(saved), sorted(msgs),
                           "%s: UIDs in %s/cur vs. on the server"
                           % (f.name, fdir))
            for uid, msg in sorted(msgs.items()):
                s = saved[uid]
                where = "%s UID %d (%s)" % (f.name, uid, s.path)
                tc.assertEqual(s.uidvalidity, uidvalidity,
                               where + ": UIDVALIDITY in the name")
                tc.assertEqual(s.flags, maildir_flags(msg.flags),
                               where + ": flags in the name, server has %s"
                               % " ".join(sorted(msg.flags)))
                body = o.body(uid)
                data = s.read()
                if data != body:
                    tc.fail("%s: content differs from BODY.PEEK[]: %d bytes "
                            "on disk, %d from the server, first difference "
                            "at offset %d" % (
                                where, len(data), len(body),
                                next((i for i, (a, b) in
                                      enumerate(zip(data, body)) if a != b),
                                     min(len(data), len(body)))))
                tc.assertEqual(len(body), msg.size,
                               where + ": oracle's own size check")
                tc.assertEqual(int(os.stat(s.path).st_mtime),
                               msg.internaldate,
                               where + ": mtime vs. INTERNALDATE")
                n_msgs += 1
                n_bytes += len(body)
            for sub in ("new", "tmp"):
                d = os.path.join(fdir, sub)
                left = os.listdir(d) if os.path.isdir(d) else []
                tc.assertEqual(left, [], "%s: files left in %s" % (f.name, d))
    if only is None:
        for d, dirs, files in os.walk(dest):
            dirs[:] = [x for x in dirs if not x.startswith(".")
                       and x not in ("cur", "new", "tmp")]
            if os.path.isdir(os.path.join(d, "cur")):
                tc.assertIn(os.path.normpath(d), known,
                            "%s is no folder on the server" % d)
    return n_folders, n_msgs, n_bytes
