#!/usr/bin/env python3
"""A fault-injecting TCP proxy for tests: forwards client <-> server on
127.0.0.1 and breaks connections on purpose.

Each accepted connection gets the next action of a plan (connection 1 the
first, and so on; connections past the end of the plan get `then`, by
default "pass").  An action is a word, optionally "@N" with N a count of
bytes sent from the server to the client:

    pass        forward everything, both ways
    eof@N       after N bytes server->client, close both sides (FIN): the
                client's side is shut for writing first and read on (and
                dropped) until the client closes, for at most half a
                second, as a server that closes cleanly does; closed with
                pipelined commands unread, it would send a reset, and the
                client's kernel would drop what it had not read yet
    reset@N     after N bytes server->client, reset the client side (RST;
                bytes still in the kernel's send queue may be lost, so the
                client sees at most N bytes)
    stall@N     after N bytes server->client, forward nothing more either
                way, but keep both connections open until the client gives
                up (a server that stops sending)
    refuse      close the client's connection at once, without connecting
                to the server

So "eof@50000,eof@120000,pass" cuts the first connection after 50000 bytes,
the second after 120000, and lets the third and later ones through.

`rate` (bytes per second, server->client, per connection) slows the server
down (`rate_up` the client, client->server), e.g. to make a backup last long enough to be interrupted at random
moments; it may be changed while the proxy runs.  `keep_s2c` keeps that
many bytes of what each connection forwarded to the client, for tests that
check what the client had received when the cut came.

Use it from Python (it runs its own event loop in a thread):

    with Proxy(("127.0.0.1", 143), plan="eof@50000,pass") as p:
        ... connect to ("127.0.0.1", p.port) ...
        p.connections[0].s2c_bytes, p.connections[0].c2s_data ...

or from a shell (prints "PORT n" once listening, runs until killed):

    python3 tests/faults/proxy.py --target 127.0.0.1:143 \\
        --plan eof@50000,eof@120000,pass [--rate 1000000]

Python 3 standard library only.
"""

import argparse
import asyncio
import socket
import struct
import sys
import threading
import time

CHUNK = 65536
# Client->server bytes kept per connection, for tests that look at the
# commands a client sent; more is counted but not kept.  Server->client
# bytes are kept only when asked for (keep_s2c), up to that many.
KEEP_C2S = 1 << 20


class Action:
    KINDS = ("pass", "eof", "reset", "stall", "refuse")

    def __init__(self, kind, at=None):
        if kind not in self.KINDS:
            raise ValueError("unknown proxy action %r" % kind)
        if kind in ("eof", "reset", "stall") and at is None:
            raise ValueError("%s needs @N" % kind)
        self.kind, self.at = kind, at

    @classmethod
    def parse(cls, text):
        kind, _, at = text.strip().partition("@")
        return cls(kind, int(at) if at else None)

    def __repr__(self):
        return self.kind + ("@%d" % self.at if self.at is not None else "")


def parse_plan(plan):
    if plan is None or plan == "":
        return []
    if isinstance(plan, str):
        return [Action.parse(p) for p in plan.split(",") if p.strip()]
    return [p if isinstance(p, Action) else Action.parse(p) for p in plan]


class Connection:
    """What happened on one proxied connection."""

    def __init__(self, index, action):
        self.index = index          # 1-based
        self.action = action
        self.s2c_bytes = 0          # server -> client, forwarded
        self.c2s_bytes = 0
        self.c2s_data = bytearray()  # the first KEEP_C2S bytes
        self.s2c_data = bytearray()  # the first keep_s2c bytes
        self.fault_fired = False    # the cut or stall happened
        self.closing = False        # eof: what the client sends is dropped
        self.opened = time.monotonic()
        self.closed = None          # time the proxy finished with it

    def commands(self):
        """The client's lines (CRLF stripped), as bytes."""
        return bytes(self.c2s_data).split(b"\r\n")[:-1]

    def __repr__(self):
        return "<conn %d %r s2c=%d c2s=%d fired=%s>" % (
            self.index, self.action, self.s2c_bytes, self.c2s_bytes,
            self.fault_fired)


def _rst(writer):
    sock = writer.get_extra_info("socket")
    if sock is not None:
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                            struct.pack("ii", 1, 0))
        except OSError:
            pass
    writer.transport.abort()


