"""A second Dovecot beside the one run.py starts, for what that one does not
offer: OAuth2 logins (XOAUTH2, OAUTHBEARER), special-use folders (\\Sent,
\\Trash, \\Junk) and a server without LIST-STATUS or STATUS=SIZE (so that
imapsnap's fallbacks run).

It is the first server's configuration with those changes, on ports of its
own: the same users (passwd-files), the same mail and the same
certificates.  Dovecot 2.3 checks an OAuth2 bearer token against the
passdb as it would a password, so a user's token here is its password.

    srv = SecondDovecot.start(harness.SERVER)   # in setUpModule
    # or, with OAuth2 tokens checked by an introspection endpoint
    # (Dovecot's oauth2 passdb) instead of taken as passwords:
    srv = SecondDovecot.start(harness.SERVER, oauth2_introspection=URL,
                              mechanisms="xoauth2")
    srv.url(user, "imaps") ...
    srv.stop()                                  # in tearDownModule

Python 3 standard library only.
"""

import atexit
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time

# The capabilities Dovecot 2.3.19 offers after login, less LIST-STATUS and
# STATUS=SIZE.
CAPABILITIES = (
    "IMAP4rev1 SASL-IR LOGIN-REFERRALS ID ENABLE IDLE SORT SORT=DISPLAY "
    "THREAD=REFERENCES THREAD=REFS THREAD=ORDEREDSUBJECT MULTIAPPEND "
    "URL-PARTIAL CATENATE UNSELECT CHILDREN NAMESPACE UIDPLUS LIST-EXTENDED "
    "I18NLEVEL=1 CONDSTORE QRESYNC ESEARCH ESORT SEARCHRES WITHIN "
    "CONTEXT=SEARCH BINARY MOVE LITERAL+ SPECIAL-USE")

SPECIAL_USE = (("Sent", "\\Sent"), ("Trash", "\\Trash"), ("Junk", "\\Junk"))


def _free_ports(n):
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def _sub(pattern, repl, text, what):
    new, n = re.subn(pattern, repl, text, flags=re.M)
    if n == 0:
        raise RuntimeError("second Dovecot: cannot change %s in the "
                           "first server's dovecot.conf" % what)
    return new


