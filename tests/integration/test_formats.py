"""The other output formats: mbox, mbox.gz and archives (tar, tar.gz,
tar.zst, tar.xz, zip), each read back with standard tools and compared
with what the server holds, byte for byte."""

import gzip
import mailbox
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time

from harness import TestCase, assert_backup_matches, backup, simple_message, \
    workdir
import harness

ARCHIVES = ("tar", "tar.gz", "tar.zst", "tar.xz", "zip")
VOLUME = re.compile(r"^\d{8}T\d{6}Z\.(tar|tar\.gz|tar\.zst|tar\.xz|zip)$")
FROM_LINE = re.compile(rb"^From \S+ (Mon|Tue|Wed|Thu|Fri|Sat|Sun) "
                       rb"(Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) "
                       rb"[ \d]\d \d\d:\d\d:\d\d \d{4}$")
QUOTED = re.compile(rb"^>+From ")


# --- an mboxrd reader, independent of imapsnap ----------------------------


def read_mboxrd(data):
    """[(offset of the From line, From line, message)] of an mboxrd file:
    messages start at lines beginning with "From ", the blank line before
    the next one (or the end) is the separator, and one '>' is removed from
    every line matching ^>+From ."""
    out = []
    pos = 0
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()
    cur = None
    for line in lines:
        if line.startswith(b"From "):
            if cur:
                out.append(cur)
            cur = [pos, line, []]
        else:
            assert cur is not None, "no From line at the start"
            cur[2].append(line[1:] if QUOTED.match(line) else line)
        pos += len(line) + 1
    if cur:
        out.append(cur)
    result = []
    for offset, from_line, body in out:
        assert body and body[-1] == b"", \
            "message at %d does not end in a blank line" % offset
        text = b"\n".join(body[:-1])
        result.append((offset, from_line, text + b"\n" if body[:-1] else b""))
    return result


def status_lines(flags):
    """The Status: and X-Status: lines mutt writes for these IMAP flags
    (mutt's copy.c; Dovecot's T and D in X-Status)."""
    f = {x.lower() for x in flags}
    out = b"Status: " + (b"RO" if "\\seen" in f else b"O") + b"\n"
    x = b"".join(letter for flag, letter in (
        ("\\answered", b"A"), ("\\flagged", b"F"), ("\\draft", b"T"),
        ("\\deleted", b"D")) if flag in f)
    return out + (b"X-Status: " + x + b"\n" if x else b"")


def expected_mbox_form(body, flags=()):
    """A server message as an mbox reader gives it back: the Status:
    lines first, LF line ends and a final line end."""
    text = body.replace(b"\r\n", b"\n")
    if text and not text.endswith(b"\n"):
        text += b"\n"
    return status_lines(flags) + text


def read_index(path):
    """{offset: uid} from imapsnap's mbox index, and the UIDVALIDITY."""
    out, uidvalidity = {}, None
    with open(path) as f:
        for line in f:
            uv, uid, offset, length, end = (int(x) for x in line.split())
            uidvalidity = uv
            assert offset not in out
            out[offset] = uid
    return out, uidvalidity


