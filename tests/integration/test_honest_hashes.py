"""Hashes that decide what is already there must be the message's, and a
hash that could not be computed must say so (docs/reliability.md).

restore and migrate recognise a message the target already holds by its
size and the SHA-256 of its body.  A server answering UID FETCH BODY.PEEK[]
may send other literals too (BODY[HEADER], a second body): only the value
of BODY[] is the message.  And when libcrypto fails to hash, verify and
restore stop with that reason instead of reporting a damaged chain or a
backup that does not match its manifest (tests/faults/evp_fail.c makes
EVP_DigestUpdate fail on demand)."""

import os
import subprocess

from harness import TestCase, backup, imapsnap, simple_message, workdir
import harness
import test_restore
from fakeimap import FakeIMAP, Mailbox, Msg  # noqa: E402  (test_restore's path)


class BodyThenHeader(test_restore.Target):
    """Holds `decoy` in INBOX; asked for its body, sends BODY[] (the
    decoy's bytes) and then BODY[HEADER] holding `claimed`: a client that
    hashes the last literal takes the decoy for `claimed`."""

    claimed = b""

    def fetch_response(self, c, seq, msg):
        return (b"* %d FETCH (UID %d BODY[] {%d}\r\n%s BODY[HEADER] {%d}\r\n"
                b"%s)\r\n" % (seq, msg.uid, len(msg.body), msg.body,
                              len(self.claimed), self.claimed))


class OnlyTheBodyCounts(test_restore.ScriptedBackup):
    def test_a_header_literal_is_not_the_message(self):
        """The target's INBOX holds a message of the same size as one in
        the backup but different bytes; its server sends the backup's
        bytes as BODY[HEADER] after the real BODY[].  restore must append
        the backup's message: nothing of the target is that message."""
        want = test_restore.account(self.user)["INBOX"]
        body = want[0][2]
        decoy = bytes([body[0] ^ 0x20]) + body[1:]  # same size, not it
        script = BodyThenHeader(mailboxes=[
            Mailbox(b"INBOX", [Msg(1, decoy)], uidvalidity=4242)])
        script.claimed = body
        with FakeIMAP(script) as srv:
            run = self.run_restore(srv)
        self.assertExit(run, 0)
        inbox = [m.body for m in script.mailbox(b"INBOX").msgs]
        self.assertIn(body, inbox, "the backup's message was taken for "
                      "the decoy and never appended:\n%s" % run)
        self.assertEqual(len(inbox), 1 + len(want), run)


def build_shim(work):
    """tests/faults/evp_fail.c as a shared object in `work`."""
    src = os.path.join(harness.ROOT, "tests", "faults", "evp_fail.c")
    out = os.path.join(work, "evp_fail.so")
    subprocess.run(["cc", "-shared", "-fPIC", "-O2", "-o", out, src, "-ldl"],
                   check=True)
    return out


def failing(shim, after, min_len=0):
    """The environment that makes the `after`-th EVP_DigestUpdate of at
    least `min_len` bytes and every later one fail.  A sanitizer build must
    let the shim come before its runtime."""
    env = {"LD_PRELOAD": shim, "IMAPSNAP_FAULT_EVP_UPDATE": str(after),
           "IMAPSNAP_FAULT_EVP_MIN_LEN": str(min_len)}
    opts = os.environ.get("ASAN_OPTIONS", "")
    env["ASAN_OPTIONS"] = (opts + ":" if opts else "") + \
        "verify_asan_link_order=0"
    return env


class DigestFailures(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.user = harness.SERVER.new_user("evp")
        with cls.user.oracle() as o:
            for i in range(3):
                o.append("INBOX", simple_message("m%d" % i, "body %d\n" % i))
        cls.work = workdir("evp")
        cls.shim = build_shim(cls.work)
        cls.dest = os.path.join(cls.work, "backup")
        run = backup(cls.user, cls.dest)
        if run.rc != 0:
            raise AssertionError("backup failed:\n%s" % run)

    def test_the_shim_works(self):
        """A control: far enough along, nothing fails and verify passes."""
        run = imapsnap("verify", self.dest,
                       env=failing(self.shim, 10 ** 9))
        self.assertExit(run, 0)

    def test_verify_says_hashing_failed(self):
        """Hashing the run file fails: verify stops with that reason; it
        must not report the chain as broken or a run as edited."""
        run = imapsnap("verify", self.dest, env=failing(self.shim, 1))
        text = run.output().decode("utf-8", "replace")
        self.assertNotEqual(run.rc, 0, run)
        self.assertNotEqual(run.rc, 7, "a failure of this machine reported "
                            "as a damaged backup:\n%s" % run)
        self.assertIn("computing a SHA-256 failed", text, run)
        self.assertNotIn("changed since it was chained", text, run)

    def test_restore_says_hashing_failed(self):
        """Hashing a message read back from the backup fails: restore
        stops with that reason instead of calling the backup's copy
        damaged, and appends nothing it could not check."""
        target = harness.SERVER.new_user("evpdst")
        # The restore state's keys hash a few short strings; the bodies
        # read back are the first updates of 60 bytes or more.
        run = imapsnap("restore", "--tls", "none", "--state-dir",
                       os.path.join(self.work, "rstate"), self.dest,
                       harness.SERVER.url(target, "imap",
                                          host=harness.SERVER.plain_host,
                                          port=harness.SERVER.plain_port),
                       password=target.password,
                       env=failing(self.shim, 1, min_len=60))
        text = run.output().decode("utf-8", "replace")
        self.assertNotEqual(run.rc, 0, run)
        self.assertIn("computing a SHA-256 failed", text, run)
        self.assertNotIn("does not match its manifest", text, run)
        with target.oracle() as o:
            appended = sum(len(o.messages(f)) for f in o.folders()
                           if f.selectable)
        self.assertEqual(appended, 0, "appended what it could not check:"
                         "\n%s" % run)
