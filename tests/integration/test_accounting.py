"""verify accounts for everything in a backup (docs/manifest.md): a file
planted anywhere below DEST (outside .imapsnap/) or an entry added to an
archive is UNEXPECTED; a renamed or moved export, or a renamed volume,
still verifies and restores, from new manifests and from manifests of
version 1; one message that cannot be read (EACCES, a symlink) fails
alone; reading back is bounded by the size the manifest records, so a
zip bomb fills neither $TMPDIR nor the clock, in verify and in restore.

Archives are changed here with Python's tarfile and zipfile, and
manifests read with json and hashlib, independently of imapsnap."""

import glob
import hashlib
import io
import json
import os
import resource
import shutil
import signal
import stat
import subprocess
import tarfile
import time
import zipfile
import zlib

from harness import TestCase, backup, imapsnap, simple_message, workdir
import harness

EXIT_INTEGRITY = 7
NOBODY = 65534


def small_account(prefix, big=0):
    """Four messages in INBOX, three in Work (and `big` bytes more in a
    last INBOX message, when given)."""
    user = harness.SERVER.new_user(prefix)
    with user.oracle() as o:
        o.create("Work")
        for i in range(4):
            o.append("INBOX", simple_message("inbox %d" % i,
                                             body="Body %d.\n" % i),
                     ("\\Seen",) if i % 2 else (), date=1600000000 + i)
        for i in range(3):
            o.append("Work", simple_message("work %d" % i),
                     ("\\Flagged",), date=1610000000 + i)
        if big:
            o.append("INBOX", simple_message(
                "big", body=("y" * 76 + "\n") * (big // 77)),
                (), date=1620000000)
    return user


def run_as(args, uid=None, fsize=None, env=None, timeout=120):
    """imapsnap with `args`, as user `uid`, or with files it writes
    limited to `fsize` bytes (RLIMIT_FSIZE: a small $TMPDIR)."""
    def pre():
        if fsize is not None:
            resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
            signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        if uid is not None:
            os.setgid(NOBODY)
            os.setuid(uid)
    e = dict(os.environ)
    e.pop("IMAPSNAP_PASSWORD", None)
    if env:
        e.update(env)
    t0 = time.monotonic()
    proc = subprocess.run([harness.BINARY] + [str(a) for a in args], env=e,
                          stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                          stderr=subprocess.PIPE, preexec_fn=pre,
                          timeout=timeout)
    run = harness.Run([str(a) for a in args], proc, time.monotonic() - t0)
    if harness.SANITIZER_REPORT.search(proc.stderr):
        raise AssertionError("sanitizer report:\n%s" % run)
    return run


def verify_json(tc, dest, run=None):
    run = run or imapsnap("verify", "--json", dest)
    try:
        return run, json.loads(run.stdout)
    except ValueError as e:
        tc.fail("verify --json printed no JSON (%s):\n%s" % (e, run))


def kinds(report, kind):
    return [f for f in report["findings"] if f["kind"] == kind]


def restore_into(target, source, *extra, state, **kw):
    return run_as(["restore", "--cacert", target.server.cacert,
                   "--state-dir", state] + list(extra) +
                  [source, target.server.url(target, "imaps")],
                  env={"IMAPSNAP_PASSWORD": target.password}, **kw)


def bodies(user):
    """{(folder, body sha256)} of everything the server holds."""
    out = set()
    with user.oracle() as o:
        for f in o.folders():
            if f.selectable:
                for uid in o.messages(f):
                    out.add((f.name, hashlib.sha256(o.body(uid)).hexdigest()))
    return out


def rewrite_tar(path, edit):
    """Copy the tar volume at `path` through edit(members) -> members,
    where members are (TarInfo, bytes or None)."""
    with tarfile.open(path) as t:
        members = [(m, t.extractfile(m).read() if m.isfile() else None)
                   for m in t.getmembers()]
    mode = {".gz": "w:gz", ".xz": "w:xz"}.get(os.path.splitext(path)[1], "w")
    with tarfile.open(path + ".new", mode, format=tarfile.GNU_FORMAT) as t:
        for m, data in edit(members):
            t.addfile(m, io.BytesIO(data) if data is not None else None)
    os.replace(path + ".new", path)


def tar_entry(name, data):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    info.mode = 0o600
    info.mtime = 1600000000
    return info, data


class Unexpected(TestCase):
    def test_planted_files_in_a_maildir_are_unexpected(self):
        """What a mail reader would show (a file of any name in cur/ or
        new/, a new folder) and what it would not (a file at the top, a
        FIFO, a symlink) are all reported, and nothing else is."""
        user = small_account("acc")
        dest = workdir("acc-maildir")
        self.assertExit(backup(user, dest), 0)
        self.assertExit(imapsnap("verify", dest), 0)
        planted = {
            "INBOX/cur/1700000000.M1P1.host:2,S": simple_message("cur"),
            "INBOX/new/1700000001.M2P2.host": simple_message("new"),
            "Evil/cur/1700000002.M3P3.host:2,": simple_message("evil"),
            "README.txt": b"not mail\n",
            "Work/notes": b"hello\n",
        }
        for rel, data in planted.items():
            os.makedirs(os.path.dirname(os.path.join(dest, rel)),
                        exist_ok=True)
            with open(os.path.join(dest, rel), "wb") as f:
                f.write(data)
        os.mkfifo(os.path.join(dest, "Work", "cur", "pipe"))
        os.symlink("/etc/passwd", os.path.join(dest, "INBOX", "new", "link"))
        run, report = verify_json(self, dest)
        self.assertExit(run, EXIT_INTEGRITY)
        found = sorted(f["location"] for f in kinds(report, "unexpected"))
        self.assertEqual(found, sorted(list(planted) + [
            "Work/cur/pipe", "INBOX/new/link"]), report)
        self.assertEqual(report["messages"]["matched"], 7, report)
        self.assertEqual(kinds(report, "missing"), [], report)
        text = imapsnap("verify", dest).stdout.decode()
        self.assertIn("UNEXPECTED: Work/cur/pipe: a FIFO", text)
        self.assertIn("UNEXPECTED: INBOX/new/link: a symbolic link", text)

    def test_planted_files_in_mbox_are_unexpected(self):
        user = small_account("accm")
        dest = workdir("acc-mbox")
        self.assertExit(backup(user, dest, "--format", "mbox"), 0)
        self.assertExit(imapsnap("verify", dest), 0)
        with open(os.path.join(dest, "Evil.mbox.txt"), "wb") as f:
            f.write(b"From x\n")
        os.makedirs(os.path.join(dest, "INBOX", "cur"))
        with open(os.path.join(dest, "INBOX", "cur", "1.eml"), "wb") as f:
            f.write(simple_message("planted"))
        run, report = verify_json(self, dest)
        self.assertExit(run, EXIT_INTEGRITY)
        self.assertEqual(sorted(f["location"] for f in
                                kinds(report, "unexpected")),
                         ["Evil.mbox.txt", "INBOX/cur/1.eml"], report)

    def test_added_archive_entries_are_unexpected(self):
        """An entry added to a tar or zip export, message-like or not;
        a file beside the volumes of a directory."""
        user = small_account("acca")
        base = workdir("acc-archive")
        for fmt in ("tar", "zip"):
            with self.subTest(fmt=fmt):
                dest = os.path.join(base, "export." + fmt)
                self.assertExit(backup(user, dest), 0)
                self.assertExit(imapsnap("verify", dest), 0)
                extra = [("INBOX/cur/1700000000.M1P1.host:2,S",
                          simple_message("planted")),
                         ("notes.txt", b"hello\n")]
                if fmt == "tar":
                    rewrite_tar(dest, lambda ms: ms + [
                        tar_entry(n, d) for n, d in extra])
                else:
                    with zipfile.ZipFile(dest, "a") as z:
                        for n, d in extra:
                            z.writestr(n, d)
                run, report = verify_json(self, dest)
                self.assertExit(run, EXIT_INTEGRITY)
                self.assertEqual(
                    sorted(f["location"] for f in kinds(report, "unexpected")),
                    sorted("export.%s!%s" % (fmt, n) for n, _ in extra),
                    report)
                self.assertEqual(report["messages"]["matched"], 7, report)
        dest = os.path.join(base, "volumes")
        self.assertExit(backup(user, dest, "--format", "tar.gz"), 0)
        with open(os.path.join(dest, "planted.eml"), "wb") as f:
            f.write(simple_message("beside the volumes"))
        run, report = verify_json(self, dest)
        self.assertExit(run, EXIT_INTEGRITY)
        self.assertEqual([f["location"] for f in kinds(report, "unexpected")],
                         ["planted.eml"], report)


class Renamed(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.src = small_account("ren")
        cls.expected = bodies(cls.src)

    def restored(self, source, prefix):
        target = harness.SERVER.new_user(prefix)
        run = restore_into(target, source, state=workdir(prefix + "-state"))
        self.assertExit(run, 0, "restore")
        self.assertEqual(bodies(target), self.expected)

    def test_renamed_and_moved_export_verifies_and_restores(self):
        base = workdir("ren-export")
        dest = os.path.join(base, "export.tar.zst")
        self.assertExit(backup(self.src, dest), 0)
        moved = os.path.join(workdir("ren-elsewhere"), "renamed.tar.zst")
        os.rename(dest, moved)
        run, report = verify_json(self, moved)
        self.assertExit(run, 0, report)
        self.assertEqual(report["messages"]["matched"], 7, report)
        self.restored(moved, "rentgt")

    def test_renamed_volume_verifies_and_restores(self):
        dest = workdir("ren-volumes")
        self.assertExit(backup(self.src, dest, "--format", "zip"), 0)
        vol, = glob.glob(os.path.join(dest, "*.zip"))
        os.rename(vol, os.path.join(dest, "19990101T000000Z.zip"))
        run, report = verify_json(self, dest)
        self.assertExit(run, 0, report)
        self.assertEqual(report["messages"]["matched"], 7, report)
        self.restored(dest, "renvtgt")

    def test_manifest_of_version_1_still_verifies(self):
        """Version 1 named the volume in every archive location: such a
        manifest still matches the volume, renamed or not."""
        dest = workdir("ren-v1")
        self.assertExit(backup(self.src, dest, "--format", "tar.gz"), 0)
        vol, = glob.glob(os.path.join(dest, "*.tar.gz"))
        mdir = os.path.join(dest, ".imapsnap", "manifest")
        (sha, name), = [ln.rstrip("\n").split("  ") for ln in
                        open(os.path.join(mdir, "chain"))]
        path = os.path.join(mdir, name)
        lines = [json.loads(ln) for ln in open(path, "rb")]
        for ln in lines:
            if ln["type"] == "run":
                self.assertEqual(ln["manifest"], 3)
                ln["manifest"] = 1
            if ln["type"] == "message":
                self.assertNotIn("!", ln["location"])
                ln["location"] = os.path.basename(vol) + "!" + ln["location"]
        text = b"".join(json.dumps(ln, separators=(",", ":")).encode() +
                        b"\n" for ln in lines)
        with open(path, "wb") as f:
            f.write(text)
        with open(os.path.join(mdir, "chain"), "w") as f:
            f.write("%s  %s\n" % (hashlib.sha256(text).hexdigest(), name))
        run, report = verify_json(self, dest)
        self.assertExit(run, 0, report)
        self.assertEqual(report["messages"]["matched"], 7, report)
        os.rename(vol, os.path.join(dest, "20000101T000000Z.tar.gz"))
        run, report = verify_json(self, dest)
        self.assertExit(run, 0, report)
        self.restored(dest, "renv1tgt")


class OneBadMessage(TestCase):
    def test_unreadable_message_fails_alone(self):
        """EACCES (verify run as nobody) and a symlink in place of a
        message: that message is UNREADABLE, every other one matches."""
        user = small_account("bad")
        dest = workdir("bad-maildir")
        self.assertExit(backup(user, dest), 0)
        for d, dirs, files in os.walk(dest):
            os.chmod(d, 0o755)
            for f in files:
                os.chmod(os.path.join(d, f), 0o644)
        first = sorted(glob.glob(os.path.join(dest, "INBOX", "cur", "*")))[0]
        os.chmod(first, 0)
        run, report = verify_json(self, dest, run_as(
            ["verify", "--json", dest], uid=NOBODY))
        self.assertExit(run, EXIT_INTEGRITY)
        bad = kinds(report, "unreadable")
        self.assertEqual([(f["folder"], f["uid"]) for f in bad],
                         [("INBOX", 1)], report)
        self.assertIn("Permission denied", bad[0]["detail"])
        self.assertEqual(report["messages"]["matched"], 6, report)
        self.assertEqual(kinds(report, "missing"), [], report)

        os.chmod(first, 0o644)
        second = sorted(glob.glob(os.path.join(dest, "Work", "cur", "*")))[0]
        os.rename(second, second + ".real")
        os.symlink(second + ".real", second)
        run, report = verify_json(self, dest)
        self.assertExit(run, EXIT_INTEGRITY)
        self.assertEqual([(f["folder"], f["uid"])
                          for f in kinds(report, "unreadable")],
                         [("Work", 1)], report)
        self.assertIn("symbolic link", kinds(report, "unreadable")[0]["detail"])
        self.assertEqual(report["messages"]["matched"], 6, report)
        self.assertEqual(kinds(report, "missing"), [], report)

    def test_big_message_with_a_small_tmpdir_fails_alone(self):
        """restore holds a message over 1 MiB in a temporary file; when
        that cannot grow (a full $TMPDIR: files limited to 1 MiB here),
        that message fails and every other one is restored."""
        user = small_account("badbig", big=2 << 20)
        dest = workdir("badbig-maildir")
        self.assertExit(backup(user, dest), 0)
        target = harness.SERVER.new_user("badbigt")
        run = restore_into(target, dest, state=workdir("badbig-state"),
                           fsize=1 << 20)
        self.assertExit(run, 1, "restore")
        self.assertIn(b"cannot be held", run.output())
        self.assertEqual(len(bodies(target)), 7, run)


def zip_bomb(dest, victim, size):
    """Replace entry `victim` of the zip at `dest` with `size` zero bytes
    (deflated to about a thousandth of that)."""
    with zipfile.ZipFile(dest) as z:
        items = [(i, z.read(i.filename)) for i in z.infolist()]
    with zipfile.ZipFile(dest + ".new", "w") as z:
        for info, data in items:
            if info.filename != victim:
                z.writestr(info, data)
                continue
            bomb = zipfile.ZipInfo(info.filename, date_time=info.date_time)
            bomb.compress_type = zipfile.ZIP_DEFLATED
            with z.open(bomb, "w", force_zip64=True) as w:
                chunk = bytes(1 << 20)
                for _ in range(size >> 20):
                    w.write(chunk)
    os.replace(dest + ".new", dest)


class Bounded(TestCase):
    BOMB = 400 << 20  # inflated; about 400 KB in the zip

    def test_zip_bomb_is_read_no_further_than_its_record(self):
        user = small_account("bomb")
        dest = os.path.join(workdir("bomb"), "export.zip")
        self.assertExit(backup(user, dest), 0)
        with zipfile.ZipFile(dest) as z:
            victim = next(n for n in z.namelist() if "_2.imapsnap" in n
                          and n.startswith("INBOX/"))
            recorded = sum(i.file_size for i in z.infolist()
                           if ".imapsnap:" in i.filename)
        zip_bomb(dest, victim, self.BOMB)
        self.assertLess(os.path.getsize(dest), 4 << 20)
        run, report = verify_json(self, dest)
        self.assertExit(run, EXIT_INTEGRITY)
        altered = kinds(report, "altered")
        self.assertEqual([(f["folder"], f["uid"]) for f in altered],
                         [("INBOX", 2)], report)
        self.assertIn("longer than", altered[0]["detail"])
        self.assertEqual(report["messages"]["matched"], 6, report)
        # Read back: the recorded bytes and one more, not 400 MB.
        self.assertLessEqual(report["bytes"], recorded + 1, report)
        # restore with files limited to 8 MiB: the bomb fails alone.
        target = harness.SERVER.new_user("bombt")
        run = restore_into(target, dest, state=workdir("bomb-state"),
                           fsize=8 << 20)
        self.assertExit(run, 1, "restore")
        self.assertIn(b"INBOX UID 2", run.output())
        self.assertEqual(len(bodies(target)), 6, run)
