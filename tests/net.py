#!/usr/bin/env python3
"""Small network helpers for the test servers' start scripts.

    net.py ports HOST...        one free TCP port on each HOST, printed
                                space-separated
    net.py greets HOST:PORT[+tls]...
                                wait (15 s at most) until each listener
                                answers with an IMAP greeting ("* OK");
                                +tls: after a TLS handshake (certificate
                                not checked); exit 1 on time-out

Python 3 standard library only.
"""

import socket
import ssl
import sys
import time


def ports(hosts):
    socks = []
    for host in hosts:
        s = socket.socket()
        s.bind((host, 0))
        socks.append(s)
    print(" ".join(str(s.getsockname()[1]) for s in socks))


def greets(host, port, tls):
    try:
        s = socket.create_connection((host, port), timeout=2)
        if tls:
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
            s = ctx.wrap_socket(s)
        ok = s.recv(200).startswith(b"* OK")
        s.close()
        return ok
    except OSError:
        return False


def wait(listeners):
    deadline = time.time() + 15
    for spec in listeners:
        addr, _, tls = spec.partition("+")
        host, _, port = addr.rpartition(":")
        while not greets(host, int(port), tls == "tls"):
            if time.time() > deadline:
                return 1
            time.sleep(0.05)
    return 0


def main():
    if len(sys.argv) < 3 or sys.argv[1] not in ("ports", "greets"):
        print(__doc__, file=sys.stderr)
        return 2
    if sys.argv[1] == "ports":
        ports(sys.argv[2:])
        return 0
    return wait(sys.argv[2:])


if __name__ == "__main__":
    sys.exit(main())
