"""TLS: implicit and STARTTLS, certificate and hostname checks, plaintext
only when asked for, connection failures and timeouts."""

import socket
import threading

from harness import (TestCase, assert_backup_matches, imapsnap,
                     simple_message, workdir)
import harness


def user_with_mail(prefix):
    user = harness.SERVER.new_user(prefix)
    with user.oracle() as o:
        for i in range(3):
            o.append("INBOX", simple_message("tls %d" % i),
                     ("\\Seen",) if i else (), date=1580000000 + i)
    return user


class TLS(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.user = user_with_mail("tls")

    def run_url(self, url, *extra, name="tls"):
        dest = workdir(name)
        return dest, imapsnap("backup", *extra, url, dest,
                              password=self.user.password, timeout=60)

    def url(self, scheme, host, port):
        return "%s://%s@%s:%d" % (scheme, self.user.name, host, port)

    def assertLoginsOverTLS(self, mark):
        """Dovecot logs "TLS" on a login over TLS (implicit or STARTTLS),
        "secured" on a plaintext one from loopback."""
        mark.sessions(self.user)  # wait for the run's lines
        lines = [m.string[m.start():m.string.find("\n", m.start())]
                 for m in mark.logins(self.user)]
        self.assertTrue(lines, "no login in the log")
        for ln in lines:
            self.assertIn(", TLS,", ln, "login not over TLS")

    def test_imaps_with_cacert(self):
        s = harness.SERVER
        for host in ("127.0.0.1", "localhost"):
            mark = s.log_mark()
            dest, run = self.run_url(self.url("imaps", host, s.imaps_port),
                                     "--cacert", s.cacert)
            self.assertExit(run, 0, "imaps to " + host)
            self.assertLoginsOverTLS(mark)
            assert_backup_matches(self, self.user, dest)

    def test_starttls_with_cacert(self):
        s = harness.SERVER
        for host in ("127.0.0.1", "localhost"):
            mark = s.log_mark()
            dest, run = self.run_url(self.url("imap", host, s.imap_port),
                                     "--cacert", s.cacert)
            self.assertExit(run, 0, "STARTTLS to " + host)
            self.assertLoginsOverTLS(mark)
            assert_backup_matches(self, self.user, dest)

    def test_unknown_ca_fails_before_login(self):
        s = harness.SERVER
        for url in (self.url("imaps", "127.0.0.1", s.imaps_port),
                    self.url("imap", "127.0.0.1", s.imap_port)):
            mark = s.log_mark()
            dest, run = self.run_url(url)
            self.assertExit(run, 4, "server certificate from an unknown CA")
            self.assertEqual(mark.logins(self.user), [],
                             "logged in over an unverified connection")
            self.assertNotLeaked(run, self.user.password)

    def test_hostname_mismatch_fails(self):
        s = harness.SERVER
        mark = s.log_mark()
        dest, run = self.run_url(
            self.url("imaps", s.mismatch_host, s.mismatch_port),
            "--cacert", s.cacert)
        self.assertExit(run, 4, "certificate not issued for %s"
                        % s.mismatch_host)
        self.assertEqual(mark.logins(self.user), [])

    def test_insecure_works_and_warns(self):
        s = harness.SERVER
        dest, good = self.run_url(self.url("imaps", "127.0.0.1",
                                           s.imaps_port),
                                  "--cacert", s.cacert)
        self.assertExit(good, 0)
        dest, run = self.run_url(self.url("imaps", "127.0.0.1", s.imaps_port),
                                 "--insecure")
        self.assertExit(run, 0, "--insecure")
        assert_backup_matches(self, self.user, dest)
        new = [ln for ln in run.stderr.decode("utf-8", "replace").splitlines()
               if ln not in good.stderr.decode("utf-8", "replace")]
        warn = [ln for ln in new
                if any(w in ln.lower() for w in ("insecure", "verif",
                                                 "warning"))]
        self.assertTrue(warn, "no warning about --insecure on stderr:\n%s"
                        % run)


class Plaintext(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.user = user_with_mail("plain")

    def test_refused_without_starttls(self):
        s = harness.SERVER
        url = "imap://%s@%s:%d" % (self.user.name, s.plain_host, s.plain_port)
        mark = s.log_mark()
        dest = workdir("plain")
        run = imapsnap("backup", url, dest, password=self.user.password,
                       timeout=60)
        self.assertExit(run, 4, "server offers no STARTTLS")
        self.assertIn(b"starttls", run.stderr.lower(),
                      "stderr should say that STARTTLS is missing:\n%s" % run)
        self.assertEqual(mark.logins(self.user), [],
                         "logged in in plaintext")
        self.assertNotLeaked(run, self.user.password)

    def test_allowed_with_tls_none(self):
        s = harness.SERVER
        url = "imap://%s@%s:%d" % (self.user.name, s.plain_host, s.plain_port)
        dest = workdir("plain")
        run = imapsnap("backup", "--tls", "none", url, dest,
                       password=self.user.password, timeout=60)
        self.assertExit(run, 0, "--tls none")
        assert_backup_matches(self, self.user, dest)


class Connection(TestCase):
    def test_connection_refused(self):
        sock = socket.socket()
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        sock.close()  # nothing listens there now
        dest = workdir("refused")
        run = imapsnap("backup", "--cacert", harness.SERVER.cacert,
                       "imaps://x@127.0.0.1:%d" % port, dest,
                       password="x", timeout=30)
        self.assertExit(run, 4, "connection refused")

    def test_silent_server_times_out(self):
        """A server that accepts and then says nothing: --timeout 2 ends
        the run with exit 4 instead of hanging a cron job."""
        srv = socket.socket()
        srv.bind(("127.0.0.1", 0))
        srv.listen(4)
        port = srv.getsockname()[1]
        conns = []
        stop = threading.Event()

        def accept():
            srv.settimeout(0.2)
            while not stop.is_set():
                try:
                    conns.append(srv.accept()[0])
                except OSError:
                    pass
        t = threading.Thread(target=accept, daemon=True)
        t.start()
        try:
            dest = workdir("silent")
            run = imapsnap("backup", "--timeout", "2", "--cacert",
                           harness.SERVER.cacert,
                           "imaps://x@127.0.0.1:%d" % port, dest,
                           password="x", timeout=60)
        finally:
            stop.set()
            t.join()
            for c in conns:
                c.close()
            srv.close()
        self.assertExit(run, 4, "timeout")
        self.assertLess(run.elapsed, 15, "took far longer than --timeout 2")
        self.assertTrue(conns, "imapsnap never connected")
