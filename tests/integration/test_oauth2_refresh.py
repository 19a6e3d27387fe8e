"""Built-in OAuth2: `imapsnap auth` (device flow, RFC 8628; loopback
redirect with PKCE, RFC 8252/7636) stores a refresh token, and every run
turns it into access tokens itself (RFC 6749 §6), kept until they expire.

End to end with real parts: a token server on loopback (token_server.py:
device, authorize, token and introspection endpoints, expiry, refresh,
revocation) and two Dovecots whose oauth2 passdb validates each access
token against that server's introspection endpoint, one offering
OAUTHBEARER and one XOAUTH2.  Passwords do not open those logins: only a
token the token server says is active does."""

import json
import os
import re
import stat
import subprocess
import threading
import time
import urllib.request
import ssl

from harness import (TestCase, assert_backup_matches, imapsnap,
                     simple_message, workdir)
import harness
from second_dovecot import SecondDovecot
from token_server import TokenServer

TOKENS = BEARER = XOAUTH2 = None
CLIENT = "imapsnap-test"


def setUpModule():
    global TOKENS, BEARER, XOAUTH2
    base = harness.SERVER
    TOKENS = TokenServer(os.path.join(base.dir, "cert.pem"),
                         os.path.join(base.dir, "key.pem")).start()
    BEARER = SecondDovecot.start(base, TOKENS.url("/introspect"),
                                 mechanisms="oauthbearer")
    XOAUTH2 = SecondDovecot.start(base, TOKENS.url("/introspect"),
                                  mechanisms="xoauth2")


def tearDownModule():
    for s in (BEARER, XOAUTH2, TOKENS):
        if s:
            s.stop()


def oauth2_args(token_file=None, flow="device"):
    args = ["--oauth2", "custom", "--oauth2-client-id", CLIENT,
            "--oauth2-token-url", TOKENS.url("/token"),
            "--oauth2-cacert", harness.SERVER.cacert]
    if flow == "device":
        args += ["--oauth2-device-url", TOKENS.url("/device")]
    else:
        args += ["--oauth2-flow", "loopback",
                 "--oauth2-authorize-url", TOKENS.url("/authorize")]
    if token_file:
        args += ["--oauth2-token-file", token_file]
    return args


class Auth:
    """`imapsnap auth ...` running in the background, read line by line,
    as a user at a terminal would read it."""

    def __init__(self, *args, env=None):
        e = dict(os.environ)
        e.update(env or {})
        self.proc = subprocess.Popen(
            [harness.BINARY, "auth"] + [str(a) for a in args], env=e,
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, start_new_session=True)
        self.lines = []
        self.cond = threading.Condition()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self):
        for line in self.proc.stderr:
            with self.cond:
                self.lines.append(line.decode("utf-8", "replace"))
                self.cond.notify_all()
        with self.cond:
            self.lines.append(None)
            self.cond.notify_all()

    def wait_for(self, pattern, timeout=20):
        """The first match of `pattern` in what was printed so far."""
        deadline = time.time() + timeout
        with self.cond:
            while True:
                text = "".join(x for x in self.lines if x)
                m = re.search(pattern, text)
                if m:
                    return m
                if None in self.lines or time.time() > deadline:
                    raise AssertionError("no %r in:\n%s" % (pattern, text))
                self.cond.wait(deadline - time.time())

    def finish(self, timeout=30):
        rc = self.proc.wait(timeout)
        self.proc.stdout.close()
        with self.cond:
            while None not in self.lines:
                self.cond.wait(5)
        text = "".join(x for x in self.lines if x)
        if harness.SANITIZER_REPORT.search(text.encode()):
            raise AssertionError("sanitizer report:\n" + text)
        return rc, text


def device_auth(tc, user, server, token_file=None, env=None, approve=True):
    a = Auth(*oauth2_args(token_file), server.url(user), env=env)
    code = a.wait_for(r"enter the code\n +(\S+)").group(1)
    if approve:
        TOKENS.approve(code, user.name)
    else:
        TOKENS.deny(code)
    rc, text = a.finish()
    if approve:
        tc.assertEqual(rc, 0, text)
    return rc, text


def stored(path):
    with open(path) as f:
        return json.load(f)


def logins(server, user):
    return server.logins(user)


