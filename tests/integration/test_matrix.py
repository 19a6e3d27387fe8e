"""The server matrix: backup -> restore and migrate from each of Dovecot,
Cyrus (stock INBOX./"." and altnamespace "/") and Courier into each of
them (servers.py), compared through imaplib: every message of every
folder by SHA-256 (allowing only the normalisations the target is
documented to make, servers.stored_form), flags and keywords,
INTERNALDATE, and the folder's logical name; a second run appends
nothing.  docs/restore.md has the table of what each server does."""

import hashlib
import json
import os

import harness
import servers
from harness import TestCase, imapsnap, workdir

# (logical path, role, messages); a message is (subject, body bytes with
# CRLF line ends, flags, INTERNALDATE).  Bodies hold what servers treat
# differently: 8-bit header bytes (stock Cyrus writes X), a message
# without a final line end (Courier adds one), keywords.
CORPUS = [
    ("INBOX", None, [
        ("plain", b"Hello.\r\n", ("\\Seen", "\\Answered", "$Forwarded"),
         1577880000),
        ("Grüße 8-bit", "Grüße, ça va?\r\n".encode(),
         ("\\Flagged", "Work"), 1600000000),
        ("no final line end", b"last line without CRLF", (), 1500000000),
    ]),
    ("Archive/2019", None, [
        ("archived", b"old\r\nmail\r\n", ("\\Seen",), 1550000000),
        ("archived 2", b"more\r\n", ("\\Seen", "\\Deleted"), 1550000100),
    ]),
    ("Entwürfe", None, [
        ("draft", b"not sent yet\r\n", ("\\Draft",), 1610000000),
    ]),
    ("日本語/Sub", None, [
        ("nihongo", "日本語のテキスト\r\n".encode(), ("\\Seen",),
         1620000000),
    ]),
    ("Sent", "\\Sent", [
        ("sent", b"sent by me\r\n", ("\\Seen",), 1630000000),
    ]),
    ("Empty", None, []),
]


def raw_message(user, subject, body, n):
    head = ("From: %s@example.org\r\nTo: b@example.org\r\n"
            "Message-ID: <m%d.%s@matrix.test>\r\n"
            "Date: Wed, 01 Jan 2020 12:00:00 +0000\r\n" % (
                user.name, n, os.urandom(4).hex())).encode()
    return head + b"Subject: " + subject.encode() + b"\r\n\r\n" + body


def raw_append(o, raw_folder, data, flags, date):
    """APPEND exactly `data` (imaplib's append rewrites line ends)."""
    o.m.literal = data
    typ, resp = o.m._simple_command(
        "APPEND", harness.quote(raw_folder),
        "(%s)" % " ".join(flags),
        harness.imaplib.Time2Internaldate(date))
    if typ != "OK":
        raise AssertionError("APPEND to %s: %s %r" % (raw_folder, typ, resp))


def fill(srv, user):
    """Put CORPUS into the account (roles by CREATE ... USE where the
    server can make them)."""
    n = 0
    with user.oracle() as o:
        for path, role, msgs in CORPUS:
            raw = srv.raw_name(path)
            if raw != "INBOX":
                if role and srv.special_use:
                    typ, resp = o.m._simple_command(
                        "CREATE", harness.quote(raw), "(USE (%s))" % role)
                else:
                    typ, resp = o.m.create(harness.quote(raw))
                if typ != "OK":
                    raise AssertionError("CREATE %s on %s: %r"
                                         % (raw, srv, resp))
            for subject, body, flags, date in msgs:
                n += 1
                raw_append(o, raw, raw_message(user, subject, body, n),
                           flags, date)


def snapshot(srv, user):
    """{logical path: sorted [(INTERNALDATE, flags, body)]} of every
    selectable folder, and the set of all logical paths."""
    out, paths = {}, set()
    with user.oracle() as o:
        for f in o.folders():
            if not f.selectable:
                continue
            path = srv.logical_name(f.raw)
            paths.add(path)
            msgs = o.messages(f)
            if msgs:
                out[path] = sorted((m.internaldate, tuple(sorted(m.flags)),
                                    o.body(uid))
                                   for uid, m in msgs.items())
    return out, paths