class Mbox(TestCase):
    def check_mbox(self, user, dest, gz=False):
        """Every folder's DEST/<folder>.mbox[.gz] holds every message of
        the server exactly once, in mboxrd form; Python's mailbox reads the
        same number of messages.  Returns the number of messages."""
        ext = ".mbox.gz" if gz else ".mbox"
        total = 0
        with user.oracle() as o:
            for f in o.folders():
                if not f.selectable:
                    continue
                msgs = o.messages(f)
                path = f.path(dest) + ext
                if not msgs and not os.path.exists(path):
                    continue
                with (gzip.open if gz else open)(path, "rb") as fh:
                    data = fh.read()
                rel = os.path.relpath(path, dest)
                index, uidvalidity = read_index(os.path.join(
                    dest, ".imapsnap", "mbox", rel + ".idx"))
                self.assertEqual(uidvalidity if msgs else None,
                                 o.info["UIDVALIDITY"] if msgs else None)
                parsed = read_mboxrd(data)
                self.assertEqual(sorted(index.values()), sorted(msgs),
                                 "%s: UIDs in the index" % f.name)
                self.assertEqual(len(parsed), len(msgs),
                                 "%s: messages in %s" % (f.name, path))
                for offset, from_line, text in parsed:
                    self.assertRegex(from_line, FROM_LINE)
                    uid = index[offset]
                    want = expected_mbox_form(o.body(uid), msgs[uid].flags)
                    if text != want:
                        self.fail("%s UID %d differs after reading back "
                                  "(%d vs %d bytes)" % (f.name, uid,
                                                        len(text), len(want)))
                # Python's own reader agrees on the count.
                with tempfile.NamedTemporaryFile(suffix=".mbox") as tmp:
                    tmp.write(data)
                    tmp.flush()
                    box = mailbox.mbox(tmp.name, create=False)
                    self.assertEqual(len(box), len(msgs),
                                     "%s: Python's mailbox" % f.name)
                    box.close()
                total += len(msgs)
        return total

    def test_mbox_round_trip(self):
        user = harness.SERVER.new_user("mbox")
        counts = user.load_corpus(seed=21, scale=0.4)
        dest = workdir("mbox")
        self.assertExit(backup(user, dest, "--format", "mbox"), 0)
        self.assertEqual(self.check_mbox(user, dest), sum(counts.values()))
        self.assertFalse(os.path.exists(os.path.join(dest, "INBOX")),
                         "mbox makes no Maildir")

    def test_mbox_gz_round_trip(self):
        user = harness.SERVER.new_user("mboxgz")
        counts = user.load_corpus(seed=22, scale=0.4)
        dest = workdir("mboxgz")
        self.assertExit(backup(user, dest, "--format", "mbox.gz"), 0)
        self.assertEqual(self.check_mbox(user, dest, gz=True),
                         sum(counts.values()))
        # gzip(1) agrees that the file is sound.
        subprocess.run(["gzip", "-t", os.path.join(dest, "INBOX.mbox.gz")],
                       check=True)

    def test_from_lines_survive(self):
        user = harness.SERVER.new_user("fromlines")
        body = ("From the start\n>From once quoted\n>>From twice\n"
                "From \nFromage\n")
        with user.oracle() as o:
            o.append("INBOX", simple_message("from lines", body),
                     date=1600000000)
            o.append("INBOX", b"Return-Path: <bounce@example.org>\r\n"
                     b"Subject: no final newline\r\n\r\nFrom x", date=1600000001)
        for fmt in ("mbox", "mbox.gz"):
            dest = workdir("fromlines")
            self.assertExit(backup(user, dest, "--format", fmt), 0)
            path = os.path.join(dest, "INBOX." + fmt)
            with (gzip.open if fmt == "mbox.gz" else open)(path, "rb") as f:
                data = f.read()
            self.assertIn(b"\n>From the start\n>>From once quoted\n"
                          b">>>From twice\n>From \nFromage\n", data)
            self.assertIn(b"\nFrom bounce@example.org Sun Sep 13 12:26:41 "
                          b"2020\n", data)
            self.assertEqual(self.check_mbox(user, dest,
                                             gz=fmt == "mbox.gz"), 2)

    def test_rerun_appends_only_new(self):
        user = harness.SERVER.new_user("mboxincr")
        user.load_corpus(seed=23, scale=0.2, big=False)
        for fmt in ("mbox", "mbox.gz"):
            dest = workdir("mboxincr")
            self.assertExit(backup(user, dest, "--format", fmt), 0)
            path = os.path.join(dest, "Sent." + fmt)
            with open(path, "rb") as f:
                before = f.read()
            mark = harness.SERVER.log_mark()
            self.assertExit(backup(user, dest, "--format", fmt), 0)
            self.assertEqual(sum(c for c, _ in mark.sessions(user)), 0,
                             "a no-op re-run fetched bodies")
            with open(path, "rb") as f:
                self.assertEqual(f.read(), before, "no-op re-run changed it")
            with user.oracle() as o:
                o.append("Sent", simple_message("new %s" % fmt),
                         ("\\Seen",), date=1610000000)
            self.assertExit(backup(user, dest, "--format", fmt), 0)
            with open(path, "rb") as f:
                after = f.read()
            self.assertTrue(after.startswith(before), "appended, not "
                            "rewritten")
            self.check_mbox(user, dest, gz=fmt == "mbox.gz")

    def kill_during_append(self, fmt):
        user = harness.SERVER.new_user("kill")
        with user.oracle() as o:
            for i in range(20):
                o.append("INBOX", simple_message("before %d" % i),
                         date=1600000000 + i)
        dest = workdir("kill")
        self.assertExit(backup(user, dest, "--format", fmt), 0)
        path = os.path.join(dest, "INBOX." + fmt)
        idx = os.path.join(dest, ".imapsnap", "mbox", "INBOX.%s.idx" % fmt)
        committed = os.path.getsize(path)
        # A large message to be in the middle of when the run is killed,
        # and more after it.
        big = b"".join(b"From line %07d of a large message\r\n" % i
                       for i in range(1_200_000))
        with user.oracle() as o:
            o.append("INBOX", simple_message("big", "x\n") + big,
                     date=1600001000)
            for i in range(20):
                o.append("INBOX", simple_message("after %d" % i),
                         date=1600002000 + i)
        env = dict(os.environ, IMAPSNAP_PASSWORD=user.password)
        proc = subprocess.Popen(
            [harness.BINARY, "backup", "--cacert", user.server.cacert,
             "--format", fmt, user.server.url(user, "imaps"), dest],
            env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL, start_new_session=True)
        deadline = time.monotonic() + 60
        killed = False
        while proc.poll() is None and time.monotonic() < deadline:
            if os.path.getsize(path) > committed + 2_000_000:
                os.kill(proc.pid, signal.SIGKILL)
                killed = True
                break
            time.sleep(0.001)
        proc.wait()
        self.assertTrue(killed, "the run ended before it could be killed")
        torn = os.path.getsize(path)
        self.assertGreater(torn, committed, "nothing torn to recover from")
        self.assertEqual(sorted(read_index(idx)[0].values()),
                         list(range(1, 21)),
                         "the killed run committed nothing")
        run = backup(user, dest, "--format", fmt)
        self.assertExit(run, 0)
        self.assertEqual(self.check_mbox(user, dest, gz=fmt == "mbox.gz"),
                         41)

    def test_killed_mbox_append_leaves_each_message_once(self):
        self.kill_during_append("mbox")

    def test_killed_mbox_gz_append_leaves_each_message_once(self):
        self.kill_during_append("mbox.gz")


