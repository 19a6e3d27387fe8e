"""The manifest and `imapsnap verify` (docs/manifest.md): every format
verifies right after a backup; a flipped byte, a deleted or an added
message, and an edited old manifest make verify fail and name what is
wrong; nothing changes on the server whatever the format.

The manifests are read here with Python's json and hashlib, independently
of imapsnap's own reader."""

import glob
import hashlib
import json
import os
import re

from harness import TestCase, backup, imapsnap, simple_message, workdir
import harness

DIR_FORMATS = ("maildir", "mbox", "mbox.gz", "tar", "tar.gz", "tar.zst",
               "tar.xz", "zip")
SINGLE_FORMATS = ("tar", "tar.gz", "tar.zst", "tar.xz", "zip")
EXIT_INTEGRITY = 7
EXIT_LOCAL = 6


def manifest_dir(dest):
    return os.path.join(dest, ".imapsnap", "manifest")


def chain(dest):
    """[(sha256, run file)] of DEST's chain, in order."""
    out = []
    with open(os.path.join(manifest_dir(dest), "chain")) as f:
        for line in f:
            sha, name = line.rstrip("\n").split("  ", 1)
            out.append((sha, name))
    return out


def run_lines(path):
    with open(path, "rb") as f:
        return [json.loads(line) for line in f.read().splitlines()]


def sha256_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def verify(dest, *extra):
    return imapsnap("verify", *extra, dest)


def verify_json(tc, dest, *extra):
    run = verify(dest, "--json", *extra)
    try:
        report = json.loads(run.stdout)
    except ValueError as e:
        tc.fail("verify --json printed no JSON (%s):\n%s" % (e, run))
    return run, report


def findings(report, kind):
    return [f for f in report["findings"] if f["kind"] == kind]


def small_account(prefix):
    """A user with a few plain messages in two folders (fast to back up
    in every format)."""
    user = harness.SERVER.new_user(prefix)
    with user.oracle() as o:
        o.create("Work")
        for i in range(4):
            o.append("INBOX", simple_message("inbox %d" % i,
                                             body="Body %d.\n" % i),
                     ("\\Seen",) if i % 2 else (), date=1600000000 + i)
        for i in range(3):
            o.append("Work", simple_message("work %d" % i),
                     ("\\Flagged", "$Label1"), date=1610000000 + i)
    return user