def digest(folders, transform=lambda b: b):
    return {p: sorted((d, f, hashlib.sha256(transform(b)).hexdigest())
                      for d, f, b in msgs)
            for p, msgs in folders.items()}


def restore(srv, user, backup, state, *extra):
    return imapsnap("restore", "--json", "--state-dir", state,
                    *srv.tls_args(), *extra, backup, srv.url(user),
                    password=user.password, timeout=120)


def migrate(src, suser, dst, duser, state, *extra):
    args = ["migrate", "--json", "--state-dir", state]
    # --cacert applies to both sides: both CAs in one file.
    ca = os.path.join(workdir("matrix-ca"), "ca.pem")
    with open(ca, "wb") as out:
        for c in (src.cacert, dst.cacert):
            with open(c, "rb") as f:
                out.write(f.read())
    args += ["--cacert", ca] + list(extra)
    args += [src.url(suser), dst.url(duser)]
    return imapsnap(*args, env={"IMAPSNAP_SRC_PASSWORD": suser.password,
                                "IMAPSNAP_DST_PASSWORD": duser.password},
                    timeout=120)


def summary(run):
    return json.loads(run.stdout)


def check(tc, want, dst, duser, run, what):
    """The target account holds what the source held (`want`, a
    snapshot): returns how many messages."""
    tc.assertExit(run, 0, what)
    got, paths = snapshot(dst, duser)
    tc.assertIn("Empty", paths, "%s: the empty folder" % what)
    tc.assertEqual(sorted(got), sorted(want), "%s: folders" % what)
    tc.assertEqual(digest(got), digest(want, dst.stored_form),
                   "%s: messages (date, flags, SHA-256 of the bytes as "
                   "%s stores them)" % (what, dst.kind))
    return sum(len(v) for v in got.values())


class Matrix(TestCase):
    """One source account per kind, filled once; each test copies it into
    a fresh account on every kind."""

    sources = {}

    @classmethod
    def setUpClass(cls):
        for srv in servers.each():
            user = srv.new_user("msrc")
            fill(srv, user)
            folders, _ = snapshot(srv, user)
            cls.sources[srv.kind] = (srv, user, folders)

    def check(self, src, dst, duser, run, what):
        return check(self, self.sources[src.kind][2], dst, duser, run, what)

    def test_restore_between_every_pair(self):
        for src in servers.each():
            ssrv, suser, _ = self.sources[src.kind]
            backup = os.path.join(workdir("matrix-b-" + src.kind), "backup")
            run = harness.imapsnap("backup", *src.tls_args(),
                                   src.url(suser), backup,
                                   password=suser.password)
            self.assertExit(run, 0, "backup of %s" % src.kind)
            for dst in servers.each():
                what = "restore %s -> %s" % (src.kind, dst.kind)
                with self.subTest(what):
                    duser = dst.new_user("mr")
                    state = workdir("matrix-rs")
                    run = restore(dst, duser, backup, state)
                    n = self.check(src, dst, duser, run, what)
                    again = restore(dst, duser, backup, state)
                    self.assertExit(again, 0, what + ", again")
                    self.assertEqual(summary(again)["appended"], 0, again)
                    got, _ = snapshot(dst, duser)
                    self.assertEqual(sum(len(v) for v in got.values()), n)

    def test_migrate_between_every_pair(self):
        for src in servers.each():
            _, suser, _ = self.sources[src.kind]
            for dst in servers.each():
                what = "migrate %s -> %s" % (src.kind, dst.kind)
                with self.subTest(what):
                    duser = dst.new_user("mm")
                    state = workdir("matrix-ms")
                    run = migrate(src, suser, dst, duser, state)
                    n = self.check(src, dst, duser, run, what)
                    again = migrate(src, suser, dst, duser, state)
                    self.assertExit(again, 0, what + ", again")
                    self.assertEqual(summary(again)["appended"], 0, again)
                    got, _ = snapshot(dst, duser)
                    self.assertEqual(sum(len(v) for v in got.values()), n)


