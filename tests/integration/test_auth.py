"""Credentials: where the password comes from, what happens when it is
wrong, and that it never shows up in any output."""

import base64
import os

from harness import (TestCase, assert_backup_matches, backup, imapsnap,
                     simple_message, workdir)
import harness


def leaks(user):
    """The password and the forms in which it would go over the wire
    (SASL PLAIN and LOGIN are base64): none may appear in any output."""
    pw = user.password.encode()
    return [pw,
            base64.b64encode(b"\0" + user.name.encode() + b"\0" + pw),
            base64.b64encode(user.name.encode() + b"\0" + user.name.encode()
                             + b"\0" + pw),
            base64.b64encode(pw)]


class Auth(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.user = harness.SERVER.new_user("auth")
        with cls.user.oracle() as o:
            o.append("INBOX", simple_message("auth"), date=1590000000)

    def assertNoLeak(self, run, user=None):
        user = user or self.user
        for secret in leaks(user):
            for stream, data in (("stdout", run.stdout),
                                 ("stderr", run.stderr)):
                if secret in data:
                    self.fail("password (as %r) on %s:\n%s"
                              % (secret, stream, run))

    def test_wrong_password_fails_fast(self):
        s = harness.SERVER
        wrong = "Wrong-" + self.user.password
        for extra in ((), ("-v",)):
            dest = workdir("wrongpw")
            run = imapsnap("backup", "--timeout", "30", "--cacert", s.cacert,
                           *extra, s.url(self.user, "imaps"), dest,
                           password=wrong, timeout=60)
            self.assertExit(run, 3, "wrong password")
            # Dovecot delays a failed login by 2 s; no retries, no waiting
            # for the timeout.
            self.assertLess(run.elapsed, 10, "slow failure:\n%s" % run)
            for secret in (wrong.encode(), self.user.password.encode(),
                           base64.b64encode(b"\0" + self.user.name.encode()
                                            + b"\0" + wrong.encode())):
                self.assertNotIn(secret, run.stdout + run.stderr,
                                 "password in output:\n%s" % run)

    def test_unknown_user(self):
        s = harness.SERVER
        dest = workdir("nouser")
        run = imapsnap("backup", "--cacert", s.cacert,
                       "imaps://nosuchuser@127.0.0.1:%d" % s.imaps_port,
                       dest, password="whatever-pw", timeout=60)
        self.assertExit(run, 3, "unknown user")

    def test_password_file(self):
        pwdir = workdir("pwfile")
        # First line only: what follows must not be part of the password.
        multi = os.path.join(pwdir, "multi")
        with open(multi, "w") as f:
            f.write(self.user.password + "\nsecond line\n")
        bare = os.path.join(pwdir, "bare")
        with open(bare, "w") as f:
            f.write(self.user.password)  # no newline at the end
        os.chmod(multi, 0o600)
        os.chmod(bare, 0o600)
        for path in (multi, bare):
            for extra in ((), ("-v",)):
                dest = workdir("pwfile")
                run = backup(self.user, dest, "--password-file", path,
                             *extra, password=False)
                self.assertExit(run, 0, "--password-file %s" % path)
                self.assertNoLeak(run)
                assert_backup_matches(self, self.user, dest)

    def test_password_command(self):
        pwdir = workdir("pwcmd")
        path = os.path.join(pwdir, "secret")
        with open(path, "w") as f:
            f.write(self.user.password + "\nignored\n")
        for extra in ((), ("-v",)):
            dest = workdir("pwcmd")
            run = backup(self.user, dest, "--password-command",
                         "cat " + path, *extra, password=False)
            self.assertExit(run, 0, "--password-command")
            self.assertNoLeak(run)
            assert_backup_matches(self, self.user, dest)

    def test_password_command_failing(self):
        dest = workdir("pwcmdfail")
        mark = harness.SERVER.log_mark()
        run = backup(self.user, dest, "--password-command", "false",
                     password=False, timeout=30)
        self.assertNotEqual(run.rc, 0, "a failing --password-command:\n%s"
                            % run)
        self.assertEqual(mark.logins(self.user), [])

    def test_no_password_without_tty(self):
        """No password source and no terminal: an error, not a hang."""
        dest = workdir("nopw")
        run = backup(self.user, dest, password=False, timeout=30)
        self.assertIn(run.rc, (2, 3), "no password, no tty:\n%s" % run)
