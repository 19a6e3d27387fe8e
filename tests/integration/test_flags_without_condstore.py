"""Flags followed without CONDSTORE: against Courier (which has none) and
a Dovecot that does not offer it, flags and keywords changed through
imaplib after a backup reach the backup on the next run (the Maildir
suffix, a manifest `flags` line for every format), only real changes
count, a restore into Dovecot carries the new flags, and a re-run with no
change counts none.  A backup made before flag records were kept gets
the server's flags written once, not counted; a hostile answer to the
FLAGS fetch fails only its folder; with CONDSTORE nothing of this costs
anything."""

import json
import os
import re
import shutil
import sys

import harness
import servers
from harness import TestCase, imapsnap, workdir
from second_dovecot import CAPABILITIES, SecondDovecot

sys.path.insert(0, os.path.join(harness.ROOT, "tests", "fakeimap"))
from fakeimap import FakeIMAP, Mailbox, Script, make_messages  # noqa: E402

# The second Dovecot's capabilities without CONDSTORE (and QRESYNC, which
# implies it); ESEARCH stays, so that its listing is the one used (Courier
# has neither).
NO_CONDSTORE = " ".join(c for c in CAPABILITIES.split()
                        if c not in ("CONDSTORE", "QRESYNC"))

PLAIN = None


def setUpModule():
    global PLAIN
    PLAIN = SecondDovecot.start(harness.SERVER, capabilities=NO_CONDSTORE)


def tearDownModule():
    if PLAIN:
        PLAIN.stop()


# (folder's logical path, [(subject, flags)])
CORPUS = [
    ("INBOX", [("one", ("\\Seen",)),
               ("two", ("\\Seen", "$Work")),
               ("three", ()),
               ("four", ("\\Seen", "\\Answered")),
               ("five", ("\\Seen",))]),
    ("Work", [("six", ("\\Seen",)),
              ("seven", ("\\Draft",))]),
]

# (folder, subject, STORE item, flags): what changes after the backup.
CHANGES = [
    ("INBOX", "one", "+FLAGS", "(\\Flagged $Urgent)"),
    ("INBOX", "two", "-FLAGS", "(\\Seen)"),
    ("INBOX", "three", "+FLAGS", "(Later)"),
    ("Work", "seven", "+FLAGS", "(\\Answered)"),
]


def canon(flags):
    """A set of flags as IMAP compares them: case ignored, \\Recent out."""
    return frozenset(f.lower() for f in flags if f.lower() != "\\recent")


def subject_of(o, uid):
    head = o.body(uid).split(b"\r\n\r\n", 1)[0]
    return re.search(rb"(?mi)^Subject: (.*?)\r?$", head).group(1).decode()


def by_subject(srv, user):
    """{(logical folder, subject): (uid, flags)} of what the server holds."""
    out = {}
    with user.oracle() as o:
        for f in o.folders():
            if not f.selectable:
                continue
            for uid, m in o.messages(f).items():
                out[(srv.logical_name(f.raw), subject_of(o, uid))] = (
                    uid, canon(m.flags))
    return out


def fill(srv, user):
    with user.oracle() as o:
        for path, msgs in CORPUS:
            raw = srv.raw_name(path)
            if raw != "INBOX":
                o._ok(o.m.create(harness.quote(raw)), "CREATE " + raw)
            for i, (subject, flags) in enumerate(msgs):
                o.m.append(harness.quote(raw),
                           "(%s)" % " ".join(flags) if flags else None,
                           None, harness.simple_message(subject,
                                                        date=1600000000 + i))


def store(srv, user, folder, subject, item, flags):
    held = by_subject(srv, user)
    uid = held[(folder, subject)][0]
    with user.oracle() as o:
        o._ok(o.m.select(harness.quote(srv.raw_name(folder))), "SELECT")
        o._ok(o.m.uid("STORE", str(uid), item, flags), "STORE")


def manifest_lines(dest):
    lines = []
    mdir = os.path.join(dest, ".imapsnap", "manifest")
    for name in sorted(os.listdir(mdir)):
        if name.endswith(".jsonl"):
            with open(os.path.join(mdir, name)) as f:
                lines += [json.loads(x) for x in f if x.strip()]
    return lines


def flags_lines(dest):
    return [x for x in manifest_lines(dest) if x["type"] == "flags"]