class RefusedNames(TestCase):
    def test_courier_refuses_a_name_outside_the_bmp(self):
        """Courier refuses folder names with characters outside the BMP:
        that folder fails alone (exit 1, counted), every other folder is
        restored, and -n says so beforehand without leaving anything."""
        src = servers.get("dovecot")
        suser = src.new_user("emo")
        with suser.oracle() as o:
            for path in ("Fun 😀", "Plain"):
                o.create(path)
                o.append(path, harness.simple_message("in " + path))
            o.append("INBOX", harness.simple_message("inbox"))
        backup = os.path.join(workdir("matrix-emoji"), "backup")
        self.assertExit(harness.backup(suser, backup), 0)
        dst = servers.get("courier")
        duser = dst.new_user("emo")
        state = workdir("matrix-emoji-state")
        dry = restore(dst, duser, backup, state, "-n")
        self.assertExit(dry, 1, "a dry run must fail where the real one "
                        "would")
        self.assertEqual(summary(dry)["folders_failed"], 1, dry)
        self.assertIn("Fun".encode(), dry.stderr)
        _, paths = snapshot(dst, duser)
        self.assertEqual(paths, {"INBOX"}, "the dry run left folders")
        run = restore(dst, duser, backup, state)
        self.assertExit(run, 1)
        s = summary(run)
        self.assertEqual((s["folders_failed"], s["appended"]), (1, 2), run)
        got, _ = snapshot(dst, duser)
        self.assertEqual(sorted(got), ["INBOX", "Plain"])

    def test_dry_run_prints_the_mapping(self):
        src = servers.get("dovecot")
        suser = src.new_user("map")
        with suser.oracle() as o:
            o.create("Archive/2019")
            o.append("Archive/2019", harness.simple_message("old"))
        backup = os.path.join(workdir("matrix-map"), "backup")
        self.assertExit(harness.backup(suser, backup), 0)
        dst = servers.get("cyrus")
        duser = dst.new_user("map")
        run = restore(dst, duser, backup, workdir("matrix-map-s"), "-n")
        self.assertExit(run, 0)
        self.assertIn(b"Archive/2019 -> INBOX.Archive.2019", run.stderr)
        self.assertIn({"from": "Archive/2019", "to": "INBOX.Archive.2019",
                       "role": None, "by_role": False},
                      summary(run)["mapping"])


class SpecialUse(TestCase):
    def test_sent_goes_to_the_targets_sent_folder(self):
        """A \\Sent folder's messages go into the target's own \\Sent
        folder ("Sent Items" here); --no-special-use keeps the name."""
        src = servers.get("cyrus-alt")
        suser = src.new_user("su")
        with suser.oracle() as o:
            typ, data = o.m._simple_command("CREATE", '"Sent"',
                                            "(USE (\\Sent))")
            self.assertEqual(typ, "OK", data)
            raw_append(o, "Sent", raw_message(suser, "sent", b"x\r\n", 1),
                       ("\\Seen",), 1600000000)
        backup = os.path.join(workdir("matrix-su"), "backup")
        run = harness.imapsnap("backup", *src.tls_args(), src.url(suser),
                               backup, password=suser.password)
        self.assertExit(run, 0)
        dst = servers.get("cyrus")
        for extra, where in (((), "Sent Items"), (("--no-special-use",),
                                                    "Sent")):
            with self.subTest(extra=extra):
                duser = dst.new_user("su")
                with duser.oracle() as o:
                    typ, data = o.m._simple_command(
                        "CREATE", '"INBOX.Sent Items"', "(USE (\\Sent))")
                    self.assertEqual(typ, "OK", data)
                run = restore(dst, duser, backup, workdir("matrix-su-s"),
                              *extra)
                self.assertExit(run, 0)
                got, _ = snapshot(dst, duser)
                self.assertEqual(sorted(got), [where], run)


