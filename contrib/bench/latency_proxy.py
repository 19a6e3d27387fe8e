#!/usr/bin/env python3
"""A TCP proxy on loopback that delays every byte by a fixed time.

    latency_proxy.py --target HOST:PORT --delay-ms MS [--listen HOST:PORT]
                     [--stats FILE] [--port-file FILE]

Each direction is delayed by MS milliseconds (so the round-trip time grows
by 2 × MS); bytes keep their order, and nothing else about them changes, so
TLS passes through untouched.  Bandwidth is not limited, apart from at most
--window bytes (default 8 MiB) held per direction, which stands in for a
TCP window.

With --stats, one JSON line per connection is appended to FILE when it
closes: bytes each way, lines the client sent (its commands, when the
session is not encrypted), and "turns": how many times the client sent
something after the server had sent it something since the client's
previous send, i.e. how often the client waited for the server.  A client
that talks strictly one command at a time has one turn per command; a
pipelining client has fewer.  Turns count the login and the greeting's
answer, and TLS handshakes too.

The port it listens on (picked by the system unless --listen names one) is
printed on stdout and, with --port-file, written to FILE.
"""

import argparse
import asyncio
import json
import os
import sys
import time

CHUNK = 256 * 1024


class Conn:
    ids = 0

    def __init__(self):
        Conn.ids += 1
        self.id = Conn.ids
        self.start = time.time()
        self.c2s = self.s2c = self.lines = self.turns = 0
        self.server_spoke = True  # the greeting comes first

    def record(self, path):
        if not path:
            return
        rec = {"id": self.id, "start": self.start, "end": time.time(),
               "c2s_bytes": self.c2s, "s2c_bytes": self.s2c,
               "c2s_lines": self.lines, "turns": self.turns}
        with open(path, "a") as f:
            f.write(json.dumps(rec) + "\n")


async def pipe(reader, writer, delay, window, on_chunk):
    """Copy reader to writer, each chunk `delay` seconds after it came."""
    loop = asyncio.get_running_loop()
    queue = asyncio.Queue()
    room = asyncio.Event()
    room.set()
    held = 0
    broken = False

    async def send():
        nonlocal held, broken
        try:
            await send_all()
        except OSError:
            broken = True
            room.set()

    async def send_all():
        nonlocal held
        while True:
            due, data = await queue.get()
            wait = due - loop.time()
            if wait > 0:
                await asyncio.sleep(wait)
            if data is None:
                if writer.can_write_eof():
                    writer.write_eof()
                return
            writer.write(data)
            await writer.drain()
            on_chunk(data, delivered=True)
            held -= len(data)
            if held <= window:
                room.set()

    sender = asyncio.create_task(send())
    try:
        while not broken:
            await room.wait()
            if broken:
                break
            try:
                data = await reader.read(CHUNK)
            except OSError:
                data = b""
            due = loop.time() + delay
            if not data:
                queue.put_nowait((due, None))
                break
            on_chunk(data, delivered=False)
            held += len(data)
            if held > window:
                room.clear()
            queue.put_nowait((due, data))
        await sender
    except OSError:
        pass
    finally:
        sender.cancel()


async def handle(creader, cwriter, args):
    conn = Conn()
    try:
        sreader, swriter = await asyncio.open_connection(args.thost,
                                                         args.tport)
    except OSError:
        cwriter.close()
        return

    def client_chunk(data, delivered):
        if delivered:
            return
        conn.c2s += len(data)
        conn.lines += data.count(b"\n")
        if conn.server_spoke:
            conn.turns += 1
            conn.server_spoke = False

    def server_chunk(data, delivered):
        if delivered:
            conn.server_spoke = True
        else:
            conn.s2c += len(data)

    delay = args.delay_ms / 1000.0
    try:
        await asyncio.gather(
            pipe(creader, swriter, delay, args.window, client_chunk),
            pipe(sreader, cwriter, delay, args.window, server_chunk))
    finally:
        for w in (swriter, cwriter):
            w.close()
        conn.record(args.stats)


def hostport(s):
    host, _, port = s.rpartition(":")
    return host or "127.0.0.1", int(port)


async def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--listen", default="127.0.0.1:0", type=hostport)
    ap.add_argument("--target", required=True, type=hostport)
    ap.add_argument("--delay-ms", type=float, required=True,
                    help="one-way delay, in milliseconds")
    ap.add_argument("--window", type=int, default=8 << 20)
    ap.add_argument("--stats")
    ap.add_argument("--port-file")
    args = ap.parse_args()
    args.thost, args.tport = args.target
    server = await asyncio.start_server(
        lambda r, w: handle(r, w, args), args.listen[0], args.listen[1])
    port = server.sockets[0].getsockname()[1]
    if args.port_file:
        with open(args.port_file + ".tmp", "w") as f:
            f.write("%d\n" % port)
        os.rename(args.port_file + ".tmp", args.port_file)
    print(port, flush=True)
    async with server:
        await server.serve_forever()


if __name__ == "__main__":
    try:
        asyncio.run(main())
    except KeyboardInterrupt:
        sys.exit(0)