class SecondDovecot:
    def __init__(self, base, dir):
        self.base = base
        self.dir = dir
        self.host = base.host
        self.cacert = base.cacert
        self.log = os.path.join(dir, "dovecot.log")
        self.conf = os.path.join(dir, "dovecot.conf")
        self.pid = None

    @classmethod
    def start(cls, base, oauth2_introspection=None,
              mechanisms="xoauth2 oauthbearer", mail_location=None,
              capabilities=CAPABILITIES):
        """With `oauth2_introspection` (an https URL, served with the test
        CA's certificate), XOAUTH2 and OAUTHBEARER logins are checked by
        Dovecot's oauth2 passdb against that RFC 7662 endpoint, and
        passwords are good for PLAIN and LOGIN only.  `mechanisms` are the
        OAuth2 mechanisms offered.  `mail_location` replaces the first
        server's (every user then sees that mail).  `capabilities` are
        what the server says it offers after login."""
        self = cls(base, tempfile.mkdtemp(prefix="imapsnap-dovecot2-"))
        os.chmod(self.dir, 0o755)
        for sub in ("run", "state"):
            os.makedirs(os.path.join(self.dir, sub))
        with open(os.path.join(base.dir, "dovecot.conf")) as f:
            text = f.read()
        # Every listener gets a new port; the first two are imap and imaps.
        old_ports = re.findall(r"^\s*port = (\d+)\s*$", text, flags=re.M)
        new_ports = _free_ports(len(old_ports))
        for old, new in zip(old_ports, new_ports):
            text = _sub(r"^(\s*port = )%s\s*$" % old, r"\g<1>%d" % new,
                        text, "port")
        self.imap_port = new_ports[old_ports.index(str(base.imap_port))]
        self.imaps_port = new_ports[old_ports.index(str(base.imaps_port))]
        d = self.dir
        text = _sub(r"^base_dir = .*$", "base_dir = %s/run" % d, text,
                    "base_dir")
        text = _sub(r"^state_dir = .*$", "state_dir = %s/state" % d, text,
                    "state_dir")
        text = _sub(r"^instance_name = .*$",
                    "instance_name = imapsnap-test2-%d" % self.imap_port,
                    text, "instance_name")
        text = _sub(r"^((?:info_|debug_)?log_path) = .*$",
                    r"\1 = %s" % self.log, text, "log_path")
        if mail_location:
            text = _sub(r"^mail_location = .*$",
                        "mail_location = " + mail_location.replace(
                            "\\", "\\\\"), text, "mail_location")
        text = _sub(r"^auth_mechanisms = .*$",
                    "auth_mechanisms = plain login " + mechanisms,
                    text, "auth_mechanisms")
        if oauth2_introspection:
            ext = os.path.join(d, "oauth2.conf.ext")
            with open(ext, "w") as f:
                f.write("introspection_mode = post\n"
                        "introspection_url = %s\n"
                        "username_attribute = username\n"
                        "active_attribute = active\n"
                        "active_value = true\n"
                        "tls_ca_cert_file = %s\n"
                        "timeout_msecs = 10000\n"
                        % (oauth2_introspection, self.cacert))
            os.chmod(ext, 0o644)
            text = _sub(r"^(passdb \{\n  driver = passwd-file\n)",
                        r"passdb {\n  driver = oauth2\n"
                        r"  mechanisms = xoauth2 oauthbearer\n"
                        r"  args = %s\n}\n\g<1>  mechanisms = plain login\n"
                        % ext, text, "passdb")
        boxes = "".join("  mailbox %s {\n    special_use = %s\n  }\n"
                        % (name, use) for name, use in SPECIAL_USE)
        text = _sub(r"^(namespace inbox \{\n)", r"\g<1>" + boxes.replace(
            "\\", "\\\\"), text, "namespace inbox")
        text += "\nprotocol imap {\n  imap_capability = %s\n}\n" % \
            capabilities
        with open(self.conf, "w") as f:
            f.write(text)
        # Output to a file: the daemon keeps its stdout open for as long
        # as it runs, so a pipe would never reach its end.
        out_path = os.path.join(d, "dovecot.out")
        with open(out_path, "wb") as out:
            rc = subprocess.run(["dovecot", "-c", self.conf],
                                stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT).returncode
        if rc != 0:
            with open(out_path, encoding="utf-8", errors="replace") as f:
                raise RuntimeError("second Dovecot did not start:\n%s"
                                   % f.read())
        # The master writes its pid a moment after the command returns.
        pidfile = os.path.join(d, "run", "master.pid")
        deadline = time.time() + 15
        while self.pid is None:
            try:
                with open(pidfile) as f:
                    self.pid = int(f.read().strip())
            except (FileNotFoundError, ValueError):
                if time.time() > deadline:
                    raise RuntimeError("second Dovecot wrote no pid file")
                time.sleep(0.05)
        atexit.register(self.stop)
        self._wait()
        return self

    def _wait(self):
        deadline = time.time() + 15
        for port, tls in ((self.imap_port, False), (self.imaps_port, True)):
            while True:
                try:
                    s = socket.create_connection((self.host, port),
                                                 timeout=2)
                    if tls:
                        ctx = ssl.create_default_context(cafile=self.cacert)
                        s = ctx.wrap_socket(s, server_hostname=self.host)
                    ok = s.recv(200).startswith(b"* OK")
                    s.close()
                    if ok:
                        break
                except OSError:
                    pass
                if time.time() > deadline:
                    self.stop()
                    raise RuntimeError("second Dovecot did not answer")
                time.sleep(0.05)

    def stop(self):
        """Stop the master (its children follow) and remove the files."""
        if self.pid is None:
            return
        pid, self.pid = self.pid, None
        try:
            os.kill(pid, signal.SIGTERM)
            for _ in range(100):
                os.kill(pid, 0)
                time.sleep(0.05)
        except ProcessLookupError:
            pass
        shutil.rmtree(self.dir, ignore_errors=True)

    def url(self, user=None, scheme="imaps"):
        port = self.imaps_port if scheme == "imaps" else self.imap_port
        who = (user.name + "@") if user else ""
        return "%s://%s%s:%d" % (scheme, who, self.host, port)

    def logins(self, user):
        """The SASL mechanisms of `user`'s logins, as Dovecot logged them."""
        try:
            with open(self.log, encoding="utf-8", errors="replace") as f:
                text = f.read()
        except FileNotFoundError:
            return []
        return re.findall(r"imap-login: Info: Login: user=<%s>, "
                          r"method=([A-Z0-9-]+)" % re.escape(user.name), text)