class Normalised(TestCase):
    """Servers rewrite what they store; a run that lost its state (or was
    killed before it recorded an APPEND) must still recognise those
    copies and append nothing twice."""

    def test_state_lost_nothing_twice(self):
        src = servers.get("dovecot")
        suser = src.new_user("nrm")
        fill(src, suser)
        want, _ = snapshot(src, suser)
        backup = os.path.join(workdir("matrix-norm"), "backup")
        self.assertExit(harness.backup(suser, backup), 0)
        for dst in servers.each():
            with self.subTest(target=dst.kind):
                duser = dst.new_user("nrm")
                run = restore(dst, duser, backup, workdir("matrix-norm-s"))
                n = check(self, want, dst, duser, run, "restore")
                for how in ("restore", "migrate"):
                    fresh = workdir("matrix-norm-fresh")
                    if how == "restore":
                        again = restore(dst, duser, backup, fresh)
                    else:
                        again = migrate(src, suser, dst, duser, fresh)
                    self.assertExit(again, 0, how)
                    s = summary(again)
                    self.assertEqual((s["appended"], s["found"]), (0, n),
                                     "%s without its state:\n%s"
                                     % (how, again))

    def test_killed_and_resumed_nothing_twice(self):
        src = servers.get("dovecot")
        suser = src.new_user("nrk")
        suser.load_corpus(seed=31, scale=0.6)
        backup = os.path.join(workdir("matrix-kill"), "backup")
        self.assertExit(harness.backup(suser, backup), 0)
        want, _ = snapshot(src, suser)
        ca = os.path.join(workdir("matrix-kill-ca"), "ca.pem")
        for how, kind in (("restore", "courier"), ("restore", "cyrus"),
                          ("migrate", "courier")):
            dst = servers.get(kind)
            with self.subTest(how=how, target=kind):
                duser = dst.new_user("nrk")
                state = workdir("matrix-kill-s")
                if how == "restore":
                    args = ["restore", "--state-dir", state,
                            *dst.tls_args(), backup, dst.url(duser)]
                else:
                    with open(ca, "wb") as out:
                        for c in (src.cacert, dst.cacert):
                            with open(c, "rb") as f:
                                out.write(f.read())
                    args = ["migrate", "--state-dir", state, "--cacert", ca,
                            src.url(suser), dst.url(duser)]
                e = dict(os.environ, IMAPSNAP_PASSWORD=duser.password,
                         IMAPSNAP_SRC_PASSWORD=suser.password,
                         IMAPSNAP_DST_PASSWORD=duser.password)
                kills = 0
                for delay in (0.3, 0.5, 0.4):
                    p = harness.subprocess.Popen(
                        [harness.BINARY] + args, env=e,
                        stdin=harness.subprocess.DEVNULL,
                        stdout=harness.subprocess.DEVNULL,
                        stderr=harness.subprocess.DEVNULL,
                        start_new_session=True)
                    harness.time.sleep(delay)
                    if p.poll() is None:
                        os.kill(p.pid, 9)
                        kills += 1
                    p.wait()
                    # The server may still be storing what the killed
                    # run sent (docs/restore.md, Crashes).
                    harness.time.sleep(0.5)
                self.assertGreater(kills, 0)
                run = imapsnap(*args, env=e, timeout=120)
                self.assertExit(run, 0, "after %d kills" % kills)
                got, _ = snapshot(dst, duser)
                self.maxDiff = None
                self.assertEqual(
                    sorted((k, len(v)) for k, v in got.items()),
                    sorted((k, len(v)) for k, v in want.items()),
                    "messages per folder after %d kills" % kills)
                self.assertEqual(digest(got),
                                 digest(want, dst.stored_form))
