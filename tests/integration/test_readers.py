"""What other software sees in a backup (docs/formats.md), read with the
real programs: mutt (in tmux) and Python's mailbox see every mbox
message's flags from its Status:/X-Status: lines; gzip and zcat accept
an empty folder's .mbox.gz; bsdtar, GNU tar and unzip extract an empty
folder's directories and dates before 1970 (pax); notmuch indexes a
Maildir backup with its flags and writes nothing into it; a leap second
(23:59:60) stays on its day through backup and restore."""

import gzip
import mailbox
import os
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
import time

from harness import TestCase, backup, imapsnap, simple_message, workdir
import harness

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, os.path.join(ROOT, "tests", "fakeimap"))
from fakeimap import FakeIMAP, Mailbox, Msg, Script  # noqa: E402

# (subject, IMAP flags): one of each case mutt shows differently.
FLAGGED = [
    ("read", ("\\Seen",)),
    ("unread", ()),
    ("replied and flagged", ("\\Seen", "\\Answered", "\\Flagged")),
    ("deleted", ("\\Seen", "\\Deleted")),
    ("draft", ("\\Draft",)),
]
OLD_DATE = -315619200  # 1960-01-01 00:00:00 UTC


def flagged_account(prefix):
    user = harness.SERVER.new_user(prefix)
    with user.oracle() as o:
        o.create("Empty")
        for i, (subject, flags) in enumerate(FLAGGED):
            o.append("INBOX", simple_message(subject), flags,
                     date=1600000000 + i)
    return user


def mutt_index(path):
    """mutt's index of the mbox at `path`, read-only, as tmux shows it:
    {subject: status flags} and the status line's counts."""
    home = tempfile.mkdtemp(prefix="imapsnap-mutt-")
    rc = os.path.join(home, "muttrc")
    with open(rc, "w") as f:
        f.write('set folder="%s"\nset index_format="<%%s> [%%Z]"\n'
                "set sort=mailbox-order\nset mark_old=yes\n"
                "set check_new=no\nset status_on_top=no\n" % home)
    session = "imapsnap-%d" % os.getpid()
    env = dict(os.environ, HOME=home, TERM="xterm", LANG="C.UTF-8")
    subprocess.run(["tmux", "kill-session", "-t", session],
                   stderr=subprocess.DEVNULL)
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "150",
                    "-y", "40", "mutt -n -F %s -R -f %s" % (rc, path)],
                   env=env, check=True)
    try:
        deadline = time.time() + 15
        while True:
            screen = subprocess.run(
                ["tmux", "capture-pane", "-p", "-t", session],
                stdout=subprocess.PIPE, check=True).stdout.decode()
            if "Msgs:" in screen or time.time() > deadline:
                break
            time.sleep(0.2)
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session],
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(home, ignore_errors=True)
    rows = dict(re.findall(r"<([^>]*)> \[(...)\]", screen))
    status = re.search(r"\[(Msgs:[^\]]*)\]", screen)
    return rows, status.group(1) if status else screen


