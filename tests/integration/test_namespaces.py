"""What imapsnap learns of each server's folders: the personal namespace
(NAMESPACE), every folder's logical path below it, and special-use roles
(LIST ... RETURN (SPECIAL-USE)), as `imapsnap list --json` shows them."""

import json

import harness
import servers

# (prefix, delimiter) each kind announces.
EXPECTED = {
    "dovecot": ("", "/"),
    "cyrus": ("INBOX.", "."),
    "cyrus-alt": ("", "/"),
    "courier": ("INBOX.", "."),
}


def listing(srv, user):
    run = harness.imapsnap("list", "--json", *srv.tls_args(), srv.url(user),
                           password=user.password)
    if run.rc != 0:
        raise AssertionError("list failed:\n%s" % run)
    return json.loads(run.stdout)


class Namespaces(harness.TestCase):
    def test_namespace_and_logical_paths(self):
        for srv in servers.each():
            with self.subTest(server=srv.kind):
                user = srv.new_user("ns")
                with user.oracle() as o:
                    for path in ("Archive", "Archive/2019", "Entwürfe"):
                        o.m.create(harness.quote(srv.raw_name(path)))
                doc = listing(srv, user)
                self.assertEqual(
                    (doc["namespace"]["prefix"],
                     doc["namespace"]["delimiter"]), EXPECTED[srv.kind])
                self.assertEqual(doc["namespace"]["from"], "NAMESPACE")
                paths = {f["raw"]: f["path"] for f in doc["folders"]}
                self.assertEqual(paths[srv.raw_name("Archive/2019")],
                                 "Archive/2019")
                self.assertEqual(paths[srv.raw_name("Entwürfe")],
                                 "Entwürfe")
                self.assertEqual(paths["INBOX"], "INBOX")

    def test_special_use_on_cyrus(self):
        """Cyrus makes a folder's role with CREATE ... (USE ...) (RFC
        6154) and reports it only when asked with RETURN (SPECIAL-USE)."""
        for kind in ("cyrus", "cyrus-alt"):
            with self.subTest(server=kind):
                srv = servers.get(kind)
                user = srv.new_user("su")
                raw = srv.raw_name("Sent Items")
                with user.oracle() as o:
                    typ, data = o.m._simple_command(
                        "CREATE", harness.quote(raw), "(USE (\\Sent))")
                    self.assertEqual(typ, "OK", data)
                doc = listing(srv, user)
                roles = {f["path"]: f["role"] for f in doc["folders"]}
                self.assertEqual(roles["Sent Items"], "\\Sent")
                self.assertIsNone(roles["INBOX"])

    def test_backup_records_path_prefix_and_role(self):
        """Each folder line of a backup's manifest carries what a restore
        needs to map it anywhere, years later."""
        import glob
        import os
        srv = servers.get("cyrus")
        user = srv.new_user("rec")
        with user.oracle() as o:
            typ, data = o.m._simple_command(
                "CREATE", '"INBOX.Sent Items"', "(USE (\\Sent))")
            self.assertEqual(typ, "OK", data)
            o.m.create('"INBOX.Archive.2019"')
        dest = os.path.join(harness.workdir("ns-manifest"), "backup")
        run = harness.imapsnap("backup", *srv.tls_args(), srv.url(user),
                               dest, password=user.password)
        self.assertExit(run, 0)
        folders = {}
        for f in glob.glob(os.path.join(dest, ".imapsnap", "manifest",
                                        "*.jsonl")):
            with open(f) as fh:
                for line in fh:
                    j = json.loads(line)
                    if j["type"] == "folder":
                        folders[j["folder_raw"]] = (
                            j["path"], j["ns_prefix"], j["delim"], j["role"])
        self.assertEqual(folders["INBOX.Sent Items"],
                         ("Sent Items", "INBOX.", ".", "\\Sent"))
        self.assertEqual(folders["INBOX.Archive.2019"],
                         ("Archive/2019", "INBOX.", ".", None))
        self.assertEqual(folders["INBOX"], ("INBOX", "INBOX.", ".", None))