def state_saved(dest):
    """{raw folder name: set of saved UIDs} from DEST/.imapsnap/state."""
    out, name = {}, None
    with open(os.path.join(dest, ".imapsnap", "state")) as f:
        for line in f:
            m = re.match(r'^folder "((?:\\.|[^"\\])*)"', line)
            if m:
                name = m.group(1)
                out[name] = set()
            elif line.startswith("saved "):
                out[name] |= uids_of(line.split()[1])
    return out


def uids_of(text):
    out = set()
    for part in text.split(","):
        a, _, b = part.partition(":")
        out.update(range(int(a), int(b or a) + 1))
    return out


def records(dest):
    """{folder raw name: {uid: flags}} of DEST/.imapsnap/flags/*."""
    out = {}
    d = os.path.join(dest, ".imapsnap", "flags")
    for name in os.listdir(d) if os.path.isdir(d) else ():
        with open(os.path.join(d, name)) as f:
            folder, cur, uids = None, None, {}
            for line in f:
                if line.startswith("folder "):
                    folder = json.loads(line[7:])
                elif line.startswith("flags"):
                    cur = canon(json.loads("[%s]" % ",".join(
                        line.split()[1:])))
                elif line.startswith("uids "):
                    for u in uids_of(line.split()[1]):
                        uids[u] = cur
            out[folder] = uids
    return out


class FlagsFollowed:
    """The scenario, against `self.server_kind` in `self.fmt`."""

    fmt = "maildir"

    def server(self):
        return servers.get("courier")

    def url(self, srv, user):
        return srv.url(user)

    def backup(self, srv, user, dest):
        run = imapsnap("backup", "--json", "--format", self.fmt,
                       *srv.tls_args(), self.url(srv, user), dest,
                       password=user.password)
        self.assertExit(run, 0)
        return run, json.loads(run.stdout)

    def check_maildir(self, srv, user, dest):
        if self.fmt != "maildir":
            return
        with user.oracle() as o:
            for f in o.folders():
                if not f.selectable:
                    continue
                saved = harness.saved_messages(f.path(dest))
                for uid, m in o.messages(f).items():
                    self.assertEqual(saved[uid].flags,
                                     harness.maildir_flags(m.flags),
                                     "%s UID %d" % (f.name, uid))

    def test_changes_reach_the_backup_and_a_restore(self):
        srv = self.server()
        user = srv.new_user("nomodseq")
        fill(srv, user)
        dest = os.path.join(workdir("nomodseq-" + self.fmt), "backup")
        run, s = self.backup(srv, user, dest)
        self.assertEqual(s["messages"], 7, run)
        self.assertEqual(flags_lines(dest), [])

        for change in CHANGES:
            store(srv, user, *change)
        with user.oracle() as o:
            o.m.append("INBOX", "(\\Seen)", None,
                       harness.simple_message("eight", date=1600000100))
        run, s = self.backup(srv, user, dest)
        self.assertEqual(s["flags_changed"], len(CHANGES), run)
        self.assertEqual(s["messages"], 1, run)
        held = by_subject(srv, user)
        lines = flags_lines(dest)
        self.assertEqual(
            sorted((ln["folder"], ln["uid"], canon(ln["flags"]))
                   for ln in lines),
            sorted((srv.raw_name(folder) if srv.prefix else folder,
                    held[(folder, subject)][0], held[(folder, subject)][1])
                   for folder, subject, _, _ in CHANGES))
        self.check_maildir(srv, user, dest)

        # The message fetched in the last run is followed too.
        store(srv, user, "INBOX", "eight", "+FLAGS", "(\\Flagged)")
        run, s = self.backup(srv, user, dest)
        self.assertEqual(s["flags_changed"], 1, run)
        self.check_maildir(srv, user, dest)

        # Nothing changed: nothing counted, nothing written.
        before = len(flags_lines(dest))
        run, s = self.backup(srv, user, dest)
        self.assertEqual(s["flags_changed"], 0, run)
        self.assertEqual(len(flags_lines(dest)), before)

        # The record names saved messages only, with the server's flags.
        saved = state_saved(dest)
        held = by_subject(srv, user)
        rec = records(dest)
        for folder in ("INBOX", "Work"):
            raw = srv.raw_name(folder)
            self.assertEqual(set(rec[raw]), saved[raw])
            for (f, subject), (uid, flags) in held.items():
                if f == folder:
                    self.assertEqual(rec[raw][uid], flags,
                                     "%s %s" % (folder, subject))
        self.assertExit(imapsnap("verify", dest), 0)

        # Restored into Dovecot, every message has the server's flags now.
        dovecot = servers.get("dovecot")
        target = dovecot.new_user("nomodseqr")
        run = imapsnap("restore", "--json", "--state-dir",
                       workdir("nomodseq-restore-state"),
                       *dovecot.tls_args(), dest, dovecot.url(target),
                       password=target.password, timeout=120)
        self.assertExit(run, 0)
        restored = by_subject(dovecot, target)
        self.assertEqual({k: v[1] for k, v in restored.items()},
                         {k: v[1] for k, v in held.items()})