class Mbox(TestCase):
    def test_mutt_sees_the_flags(self):
        user = flagged_account("mutt")
        dest = workdir("mutt")
        self.assertExit(backup(user, dest, "--format", "mbox"), 0)
        rows, status = mutt_index(os.path.join(dest, "INBOX.mbox"))
        # %Z: N new, O old (unread), r replied, ! flagged, D deleted.
        self.assertEqual(rows, {
            "read": "   ",
            "unread": "O  ",
            "replied and flagged": "r !",
            "deleted": " D ",
            "draft": "O  ",
        }, status)
        self.assertIn("Msgs:5", status)
        self.assertNotIn("New:", status)
        self.assertIn("Old:2", status)
        self.assertIn("Del:1", status)
        self.assertIn("Flag:1", status)

    def test_python_mailbox_sees_the_flags(self):
        user = flagged_account("pymbox")
        for fmt in ("mbox", "mbox.gz"):
            with self.subTest(fmt=fmt):
                dest = workdir("pymbox-" + fmt)
                self.assertExit(backup(user, dest, "--format", fmt), 0)
                path = os.path.join(dest, "INBOX." + fmt)
                if fmt == "mbox.gz":
                    plain = os.path.join(workdir("pymbox-plain"), "x.mbox")
                    with gzip.open(path) as f, open(plain, "wb") as g:
                        g.write(f.read())
                    path = plain
                got = {m["Subject"]: "".join(sorted(m.get_flags()))
                       for m in mailbox.mbox(path)}
                self.assertEqual(got, {"read": "OR", "unread": "O",
                                       "replied and flagged": "AFOR",
                                       "deleted": "DOR", "draft": "OT"})

    def test_restore_gives_back_exactly_the_bytes_received(self):
        """The Status: lines are the manifest's `added`: restore leaves
        them out, and the server gets its own bytes back."""
        user = flagged_account("mbrt")
        dest = workdir("mbrt")
        self.assertExit(backup(user, dest, "--format", "mbox"), 0)
        target = harness.SERVER.new_user("mbrtt")
        run = imapsnap("restore", "--cacert", target.server.cacert,
                       "--state-dir", workdir("mbrt-state"), dest,
                       target.server.url(target, "imaps"),
                       password=target.password)
        self.assertExit(run, 0)
        with user.oracle() as a, target.oracle() as b:
            want = sorted((m.flags, a.body(u)) for u, m in
                          a.messages("INBOX").items())
            got = sorted((m.flags, b.body(u)) for u, m in
                         b.messages("INBOX").items())
        self.assertEqual(got, want)

    def test_empty_gzip_folder_is_valid_gzip(self):
        user = flagged_account("gzempty")
        dest = workdir("gzempty")
        self.assertExit(backup(user, dest, "--format", "mbox.gz"), 0)
        path = os.path.join(dest, "Empty.mbox.gz")
        self.assertTrue(os.path.getsize(path) > 0)
        self.assertEqual(subprocess.run(["gzip", "-t", path]).returncode, 0)
        out = subprocess.run(["zcat", path], stdout=subprocess.PIPE)
        self.assertEqual((out.returncode, out.stdout), (0, b""))
        self.assertExit(imapsnap("verify", dest), 0)
        # A message added later follows on in the same file.
        with user.oracle() as o:
            o.append("Empty", simple_message("later"), (), date=1650000000)
        self.assertExit(backup(user, dest, "--format", "mbox.gz"), 0)
        out = subprocess.run(["zcat", path], stdout=subprocess.PIPE)
        self.assertEqual(out.returncode, 0)
        self.assertEqual(out.stdout.count(b"\nSubject: later\n"), 1)
        self.assertExit(imapsnap("verify", dest), 0)


def extract(tool, archive, into):
    os.makedirs(into)
    cmd = {"bsdtar": ["bsdtar", "-xf", archive, "-C", into],
           "tar": ["tar", "-xf", archive, "-C", into],
           "unzip": ["unzip", "-q", archive, "-d", into]}[tool]
    run = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         env=dict(os.environ, LANG="C"))
    return run


