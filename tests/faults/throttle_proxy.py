#!/usr/bin/env python3
"""A throttling IMAP proxy for tests: in front of a real server (the test
Dovecot), it answers some of the client's message fetches the way a
provider that throttles does, and forwards everything else.

The plan counts the client's UID FETCH commands that ask for bodies
(BODY.PEEK[]) over all connections, from 1.  For the N-th such command
the plan may say:

    "backoff:MS"   tag NO Request is throttled. Suggested Backoff Time: MS
                   milliseconds                           (Microsoft 365)
    "unavailable"  tag NO [UNAVAILABLE] Temporary failure (RFC 5530)
    "yahoo"        tag NO [SERVERBUG] UID FETCH Server error - Please try
                   again later                            (Yahoo)
    "overquota"    * BYE [OVERQUOTA] Account exceeded command or bandwidth
                   limits.  and the connection closes     (Gmail's cap)
    "bye-backoff:MS"  tag BAD Request is throttled. Suggested Backoff Time:
                   MS milliseconds, then * BYE Connection closed. 14 and
                   the connection closes                  (Microsoft 365)
                   (output first; input is read for half a second more,
                   as a server that closes cleanly does)

Logins (LOGIN or AUTHENTICATE commands, over all connections, from 1)
have a plan of their own, `logins`:

    "unavailable"  tag NO [UNAVAILABLE] Temporary authentication failure
    "backoff:MS"   tag NO Request is throttled. Suggested Backoff Time: MS
                   milliseconds                           (Microsoft 365)
    "refused"      tag NO [AUTHENTICATIONFAILED] Authentication failed.
                   (what a server says to wrong credentials)

    with ThrottleProxy(("127.0.0.1", port), {2: "backoff:800"}) as p:
        ... imaps is not possible through it: use imap:// --tls none ...
        p.fetches    # body fetches seen so far
        p.throttled  # [(n, answer), ...] answered so far
        p.logins     # logins seen so far

The command is not executed: the proxy sends the server a NOOP under the
same tag instead, so that every other answer keeps its order, and turns
the server's tagged answer to it into the throttling one.  Literals in
the server's output are skipped whole, so a message body is never taken
for a response line.

Python 3 standard library only.
"""

import asyncio
import re
import threading

LOGIN = re.compile(rb"^(\S+) (LOGIN|AUTHENTICATE)\b", re.IGNORECASE)
FETCH_BODY = re.compile(rb"^(\S+) UID FETCH \S+ \(.*BODY\.PEEK\[\]",
                        re.IGNORECASE)
LITERAL = re.compile(rb"\{(\d+)\+?\}\r\n$")


def login_answer(kind, tag):
    name, _, arg = kind.partition(":")
    if name == "unavailable":
        return (b"%s NO [UNAVAILABLE] Temporary authentication failure\r\n"
                % tag, False)
    if name == "backoff":
        return (b"%s NO Request is throttled. Suggested Backoff Time: %d "
                b"milliseconds\r\n" % (tag, int(arg)), False)
    if name == "refused":
        return (b"%s NO [AUTHENTICATIONFAILED] Authentication failed.\r\n"
                % tag, False)
    raise ValueError("unknown login answer %r" % kind)


def answer(kind, tag):
    """(line to send instead of the tagged answer, close after it)"""
    name, _, arg = kind.partition(":")
    if name == "backoff":
        return (b"%s NO Request is throttled. Suggested Backoff Time: %d "
                b"milliseconds\r\n" % (tag, int(arg)), False)
    if name == "unavailable":
        return b"%s NO [UNAVAILABLE] Temporary failure\r\n" % tag, False
    if name == "yahoo":
        return (b"%s NO [SERVERBUG] UID FETCH Server error - Please try "
                b"again later\r\n" % tag, False)
    if name == "overquota":
        return (b"* BYE [OVERQUOTA] Account exceeded command or bandwidth "
                b"limits.\r\n", True)
    if name == "bye-backoff":
        return (b"%s BAD Request is throttled. Suggested Backoff Time: %d "
                b"milliseconds\r\n* BYE Connection closed. 14\r\n"
                % (tag, int(arg)), True)
    raise ValueError("unknown throttling answer %r" % kind)


class ThrottleProxy:
    def __init__(self, target, plan, host="127.0.0.1", logins=None):
        self.target = target
        self.plan = dict(plan)
        self.login_plan = dict(logins or {})
        self.logins = 0
        self.host = host
        self.port = None
        self.fetches = 0
        self.throttled = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._loop = None

    def __enter__(self):
        threading.Thread(target=self._run, daemon=True).start()
        if not self._ready.wait(10):
            raise RuntimeError("throttle proxy did not start")
        return self

    def __exit__(self, *exc):
        if self._loop:
            self._loop.call_soon_threadsafe(self._loop.stop)

    def _run(self):
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        server = loop.run_until_complete(asyncio.start_server(
            self._handle, self.host, 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()

    async def _handle(self, creader, cwriter):
        try:
            sreader, swriter = await asyncio.open_connection(*self.target)
        except OSError:
            cwriter.close()
            return
        # tag -> throttling answer, for the commands replaced by NOOP
        replaced = {}
        up = asyncio.ensure_future(self._up(creader, swriter, replaced))
        down = asyncio.ensure_future(self._down(sreader, cwriter, replaced))
        await asyncio.wait({up, down}, return_when=asyncio.FIRST_COMPLETED)
        for t in (up, down):
            t.cancel()
        for w in (cwriter, swriter):
            if not w.transport.is_closing():
                w.close()

    async def _up(self, creader, swriter, replaced):
        """client -> server, line by line (the client sends no literals
        during a backup)."""
        while True:
            line = await creader.readline()
            if not line:
                return
            m = LOGIN.match(line)
            if m:
                with self._lock:
                    self.logins += 1
                    kind = self.login_plan.get(self.logins)
                    if kind:
                        self.throttled.append(("login %d" % self.logins,
                                               kind))
                if kind:
                    tag = m.group(1)
                    replaced[tag] = login_answer(kind, tag)
                    line = tag + b" NOOP\r\n"
                swriter.write(line)
                await swriter.drain()
                continue
            m = FETCH_BODY.match(line)
            if m:
                with self._lock:
                    self.fetches += 1
                    kind = self.plan.get(self.fetches)
                    if kind:
                        self.throttled.append((self.fetches, kind))
                if kind:
                    tag = m.group(1)
                    replaced[tag] = answer(kind, tag)
                    line = tag + b" NOOP\r\n"
            swriter.write(line)
            await swriter.drain()

    async def _down(self, sreader, cwriter, replaced):
        """server -> client, response by response, literals skipped."""
        while True:
            line = await sreader.readline()
            if not line:
                return
            tag = line.split(b" ", 1)[0]
            if tag in replaced and line[len(tag):].startswith(b" OK"):
                text, close = replaced.pop(tag)
                cwriter.write(text)
                await cwriter.drain()
                if close:
                    # As servers close (Dovecot lingers): output shut
                    # first, input read on for a moment.  Closed at once
                    # with commands the client pipelined unread, the
                    # socket would send a reset, and the client's kernel
                    # would throw the BYE away unread.
                    if cwriter.can_write_eof():
                        cwriter.write_eof()
                    await asyncio.sleep(0.5)
                    return
                continue
            cwriter.write(line)
            m = LITERAL.search(line)
            while m:
                data = await sreader.readexactly(int(m.group(1)))
                cwriter.write(data)
                line = await sreader.readline()
                cwriter.write(line)
                m = LITERAL.search(line)
            await cwriter.drain()
