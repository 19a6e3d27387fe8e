"""`imapsnap run`: the accounts of a config file (imapsnap.conf(5)), where
the file is looked for, the password sources it names, the files it
refuses, selection from the file, and the exit status of a run of several
accounts."""

import json
import os
import re

from harness import (TestCase, assert_backup_matches, imapsnap,
                     saved_messages, simple_message, workdir)
import harness


def mailbox(prefix, extra=()):
    user = harness.SERVER.new_user(prefix)
    with user.oracle() as o:
        for name in extra:
            o.create(name)
        for i in range(3):
            o.append("INBOX", simple_message("%s %d" % (prefix, i)),
                     date=1600000000 + i)
        for name in extra:
            o.append(name, simple_message(name), date=1600000000)
    return user


def account(name, user, dest, **keys):
    """A config section; the password from a command unless keys say
    otherwise."""
    if not any(k.startswith("password") or k.startswith("oauth2")
               for k in keys):
        keys["password_command"] = "printf '%%s\\n' '%s'" % user.password
    text = "[%s]\nurl = %s\ndestination = %s\n" % (
        name, harness.SERVER.url(user, "imaps"), dest)
    for k, v in keys.items():
        for one in (v if isinstance(v, list) else [v]):
            text += "%s = %s\n" % (k, one)
    return text


def write_config(path, text, mode=0o600):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w") as f:
        f.write("# imapsnap test config\ncacert = %s\n\n%s"
                % (harness.SERVER.cacert, text))
    os.chmod(path, mode)
    return path


def run(*args, env=None, **kw):
    """imapsnap run, with HOME and XDG_CONFIG_HOME out of the way unless
    the test sets them."""
    e = {"HOME": "/nonexistent", "XDG_CONFIG_HOME": ""}
    e.update(env or {})
    return imapsnap("run", *args, env=e, **kw)


