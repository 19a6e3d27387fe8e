"""Folder names: decoded from modified UTF-7, split at the delimiter."""

import os

from harness import (TestCase, assert_backup_matches, backup, saved_messages,
                     simple_message, workdir)
import harness

# Folder -> where imapsnap must put it below DEST.
FOLDERS = {
    "Entwürfe": "Entwürfe",
    "日本語": "日本語",
    "日本語/Sub": "日本語/Sub",
    "a&b": "a&b",
    "Archive/2019": "Archive/2019",  # Archive itself is \Noselect
    "Sent Items": "Sent Items",
    "Ärger & Ölpreis/Q3": "Ärger & Ölpreis/Q3",
}


class Names(TestCase):
    def test_non_ascii_and_nested_folders(self):
        user = harness.SERVER.new_user("names")
        with user.oracle() as o:
            for i, name in enumerate(FOLDERS):
                o.create(name)
                o.append(name, simple_message("folder %s" % name),
                         date=1560000000 + i)
        dest = workdir("names")
        run = backup(user, dest)
        self.assertExit(run, 0)
        for name, rel in FOLDERS.items():
            d = os.path.join(dest, *rel.split("/"))
            saved = saved_messages(d)
            self.assertEqual(len(saved), 1, "%s: files in %s/cur; DEST has %s"
                             % (name, d, self.tree(dest)))
            data = next(iter(saved.values())).read()
            self.assertIn(("Subject: folder %s" % name).encode("utf-8"),
                          data, d)
        # Nothing else: no modified UTF-7 names, no flattened ones.  (An
        # empty INBOX may or may not have a directory.)
        expected = set(FOLDERS.values()) | {"Archive", "Ärger & Ölpreis"}
        self.assertEqual(set(self.tree(dest)) - {"INBOX"}, expected)
        assert_backup_matches(self, user, dest)

    @staticmethod
    def tree(dest):
        """Folder directories below DEST, relative, '/'-separated."""
        out = []
        for d, dirs, files in os.walk(dest):
            dirs[:] = [x for x in dirs if x not in ("cur", "new", "tmp")
                       and not x.startswith(".")]
            if d != dest:
                out.append(os.path.relpath(d, dest).replace(os.sep, "/"))
        return sorted(out)

    def test_percent_is_escaped(self):
        """'%' is the escape character of the layout, so a literal '%' in a
        folder name is written %25 (docs/layout.md)."""
        user = harness.SERVER.new_user("pct")
        with user.oracle() as o:
            o.create("50% off")
            o.append("50% off", simple_message("percent"), date=1560000000)
        dest = workdir("pct")
        self.assertExit(backup(user, dest), 0)
        self.assertEqual(len(saved_messages(os.path.join(dest, "50%25 off"))),
                         1, "DEST has %s" % self.tree(dest))
        self.assertFalse(os.path.exists(os.path.join(dest, "50% off")))
