"""The Gmail-like server of tests/gmail (hoodiecrow-imap with X-GM-EXT-1,
node), started for a test with a mailbox laid out as Gmail lays it out:
each message in "[Gmail]/All Mail" and in one folder per label.

    srv = GmailServer.start(harness.SERVER, messages, labels=["Work"])
    srv.url() ... srv.user, srv.password
    srv.stop()

`messages` are GmailMessage objects; gmail_corpus() makes a mailbox with
the mix of a real account (archived mail without a label, INBOX, Sent,
user labels, messages with two labels).  Everything is in memory: a new
server starts from the messages given.  The node modules are installed
into tests/gmail on first use (npm, from package.json).

Python 3 standard library only.
"""

import atexit
import base64
import fcntl
import json
import os
import random
import subprocess
import tempfile
import threading

HERE = os.path.dirname(os.path.abspath(__file__))
GMAIL_DIR = os.path.join(os.path.dirname(HERE), "gmail")

# X-GM-MSGIDs are 64-bit; Gmail's are near this.
MSGID_BASE = 1278455344230334865


class GmailMessage:
    def __init__(self, raw, labels=(), flags=(), date=None, msgid=None,
                 thrid=None):
        self.raw = raw
        self.labels = list(labels)
        self.flags = list(flags)
        self.date = date or "01-Jan-2020 10:00:00 +0000"
        self.msgid = msgid
        self.thrid = thrid

    def folders(self):
        """Where Gmail shows it: All Mail and one folder per label."""
        system = {"\\Inbox": "INBOX", "\\Sent": "[Gmail]/Sent Mail",
                  "\\Draft": "[Gmail]/Drafts",
                  "\\Important": "[Gmail]/Important",
                  "\\Starred": "[Gmail]/Starred"}
        return ["[Gmail]/All Mail"] + [system.get(x, x) for x in self.labels]


def _install():
    """npm install in tests/gmail once (several test runs may race)."""
    mods = os.path.join(GMAIL_DIR, "node_modules", "hoodiecrow-imap")
    if os.path.isdir(mods):
        return
    with open(os.path.join(GMAIL_DIR, ".install.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.isdir(mods):
            subprocess.run(["npm", "install", "--no-audit", "--no-fund",
                            "--silent"], cwd=GMAIL_DIR, check=True,
                           stdout=subprocess.DEVNULL)


class GmailServer:
    def __init__(self, base):
        self.host = "127.0.0.1"
        self.cacert = base.cacert
        self.user = "me@gmail.test"
        self.password = "Pw-gmail-" + os.urandom(5).hex()
        self.proc = None
        self.dir = tempfile.mkdtemp(prefix="imapsnap-gmail-")

    @classmethod
    def start(cls, base, messages, labels=(), tls=True, uidplus=True):
        _install()
        self = cls(base)
        for i, m in enumerate(messages):
            if m.msgid is None:
                m.msgid = MSGID_BASE + 1 + i
            if m.thrid is None:
                m.thrid = m.msgid
        spec = {"user": self.user, "password": self.password,
                "labels": list(labels),
                "messages": [{"raw": base64.b64encode(m.raw).decode(),
                              "date": m.date, "flags": m.flags,
                              "labels": m.labels, "msgid": str(m.msgid),
                              "thrid": str(m.thrid)} for m in messages],
                "uidplus": uidplus}
        if tls:
            spec["cert"] = os.path.join(base.dir, "cert.pem")
            spec["key"] = os.path.join(base.dir, "key.pem")
        self.tls = tls
        path = os.path.join(self.dir, "spec.json")
        with open(path, "w") as f:
            json.dump(spec, f)
        self.proc = subprocess.Popen(
            ["node", os.path.join(GMAIL_DIR, "server.js"), path],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=open(os.path.join(self.dir, "server.log"), "wb"))
        atexit.register(self.stop)
        line = [None]

        def read():
            line[0] = self.proc.stdout.readline()
        t = threading.Thread(target=read, daemon=True)
        t.start()
        t.join(30)
        if not line[0] or not line[0].startswith(b"READY "):
            self.stop()
            with open(os.path.join(self.dir, "server.log"), "rb") as f:
                raise RuntimeError("the Gmail-like server did not start: "
                                   "%r\n%s" % (line[0], f.read().decode()))
        self.port = int(line[0].split()[1])
        return self

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            self.proc.stdout.close()
        self.proc = None

    def url(self):
        scheme = "imaps" if self.tls else "imap"
        return "%s://%s@%s:%d" % (scheme, self.user.replace("@", "%40"),
                                  self.host, self.port)

    def imap(self):
        """An imaplib connection, logged in (the oracle)."""
        import imaplib
        import ssl
        if self.tls:
            ctx = ssl.create_default_context(cafile=self.cacert)
            c = imaplib.IMAP4_SSL(self.host, self.port, ssl_context=ctx)
        else:
            c = imaplib.IMAP4(self.host, self.port)
        c.login(self.user, self.password)
        return c


def gmail_corpus(n, seed=7):
    """`n` messages as a Gmail account holds them, and the user labels.
    A third are archived without a label (only in All Mail), the others
    in INBOX, Sent or user labels, some with two labels."""
    rnd = random.Random(seed)
    labels = ["Work", "Work/Projects", "Travel", "Receipts"]
    out = []
    for i in range(n):
        r = rnd.random()
        if r < 0.33:
            lab = []
        elif r < 0.55:
            lab = ["\\Inbox"]
        elif r < 0.65:
            lab = ["\\Sent"]
        elif r < 0.85:
            lab = [rnd.choice(labels)]
        else:
            lab = ["\\Inbox", rnd.choice(labels)]
        if rnd.random() < 0.1:
            lab.append("\\Important")
        flags = ["\\Seen"] if rnd.random() < 0.7 else []
        body = "".join(rnd.choice("abcdefghij klmnop\r\n")
                       for _ in range(rnd.randint(200, 3000)))
        raw = ("From: someone%d@example.org\r\nTo: me@gmail.test\r\n"
               "Subject: message %d\r\nMessage-ID: <m%d@example.org>\r\n"
               "Date: Mon, 1 Jun 2020 10:%02d:00 +0000\r\n\r\n%s\r\n"
               % (i % 17, i, i, i % 60, body)).encode()
        out.append(GmailMessage(raw, lab, flags,
                                date="01-Jun-2020 10:%02d:%02d +0000"
                                % (i // 60 % 60, i % 60)))
    return out, labels