class DeviceFlow(TestCase):
    def setUp(self):
        self.user = harness.SERVER.new_user("oa")
        with self.user.oracle() as o:
            o.create("Archive")
            for i in range(4):
                o.append("INBOX", simple_message("token %d" % i),
                         date=1600000000 + i)
            o.append("Archive", simple_message("old"), date=1500000000)
        self.d = workdir("oauth2")
        self.state = os.path.join(self.d, "state")
        self.env = {"XDG_STATE_HOME": self.state}
        self.token_file = os.path.join(
            self.state, "imapsnap", "oauth2",
            "%s@%s.json" % (self.user.name, harness.SERVER.host))

    def backup(self, server, dest, *extra, env=None):
        return imapsnap("backup", "--cacert", server.cacert,
                        *oauth2_args(), *extra, server.url(self.user), dest,
                        env=env or self.env)

    def test_auth_then_backup_with_oauthbearer(self):
        introspections = TOKENS.count("introspect")
        rc, text = device_auth(self, self.user, BEARER, env=self.env)
        self.assertIn("authorised", text)
        st = os.stat(self.token_file)
        self.assertEqual(stat.S_IMODE(st.st_mode), 0o600)
        self.assertEqual(stat.S_IMODE(os.stat(
            os.path.dirname(self.token_file)).st_mode), 0o700)
        saved = stored(self.token_file)
        self.assertEqual(TOKENS.refresh_tokens(self.user.name),
                         [saved["refresh_token"]])
        self.assertNotIn(saved["refresh_token"], text)

        dest = os.path.join(self.d, "b")
        run = self.backup(BEARER, dest)
        self.assertExit(run, 0)
        assert_backup_matches(self, self.user, dest)
        self.assertEqual(logins(BEARER, self.user), ["OAUTHBEARER"])
        self.assertGreater(TOKENS.count("introspect"), introspections,
                           "Dovecot did not ask the introspection endpoint")
        self.assertNotLeaked(run, saved["access_token"], "access token")
        self.assertNotLeaked(run, saved["refresh_token"], "refresh token")

    def test_xoauth2(self):
        device_auth(self, self.user, XOAUTH2, env=self.env)
        dest = os.path.join(self.d, "b")
        run = self.backup(XOAUTH2, dest)
        self.assertExit(run, 0)
        assert_backup_matches(self, self.user, dest)
        self.assertEqual(logins(XOAUTH2, self.user), ["XOAUTH2"])

    def test_password_is_not_a_token_here(self):
        """The contrast that makes the tests above mean something: the
        user's password given as a bearer token is refused."""
        d = self.d
        cmd = os.path.join(d, "tok.sh")
        with open(cmd, "w") as f:
            f.write("#!/bin/sh\nprintf '%%s\\n' '%s'\n" % self.user.password)
        os.chmod(cmd, 0o700)
        run = imapsnap("backup", "--cacert", BEARER.cacert,
                       "--oauth2-token-command", cmd, BEARER.url(self.user),
                       os.path.join(d, "b"))
        self.assertExit(run, 3)

    def test_access_token_kept_until_it_expires(self):
        TOKENS.access_lifetime = 64  # usable for 4 s (60 s margin)
        try:
            device_auth(self, self.user, BEARER, env=self.env)
            before = TOKENS.count("refresh_token")
            run = self.backup(BEARER, os.path.join(self.d, "b1"))
            self.assertExit(run, 0)
            self.assertEqual(TOKENS.count("refresh_token"), before,
                             "the token from auth was not reused")
            time.sleep(4.5)
            # Two accounts, one user: two connections, one refresh.
            config = os.path.join(self.d, "config")
            with open(config, "w") as f:
                f.write("cacert = %s\noauth2 = custom\n"
                        "oauth2_client_id = %s\noauth2_cacert = %s\n" % (
                            BEARER.cacert, CLIENT, BEARER.cacert))
                for name in ("one", "two"):
                    f.write("[%s]\nurl = %s\ndestination = %s/%s\n" % (
                        name, BEARER.url(self.user), self.d, name))
            run = imapsnap("run", "--config", config, env=self.env)
            self.assertExit(run, 0)
            self.assertEqual(TOKENS.count("refresh_token"), before + 1)
            self.assertEqual(logins(BEARER, self.user),
                             ["OAUTHBEARER"] * 3)
            for name in ("one", "two"):
                assert_backup_matches(self, self.user,
                                      os.path.join(self.d, name))
        finally:
            TOKENS.access_lifetime = 3600

    def test_refused_cached_token_is_renewed_once(self):
        """The server stops taking the cached access token (revoked at the
        provider, clocks apart): one refresh, one more login."""
        device_auth(self, self.user, BEARER, env=self.env)
        TOKENS.expire_access(self.user.name)
        before = TOKENS.count("refresh_token")
        dest = os.path.join(self.d, "b")
        run = self.backup(BEARER, dest)
        self.assertExit(run, 0)
        self.assertEqual(TOKENS.count("refresh_token"), before + 1)
        assert_backup_matches(self, self.user, dest)

    def test_revoked_refresh_token(self):
        device_auth(self, self.user, BEARER, env=self.env)
        dest = os.path.join(self.d, "b")
        self.assertExit(self.backup(BEARER, dest), 0)
        TOKENS.revoke(self.user.name)
        run = self.backup(BEARER, dest)
        self.assertExit(run, 3)
        err = run.stderr.decode()
        self.assertIn("invalid_grant", err)
        self.assertIn("expired or was revoked", err)
        self.assertIn("imapsnap auth --oauth2 custom", err)
        # Authorising again is all it takes.
        device_auth(self, self.user, BEARER, env=self.env)
        self.assertExit(self.backup(BEARER, dest), 0)

    def test_expired_access_and_rotated_refresh_token(self):
        """A provider that rotates refresh tokens (Microsoft): the new one
        is stored, and the old one is dead at the server."""
        TOKENS.rotate = True
        try:
            device_auth(self, self.user, BEARER, env=self.env)
            first = stored(self.token_file)["refresh_token"]
            # Time passes: the stored access token has expired.
            s = stored(self.token_file)
            s["expires_at"] = 0
            with open(self.token_file, "w") as f:
                json.dump(s, f)
            run = self.backup(BEARER, os.path.join(self.d, "b"))
            self.assertExit(run, 0)
            second = stored(self.token_file)["refresh_token"]
            self.assertNotEqual(first, second)
            self.assertEqual(TOKENS.refresh_tokens(self.user.name),
                             [second])
            self.assertEqual(stat.S_IMODE(os.stat(
                self.token_file).st_mode), 0o600)
        finally:
            TOKENS.rotate = False

    def test_list_and_restore_too(self):
        """Every command that logs in takes --oauth2."""
        device_auth(self, self.user, BEARER, env=self.env)
        run = imapsnap("list", "--cacert", BEARER.cacert, *oauth2_args(),
                       BEARER.url(self.user), env=self.env)
        self.assertExit(run, 0)
        self.assertRegex(run.stdout.decode(), r"(?m)^Archive +.* 1 ")
        dest = os.path.join(self.d, "b")
        self.assertExit(self.backup(BEARER, dest), 0)
        run = imapsnap("restore", "--cacert", BEARER.cacert, *oauth2_args(),
                       "--into", "Restored", "--state-dir",
                       os.path.join(self.d, "rs"), dest,
                       BEARER.url(self.user), env=self.env)
        self.assertExit(run, 0)
        with self.user.oracle() as o:
            self.assertEqual(len(o.messages("Restored/INBOX")), 4)
        self.assertEqual(set(logins(BEARER, self.user)), {"OAUTHBEARER"})

    def test_migrate_between_two_oauth2_accounts(self):
        other = harness.SERVER.new_user("ob")
        src_tf = os.path.join(self.d, "src.json")
        dst_tf = os.path.join(self.d, "dst.json")
        device_auth(self, self.user, BEARER, token_file=src_tf)
        device_auth(self, other, XOAUTH2, token_file=dst_tf)
        run = imapsnap("migrate", "--cacert", BEARER.cacert,
                       "--oauth2-cacert", BEARER.cacert,
                       "--src-oauth2", "custom",
                       "--src-oauth2-token-file", src_tf,
                       "--dst-oauth2", "custom",
                       "--dst-oauth2-token-file", dst_tf,
                       "--state-dir", os.path.join(self.d, "rs"),
                       BEARER.url(self.user), XOAUTH2.url(other))
        self.assertExit(run, 0)
        with other.oracle() as o:
            self.assertEqual(len(o.messages("INBOX")), 4)
            self.assertEqual(len(o.messages("Archive")), 1)
        self.assertEqual(set(logins(XOAUTH2, other)), {"XOAUTH2"})

    def test_no_token_stored_yet(self):
        run = self.backup(BEARER, os.path.join(self.d, "b"))
        self.assertExit(run, 3)
        self.assertIn(b"run 'imapsnap auth", run.stderr)

    def test_denied(self):
        rc, text = device_auth(self, self.user, BEARER, env=self.env,
                               approve=False)
        self.assertEqual(rc, 3, text)
        self.assertIn("refused", text)
        self.assertFalse(os.path.exists(self.token_file))

    def test_token_file_others_can_read_is_refused(self):
        device_auth(self, self.user, BEARER, env=self.env)
        os.chmod(self.token_file, 0o644)
        run = self.backup(BEARER, os.path.join(self.d, "b"))
        self.assertNotEqual(run.rc, 0)
        self.assertIn(b"chmod 600", run.stderr)

    def test_config_account_with_client_secret(self):
        TOKENS.client_secret = "s3cret-of-the-client"
        try:
            config = os.path.join(self.d, "config")
            tf = os.path.join(self.d, "tok", "work.json")
            with open(config, "w") as f:
                f.write("[work]\nurl = %s\ndestination = %s/work\n"
                        "cacert = %s\noauth2 = custom\n"
                        "oauth2_client_id = %s\n"
                        "oauth2_client_secret = %s\n"
                        "oauth2_device_url = %s\noauth2_token_url = %s\n"
                        "oauth2_token_file = %s\noauth2_cacert = %s\n" % (
                            BEARER.url(self.user), self.d, BEARER.cacert,
                            CLIENT, TOKENS.client_secret,
                            TOKENS.url("/device"), TOKENS.url("/token"), tf,
                            BEARER.cacert))
            os.chmod(config, 0o600)
            a = Auth("--config", config, "work")
            TOKENS.approve(a.wait_for(r"enter the code\n +(\S+)").group(1),
                           self.user.name)
            rc, text = a.finish()
            self.assertEqual(rc, 0, text)
            self.assertEqual(TOKENS.last_form["/token"]["client_secret"],
                             TOKENS.client_secret)
            run = imapsnap("run", "--config", config)
            self.assertExit(run, 0)
            assert_backup_matches(self, self.user,
                                  os.path.join(self.d, "work"))
            TOKENS.revoke(self.user.name)
            s = stored(tf)
            s["expires_at"] = 0
            with open(tf, "w") as f:
                json.dump(s, f)
            run = imapsnap("run", "--config", config)
            self.assertExit(run, 3)
            self.assertIn(b"run 'imapsnap auth work' again", run.stderr)
            self.assertNotLeaked(run, TOKENS.client_secret, "client secret")
        finally:
            TOKENS.client_secret = None


