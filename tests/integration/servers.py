"""The IMAP servers the integration tests run against, behind one small
interface, so that a test can run against each of them:

    for srv in servers.each():                 # every kind below
        user = srv.new_user()
        srv.url(user)                          # imaps://user@127.0.0.1:port
        srv.tls_args()                         # ["--cacert", ...]
        with user.oracle() as o: ...           # imaplib, as for Dovecot

    servers.get("courier")                     # one kind

Kinds:
    dovecot     the Dovecot run.py starts (harness.SERVER): personal
                namespace "" with "/"
    cyrus       Cyrus IMAP 3.6 as Debian configures it: "INBOX." with "."
                (tests/cyrus/start.sh DIR stock)
    cyrus-alt   Cyrus with altnamespace and unixhierarchysep: "" with "/"
                (tests/cyrus/start.sh DIR alt)
    courier     Courier IMAP 5: "INBOX." with "." (tests/courier/start.sh)

Cyrus and Courier are started the first time a test asks for them and
stopped by stop_all() (run.py calls it at the end).  A server that cannot
be started raises: the test fails, it is never skipped.

Each server knows what it does to what it stores (`normalises`): the
differences between the bytes APPENDed and the bytes it gives back that
docs/restore.md lists.  `stored_form(data)` applies them, so that a test
can compare SHA-256 digests allowing exactly those.

Python 3 standard library only.
"""

import itertools
import os
import re
import subprocess
import tempfile

import harness

ROOT = harness.ROOT
KINDS = ("dovecot", "cyrus", "cyrus-alt", "courier")

_started = {}


def _read_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            k, _, v = line.rstrip("\n").partition("=")
            env[k] = v
    return env


class ImapServer:
    """What the tests need of a server.  `prefix` and `delim` are the
    personal namespace the server announces (NAMESPACE)."""

    kind = None
    prefix = ""
    delim = "/"
    special_use = False     # SPECIAL-USE (RFC 6154)
    condstore = False

    def __init__(self, env):
        self.env = env
        self.host = env["HOST"]
        self.imap_port = int(env["IMAP_PORT"])
        self.imaps_port = int(env["IMAPS_PORT"])
        self.cacert = env["CACERT"]
        self.log = env["LOG"]
        self._n = itertools.count(1)

    def __repr__(self):
        return self.kind

    def url(self, user=None, scheme="imaps", host=None, port=None):
        if port is None:
            port = self.imaps_port if scheme == "imaps" else self.imap_port
        who = (user.name + "@") if user else ""
        return "%s://%s%s:%d" % (scheme, who, host or self.host, port)

    def tls_args(self):
        return ["--cacert", self.cacert]

    def raw_name(self, logical):
        """The name (modified UTF-7) the server gives the folder whose
        logical path is `logical` ('/'-separated UTF-8)."""
        if logical.upper() == "INBOX":
            return "INBOX"
        return harness.mutf7_encode(
            self.prefix + logical.replace("/", self.delim))

    def logical_name(self, raw):
        """The logical path ('/'-separated UTF-8) of a raw folder name."""
        if raw.upper() == "INBOX":
            return "INBOX"
        name = harness.mutf7_decode(raw)
        if self.prefix and name.startswith(self.prefix):
            name = name[len(self.prefix):]
        return name.replace(self.delim, "/")

    def stored_form(self, data):
        """The bytes this server gives back for `data` APPENDed."""
        return data

    def new_user(self, prefix="u"):
        raise NotImplementedError


class Dovecot(ImapServer):
    kind = "dovecot"
    prefix = ""
    delim = "/"
    condstore = True

    def __init__(self, base):
        self.base = base
        super().__init__(base.env)

    def new_user(self, prefix="u"):
        return self.base.new_user(prefix)

    # Lines that end in a bare LF come back ending in CRLF.
    def stored_form(self, data):
        return re.sub(rb"(?<!\r)\n", b"\r\n", data)


class _Started(ImapServer):
    """A server started from tests/KIND/start.sh into a directory of its
    own, with users added by tests/KIND/adduser.sh."""

    script_dir = None
    start_args = ()

    @classmethod
    def start(cls):
        d = tempfile.mkdtemp(prefix="imapsnap-%s-" % cls.kind,
                             dir=os.path.dirname(harness.WORKDIR))
        here = os.path.join(ROOT, "tests", cls.script_dir)
        p = subprocess.run(["sh", os.path.join(here, "start.sh"), d] +
                           list(cls.start_args),
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        env_file = os.path.join(d, "env")
        if p.returncode != 0 or not os.path.exists(env_file):
            subprocess.run(["sh", os.path.join(here, "stop.sh"), d])
            raise RuntimeError("%s could not be started:\n%s" % (
                cls.kind, p.stdout.decode("utf-8", "replace")))
        self = cls(_read_env(env_file))
        self.dir = d
        self.mail_root = self.env.get("MAIL_ROOT", d)
        self.here = here
        return self

    def stop(self):
        subprocess.run(["sh", os.path.join(self.here, "stop.sh"), self.dir])

    def new_user(self, prefix="u"):
        # Both servers here want lower-case names; the kind in the name
        # tells in a log whose user it is.
        name = "%s%s%d" % (prefix.lower(), self.kind.replace("-", ""),
                           next(self._n))
        password = "Pw-%s-%s!q" % (name, os.urandom(6).hex())
        subprocess.run(["sh", os.path.join(self.here, "adduser.sh"),
                        self.dir, name, password], check=True)
        return harness.User(self, name, password)


class Cyrus(_Started):
    kind = "cyrus"
    script_dir = "cyrus"
    start_args = ("stock",)
    prefix = "INBOX."
    delim = "."
    special_use = True
    condstore = True

    # munge8bit: each 8-bit byte in the header becomes "X".
    def stored_form(self, data):
        head, sep, body = data.partition(b"\r\n\r\n")
        if not sep:
            head, body = data, b""
        head = re.sub(rb"[\x80-\xff]", b"X", head)
        return head + sep + body


class CyrusAlt(Cyrus):
    kind = "cyrus-alt"
    start_args = ("alt",)
    prefix = ""
    delim = "/"


class Courier(_Started):
    kind = "courier"
    script_dir = "courier"
    prefix = "INBOX."
    delim = "."

    # A message that does not end in CRLF gets one.
    def stored_form(self, data):
        return data if data.endswith(b"\r\n") else data + b"\r\n"


_CLASSES = {"cyrus": Cyrus, "cyrus-alt": CyrusAlt, "courier": Courier}


def get(kind):
    """The server of that kind, started if it is not yet."""
    if kind == "dovecot":
        return Dovecot(harness.SERVER)
    if kind not in _started:
        _started[kind] = _CLASSES[kind].start()
    return _started[kind]


def each():
    return [get(k) for k in KINDS]


def pairs():
    """Every (source, target) of two different kinds, and each kind with
    itself last: what a matrix test runs over."""
    kinds = each()
    return [(a, b) for a in kinds for b in kinds if a is not b]


def stop_all():
    for srv in list(_started.values()):
        srv.stop()
    _started.clear()
