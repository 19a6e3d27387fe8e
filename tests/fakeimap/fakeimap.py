"""A scripted fake IMAP server for tests: plaintext, 127.0.0.1 only, one
thread per connection.

It speaks just enough IMAP4rev1 for imapsnap's backup: the greeting,
CAPABILITY, LOGIN and AUTHENTICATE PLAIN (with SASL-IR or a continuation;
what libcurl 7.88 sends on imap:// with --tls none), LIST, EXAMINE,
UID SEARCH, UID FETCH and LOGOUT.  Anything else gets "BAD".

A test describes the mail it serves (Mailbox and Msg) and overrides any
method of Script to answer something hostile instead:

    class Bad(Script):
        def fetch(self, c, tag, uids, items):
            c.send(b"* 1 FETCH (UID 1 BODY[] {9223372036854775808}\\r\\n")
            c.hangup()

    with FakeIMAP(Bad(mailboxes=[...])) as srv:
        ... imap://user@127.0.0.1:<srv.port> ...
        srv.log  -> [(connection index, raw command line), ...]

Every method receives `c`, the Conn being served (c.index counts
connections from 1, so a script can behave differently on a reconnect).
c.send() writes raw bytes; c.hangup() closes the connection (FIN) and
c.reset() resets it (RST); both end the conversation.  c.stall() stops
answering: the server keeps the connection open and reads nothing more
until the client leaves (or `stall_limit` seconds pass).

Safety: every connection has a socket timeout, endless output is capped by
the caller, so a misbehaving client cannot make a test hang forever.

Python 3 standard library only.
"""

import base64
import re
import socket
import socketserver
import struct
import threading
import time


class Hangup(Exception):
    """Raised by Conn.hangup()/reset()/stall() to end a conversation."""


class Msg:
    def __init__(self, uid, body, flags=(), date="17-Jul-1996 02:44:25 -0700"):
        self.uid, self.body, self.flags, self.date = uid, body, flags, date


class Mailbox:
    def __init__(self, name, msgs=(), uidvalidity=1000, delim=b"/",
                 attrs=b"\\HasNoChildren", uidnext=None):
        self.name = name if isinstance(name, bytes) else name.encode()
        self.delim = delim          # bytes of length 1, or None for NIL
        self.attrs = attrs
        self.msgs = list(msgs)
        self.uidvalidity = uidvalidity
        self._uidnext = uidnext

    @property
    def uidnext(self):
        if self._uidnext is not None:
            return self._uidnext
        return max([m.uid for m in self.msgs] + [0]) + 1

    def by_uid(self):
        return {m.uid: m for m in self.msgs}