class Archives(TestCase):
    def test_empty_folders_and_old_dates_survive_extraction(self):
        """From a scripted server: Dovecot 2.3 itself keeps a 1960
        INTERNALDATE only until the session ends (later ones report it as
        2096), so no real server here can serve one."""
        body = b"Subject: sixties\r\n\r\nOld.\r\n"
        script = Script(mailboxes=[
            Mailbox("INBOX", [Msg(1, body, date="01-Jan-1960 00:00:00 +0000"),
                              Msg(2, body)]),
            Mailbox("Empty", [])])
        base = workdir("arch")
        with FakeIMAP(script) as srv:
            for fmt in ("tar.gz", "tar.xz", "zip"):
                run = imapsnap("backup", "--tls", "none",
                               "imap://user@127.0.0.1:%d" % srv.port,
                               os.path.join(base, "export." + fmt),
                               password="secret")
                self.assertExit(run, 0, fmt)
        for fmt, tools in (("tar.gz", ("bsdtar", "tar")),
                           ("tar.xz", ("bsdtar", "tar")),
                           ("zip", ("bsdtar", "unzip"))):
            dest = os.path.join(base, "export." + fmt)
            for tool in tools:
                with self.subTest(fmt=fmt, tool=tool):
                    into = os.path.join(base, "%s-%s" % (fmt, tool))
                    run = extract(tool, dest, into)
                    self.assertEqual(run.returncode, 0, run.stderr)
                    # GNU tar says so of any date before 1970, and sets
                    # it all the same.
                    self.assertEqual(re.sub(rb"tar: [^\n]*: implausibly old "
                                            rb"time stamp [^\n]*\n", b"",
                                            run.stderr), b"")
                    for sub in ("cur", "new", "tmp"):
                        self.assertTrue(os.path.isdir(
                            os.path.join(into, "Empty", sub)), sub)
                    mtime = os.stat(os.path.join(
                        into, "INBOX", "cur",
                        "1000_1.imapsnap:2,")).st_mtime
                    if fmt == "zip":
                        # Zip holds no date before 1980 that unzip reads
                        # (docs/formats.md): the earliest, never 2096.
                        self.assertLessEqual(mtime, 315532800 + 86400)
                    else:
                        self.assertEqual(mtime, OLD_DATE)
            self.assertExit(imapsnap("verify", dest), 0, fmt)
        listing = subprocess.run(
            ["tar", "-tvf", os.path.join(base, "export.tar.gz"),
             "--full-time"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env=dict(os.environ, LANG="C", TZ="UTC"))
        self.assertEqual(listing.stderr, b"")
        self.assertRegex(listing.stdout.decode(),
                         r"1960-01-01 00:00:00 INBOX/cur/1000_1\.imapsnap")
        with tarfile.open(os.path.join(base, "export.tar.gz")) as t:
            names = t.getnames()
        self.assertIn("Empty/cur", names)


class Notmuch(TestCase):
    def test_notmuch_indexes_a_maildir_backup_with_its_flags(self):
        user = flagged_account("nm")
        dest = workdir("nm")
        self.assertExit(backup(user, dest), 0)
        db = workdir("nm-db")
        conf = os.path.join(db, "config")
        with open(conf, "w") as f:
            f.write("[database]\npath=%s\nmail_root=%s\n"
                    "[new]\ntags=\nignore=.imapsnap\n"
                    "[maildir]\nsynchronize_flags=true\n" % (db, dest))
        env = dict(os.environ, NOTMUCH_CONFIG=conf, HOME=db)

        def nm(*args):
            run = subprocess.run(["notmuch"] + list(args), env=env,
                                 stdout=subprocess.PIPE,
                                 stderr=subprocess.PIPE)
            self.assertEqual(run.returncode, 0, run.stderr)
            return run.stdout.decode()

        nm("new", "--quiet")
        self.assertEqual(nm("count", "*").strip(), "5")
        self.assertEqual(nm("count", "tag:unread").strip(), "2")
        self.assertEqual(nm("count", "tag:flagged").strip(), "1")
        self.assertEqual(nm("count", "tag:replied").strip(), "1")
        self.assertEqual(nm("count", "tag:draft").strip(), "1")
        self.assertEqual(nm("count", "subject:flagged").strip(), "1")
        # Nothing of notmuch's own went into the backup.
        self.assertExit(imapsnap("verify", dest), 0)


LEAP = "30-Jun-2015 23:59:60 +0000"


class LeapSecond(TestCase):
    def test_leap_second_stays_on_its_day(self):
        """RFC 3339 5.7 and RFC 5322 3.3 allow :60.  The manifest keeps it
        as the server said it, the file's date is :59 of the same day, and
        restore sends :60 back (Dovecot keeps :59), never the next day."""
        body = b"Subject: leap\r\n\r\nA second more.\r\n"
        script = Script(mailboxes=[Mailbox("INBOX", [Msg(1, body,
                                                         date=LEAP)])])
        dest = workdir("leap")
        with FakeIMAP(script) as srv:
            run = imapsnap("backup", "--tls", "none",
                           "imap://user@127.0.0.1:%d" % srv.port, dest,
                           password="secret")
        self.assertExit(run, 0)
        (name,) = os.listdir(os.path.join(dest, "INBOX", "cur"))
        self.assertEqual(os.stat(os.path.join(dest, "INBOX", "cur", name))
                         .st_mtime, 1435708799)
        mdir = os.path.join(dest, ".imapsnap", "manifest")
        (run_file,) = [n for n in os.listdir(mdir) if n.endswith(".jsonl")]
        text = open(os.path.join(mdir, run_file)).read()
        self.assertIn('"internaldate":"2015-06-30T23:59:60+00:00"', text)
        target = harness.SERVER.new_user("leapt")
        run = imapsnap("restore", "--cacert", target.server.cacert,
                       "--state-dir", workdir("leap-state"), dest,
                       target.server.url(target, "imaps"),
                       password=target.password)
        self.assertExit(run, 0)
        with target.oracle() as o:
            (m,) = o.messages("INBOX").values()
        self.assertEqual(m.internaldate, 1435708799)
