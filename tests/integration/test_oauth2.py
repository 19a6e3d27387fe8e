"""OAuth2: --oauth2-token-command (and oauth2_token_command in the config)
logs in with OAUTHBEARER or XOAUTH2 through libcurl, needs no password,
and is run again for every connection, so that a run longer than a token's
life gets a fresh one each time.

Against a second Dovecot that offers both mechanisms (second_dovecot.py);
Dovecot 2.3 checks a bearer token against the passdb as a password, so a
user's valid token here is its password."""

import os
import stat

from harness import (TestCase, assert_backup_matches, imapsnap,
                     simple_message, workdir)
import harness
from second_dovecot import SecondDovecot

SECOND = None


def setUpModule():
    global SECOND
    SECOND = SecondDovecot.start(harness.SERVER)


def tearDownModule():
    if SECOND:
        SECOND.stop()


def token_command(dir, token, log=True):
    """A script that prints `token` and notes each run in DIR/runs."""
    path = os.path.join(dir, "token.sh")
    with open(path, "w") as f:
        f.write("#!/bin/sh\n%sprintf '%%s\\n' '%s'\n"
                % ("echo run >> '%s/runs'\n" % dir if log else "", token))
    os.chmod(path, stat.S_IRWXU)
    return path


def runs(dir):
    try:
        with open(os.path.join(dir, "runs")) as f:
            return len(f.readlines())
    except FileNotFoundError:
        return 0


class OAuth2(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.user = harness.SERVER.new_user("oauth")
        with cls.user.oracle() as o:
            o.create("Sent")
            for i in range(3):
                o.append("INBOX", simple_message("oauth %d" % i),
                         date=1600000000 + i)
            o.append("Sent", simple_message("sent"), date=1600000100)

    def oauth_logins(self):
        methods = SECOND.logins(self.user)
        return [m for m in methods if m in ("OAUTHBEARER", "XOAUTH2")], \
            methods

    def test_backup_without_password(self):
        d = workdir("oauth")
        cmd = token_command(d, self.user.password)
        dest = os.path.join(d, "backup")
        before, _ = self.oauth_logins()
        run = imapsnap("backup", "--cacert", SECOND.cacert,
                       "--oauth2-token-command", cmd, "-v",
                       SECOND.url(self.user), dest)
        self.assertExit(run, 0)
        assert_backup_matches(self, self.user, dest)
        self.assertEqual(runs(d), 1)
        after, methods = self.oauth_logins()
        self.assertEqual(len(after), len(before) + 1,
                         "no OAuth2 login in the log: %s" % methods)
        self.assertNotLeaked(run, self.user.password, "token")

    def test_list(self):
        d = workdir("oauthlist")
        run = imapsnap("list", "--cacert", SECOND.cacert,
                       "--oauth2-token-command",
                       token_command(d, self.user.password),
                       SECOND.url(self.user, "imap"))
        self.assertExit(run, 0)
        self.assertRegex(run.stdout.decode(), r"(?m)^Sent +\\Sent +1 ")
        self.assertEqual(runs(d), 1)

    def test_run_again_for_every_connection(self):
        """Two accounts in one run: two connections, two tokens asked
        for."""
        d = workdir("oauthrun")
        cmd = token_command(d, self.user.password)
        config = os.path.join(d, "config")
        with open(config, "w") as f:
            f.write("cacert = %s\noauth2_token_command = %s\n" % (
                SECOND.cacert, cmd))
            for name in ("one", "two"):
                f.write("[%s]\nurl = %s\ndestination = %s/%s\n" % (
                    name, SECOND.url(self.user), d, name))
        before, _ = self.oauth_logins()
        run = imapsnap("run", "--config", config)
        self.assertExit(run, 0)
        self.assertEqual(runs(d), 2, "the token command ran %d times"
                         % runs(d))
        after, methods = self.oauth_logins()
        self.assertEqual(len(after), len(before) + 2, methods)
        for name in ("one", "two"):
            assert_backup_matches(self, self.user, os.path.join(d, name))

    def test_refused_token(self):
        d = workdir("oauthbad")
        run = imapsnap("backup", "--cacert", SECOND.cacert,
                       "--oauth2-token-command",
                       token_command(d, "not-the-token"),
                       SECOND.url(self.user), os.path.join(d, "b"))
        self.assertExit(run, 3)
        self.assertNotIn(b"not-the-token", run.stdout + run.stderr)

    def test_failing_token_command(self):
        for script in ("exit 1", "true"):  # fails; prints nothing
            d = workdir("oauthcmd")
            cmd = os.path.join(d, "cmd.sh")
            with open(cmd, "w") as f:
                f.write("#!/bin/sh\n%s\n" % script)
            os.chmod(cmd, stat.S_IRWXU)
            run = imapsnap("backup", "--cacert", SECOND.cacert,
                           "--oauth2-token-command", cmd,
                           SECOND.url(self.user), os.path.join(d, "b"))
            self.assertExit(run, 3, script)
            self.assertIn(b"token command", run.stderr)

    def test_password_and_token_conflict(self):
        d = workdir("oauthboth")
        pw = os.path.join(d, "pw")
        with open(pw, "w") as f:
            f.write(self.user.password)
        run = imapsnap("backup", "--password-file", pw,
                       "--oauth2-token-command",
                       token_command(d, self.user.password),
                       SECOND.url(self.user), os.path.join(d, "b"))
        self.assertExit(run, 2)
        self.assertEqual(runs(d), 0)

    def test_without_token_a_password_is_needed(self):
        """The contrast: no token command, no password source, no
        terminal: a usage error before any connection."""
        run = imapsnap("backup", "--cacert", SECOND.cacert,
                       SECOND.url(self.user),
                       os.path.join(workdir("nopw"), "b"))
        self.assertExit(run, 2)
        self.assertIn(b"no password", run.stderr)
