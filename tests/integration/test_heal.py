"""A backup heals itself: a message deleted from the backup (a Maildir
file, an mbox file deleted, cut short or rewritten by a mail reader, an
archive volume deleted or damaged) is fetched again by the next run while
the server has it, and the summary says so; a run with nothing missing
fetches nothing (Dovecot's session counters, read from its log, are the
oracle), and verify accepts the healed backup."""

import glob
import gzip
import json
import mailbox
import os
import re
import shutil
import subprocess
import time

from harness import TestCase, backup, imapsnap, simple_message, workdir
import harness


class Heal(TestCase):
    def test_deleted_messages_are_fetched_again(self):
        user = harness.SERVER.new_user("heal")
        with user.oracle() as o:
            o.create("Work")
            for i in range(4):
                o.append("INBOX", simple_message("inbox %d" % i),
                         ("\\Seen",), date=1600000000 + i)
            o.append("Work", simple_message("work"), (), date=1610000000)
        dest = workdir("heal")
        self.assertExit(backup(user, dest), 0)
        files = sorted(glob.glob(os.path.join(dest, "INBOX", "cur", "*")))
        gone = files[1:3]
        for p in gone:
            os.unlink(p)
        self.assertExit(imapsnap("verify", dest), 7)
        mark = harness.SERVER.log_mark()
        run = backup(user, dest)
        self.assertExit(run, 0)
        self.assertIn(b"2 missing from the backup and fetched again",
                      run.stderr)
        self.assertEqual(sum(n for n, _ in mark.sessions(user)), 2)
        for p in gone:
            self.assertTrue(os.path.exists(p), p)
        self.assertExit(imapsnap("verify", dest), 0)
        # Nothing missing: nothing fetched, nothing said.
        mark = harness.SERVER.log_mark()
        run = backup(user, dest, "--json")
        self.assertExit(run, 0)
        summary = json.loads(run.stdout)
        self.assertEqual((summary["healed"], summary["planned"]), (0, 0),
                         summary)
        self.assertEqual(sum(n for n, _ in mark.sessions(user)), 0)


# --- mbox and mbox.gz --------------------------------------------------------


def message_ids(data):
    return re.findall(rb"^Message-ID: (<[^>]*>)", data, re.M)