class Run(TestCase):
    @classmethod
    def setUpClass(cls):
        cls.alice = mailbox("runa", ["Archive"])
        cls.bob = mailbox("runb")

    def test_two_accounts(self):
        d = workdir("run")
        cfg = write_config(os.path.join(d, "config"),
                           account("alice", self.alice, d + "/alice") +
                           account("bob", self.bob, d + "/bob"))
        r = run("--config", cfg)
        self.assertExit(r, 0)
        assert_backup_matches(self, self.alice, d + "/alice")
        assert_backup_matches(self, self.bob, d + "/bob")
        text = r.stderr.decode()
        self.assertRegex(text, r"(?m)^imapsnap: alice: 2 folders, 4 messages")
        self.assertRegex(text, r"(?m)^imapsnap: bob: 1 folders, 3 messages")
        self.assertRegex(text, r"(?m)^imapsnap: 2 of 2 accounts backed up$")
        # Again: nothing new.
        r = run("--config", cfg, "--json")
        self.assertExit(r, 0)
        doc = json.loads(r.stdout)
        self.assertEqual(doc["exit"], 0)
        self.assertEqual([(a["account"], a["messages"], a["exit"])
                          for a in doc["accounts"]],
                         [("alice", 0, 0), ("bob", 0, 0)])

    def test_named_accounts_only(self):
        d = workdir("runone")
        cfg = write_config(os.path.join(d, "config"),
                           account("alice", self.alice, d + "/alice") +
                           account("bob", self.bob, d + "/bob"))
        self.assertExit(run("--config", cfg, "bob"), 0)
        self.assertFalse(os.path.exists(d + "/alice"))
        assert_backup_matches(self, self.bob, d + "/bob")
        r = run("--config", cfg, "carol")
        self.assertExit(r, 2)
        self.assertIn(b"no account [carol]", r.stderr)

    def test_default_locations(self):
        d = workdir("runxdg")
        write_config(os.path.join(d, "xdg", "imapsnap", "config"),
                     account("a", self.alice, d + "/from-xdg"))
        self.assertExit(run(env={"XDG_CONFIG_HOME": d + "/xdg"}), 0)
        assert_backup_matches(self, self.alice, d + "/from-xdg")
        # No XDG_CONFIG_HOME: ~/.config; "~/" in paths is $HOME.
        write_config(os.path.join(d, "home", ".config", "imapsnap",
                                  "config"),
                     account("a", self.alice, "~/mail"))
        self.assertExit(run(env={"HOME": d + "/home"}), 0)
        assert_backup_matches(self, self.alice, d + "/home/mail")
        r = run(env={"HOME": d + "/nowhere"})
        self.assertExit(r, 2, "no config file")
        self.assertIn(("%s/nowhere/.config/imapsnap/config" % d).encode(),
                      r.stderr)

    def test_password_sources(self):
        d = workdir("runpw")
        pwfile = os.path.join(d, "pw")
        with open(pwfile, "w") as f:
            f.write(self.alice.password + "\n")
        os.chmod(pwfile, 0o600)
        for keys, env in (
                ({"password_file": pwfile}, {}),
                ({"password_env": "ALICE_PW"},
                 {"ALICE_PW": self.alice.password}),
                ({"password": self.alice.password}, {}),
                ({"password_command": "cat " + pwfile}, {})):
            dest = os.path.join(workdir("runpw"), "b")
            cfg = write_config(os.path.join(d, "config"),
                               account("a", self.alice, dest, **keys))
            r = run("--config", cfg, env=env)
            self.assertExit(r, 0, str(keys.keys()))
            assert_backup_matches(self, self.alice, dest)
            self.assertNotLeaked(r, self.alice.password)
        # An unset variable is a config error, found before connecting.
        cfg = write_config(os.path.join(d, "config"),
                           account("a", self.alice, d + "/x",
                                   password_env="UNSET_PW_VAR"))
        r = run("--config", cfg)
        self.assertExit(r, 2)
        self.assertIn(b"UNSET_PW_VAR is not set", r.stderr)

    def test_password_in_a_readable_file_is_refused(self):
        """Before anything happens: no connection, nothing written, and a
        message saying what is wrong and how to fix it."""
        for mode, who in ((0o644, b"group and others"),
                          (0o640, b"its group"),
                          (0o604, b"others")):
            d = workdir("runperm")
            cfg = write_config(os.path.join(d, "config"),
                               account("a", self.alice, d + "/b",
                                       password=self.alice.password),
                               mode)
            mark = harness.SERVER.log_mark()
            r = run("--config", cfg)
            self.assertExit(r, 2, oct(mode))
            self.assertIn(b"holds a password and is readable by " + who,
                          r.stderr)
            self.assertIn(b"chmod 600 " + cfg.encode(), r.stderr)
            self.assertNotLeaked(r, self.alice.password)
            self.assertFalse(os.path.exists(d + "/b"))
            self.assertEqual(mark.logins(self.alice), [])
        # The same file without the password is fine to share.
        cfg = write_config(os.path.join(d, "config"),
                           account("a", self.alice, d + "/b"), 0o644)
        self.assertExit(run("--config", cfg), 0)

    def test_writable_by_others_is_refused(self):
        d = workdir("runwrite")
        cfg = write_config(os.path.join(d, "config"),
                           account("a", self.alice, d + "/b"), 0o666)
        r = run("--config", cfg)
        self.assertExit(r, 2)
        self.assertIn(b"anyone may write it", r.stderr)
        self.assertFalse(os.path.exists(d + "/b"))

    def test_config_errors_name_the_line(self):
        d = workdir("runsyntax")
        good = account("a", self.alice, d + "/a")
        for text, want in (
                (good + "colour = blue\n", rb"config:\d+: unknown key"),
                (good + "no equals sign\n", rb"config:\d+: expected NAME"),
                (good + "since = 2024-02-30\n", rb"since: 2024-02-30 is not"),
                ("[b]\nurl = imaps://x\n" + good, rb"\[b\]: no destination"),
                (good + account("b", self.bob, d + "/a"),
                 rb"same destination")):
            cfg = write_config(os.path.join(d, "config"), text)
            r = run("--config", cfg)
            self.assertExit(r, 2, text)
            self.assertRegex(r.stderr, want)
            self.assertFalse(os.path.exists(d + "/a"))
        r = run("--config", os.path.join(d, "missing"))
        self.assertExit(r, 2)
        self.assertIn(b"No such file", r.stderr)

    def test_every_account_checked_before_any_runs(self):
        d = workdir("runcheck")
        cfg = write_config(os.path.join(d, "config"),
                           account("a", self.alice, d + "/a") +
                           "[b]\nurl = imaps://u:secret@127.0.0.1\n"
                           "destination = %s/b\npassword_env = X\n" % d)
        r = run("--config", cfg)
        self.assertExit(r, 2)
        self.assertIn(b"must not contain a password", r.stderr)
        self.assertFalse(os.path.exists(d + "/a"))

    def test_selection_from_the_config(self):
        user = mailbox("runsel", ["Archive", "Junk", "Trash"])
        d = workdir("runsel")
        cfg = write_config(os.path.join(d, "config"),
                           "exclude = Trash\n\n" +
                           account("a", user, d + "/a",
                                   include=["INBOX", "Arch*", "Junk"],
                                   exclude="Junk"))
        self.assertExit(run("--config", cfg), 0)
        assert_backup_matches(self, user, d + "/a", only=["INBOX", "Archive"])
        for name in ("Junk", "Trash"):
            self.assertFalse(os.path.exists(os.path.join(d, "a", name)))

    def test_dates_from_the_config(self):
        user = harness.SERVER.new_user("rundate")
        with user.oracle() as o:
            for i, ts in enumerate((1704888000, 1707912000, 1710244800)):
                # 2024-01-10, 2024-02-14, 2024-03-12, at noon UTC
                o.append("INBOX", simple_message("d%d" % i), date=ts)
        d = workdir("rundate")
        cfg = write_config(os.path.join(d, "config"),
                           account("a", user, d + "/a", since="2024-02-01",
                                   before="2024-03-01"))
        self.assertExit(run("--config", cfg), 0)
        got = saved_messages(os.path.join(d, "a", "INBOX"))
        self.assertEqual(len(got), 1)

    def test_dry_run(self):
        d = workdir("rundry")
        cfg = write_config(os.path.join(d, "config"),
                           account("alice", self.alice, d + "/alice"))
        r = run("--config", cfg, "--dry-run")
        self.assertExit(r, 0)
        self.assertFalse(os.path.exists(d + "/alice"))
        self.assertRegex(r.stdout.decode(), r"(?m)^INBOX +3 +\d+ ")
        self.assertRegex(r.stderr.decode(),
                         r"imapsnap: alice: dry run: would fetch 4 messages")

    def test_exit_status_of_several_accounts(self):
        """One account refused its login: the others are still backed up,
        and the run exits with the failed account's status."""
        d = workdir("runmixed")
        bad = account("bad", self.bob, d + "/bad",
                      password_command="echo wrong")
        cfg = write_config(os.path.join(d, "config"),
                           account("alice", self.alice, d + "/alice") + bad)
        r = run("--config", cfg)
        self.assertExit(r, 3)
        assert_backup_matches(self, self.alice, d + "/alice")
        self.assertRegex(r.stderr.decode(), r"(?m)^imapsnap: bad: error: ")
        self.assertRegex(r.stderr.decode(),
                         r"(?m)^imapsnap: 1 of 2 accounts backed up$")

        # A partial failure and a refused login: the refusal wins.
        user = mailbox("runpart", ["Broken"])
        broken = os.path.join(user.maildir, ".Broken")
        cfg = write_config(os.path.join(d, "config2"),
                           account("part", user, d + "/part") + bad)
        os.chmod(broken, 0)
        try:
            r = run("--config", cfg)
            self.assertExit(r, 3)
            cfg = write_config(os.path.join(d, "config3"),
                               account("part", user, d + "/part3"))
            r = run("--config", cfg, "--json")
        finally:
            os.chmod(broken, 0o700)
        self.assertExit(r, 1, "a folder failed: never 0")
        doc = json.loads(r.stdout)
        self.assertEqual(doc["accounts"][0]["status"], "partial")
        self.assertEqual(doc["accounts"][0]["folders_failed"], 1)
        self.assertTrue(re.search(r"Broken", doc["accounts"][0]["errors"][0]))