class Proxy:
    def __init__(self, target, plan=None, then="pass", rate=None,
                 host="127.0.0.1", port=0, keep_s2c=0, rate_up=None):
        self.target = target
        self.rate_up = rate_up
        self.keep_s2c = keep_s2c
        self.plan = parse_plan(plan)
        self.then = Action.parse(then) if isinstance(then, str) else then
        self.rate = rate
        self.host, self.port = host, port
        self.connections = []
        self._lock = threading.Lock()
        self._loop = None
        self._thread = None
        self._server = None
        self._ready = threading.Event()
        self._error = None

    # --- lifecycle --------------------------------------------------------

    def start(self):
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        if not self._ready.wait(10) or self._error:
            raise RuntimeError("proxy did not start: %s" % self._error)
        return self

    def stop(self):
        if self._loop and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread:
            self._thread.join(10)

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()

    def set_plan(self, plan, then=None):
        """Replace the plan; it applies to connections accepted from now on
        (counting goes on: the next connection takes the first action)."""
        with self._lock:
            self.plan = parse_plan(plan)
            self._plan_base = len(self.connections)
            if then is not None:
                self.then = Action.parse(then) if isinstance(then, str) \
                    else then

    _plan_base = 0

    def _run(self):
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        try:
            self._server = loop.run_until_complete(asyncio.start_server(
                self._handle, self.host, self.port, reuse_address=True))
            self.port = self._server.sockets[0].getsockname()[1]
        except OSError as e:
            self._error = e
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._server.close()
            for t in asyncio.all_tasks(loop):
                t.cancel()
            loop.run_until_complete(asyncio.sleep(0))
            loop.close()

    # --- one connection ---------------------------------------------------

    def _next_action(self):
        with self._lock:
            i = len(self.connections) - self._plan_base
            action = self.plan[i] if i < len(self.plan) else self.then
            conn = Connection(len(self.connections) + 1, action)
            self.connections.append(conn)
            return conn

    async def _handle(self, creader, cwriter):
        conn = self._next_action()
        swriter = None
        try:
            if conn.action.kind == "refuse":
                conn.fault_fired = True
                _rst(cwriter)
                return
            try:
                sreader, swriter = await asyncio.open_connection(
                    *self.target)
            except OSError:
                _rst(cwriter)
                return
            stalled = asyncio.Event()
            up = asyncio.ensure_future(
                self._up(conn, creader, swriter, stalled))
            down = asyncio.ensure_future(
                self._down(conn, sreader, cwriter, stalled))
            done, pending = await asyncio.wait(
                {up, down}, return_when=asyncio.FIRST_COMPLETED)
            if stalled.is_set():
                # Keep both sides open; wait for the client to leave.
                await asyncio.wait(pending)
            for t in pending:
                t.cancel()
        finally:
            conn.closed = time.monotonic()
            for w in (cwriter, swriter):
                if w is not None and not w.transport.is_closing():
                    w.close()

    async def _up(self, conn, creader, swriter, stalled):
        """client -> server; when stalled, keep reading (and dropping) so
        that the client notices nothing but silence, until it closes."""
        t0 = time.monotonic()
        while True:
            data = await creader.read(CHUNK)
            if not data:
                return
            conn.c2s_bytes += len(data)
            room = KEEP_C2S - len(conn.c2s_data)
            if room > 0:
                conn.c2s_data += data[:room]
            if stalled.is_set() or conn.closing:
                continue
            swriter.write(data)
            await swriter.drain()
            if self.rate_up:
                delay = t0 + conn.c2s_bytes / float(self.rate_up) - \
                    time.monotonic()
                if delay > 0:
                    await asyncio.sleep(delay)

    async def _down(self, conn, sreader, cwriter, stalled):
        """server -> client, with the fault."""
        action = conn.action
        limit = action.at if action.kind in ("eof", "reset", "stall") \
            else None
        t0 = time.monotonic()
        while True:
            want = CHUNK
            if limit is not None:
                want = min(want, limit - conn.s2c_bytes)
            if want <= 0:
                data = b""
            else:
                data = await sreader.read(want)
                if not data:
                    cwriter.close()
                    return
            if data:
                cwriter.write(data)
                conn.s2c_bytes += len(data)
                room = self.keep_s2c - len(conn.s2c_data)
                if room > 0:
                    conn.s2c_data += data[:room]
                await cwriter.drain()
                if self.rate:
                    due = t0 + conn.s2c_bytes / float(self.rate)
                    delay = due - time.monotonic()
                    if delay > 0:
                        await asyncio.sleep(delay)
            if limit is not None and conn.s2c_bytes >= limit:
                conn.fault_fired = True
                if action.kind == "stall":
                    stalled.set()
                    return
                if action.kind == "reset":
                    _rst(cwriter)
                    return
                conn.closing = True
                if cwriter.can_write_eof():
                    cwriter.write_eof()
                # Until the client closes (then _up ends, and _handle
                # closes both sides), or this long.
                await asyncio.sleep(0.5)
                cwriter.close()
                return


def main():
    ap = argparse.ArgumentParser(
        description="fault-injecting TCP proxy (see the module docstring)")
    ap.add_argument("--target", required=True, help="HOST:PORT")
    ap.add_argument("--listen", default="127.0.0.1:0", help="HOST:PORT")
    ap.add_argument("--plan", default="", help="e.g. eof@50000,stall@0,pass")
    ap.add_argument("--then", default="pass",
                    help="action for connections past the plan")
    ap.add_argument("--rate", type=int, default=None,
                    help="server->client bytes per second")
    a = ap.parse_args()
    th, _, tp = a.target.rpartition(":")
    lh, _, lp = a.listen.rpartition(":")
    p = Proxy((th, int(tp)), a.plan, a.then, a.rate, lh, int(lp)).start()
    print("PORT %d" % p.port, flush=True)
    try:
        while True:
            time.sleep(1)
    except KeyboardInterrupt:
        pass
    finally:
        for c in p.connections:
            print(repr(c), file=sys.stderr)
        p.stop()


if __name__ == "__main__":
    main()