def make_messages(n, size=200, first_uid=1, tag=b"m"):
    """n simple messages of about `size` bytes, UIDs first_uid, ..."""
    out = []
    for i in range(n):
        uid = first_uid + i
        head = (b"From: a@example.org\r\nTo: b@example.org\r\n"
                b"Subject: %s %d\r\nMessage-ID: <%s%d@fake.test>\r\n\r\n"
                % (tag, uid, tag, uid))
        line = b"line of message %d\r\n" % uid
        body = head + line * max(1, (size - len(head)) // len(line))
        out.append(Msg(uid, body, flags=(b"\\Seen",) if uid % 2 else ()))
    return out


def quote(b):
    return b'"' + b.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'


def astring(b):
    """A name as the server would send it: quoted when it can be, else a
    literal."""
    if any(ch < 0x20 or ch > 0x7e for ch in b):
        return b"{%d}\r\n%s" % (len(b), b)
    return quote(b)


def parse_uidset(text, max_uid):
    """'1:5,9,12:*' -> sorted list of ints (* is max_uid)."""
    out = set()
    for part in text.split(","):
        a, _, b = part.partition(":")
        a = max_uid if a == "*" else int(a)
        b = a if not b else (max_uid if b == "*" else int(b))
        lo, hi = min(a, b), max(a, b)
        if hi - lo > 10000000:
            raise ValueError("set too large")
        out.update(range(lo, hi + 1))
    return sorted(out)


class Conn:
    def __init__(self, server, sock, index):
        self.server, self.sock, self.index = server, sock, index
        self.rbuf = b""
        self.literals = []  # literals of the client's commands, by index
        self.user = None
        self.selected = None
        self.sent = 0

    # --- output -----------------------------------------------------------

    def send(self, data):
        try:
            self.sock.sendall(data)
        except OSError:
            raise Hangup()
        self.sent += len(data)

    def hangup(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        raise Hangup()

    def reset(self):
        try:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                 struct.pack("ii", 1, 0))
        except OSError:
            pass
        raise Hangup()

    def stall(self):
        """Say nothing more; wait until the client closes."""
        deadline = time.monotonic() + self.server.stall_limit
        self.sock.settimeout(0.2)
        while time.monotonic() < deadline:
            try:
                if not self.sock.recv(65536):
                    break
            except socket.timeout:
                continue
            except OSError:
                break
        raise Hangup()

    # --- input ------------------------------------------------------------

    def _fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise Hangup()
        self.rbuf += data

    def readline(self):
        """One command line with its literals folded in (bytes, no CRLF).
        Synchronizing literals get a continuation, as RFC 3501 says."""
        out = b""
        while True:
            while b"\r\n" not in self.rbuf:
                if len(self.rbuf) > 1 << 20:
                    raise Hangup()
                self._fill()
            line, self.rbuf = self.rbuf.split(b"\r\n", 1)
            m = re.search(rb"\{(\d+)(\+?)\}$", line)
            if not m:
                return out + line
            n = int(m.group(1))
            if not m.group(2):
                self.send(b"+ go ahead\r\n")
            while len(self.rbuf) < n:
                self._fill()
            self.literals.append(self.rbuf[:n])
            mark = b"\x00%d\x00" % (len(self.literals) - 1)
            out += line[:m.start()] + mark
            self.rbuf = self.rbuf[n:]


def split_args(raw, literals=()):
    """Split a command's arguments: atoms, quoted strings, literals (as
    marked by readline: NUL, index, NUL), parenthesised lists (kept as one
    string)."""
    out, i = [], 0
    while i < len(raw):
        ch = raw[i:i + 1]
        if ch == b" ":
            i += 1
        elif ch == b'"':
            j, val = i + 1, b""
            while j < len(raw) and raw[j:j + 1] != b'"':
                if raw[j:j + 1] == b"\\":
                    j += 1
                val += raw[j:j + 1]
                j += 1
            out.append(val)
            i = j + 1
        elif ch == b"\x00":
            j = raw.index(b"\x00", i + 1)
            out.append(literals[int(raw[i + 1:j])])
            i = j + 1
        elif ch == b"(":
            depth, j = 0, i
            while j < len(raw):
                if raw[j:j + 1] == b"(":
                    depth += 1
                elif raw[j:j + 1] == b")":
                    depth -= 1
                    if depth == 0:
                        break
                j += 1
            out.append(raw[i:j + 1])
            i = j + 1
        else:
            j = raw.find(b" ", i)
            j = len(raw) if j < 0 else j
            out.append(raw[i:j])
            i = j
    return out


class Script:
    """The well-behaved server; override methods to misbehave."""

    capabilities = b"IMAP4rev1 LITERAL+ AUTH=PLAIN SASL-IR"
    greeting_text = b"* OK fake IMAP server ready\r\n"

    def __init__(self, mailboxes=(), user="user", password="secret"):
        self.mailboxes = list(mailboxes)
        self.user, self.password = user, password

    def mailbox(self, name):
        for mb in self.mailboxes:
            if mb.name == name or (name.upper() == b"INBOX" and
                                   mb.name.upper() == b"INBOX"):
                return mb
        return None

    # --- session ----------------------------------------------------------

    def greeting(self, c):
        c.send(self.greeting_text)

    def capability(self, c, tag):
        c.send(b"* CAPABILITY " + self.capabilities + b"\r\n")
        c.send(tag + b" OK CAPABILITY done\r\n")

    def login(self, c, tag, user, password):
        if user == self.user.encode() and password == self.password.encode():
            c.user = user
            c.send(tag + b" OK [CAPABILITY " + self.capabilities +
                   b"] logged in\r\n")
        else:
            c.send(tag + b" NO [AUTHENTICATIONFAILED] bad credentials\r\n")

    def logout(self, c, tag):
        c.send(b"* BYE logging out\r\n" + tag + b" OK bye\r\n")
        c.hangup()

    # --- mail -------------------------------------------------------------

    def list_line(self, mb):
        delim = b"NIL" if mb.delim is None else quote(mb.delim)
        return b"* LIST (%s) %s %s\r\n" % (mb.attrs, delim, astring(mb.name))

    def list(self, c, tag, ref, pattern):
        for mb in self.mailboxes:
            c.send(self.list_line(mb))
        c.send(tag + b" OK LIST done\r\n")

    def examine(self, c, tag, name, rest):
        mb = self.mailbox(name)
        if mb is None:
            c.selected = None
            c.send(tag + b" NO [NONEXISTENT] no such mailbox\r\n")
            return
        c.selected = mb
        c.send(b"* %d EXISTS\r\n* 0 RECENT\r\n" % len(mb.msgs))
        c.send(b"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n")
        c.send(b"* OK [UIDVALIDITY %d] UIDs valid\r\n" % mb.uidvalidity)
        c.send(b"* OK [UIDNEXT %d] next\r\n" % mb.uidnext)
        c.send(tag + b" OK [READ-ONLY] EXAMINE done\r\n")

    def search(self, c, tag, args):
        """UID SEARCH [criteria] UID n:* — answers every UID in the range."""
        mb = c.selected
        uids = [m.uid for m in mb.msgs] if mb else []
        for i, a in enumerate(args):
            if a.upper() == b"UID" and i + 1 < len(args):
                want = set(parse_uidset(args[i + 1].decode(),
                                        max(uids + [0])))
                uids = [u for u in uids if u in want]
        c.send(b"* SEARCH" + b"".join(b" %d" % u for u in uids) + b"\r\n")
        c.send(tag + b" OK SEARCH done\r\n")

    def fetch_response(self, c, seq, msg):
        flags = b" ".join(msg.flags)
        return (b'* %d FETCH (UID %d FLAGS (%s) INTERNALDATE "%s" '
                b"RFC822.SIZE %d BODY[] {%d}\r\n%s)\r\n" % (
                    seq, msg.uid, flags, msg.date.encode(), len(msg.body),
                    len(msg.body), msg.body))

    def fetch(self, c, tag, uids, items):
        mb = c.selected
        by_uid = mb.by_uid() if mb else {}
        order = [m.uid for m in mb.msgs] if mb else []
        for uid in uids:
            msg = by_uid.get(uid)
            if msg is not None:
                self.send_message(c, order.index(uid) + 1, msg)
        c.send(tag + b" OK FETCH done\r\n")

    def list_uids(self, c, tag, uids, items):
        """UID FETCH set (UID): how a client without ESEARCH lists UIDs;
        UID FETCH set (UID FLAGS): how it follows flags without
        CONDSTORE."""
        mb = c.selected
        by_uid = mb.by_uid() if mb else {}
        order = [m.uid for m in mb.msgs] if mb else []
        flags = b"FLAGS" in items.upper()
        for uid in uids:
            if uid in order:
                c.send(b"* %d FETCH (UID %d%s)\r\n" % (
                    order.index(uid) + 1, uid,
                    b" FLAGS (%s)" % b" ".join(by_uid[uid].flags)
                    if flags else b""))
        c.send(tag + b" OK FETCH done\r\n")

    def send_message(self, c, seq, msg):
        """Where a script can cut a connection in the middle of a body."""
        c.send(self.fetch_response(c, seq, msg))

    def other(self, c, tag, cmd, args):
        c.send(tag + b" BAD unknown command\r\n")


class FakeIMAP:
    """Serves `script` on 127.0.0.1 (port picked by the system)."""

    def __init__(self, script, stall_limit=30.0, io_timeout=30.0):
        self.script = script
        self.stall_limit = stall_limit
        self.io_timeout = io_timeout
        self.log = []          # (connection index, command line bytes)
        self.connections = 0
        self.errors = []       # exceptions in the script (test bugs)
        self._lock = threading.Lock()
        outer = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self):
                outer._serve(self.request)

        class Server(socketserver.ThreadingTCPServer):
            daemon_threads = True
            allow_reuse_address = True

        self._srv = Server(("127.0.0.1", 0), Handler)
        self.port = self._srv.server_address[1]
        self._thread = threading.Thread(target=self._srv.serve_forever,
                                        kwargs={"poll_interval": 0.05},
                                        daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._srv.shutdown()
        self._srv.server_close()
        self._thread.join(10)

    def url(self, user=None):
        return "imap://%s@127.0.0.1:%d" % (user or self.script.user,
                                          self.port)

    def commands(self, conn=None, prefix=b""):
        """Logged command lines (tag stripped) of connection `conn` (all
        when None) that start with `prefix` (case-insensitive)."""
        out = []
        for i, line in self.log:
            if conn is not None and i != conn:
                continue
            rest = line.split(b" ", 1)[1] if b" " in line else b""
            if rest.upper().startswith(prefix.upper()):
                out.append(rest)
        return out

    # --- one connection ---------------------------------------------------

    def _serve(self, sock):
        with self._lock:
            self.connections += 1
            index = self.connections
        sock.settimeout(self.io_timeout)
        # Scripts send a response in several small writes: without this,
        # Nagle's algorithm and the client's delayed ACK add 40 ms to many
        # round trips.
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        c = Conn(self, sock, index)
        s = self.script
        try:
            s.greeting(c)
            while True:
                line = c.readline()
                with self._lock:
                    self.log.append((index, line))
                self._dispatch(c, line)
        except Hangup:
            pass
        except (OSError, socket.timeout):
            pass
        except Exception as e:  # a bug in a test's script
            self.errors.append(e)
        finally:
            try:
                sock.close()
            except OSError:
                pass

    def _dispatch(self, c, line):
        s = self.script
        parts = line.split(b" ", 2)
        tag = parts[0]
        cmd = parts[1].upper() if len(parts) > 1 else b""
        rest = parts[2] if len(parts) > 2 else b""
        if cmd == b"CAPABILITY":
            s.capability(c, tag)
        elif cmd == b"LOGIN":
            a = split_args(rest, c.literals)
            s.login(c, tag, a[0] if a else b"", a[1] if len(a) > 1 else b"")
        elif cmd == b"AUTHENTICATE":
            a = rest.split(b" ")
            if a[0].upper() != b"PLAIN":
                c.send(tag + b" NO unsupported mechanism\r\n")
                return
            if len(a) > 1 and a[1] != b"=":
                resp = a[1]
            else:
                c.send(b"+ \r\n")
                resp = c.readline()
            try:
                _, user, password = base64.b64decode(resp).split(b"\x00")
            except ValueError:
                c.send(tag + b" BAD bad PLAIN response\r\n")
                return
            s.login(c, tag, user, password)
        elif cmd == b"LOGOUT":
            s.logout(c, tag)
        elif c.user is None:
            c.send(tag + b" BAD log in first\r\n")
        elif cmd == b"LIST":
            a = split_args(rest, c.literals)
            s.list(c, tag, a[0] if a else b"", a[1] if len(a) > 1 else b"")
        elif cmd == b"EXAMINE":
            a = split_args(rest, c.literals)
            s.examine(c, tag, a[0] if a else b"", a[1:])
        elif cmd == b"UID":
            sub, _, rest2 = rest.partition(b" ")
            sub = sub.upper()
            if sub == b"SEARCH":
                s.search(c, tag, split_args(rest2, c.literals))
            elif sub == b"FETCH":
                uset, _, items = rest2.partition(b" ")
                mb = c.selected
                top = max([m.uid for m in mb.msgs] + [0]) if mb else 0
                uids = parse_uidset(uset.decode(), top)
                if b"BODY" in items.upper():
                    s.fetch(c, tag, uids, items)
                else:
                    s.list_uids(c, tag, uids, items)
            else:
                s.other(c, tag, cmd, rest)
        else:
            s.other(c, tag, cmd, rest)
