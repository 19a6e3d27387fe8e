"""`imapsnap list`: every folder with its role, counts, size and
UIDVALIDITY, checked against what imaplib reads from the server; through
LIST-STATUS and STATUS=SIZE on the first Dovecot, and through the
fallbacks (STATUS per folder, sizes added up) on a second one that offers
neither and has special-use folders."""

import json
import re

from harness import TestCase, imapsnap, simple_message
import harness
from second_dovecot import SecondDovecot

SECOND = None


def setUpModule():
    global SECOND
    SECOND = SecondDovecot.start(harness.SERVER)


def tearDownModule():
    if SECOND:
        SECOND.stop()


FOLDERS = ["Sent", "Trash", "Junk", "Entwürfe", "Archive/2019",
           "日本語/Sub", "Empty"]


def make_user(prefix):
    user = harness.SERVER.new_user(prefix)
    with user.oracle() as o:
        for name in FOLDERS:
            o.create(name)
        counts = {"INBOX": 5, "Sent": 3, "Trash": 1, "Junk": 2,
                  "Entwürfe": 1, "Archive/2019": 4, "日本語/Sub": 2}
        for name, n in counts.items():
            for i in range(n):
                flags = ("\\Seen",) if i % 2 else ()
                o.append(name, simple_message("%s %d" % (name, i),
                                              body="b" * (50 + 211 * i)),
                         flags, date=1600000000 + i)
    return user


def truth(user):
    """{decoded name: dict} of what the server says, through imaplib."""
    out = {}
    with user.oracle() as o:
        for f in o.folders():
            row = {"raw": f.raw, "selectable": f.selectable,
                   "attrs": {a.lower() for a in f.attrs}}
            if f.selectable:
                st = o.status(f, "MESSAGES UNSEEN UIDVALIDITY")
                msgs = o.messages(f)
                row.update(messages=st["MESSAGES"], unseen=st["UNSEEN"],
                           uidvalidity=st["UIDVALIDITY"],
                           size=sum(m.size for m in msgs.values()))
            out[f.name] = row
    return out


def server_state(user):
    """Flags and HIGHESTMODSEQ of every folder: list must change none."""
    out = {}
    with user.oracle() as o:
        o.enable_condstore()
        for f in o.folders():
            if f.selectable:
                msgs = o.messages(f, recent=True)
                out[f.name] = (o.info.get("HIGHESTMODSEQ"),
                               {u: m.flags for u, m in msgs.items()})
    return out


class List(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.user = make_user("list")
        cls.truth = truth(cls.user)

    def list(self, *extra, server=None, user=None):
        user = user or self.user
        url = server.url(user) if server else harness.SERVER.url(user,
                                                                 "imaps")
        return imapsnap("list", "--cacert", harness.SERVER.cacert, *extra,
                        url, password=user.password)

    def check_json(self, doc, sizes=True, roles=False):
        got = {f["name"]: f for f in doc["folders"]}
        self.assertEqual(set(got), set(self.truth))
        for name, want in self.truth.items():
            f = got[name]
            self.assertEqual(f["raw"], want["raw"], name)
            self.assertEqual(f["delimiter"], "/", name)
            self.assertEqual(f["selectable"], want["selectable"], name)
            self.assertIsNone(f["error"], name)
            if not want["selectable"]:
                for k in ("messages", "unseen", "size", "uidvalidity"):
                    self.assertIsNone(f[k], "%s: %s" % (name, k))
                continue
            for k in ("messages", "unseen", "uidvalidity"):
                self.assertEqual(f[k], want[k], "%s: %s" % (name, k))
            self.assertEqual(f["size"], want["size"] if sizes else None,
                             "%s: size" % name)
            role = {"Sent": "\\Sent", "Trash": "\\Trash",
                    "Junk": "\\Junk"}.get(name) if roles else None
            self.assertEqual(f["role"], role, name)
        # INBOX first, then by name.
        names = [f["name"] for f in doc["folders"]]
        self.assertEqual(names[0], "INBOX")
        self.assertEqual(names[1:], sorted(names[1:]))

    def test_json_through_list_status(self):
        before = server_state(self.user)
        run = self.list("--json")
        self.assertExit(run, 0)
        self.assertEqual(run.stderr, b"")
        doc = json.loads(run.stdout)
        self.assertEqual(doc["status_by"], "LIST-STATUS")
        self.check_json(doc)
        self.assertEqual(server_state(self.user), before,
                         "list changed the server")

    def test_table(self):
        run = self.list()
        self.assertExit(run, 0)
        rows = run.stdout.decode("utf-8").splitlines()
        self.assertRegex(rows[0], r"^FOLDER +ROLE +MESSAGES +UNSEEN +SIZE "
                                  r"+UIDVALIDITY$")
        seen = set()
        for row in rows[1:-1]:
            m = re.match(r"^(\S+) +(\d+) +(\d+) +([0-9.]+ (?:B|KiB|MiB)) "
                         r"+(\d+)$", row)
            if not m:
                name = row.split("  ")[0]
                self.assertFalse(self.truth[name]["selectable"], row)
                self.assertIn("not selectable", row)
                seen.add(name)
                continue
            want = self.truth[m.group(1)]
            self.assertEqual((int(m.group(2)), int(m.group(3)),
                              int(m.group(5))),
                             (want["messages"], want["unseen"],
                              want["uidvalidity"]), row)
            seen.add(m.group(1))
        self.assertEqual(seen, set(self.truth))
        total = sum(t.get("messages", 0) for t in self.truth.values())
        unseen = sum(t.get("unseen", 0) for t in self.truth.values())
        selectable = sum(t["selectable"] for t in self.truth.values())
        self.assertRegex(rows[-1], r"^\(%d folders\) +%d +%d "
                         % (selectable, total, unseen))

    def test_fallbacks_and_roles(self):
        """No LIST-STATUS: one STATUS per folder; no STATUS=SIZE: no size
        unless --sizes, which adds up RFC822.SIZE; roles from SPECIAL-USE."""
        before = server_state(self.user)
        run = self.list("--json", server=SECOND)
        self.assertExit(run, 0)
        doc = json.loads(run.stdout)
        self.assertEqual(doc["status_by"], "STATUS")
        self.check_json(doc, sizes=False, roles=True)

        run = self.list("--json", "--sizes", server=SECOND)
        self.assertExit(run, 0)
        self.check_json(json.loads(run.stdout), sizes=True, roles=True)
        self.assertEqual(server_state(self.user), before,
                         "list --sizes changed the server")

        run = self.list(server=SECOND)
        self.assertExit(run, 0)
        text = run.stdout.decode("utf-8")
        for name, role in (("Sent", "Sent"), ("Trash", "Trash"),
                           ("Junk", "Junk")):
            self.assertRegex(text, r"(?m)^%s +\\%s +\d+ +\d+ +- +\d+$"
                             % (name, role))

    def test_empty_account(self):
        user = harness.SERVER.new_user("listempty")
        run = self.list("--json", user=user)
        self.assertExit(run, 0)
        doc = json.loads(run.stdout)
        self.assertEqual([(f["name"], f["messages"], f["size"])
                          for f in doc["folders"]], [("INBOX", 0, 0)])
        run = self.list(user=user)
        self.assertRegex(run.stdout.decode(), r"(?m)^\(1 folder\) +0 +0 ")