class LoopbackFlow(TestCase):
    """The authorization code flow with PKCE: the test is the browser."""

    def setUp(self):
        self.user = harness.SERVER.new_user("ol")
        with self.user.oracle() as o:
            o.append("INBOX", simple_message("pkce"), date=1600000000)
        self.d = workdir("oauth2lb")
        self.tf = os.path.join(self.d, "token.json")

    def browse(self, url):
        """GET `url` as a browser: follow the provider's redirect to
        imapsnap's loopback listener.  (status, body)"""
        ctx = ssl.create_default_context(cafile=harness.SERVER.cacert)
        opener = urllib.request.build_opener(
            urllib.request.HTTPSHandler(context=ctx))
        try:
            with opener.open(url, timeout=20) as r:
                return r.status, r.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def test_loopback_with_pkce(self):
        TOKENS.browser_user = self.user.name
        try:
            a = Auth(*oauth2_args(self.tf, flow="loopback"),
                     BEARER.url(self.user))
            url = a.wait_for(r"browser on this machine:\n +(\S+)").group(1)
            q = urllib.parse.parse_qs(urllib.parse.urlparse(url).query)
            self.assertEqual(q["code_challenge_method"], ["S256"])
            self.assertEqual(len(q["code_challenge"][0]), 43)
            redirect = q["redirect_uri"][0]
            self.assertRegex(redirect, r"^http://127\.0\.0\.1:\d+/$")
            # Someone else's redirect (wrong state) is not taken.
            status, _ = self.browse(redirect + "?code=forged&state=nope")
            self.assertEqual(status, 400)
            status, _ = self.browse(redirect + "favicon.ico")
            self.assertEqual(status, 404)
            status, body = self.browse(url)
            self.assertEqual(status, 200)
            self.assertIn("authorised", body)
            rc, text = a.finish()
            self.assertEqual(rc, 0, text)
            form = TOKENS.last_form["/token"]
            self.assertEqual(form["grant_type"], "authorization_code")
            self.assertEqual(len(form["code_verifier"]), 43)
        finally:
            TOKENS.browser_user = None
        dest = os.path.join(self.d, "b")
        run = imapsnap("backup", "--cacert", BEARER.cacert,
                       *oauth2_args(self.tf), BEARER.url(self.user), dest)
        self.assertExit(run, 0)
        assert_backup_matches(self, self.user, dest)

    def test_refused_at_the_provider(self):
        a = Auth(*oauth2_args(self.tf, flow="loopback"),
                 BEARER.url(self.user))
        url = a.wait_for(r"browser on this machine:\n +(\S+)").group(1)
        status, _ = self.browse(url)
        self.assertEqual(status, 400)
        rc, text = a.finish()
        self.assertEqual(rc, 3, text)
        self.assertIn("access_denied", text)
        self.assertFalse(os.path.exists(self.tf))