class Manifest(TestCase):
    def test_every_message_recorded_with_its_hash(self):
        """One line per message: the SHA-256 of exactly BODY.PEEK[], its
        flags, INTERNALDATE, RFC822.SIZE; the run's header and end; the
        chain holds the run's hash, which the backup printed."""
        user = small_account("mfst")
        dest = workdir("mfst")
        run = backup(user, dest)
        self.assertExit(run, 0)
        (sha, name), = chain(dest)
        path = os.path.join(manifest_dir(dest), name)
        self.assertEqual(sha256_file(path), sha)
        self.assertIn(sha, run.output().decode(),
                      "the backup did not print the manifest's SHA-256")
        lines = run_lines(path)
        self.assertEqual(lines[0]["type"], "run")
        self.assertEqual(lines[0]["format"], "maildir")
        self.assertIsNone(lines[0]["prev"])
        types = [ln["type"] for ln in lines]
        self.assertIn("server", types)
        self.assertEqual(types.count("end"), 1)
        end = next(ln for ln in lines if ln["type"] == "end")
        self.assertEqual(end["listed"], 7)
        self.assertEqual(end["saved"], 7)
        self.assertTrue(end["accounted"])
        msgs = [ln for ln in lines if ln["type"] == "message"]
        self.assertEqual(len(msgs), 7)
        with user.oracle() as o:
            for folder in o.folders():
                if not folder.selectable:
                    continue
                server = o.messages(folder)
                info = o.info
                mine = {m["uid"]: m for m in msgs
                        if m["folder"] == folder.name}
                self.assertEqual(sorted(mine), sorted(server), folder.name)
                ex = [ln for ln in lines if ln["type"] == "folder"
                      and ln["folder"] == folder.name]
                self.assertEqual(len(ex), 1, folder.name)
                self.assertEqual(ex[0]["uidvalidity"], info["UIDVALIDITY"])
                self.assertEqual(ex[0]["uidnext"], info["UIDNEXT"])
                self.assertEqual(ex[0]["exists"], info["EXISTS"])
                for uid, msg in server.items():
                    line = mine[uid]
                    body = o.body(uid)
                    self.assertEqual(line["sha256"],
                                     hashlib.sha256(body).hexdigest())
                    self.assertEqual(line["received"], len(body))
                    self.assertEqual(line["rfc822_size"], msg.size)
                    self.assertEqual(line["uidvalidity"],
                                     info["UIDVALIDITY"])
                    self.assertEqual(sorted(line["flags"]),
                                     sorted(msg.flags))
                    self.assertNotIn("size_mismatch", line)
                    with open(os.path.join(dest, line["location"]) +
                              ":2," + harness.maildir_flags(msg.flags),
                              "rb") as f:
                        self.assertEqual(f.read(), body)

    def test_runs_are_chained(self):
        user = small_account("chain")
        dest = workdir("chain")
        self.assertExit(backup(user, dest), 0)
        with user.oracle() as o:
            o.append("INBOX", simple_message("later"), (), date=1620000000)
        self.assertExit(backup(user, dest), 0)
        runs = chain(dest)
        self.assertEqual(len(runs), 2)
        second = run_lines(os.path.join(manifest_dir(dest), runs[1][1]))
        self.assertEqual(second[0]["prev"],
                         {"file": runs[0][1], "sha256": runs[0][0]})
        self.assertEqual(
            [ln["uid"] for ln in second if ln["type"] == "message"], [5])