class CourierMaildir(FlagsFollowed, TestCase):
    fmt = "maildir"


class CourierMbox(FlagsFollowed, TestCase):
    fmt = "mbox"


class CourierTarGz(FlagsFollowed, TestCase):
    fmt = "tar.gz"


class DovecotWithoutCondstore(FlagsFollowed, TestCase):
    """The same through a Dovecot that offers no CONDSTORE (and so sends
    no HIGHESTMODSEQ), on the same mail as the first."""

    def server(self):
        return servers.get("dovecot")

    def url(self, srv, user):
        return PLAIN.url(user)


class SplitFolder(TestCase):
    """A folder fetched in shares by four sessions at once (Maildir): the
    record holds what every one of them committed, and the next run counts
    only the one change."""

    def test_every_share_is_recorded(self):
        user = harness.SERVER.new_user("nomodseqsplit")
        # Written into the Maildir before the first login: Dovecot gives
        # them UIDs in name order.
        cur = os.path.join(user.maildir, "cur")
        os.makedirs(cur)
        for i in range(1200):
            name = "%010d.m%d.test:2,%s" % (1600000000 + i, i,
                                            "S" if i % 3 else "")
            with open(os.path.join(cur, name), "wb") as f:
                f.write(harness.simple_message("m%d" % i))
        owner = harness.SERVER.mail_owner
        for d in (user.home, user.maildir, cur):
            shutil.chown(d, *owner)
        for name in os.listdir(cur):
            shutil.chown(os.path.join(cur, name), *owner)
        dest = workdir("nomodseq-split")
        args = ("backup", "--json", "--connections", "4",
                *servers.get("dovecot").tls_args(), PLAIN.url(user), dest)
        run = imapsnap(*args, password=user.password, timeout=120)
        self.assertExit(run, 0)
        self.assertEqual(json.loads(run.stdout)["messages"], 1200)
        self.assertGreater(len(PLAIN.logins(user)), 1,
                           "the folder was not shared out")
        rec = records(dest)["INBOX"]
        self.assertEqual(set(rec), set(range(1, 1201)))
        self.assertEqual(rec[1], canon(()))
        self.assertEqual(rec[2], canon(("\\Seen",)))
        with user.oracle() as o:
            o._ok(o.m.select("INBOX"), "SELECT")
            o._ok(o.m.uid("STORE", "701", "+FLAGS", "(\\Flagged)"), "STORE")
        run = imapsnap(*args, password=user.password, timeout=120)
        self.assertExit(run, 0)
        self.assertEqual(json.loads(run.stdout)["flags_changed"], 1, run)


class OldBackup(TestCase):
    """A backup from before flag records (none in DEST/.imapsnap): the
    next run writes each saved message's flags to the backup once, counts
    none of them as changed, and follows changes from then on."""

    def test_flags_recorded_once_without_counting(self):
        srv = servers.get("courier")
        user = srv.new_user("oldrec")
        fill(srv, user)
        dest = os.path.join(workdir("oldrec"), "backup")
        args = ("backup", "--json", *srv.tls_args(), srv.url(user), dest)
        self.assertExit(imapsnap(*args, password=user.password), 0)
        flagdir = os.path.join(dest, ".imapsnap", "flags")
        for name in os.listdir(flagdir):
            os.unlink(os.path.join(flagdir, name))
        os.rmdir(flagdir)
        for change in CHANGES:
            store(srv, user, *change)

        run = imapsnap(args[0], "-v", *args[1:], password=user.password)
        self.assertExit(run, 0)
        self.assertEqual(json.loads(run.stdout)["flags_changed"], 0, run)
        self.assertIn(b"recorded for the first time", run.stderr)
        held = by_subject(srv, user)
        lines = flags_lines(dest)
        self.assertEqual(len(lines), len(held), lines)
        for ln in lines:
            folder = srv.logical_name(ln["folder_raw"])
            (uid, flags), = [v for (f, _), v in held.items()
                             if f == folder and v[0] == ln["uid"]]
            self.assertEqual(canon(ln["flags"]), flags)
        with user.oracle() as o:
            for f in o.folders():
                saved = harness.saved_messages(f.path(dest))
                for uid, m in o.messages(f).items():
                    self.assertEqual(saved[uid].flags,
                                     harness.maildir_flags(m.flags))

        run = imapsnap(*args, password=user.password)
        self.assertExit(run, 0)
        self.assertEqual(json.loads(run.stdout)["flags_changed"], 0, run)
        self.assertEqual(len(flags_lines(dest)), len(lines))
        store(srv, user, "INBOX", "five", "-FLAGS", "(\\Seen)")
        run = imapsnap(*args, password=user.password)
        self.assertEqual(json.loads(run.stdout)["flags_changed"], 1, run)