class HealMbox(TestCase):
    """An mbox (or mbox.gz) file deleted, cut short, or rewritten by a
    mail reader: the next run fetches exactly the messages that are gone,
    nothing twice, and keeps what the file still holds."""

    def start(self, fmt, n=5):
        user = harness.SERVER.new_user("hmbox")
        with user.oracle() as o:
            o.create("Work")
            for i in range(n):
                o.append("INBOX", simple_message("inbox %d" % i,
                                                 "body %d\n" % i * 40),
                         ("\\Seen",) if i % 2 else (),
                         date=1600000000 + i)
            o.append("Work", simple_message("work"), (), date=1610000000)
        dest = workdir("hmbox")
        self.assertExit(backup(user, dest, "--format", fmt), 0)
        self.assertExit(imapsnap("verify", dest), 0)
        return user, dest, os.path.join(dest, "INBOX." + fmt)

    def read(self, path):
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
            return f.read()

    def heal(self, user, dest, fmt, missing):
        """The next run fetches `missing` messages, says so, and leaves a
        backup verify accepts; the run after it fetches none."""
        mark = harness.SERVER.log_mark()
        run = backup(user, dest, "--format", fmt)
        self.assertExit(run, 0)
        self.assertIn(b"%d missing from the backup and fetched again"
                      % missing, run.stderr, run)
        self.assertEqual(sum(n for n, _ in mark.sessions(user)), missing,
                         run)
        check = imapsnap("verify", dest)
        self.assertExit(check, 0)
        mark = harness.SERVER.log_mark()
        run = backup(user, dest, "--format", fmt, "--json")
        self.assertExit(run, 0)
        summary = json.loads(run.stdout)
        self.assertEqual((summary["healed"], summary["planned"]), (0, 0),
                         summary)
        self.assertEqual(sum(n for n, _ in mark.sessions(user)), 0)

    def assert_restores(self, user, dest):
        """restore of the healed backup gives back the account."""
        from test_restore import account, restore
        dst = harness.SERVER.new_user("hrest")
        run = restore(dst, dest, "--json",
                      state=os.path.join(workdir("hrest"), "state"))
        self.assertExit(run, 0, "restore")
        self.assertEqual(account(dst), account(user))

    def assert_once_each(self, path, n=5):
        ids = message_ids(self.read(path))
        self.assertEqual(len(ids), n, ids)
        self.assertEqual(len(set(ids)), n, ids)

    def test_mbox_deleted(self):
        user, dest, path = self.start("mbox")
        os.unlink(path)
        self.heal(user, dest, "mbox", 5)
        self.assert_once_each(path)
        self.assert_restores(user, dest)

    def test_mbox_cut_in_a_message(self):
        user, dest, path = self.start("mbox")
        data = self.read(path)
        starts = [m.start() for m in re.finditer(rb"^From ", data, re.M)]
        cut = starts[2] + (starts[3] - starts[2]) // 2
        with open(path, "r+b") as f:
            f.truncate(cut)
        self.heal(user, dest, "mbox", 3)
        self.assert_once_each(path)
        self.assert_restores(user, dest)
        # What was cut off is kept, not deleted.
        kept = glob.glob(os.path.join(dest, ".imapsnap", "damaged",
                                      "INBOX.mbox@*"))
        self.assertEqual(len(kept), 1, kept)
        self.assertEqual(open(kept[0], "rb").read(), data[starts[2]:cut])
        self.assertTrue(self.read(path).startswith(data[:starts[2]]))

    def test_mbox_message_removed_by_a_reader(self):
        """Python's mailbox removes the second message and rewrites the
        file (the others move up, the last loses its blank line)."""
        user, dest, path = self.start("mbox")
        box = mailbox.mbox(path)
        keys = sorted(box.keys())
        gone = message_ids(box.get_bytes(keys[1]))
        box.remove(keys[1])
        box.flush()
        box.close()
        self.assertEqual(len(message_ids(self.read(path))), 4)
        self.heal(user, dest, "mbox", 1)
        self.assert_once_each(path)
        self.assertIn(gone[0], message_ids(self.read(path)))
        self.assert_restores(user, dest)

    def test_mbox_message_added_by_hand_is_kept(self):
        """A message put in the file by someone else is never cut, and
        does not stop the healing of the others."""
        user, dest, path = self.start("mbox")
        data = self.read(path)
        starts = [m.start() for m in re.finditer(rb"^From ", data, re.M)]
        planted = (b"From someone@example.org Mon Jan  1 00:00:00 2024\n"
                   b"Subject: planted\nMessage-ID: <planted@x>\n\nhi\n\n")
        # The first message gone, a stranger in its place.
        with open(path, "wb") as f:
            f.write(planted + data[starts[1]:])
        mark = harness.SERVER.log_mark()
        run = backup(user, dest, "--format", "mbox")
        self.assertExit(run, 0)
        self.assertIn(b"1 missing from the backup and fetched again",
                      run.stderr, run)
        self.assertEqual(sum(n for n, _ in mark.sessions(user)), 1)
        after = self.read(path)
        self.assertTrue(after.startswith(planted), after[:200])
        self.assertEqual(len(message_ids(after)), 6)
        # verify names the stranger, and only it.
        check = imapsnap("verify", "--json", dest)
        self.assertExit(check, 7)
        report = json.loads(check.stdout)
        self.assertEqual(report["messages"]["unexpected"], 1, report)
        self.assertEqual(report["messages"]["missing"], 0, report)

    def test_mbox_gz_deleted(self):
        user, dest, path = self.start("mbox.gz")
        os.unlink(path)
        self.heal(user, dest, "mbox.gz", 5)
        self.assert_once_each(path)

    def test_mbox_gz_cut_in_a_member(self):
        """Two runs, two gzip members; the second cut in its middle: its
        messages are fetched again, the first member's are kept."""
        user, dest, path = self.start("mbox.gz", n=3)
        first = os.path.getsize(path)
        with user.oracle() as o:
            for i in range(3, 5):
                o.append("INBOX", simple_message("inbox %d" % i,
                                                 "body %d\n" % i * 40),
                         (), date=1600000000 + i)
        self.assertExit(backup(user, dest, "--format", "mbox.gz"), 0)
        size = os.path.getsize(path)
        with open(path, "r+b") as f:
            f.truncate(first + (size - first) // 2)
        self.heal(user, dest, "mbox.gz", 2)
        self.assert_once_each(path)
        subprocess.run(["gzip", "-t", path], check=True)

    def test_mbox_message_deleted_in_mutt(self):
        """mutt deletes the second message and syncs: it rewrites every
        message after it, moving its Status: lines to the end of the
        header and adding Content-Length: and Lines:.  Those are still
        the messages saved: only the deleted one is fetched again."""
        user, dest, path = self.start("mbox")
        before = self.read(path)
        mutt_delete_second(path)
        after = self.read(path)
        self.assertEqual(len(message_ids(after)), 4, after)
        self.assertIn(b"Content-Length:", after)
        self.heal(user, dest, "mbox", 1)
        self.assert_once_each(path)
        self.assertEqual(sorted(message_ids(self.read(path))),
                         sorted(message_ids(before)))


def mutt_delete_second(path):
    """mutt (in tmux) opens the mbox, deletes its second message, writes
    the change back and quits."""
    import shutil
    import tempfile
    import time
    home = tempfile.mkdtemp(prefix="imapsnap-mutt-")
    rc = os.path.join(home, "muttrc")
    with open(rc, "w") as f:
        f.write('set folder="%s"\nset sort=mailbox-order\n'
                "set delete=yes\nset quit=yes\nset move=no\n"
                "set mark_old=no\nset check_new=no\nset confirmappend=no\n"
                % home)
    session = "imapsnap-heal-%d" % os.getpid()
    env = dict(os.environ, HOME=home, TERM="xterm", LANG="C.UTF-8")
    mtime = os.stat(path).st_mtime_ns
    ino = os.stat(path).st_ino
    subprocess.run(["tmux", "kill-session", "-t", session],
                   stderr=subprocess.DEVNULL)
    subprocess.run(["tmux", "new-session", "-d", "-s", session, "-x", "150",
                    "-y", "40", "mutt -n -F %s -f %s" % (rc, path)],
                   env=env, check=True)

    def screen():
        return subprocess.run(["tmux", "capture-pane", "-p", "-t", session],
                              stdout=subprocess.PIPE).stdout.decode()

    def wait(cond, what):
        deadline = time.time() + 15
        while not cond():
            if time.time() > deadline:
                raise AssertionError("mutt: %s; screen:\n%s"
                                     % (what, screen()))
            time.sleep(0.1)

    try:
        wait(lambda: "Msgs:" in screen(), "no index")
        for keys in ("j", "d", "$"):
            subprocess.run(["tmux", "send-keys", "-t", session, keys],
                           check=True)
            time.sleep(0.3)
        wait(lambda: os.stat(path).st_mtime_ns != mtime or
             os.stat(path).st_ino != ino, "the file was not written")
        subprocess.run(["tmux", "send-keys", "-t", session, "q"])
        wait(lambda: subprocess.run(
            ["tmux", "has-session", "-t", session],
            stderr=subprocess.DEVNULL).returncode != 0, "did not quit")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session],
                       stderr=subprocess.DEVNULL)
        shutil.rmtree(home, ignore_errors=True)


