"""The bash, zsh and fish completions (contrib/) against the commands
themselves: for every command, each long option its `imapsnap help
COMMAND` shows is offered by each shell, and each option a shell offers
is one the command accepts.  So a new option without completions, or a
completion for an option that went away, fails here.

The completions are run by the real shells: bash with bash-completion's
library, zsh through its line editor on a pseudo-terminal
(tests/completion/zsh-complete.zsh), fish with `complete -C`."""

import os
import re
import shutil
import subprocess

from harness import TestCase, imapsnap, workdir

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
COMMANDS = ["backup", "list", "run", "verify", "restore", "migrate", "auth"]
LONG = re.compile(r"(?<![\w-])--[a-z0-9][a-z0-9-]*")


def need(prog):
    exe = shutil.which(prog)
    if not exe:
        raise AssertionError("%s not found: contrib/install-deps.sh "
                             "installs it" % prog)
    return exe


def complete(shell, words, env=None):
    """The candidates `shell` offers for the command line `words` (the
    last one being completed)."""
    e = dict(os.environ)
    e.update(env or {})
    if shell == "bash":
        need("bash")
        if not os.path.exists("/usr/share/bash-completion/bash_completion"):
            raise AssertionError("bash-completion is not installed")
        argv = ["bash", os.path.join(ROOT, "tests", "completion",
                                     "bash-complete.sh"),
                os.path.join(ROOT, "contrib", "bash-completion", "imapsnap")]
        argv += words
    elif shell == "zsh":
        argv = [need("zsh"), os.path.join(ROOT, "tests", "completion",
                                          "zsh-complete.zsh"),
                os.path.join(ROOT, "contrib", "zsh")] + words
    else:
        line = " ".join(words)
        argv = [need("fish"), "--no-config", "-c",
                "source %s; complete -C %s" % (
                    os.path.join(ROOT, "contrib", "fish", "imapsnap.fish"),
                    "'" + line.replace("'", "\\'") + "'")]
    p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       env=e, timeout=60)
    if p.returncode != 0:
        raise AssertionError("%s completion of %r failed (%d): %s" % (
            shell, words, p.returncode, p.stderr.decode("utf-8", "replace")))
    out = set()
    for ln in p.stdout.decode().splitlines():
        word = ln.split("\t")[0].strip()
        if word:
            out.add(word.rstrip("="))
    return out


class Completion(TestCase):
    SHELLS = ("bash", "zsh", "fish")

    @classmethod
    def setUpClass(cls):
        cls.help = {}
        for cmd in COMMANDS:
            r = imapsnap("help", cmd)
            assert r.rc == 0, str(r)
            cls.help[cmd] = set(LONG.findall(r.stdout.decode())) | {"--help"}

    def test_every_option_of_help_is_offered(self):
        for shell in self.SHELLS:
            for cmd in COMMANDS:
                with self.subTest(shell=shell, command=cmd):
                    offered = complete(shell, ["imapsnap", cmd, "--"])
                    missing = sorted(self.help[cmd] - offered)
                    self.assertEqual(missing, [], "%s does not offer these "
                                     "options of imapsnap %s" % (shell, cmd))

    def test_every_option_offered_is_accepted(self):
        for shell in self.SHELLS:
            for cmd in COMMANDS:
                offered = complete(shell, ["imapsnap", cmd, "--"])
                for opt in sorted(o for o in offered if o.startswith("--")):
                    with self.subTest(shell=shell, command=cmd, option=opt):
                        r = imapsnap(cmd, opt, env={"HOME": "/nonexistent",
                                                    "XDG_CONFIG_HOME": ""})
                        self.assertNotIn(b"unrecognized option", r.stderr,
                                         "%s offers %s for %s" % (
                                             shell, opt, cmd))

    def test_commands(self):
        for shell in self.SHELLS:
            with self.subTest(shell=shell):
                got = complete(shell, ["imapsnap", ""])
                self.assertTrue(set(COMMANDS + ["help"]) <= got, got)

    def test_values_agree(self):
        """--format and --tls values, and run's accounts from the
        config, are the same in every shell."""
        d = workdir("compl")
        os.makedirs(os.path.join(d, "imapsnap"))
        with open(os.path.join(d, "imapsnap", "config"), "w") as f:
            f.write("[work]\nurl = imaps://x\n\n[home-2]\nurl = imap://y\n")
        env = {"XDG_CONFIG_HOME": d}
        for shell in self.SHELLS:
            with self.subTest(shell=shell):
                self.assertEqual(
                    complete(shell, ["imapsnap", "backup", "--format", ""]),
                    {"maildir", "mbox", "mbox.gz", "tar", "tar.gz",
                     "tar.zst", "tar.xz", "zip"})
                self.assertEqual(
                    complete(shell, ["imapsnap", "list", "--tls", ""]),
                    {"starttls", "none"})
                self.assertEqual(
                    complete(shell, ["imapsnap", "run", ""], env=env),
                    {"work", "home-2"})
                self.assertEqual(
                    complete(shell, ["imapsnap", "auth", ""], env=env),
                    {"work", "home-2", "imaps://", "imap://"})
                self.assertEqual(
                    complete(shell, ["imapsnap", "backup", "--oauth2", ""]),
                    {"google", "microsoft", "custom"})