class WithCondstore(TestCase):
    """With CONDSTORE none of this runs: no FLAGS of every message, no
    record."""

    def test_nothing_more_is_asked(self):
        user = harness.SERVER.new_user("modseq")
        fill(servers.get("dovecot"), user)
        dest = workdir("modseq")
        self.assertExit(harness.backup(user, dest), 0)
        store(servers.get("dovecot"), user, "INBOX", "one", "+FLAGS",
              "(\\Flagged)")
        for expect in (1, 0):
            run = harness.backup(user, dest, "-v", "--json")
            self.assertExit(run, 0)
            self.assertEqual(json.loads(run.stdout)["flags_changed"], expect)
            self.assertNotRegex(run.stderr,
                                rb"(?m)UID FETCH 1:\d+ \(UID FLAGS\)$")
        self.assertFalse(os.path.exists(os.path.join(dest, ".imapsnap",
                                                     "flags")))


# --- a server that answers the FLAGS fetch oddly (tests/fakeimap) ---------

class OddFlags(Script):
    """No CONDSTORE; folder "Odd" answers UID FETCH (UID FLAGS) with
    `answer` for its first message; the others answer well."""

    def __init__(self, answer, **kw):
        Script.__init__(self, **kw)
        self.answer = answer

    def list_uids(self, c, tag, uids, items):
        mb = c.selected
        if b"FLAGS" not in items.upper():
            return Script.list_uids(self, c, tag, uids, items)
        for n, m in enumerate(mb.msgs if mb else [], 1):
            if m.uid not in uids:
                continue
            flags = b"(%s)" % b" ".join(m.flags)
            if mb.name == b"Odd" and n == 1:
                flags = self.answer
            c.send(b"* %d FETCH (UID %d FLAGS %s)\r\n" % (n, m.uid, flags))
        c.send(tag + b" OK FETCH done\r\n")


class HostileFlags(TestCase):
    def test_an_odd_answer_fails_only_its_folder(self):
        for answer in (b"NIL", b'"\\\\Seen"', b"(\\Seen (nested))",
                       b'(\\Seen "quoted")'):
            with self.subTest(answer=answer):
                good = Mailbox(b"INBOX", make_messages(3))
                odd = Mailbox(b"Odd", make_messages(3, tag=b"o"),
                              uidvalidity=2000)
                script = OddFlags(answer, mailboxes=[good, odd])
                dest = os.path.join(workdir("oddflags"), "backup")
                with FakeIMAP(script) as srv:
                    args = ["backup", "--tls", "none", "--json", srv.url(),
                            dest]
                    run = imapsnap(*args, password="secret")
                    self.assertExit(run, 0)
                    # A new message in each, and a flag change in INBOX.
                    good.msgs += make_messages(1, first_uid=4)
                    odd.msgs += make_messages(1, first_uid=4, tag=b"o")
                    good.msgs[2].flags = (b"\\Seen", b"\\Flagged")
                    run = imapsnap(*args, password="secret")
                self.assertExit(run, 1)
                s = json.loads(run.stdout)
                self.assertEqual(s["folders_failed"], 1, run)
                self.assertEqual(s["messages"], 1, run)
                self.assertEqual(s["flags_changed"], 1, run)
                self.assertIn(b"Odd", run.stderr)
                self.assertIn(b"flags cannot be followed", run.stderr)
                self.assertEqual(sorted(harness.saved_messages(
                    os.path.join(dest, "INBOX"))), [1, 2, 3, 4])
                self.assertEqual(sorted(harness.saved_messages(
                    os.path.join(dest, "Odd"))), [1, 2, 3])