# --- a directory of archive volumes ------------------------------------------


class HealVolumes(TestCase):
    """A volume deleted from DEST, or cut short: its messages are fetched
    again into the next run's volume, from the volumes' records (sizes,
    nothing read)."""

    def start(self, fmt="tar.gz"):
        user = harness.SERVER.new_user("hvol")
        with user.oracle() as o:
            o.create("Work")
            for i in range(3):
                o.append("INBOX", simple_message("first %d" % i),
                         ("\\Seen",), date=1600000000 + i)
            o.append("Work", simple_message("work"), (), date=1610000000)
        dest = workdir("hvol")
        self.assertExit(backup(user, dest, "--format", fmt), 0)
        first = sorted(glob.glob(os.path.join(dest, "*." + fmt)))
        self.assertEqual(len(first), 1, first)
        with user.oracle() as o:
            for i in range(2):
                o.append("INBOX", simple_message("second %d" % i), (),
                         date=1600001000 + i)
        self.assertExit(backup(user, dest, "--format", fmt), 0)
        vols = sorted(glob.glob(os.path.join(dest, "*." + fmt)))
        self.assertEqual(len(vols), 2, vols)
        self.assertExit(imapsnap("verify", dest), 0)
        return user, dest, vols

    def heal(self, user, dest, fmt, missing):
        mark = harness.SERVER.log_mark()
        run = backup(user, dest, "--format", fmt)
        self.assertExit(run, 0)
        self.assertIn(b"%d missing from the backup and fetched again"
                      % missing, run.stderr, run)
        self.assertEqual(sum(n for n, _ in mark.sessions(user)), missing,
                         run)
        self.assertExit(imapsnap("verify", dest), 0)
        mark = harness.SERVER.log_mark()
        run = backup(user, dest, "--format", fmt, "--json")
        self.assertExit(run, 0)
        summary = json.loads(run.stdout)
        self.assertEqual((summary["healed"], summary["planned"]), (0, 0),
                         summary)
        self.assertEqual(sum(n for n, _ in mark.sessions(user)), 0)

    def test_volume_deleted(self):
        user, dest, vols = self.start()
        os.unlink(vols[0])  # 4 messages: 3 in INBOX, 1 in Work
        self.heal(user, dest, "tar.gz", 4)

    def test_volume_cut_short(self):
        user, dest, vols = self.start()
        data = open(vols[1], "rb").read()
        with open(vols[1], "wb") as f:
            f.write(data[:len(data) // 2])
        self.heal(user, dest, "tar.gz", 2)
        # The damaged volume is kept, out of the way.
        kept = os.path.join(dest, ".imapsnap", "damaged",
                            os.path.basename(vols[1]))
        self.assertEqual(open(kept, "rb").read(), data[:len(data) // 2])
        self.assertFalse(os.path.exists(vols[1]))

    def test_volumes_without_records_are_read_once(self):
        """Volumes written before records were kept: the first run reads
        their entries' names and records them; nothing is fetched."""
        user, dest, vols = self.start()
        shutil.rmtree(os.path.join(dest, ".imapsnap", "volumes"))
        mark = harness.SERVER.log_mark()
        run = backup(user, dest, "--format", "tar.gz", "--json")
        self.assertExit(run, 0)
        self.assertEqual(json.loads(run.stdout)["healed"], 0, run)
        self.assertEqual(sum(n for n, _ in mark.sessions(user)), 0)
        self.assertEqual(sorted(os.listdir(os.path.join(
            dest, ".imapsnap", "volumes"))),
            sorted(os.path.basename(v) for v in vols))