# --- archives ------------------------------------------------------------


def volumes(dest):
    return sorted(n for n in os.listdir(dest) if VOLUME.match(n))


def listing(tool, path):
    """The entry names a tool lists (directories without their slash)."""
    if tool == "unzip":
        out = subprocess.run(["unzip", "-Z1", path], check=True,
                             stdout=subprocess.PIPE).stdout
    else:
        out = subprocess.run([tool, "-tf", path], check=True,
                             stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE).stdout
    return sorted(n.rstrip("/") for n in out.decode("utf-8").splitlines()
                  if n)


def extract(tool, path, into):
    os.makedirs(into)
    if tool == "unzip":
        cmd = ["unzip", "-q", path, "-d", into]
    else:
        cmd = [tool, "-xf", path, "-C", into]
    run = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    if run.returncode or run.stderr:
        raise AssertionError("%s: %s" % (" ".join(cmd),
                                         run.stderr.decode("utf-8",
                                                           "replace")))


def tools_for(fmt):
    return ("bsdtar", "unzip") if fmt == "zip" else ("bsdtar", "tar")


class Archives(TestCase):
    def test_each_archive_format_round_trips(self):
        """One volume per format; bsdtar, GNU tar (unzip for zip) list the
        same entries and extract a Maildir identical to the server:
        names, flags, bytes and dates."""
        user = harness.SERVER.new_user("arch")
        user.load_corpus(seed=31, scale=0.3)
        for fmt in ARCHIVES:
            dest = workdir("arch-" + fmt)
            self.assertExit(backup(user, dest, "--format", fmt), 0)
            vols = volumes(dest)
            self.assertEqual(len(vols), 1, "%s: %s" % (fmt,
                                                       os.listdir(dest)))
            self.assertTrue(vols[0].endswith("." + fmt))
            left = [n for n in os.listdir(dest) if ".tmp-" in n]
            self.assertEqual(left, [], "temporary files left")
            vol = os.path.join(dest, vols[0])
            names = None
            for tool in tools_for(fmt):
                got = listing(tool, vol)
                if names is not None:
                    self.assertEqual(got, names, "%s %s" % (tool, fmt))
                names = got
                into = os.path.join(workdir("x-%s-%s" % (fmt, tool)), "m")
                extract(tool, vol, into)
                assert_backup_matches(self, user, into)

    def test_runs_write_volumes_of_what_is_new(self):
        user = harness.SERVER.new_user("vol")
        user.load_corpus(seed=32, scale=0.2, big=False)
        dest = workdir("vol")
        self.assertExit(backup(user, dest, "--format", "tar.gz"), 0)
        first = volumes(dest)
        self.assertEqual(len(first), 1)
        # Nothing new: no volume, no body fetched.
        mark = harness.SERVER.log_mark()
        self.assertExit(backup(user, dest, "--format", "tar.gz"), 0)
        self.assertEqual(sum(c for c, _ in mark.sessions(user)), 0)
        self.assertEqual(volumes(dest), first)
        with user.oracle() as o:
            o.append("INBOX", simple_message("news"), ("\\Seen",),
                     date=1620000000)
        time.sleep(1.1)  # a volume's name is its second
        self.assertExit(backup(user, dest, "--format", "tar.gz"), 0)
        vols = volumes(dest)
        self.assertEqual(len(vols), 2)
        self.assertEqual(vols[0], first[0])
        names = [n for n in listing("bsdtar", os.path.join(dest, vols[1]))
                 if "/cur/" in n]
        self.assertEqual(len(names), 1, names)
        # All volumes extracted in order give the whole account.
        into = os.path.join(workdir("vol-x"), "m")
        os.makedirs(into)
        for v in vols:
            subprocess.run(["tar", "-xf", os.path.join(dest, v), "-C", into],
                           check=True)
        assert_backup_matches(self, user, into)

    def test_single_file_export(self):
        user = harness.SERVER.new_user("single")
        user.load_corpus(seed=33, scale=0.2, big=False)
        where = workdir("single")
        for name, tool in (("export.tar.gz", "tar"), ("export.tar.zst", "tar"),
                           ("export.zip", "unzip")):
            path = os.path.join(where, name)
            for _ in range(2):  # the second run writes it anew
                self.assertExit(backup(user, path), 0)
            self.assertEqual(sorted(n for n in os.listdir(where)
                                    if n.startswith(".")), [],
                             "nothing but the export beside it")
            into = os.path.join(workdir("single-x"), "m")
            extract(tool, path, into)
            assert_backup_matches(self, user, into)
