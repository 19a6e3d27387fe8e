"""Each test server (servers.py) starts, logs a user in, and serves what
was put into it: the ground the server matrix stands on."""

import hashlib

import harness
import servers


class TestServers(harness.TestCase):
    def test_each_server_backs_up(self):
        for srv in servers.each():
            with self.subTest(server=srv.kind):
                user = srv.new_user()
                msg = harness.simple_message("on %s" % srv.kind)
                with user.oracle() as o:
                    o.append("INBOX", msg, flags=("\\Seen",), date=1600000000)
                dest = harness.workdir("servers-" + srv.kind)
                run = harness.imapsnap(
                    "backup", *srv.tls_args(), srv.url(user), dest,
                    password=user.password)
                self.assertExit(run, 0)
                saved = harness.saved_messages(dest + "/INBOX")
                self.assertEqual(len(saved), 1, run)
                (s,) = saved.values()
                self.assertEqual(
                    hashlib.sha256(s.read()).hexdigest(),
                    hashlib.sha256(srv.stored_form(
                        msg.replace(b"\n", b"\r\n"))).hexdigest())
                self.assertEqual(s.flags, "S")