class Verify(TestCase):
    def fresh(self, fmt, single=False):
        user = small_account("v" + re.sub(r"\W", "", fmt))
        base = workdir("verify-" + fmt)
        dest = os.path.join(base, "backup." + fmt) if single else base
        extra = () if single else ("--format", fmt)
        run = backup(user, dest, *extra)
        self.assertExit(run, 0, fmt)
        return user, dest

    def test_fresh_backups_verify_in_every_format(self):
        for fmt in DIR_FORMATS:
            with self.subTest(fmt=fmt):
                _, dest = self.fresh(fmt)
                run, report = verify_json(self, dest)
                self.assertExit(run, 0, fmt)
                self.assertTrue(report["ok"], fmt)
                self.assertEqual(report["messages"]["recorded"], 7, fmt)
                self.assertEqual(report["messages"]["matched"], 7, fmt)
                self.assertEqual(report["findings"], [], fmt)
                self.assertEqual(report["head"]["sha256"], chain(dest)[-1][0])
        for fmt in SINGLE_FORMATS:
            with self.subTest(single=fmt):
                _, dest = self.fresh(fmt, single=True)
                run, report = verify_json(self, dest)
                self.assertExit(run, 0, fmt)
                self.assertEqual(report["messages"]["matched"], 7, fmt)

    def test_flipped_byte_is_named(self):
        _, dest = self.fresh("maildir")
        path = sorted(glob.glob(os.path.join(dest, "Work", "cur", "*")))[1]
        with open(path, "r+b") as f:
            data = bytearray(f.read())
            data[len(data) // 2] ^= 0x01
            f.seek(0)
            f.write(data)
        run, report = verify_json(self, dest)
        self.assertExit(run, EXIT_INTEGRITY)
        self.assertFalse(report["ok"])
        altered = findings(report, "altered")
        self.assertEqual(len(altered), 1, report)
        self.assertEqual(altered[0]["folder"], "Work")
        self.assertEqual(altered[0]["uid"], 2)
        human = verify(dest)
        self.assertExit(human, EXIT_INTEGRITY)
        self.assertRegex(human.stdout.decode(), r"ALTERED: Work UID 2\b")

    def test_flipped_byte_in_mbox_is_named(self):
        _, dest = self.fresh("mbox")
        path = os.path.join(dest, "INBOX.mbox")
        with open(path, "rb") as f:
            data = f.read()
        i = data.index(b"Body 2.")
        with open(path, "r+b") as f:
            f.seek(i + 5)
            f.write(b"3")
        run, report = verify_json(self, dest)
        self.assertExit(run, EXIT_INTEGRITY)
        altered = findings(report, "altered")
        self.assertEqual([(a["folder"], a["uid"]) for a in altered],
                         [("INBOX", 3)], report)

    def test_deleted_message_is_missing(self):
        _, dest = self.fresh("maildir")
        path = sorted(glob.glob(os.path.join(dest, "INBOX", "cur", "*")))[0]
        os.unlink(path)
        run, report = verify_json(self, dest)
        self.assertExit(run, EXIT_INTEGRITY)
        missing = findings(report, "missing")
        self.assertEqual([(m["folder"], m["uid"]) for m in missing],
                         [("INBOX", 1)], report)
        self.assertRegex(verify(dest).stdout.decode(),
                         r"MISSING: INBOX UID 1\b")

    def test_added_message_is_unexpected(self):
        _, dest = self.fresh("maildir")
        cur = os.path.join(dest, "INBOX", "cur")
        uidvalidity = os.listdir(cur)[0].split("_")[0]
        with open(os.path.join(cur, "%s_99.imapsnap:2,S" % uidvalidity),
                  "wb") as f:
            f.write(simple_message("planted"))
        run, report = verify_json(self, dest)
        self.assertExit(run, EXIT_INTEGRITY)
        unexpected = findings(report, "unexpected")
        self.assertEqual(len(unexpected), 1, report)
        self.assertEqual(unexpected[0]["uid"], 99)
        self.assertEqual(unexpected[0]["folder"], "INBOX")
        self.assertTrue(unexpected[0]["location"].endswith(
            "%s_99.imapsnap" % uidvalidity))

    def test_damaged_single_file_export_fails(self):
        _, dest = self.fresh("tar", single=True)
        with open(dest, "rb") as f:
            data = f.read()
        i = data.index(b"Body 1.")
        with open(dest, "r+b") as f:
            f.seek(i + 5)
            f.write(b"9")
        run, report = verify_json(self, dest)
        self.assertExit(run, EXIT_INTEGRITY)
        self.assertEqual([(a["folder"], a["uid"])
                          for a in findings(report, "altered")],
                         [("INBOX", 2)], report)

    def test_edited_old_manifest_breaks_the_chain(self):
        user, dest = self.fresh("maildir")
        with user.oracle() as o:
            o.append("INBOX", simple_message("later"), (), date=1620000000)
        self.assertExit(backup(user, dest), 0)
        runs = chain(dest)
        first = os.path.join(manifest_dir(dest), runs[0][1])
        with open(first, "rb") as f:
            text = f.read()
        # Claim that message 1 had other flags: a plausible forgery.
        lines = text.split(b"\n")
        k = next(i for i, ln in enumerate(lines)
                 if b'"type":"message"' in ln and b'"flags":["' in ln)
        lines[k] = lines[k].replace(b'"flags":["', b'"flags":["\\\\Deleted","',
                                    1)
        with open(first, "wb") as f:
            f.write(b"\n".join(lines))
        run, report = verify_json(self, dest)
        self.assertExit(run, EXIT_INTEGRITY)
        self.assertFalse(report["chain_ok"])
        chain_findings = findings(report, "chain")
        self.assertEqual([c["run"] for c in chain_findings], [runs[0][1]],
                         report)
        self.assertIn("CHAIN: %s" % runs[0][1], verify(dest).stdout.decode())

    def test_expect_catches_a_rewritten_chain(self):
        user, dest = self.fresh("maildir")
        kept = chain(dest)[-1][0]
        self.assertExit(verify(dest, "--expect", kept), 0)
        # Rewrite the whole record consistently: verify alone cannot tell,
        # the kept hash can.
        (sha, name), = chain(dest)
        path = os.path.join(manifest_dir(dest), name)
        with open(path, "ab") as f:
            f.write(b'{"type":"skipped","reason":"forged"}\n')
        with open(os.path.join(manifest_dir(dest), "chain"), "w") as f:
            f.write("%s  %s\n" % (sha256_file(path), name))
        self.assertExit(verify(dest), 0)
        self.assertExit(verify(dest, "--expect", kept), EXIT_INTEGRITY)

    def test_not_a_backup_and_usage(self):
        empty = workdir("verify-empty")
        self.assertExit(verify(empty), EXIT_LOCAL)
        self.assertExit(verify(os.path.join(empty, "nothing")), EXIT_LOCAL)
        self.assertExit(imapsnap("verify"), 2)
        self.assertExit(imapsnap("verify", "--expect", "xyz", empty), 2)


class ReadOnly(TestCase):
    def test_nothing_changes_on_the_server_in_any_format(self):
        """HIGHESTMODSEQ of every folder and the flags and MODSEQ of every
        message (\\Recent included) are the same after a backup in each
        format, directories and single files alike."""
        user = harness.SERVER.new_user("ro")
        user.load_corpus(seed=21, scale=0.3, big=False)

        def state():
            out = {}
            with user.oracle() as o:
                o.enable_condstore()
                for f in o.folders():
                    if not f.selectable:
                        continue
                    msgs = o.messages(f, recent=True)
                    out[f.name] = (o.info.get("HIGHESTMODSEQ"),
                                   {u: (sorted(m.flags), m.modseq)
                                    for u, m in msgs.items()})
            return out

        before = state()
        self.assertTrue(any(hm for hm, _ in before.values()),
                        "the server reports no HIGHESTMODSEQ")
        for fmt in DIR_FORMATS:
            dest = workdir("ro-" + fmt)
            self.assertExit(backup(user, dest, "--format", fmt), 0, fmt)
            self.assertExit(verify(dest), 0, fmt)
            self.assertEqual(state(), before, "after --format " + fmt)
        for fmt in SINGLE_FORMATS:
            dest = os.path.join(workdir("ro-single-" + fmt), "x." + fmt)
            self.assertExit(backup(user, dest), 0, fmt)
            self.assertExit(verify(dest), 0, fmt)
            self.assertEqual(state(), before, "after " + dest)
        # The manifests recorded the same HIGHESTMODSEQ the server has.
        dest = workdir("ro-manifest")
        self.assertExit(backup(user, dest), 0)
        (_, name), = chain(dest)
        lines = run_lines(os.path.join(manifest_dir(dest), name))
        seen = {ln["folder"]: ln["highestmodseq"] for ln in lines
                if ln["type"] == "folder"}
        for folder, (hms, _) in before.items():
            self.assertEqual(seen.get(folder), hms or 0, folder)


class Generations(TestCase):
    """A folder whose UIDVALIDITY changed: the old generation is kept
    aside and the new one reuses its places (mbox offsets start at 0
    again); verify must still account for both."""

    def test_new_generation_verifies_in_every_directory_format(self):
        for fmt in ("maildir", "mbox", "mbox.gz", "tar.gz"):
            with self.subTest(fmt=fmt):
                user = harness.SERVER.new_user("gen")
                with user.oracle() as o:
                    o.create("Projects")
                    for i in range(3):
                        o.append("Projects",
                                 simple_message("old %d" % i),
                                 date=1500000000 + i)
                dest = workdir("verify-gen-" + fmt)
                self.assertExit(backup(user, dest, "--format", fmt), 0)
                with user.oracle() as o:
                    old = o.status("Projects")["UIDVALIDITY"]
                    o.delete("Projects")
                    o.create("Projects")
                    o.append("Projects", simple_message("new 0"),
                             date=1700000000)
                    new = o.status("Projects")["UIDVALIDITY"]
                self.assertNotEqual(old, new, "test setup")
                self.assertExit(backup(user, dest, "--format", fmt), 0)
                run, report = verify_json(self, dest)
                self.assertExit(run, 0, report)
                self.assertEqual(report["messages"]["recorded"], 4, fmt)
                self.assertEqual(report["findings"], [], fmt)
