"""`imapsnap run --shard K/N` and `--shard auto/N`: N workers, each given
its index by hand, by a Kubernetes Indexed Job (JOB_COMPLETION_INDEX) or
by a Slurm array (SLURM_ARRAY_TASK_ID), back up every account of a config
of 50 exactly once.

"Exactly once" is checked three ways: the accounts each worker reports
(--json), the Dovecot log (one login per user over all N workers), and
the backups on disk (each holds its user's message).  Which shard an
account lands in is computed here independently, with Python's hashlib,
by the formula docs/scale-out.md gives."""

import hashlib
import json
import os
import shutil

from harness import TestCase, saved_messages, simple_message, workdir
import harness
import test_run

ACCOUNTS = 50


def shard_of(name, n):
    return int(hashlib.sha256(name.encode()).hexdigest()[:16], 16) % n


class Shard(TestCase):
    @classmethod
    def setUpClass(cls):
        """50 users with one message each, written into their Maildirs
        before their first login (no IMAP round trip to set up), and a
        config naming them all."""
        cls.users = {}
        cls.bodies = {}
        uid, gid = harness.SERVER.mail_owner
        for i in range(ACCOUNTS):
            user = harness.SERVER.new_user("shd")
            name = "acct%02d" % i
            # CRLF as on the wire: Dovecot serves a bare LF as CRLF.
            body = simple_message("for %s" % name, date=1600000000 + i
                                  ).replace(b"\n", b"\r\n")
            new = os.path.join(user.maildir, "new")
            for sub in ("new", "cur", "tmp"):
                os.makedirs(os.path.join(user.maildir, sub))
            with open(os.path.join(new, "1600000000.M1P1.test"), "wb") as f:
                f.write(body)
            for d, dirs, files in os.walk(user.home):
                shutil.chown(d, uid, gid)
                for x in files:
                    shutil.chown(os.path.join(d, x), uid, gid)
            cls.users[name] = user
            cls.bodies[name] = body

    def config(self, d, names=None):
        text = ""
        for name in names or sorted(self.users):
            user = self.users[name]
            text += test_run.account(name, user, "%s/%s" % (d, name),
                                     password=user.password,
                                     connections=1) + "\n"
        return test_run.write_config(os.path.join(d, "config"), text)

    def cover(self, d, n, env_var=None):
        """Run the N workers one after the other; returns {worker: [the
        accounts it backed up]} after checking each run."""
        cfg = self.config(d)
        log = harness.SERVER.log_mark()
        done = {}
        for k in range(n):
            if env_var:
                r = test_run.run("--config", cfg, "--shard", "auto/%d" % n,
                                 "--json", env={env_var: str(k)},
                                 timeout=120)
            else:
                r = test_run.run("--config", cfg, "--shard", "%d/%d" % (k, n),
                                 "--json", timeout=120)
            self.assertExit(r, 0)
            doc = json.loads(r.stdout)
            self.assertEqual(doc["shard"], {
                "index": k, "count": n,
                "from": env_var or "--shard"})
            done[k] = [a["account"] for a in doc["accounts"]]
            for a in doc["accounts"]:
                self.assertEqual(a["exit"], 0, a)
        # Each account by exactly one worker, the one the formula says.
        every = sorted(a for names in done.values() for a in names)
        self.assertEqual(every, sorted(self.users), "each account once")
        for k, names in done.items():
            for name in names:
                self.assertEqual(shard_of(name, n), k, name)
        # The server saw one login per user: nobody was backed up twice.
        for name, user in self.users.items():
            self.assertEqual(len(log.logins(user)), 1, name)
        for name in self.users:
            saved = saved_messages(os.path.join(d, name, "INBOX"))
            self.assertEqual([s.read() for s in saved.values()],
                             [self.bodies[name]], name)
        return done

    def test_four_workers_by_hand(self):
        done = self.cover(workdir("shard4"), 4)
        # With 50 accounts no worker is idle (a check on the hash, not a
        # promise: the split is only even on average).
        self.assertTrue(all(done[k] for k in range(4)), done)

    def test_kubernetes_indexed_job(self):
        self.cover(workdir("shardk8s"), 3, "JOB_COMPLETION_INDEX")

    def test_slurm_array(self):
        self.cover(workdir("shardslurm"), 2, "SLURM_ARRAY_TASK_ID")

    def test_one_shard_is_everything(self):
        d = workdir("shard1")
        r = test_run.run("--config", self.config(d, ["acct00", "acct01"]),
                         "--shard", "0/1")
        self.assertExit(r, 0)
        self.assertRegex(r.stderr.decode(),
                         r"(?m)^imapsnap: shard 0/1: 2 of 2 accounts "
                         r"backed up$")

    def test_empty_shard_is_not_an_error(self):
        d = workdir("shardempty")
        cfg = self.config(d, ["acct00"])
        empty = 1 - shard_of("acct00", 2)
        r = test_run.run("--config", cfg, "--shard", "%d/2" % empty)
        self.assertExit(r, 0)
        self.assertIn(b"no account of the config is in this shard",
                      r.stderr)
        self.assertFalse(os.path.exists(os.path.join(d, "acct00")))

    def test_bad_shards_run_nothing(self):
        d = workdir("shardbad")
        cfg = self.config(d, ["acct00", "acct01"])
        log = harness.SERVER.log_mark()
        for args, env, why in (
                (["--shard", "2/2"], {}, "K must be"),
                (["--shard", "1/0"], {}, "expected K/N"),
                (["--shard", "auto/2"], {}, "neither JOB_COMPLETION_INDEX"),
                (["--shard", "auto/2"], {"SLURM_ARRAY_TASK_ID": "2"},
                 "SLURM_ARRAY_TASK_ID=2 is not a shard from 0 to 1"),
                (["--shard", "auto/2"], {"JOB_COMPLETION_INDEX": "x"},
                 "JOB_COMPLETION_INDEX=x")):
            env = dict(env)
            env.setdefault("JOB_COMPLETION_INDEX", "")
            env.setdefault("SLURM_ARRAY_TASK_ID", "")
            r = test_run.run("--config", cfg, *args, env=env)
            self.assertExit(r, 2, " ".join(args))
            self.assertIn(why.encode(), r.stderr)
        self.assertEqual(log.logins(self.users["acct00"]), [])
        self.assertFalse(os.path.exists(os.path.join(d, "acct00")))

    def test_named_accounts_and_a_shard(self):
        """Accounts named on the command line are narrowed to the shard."""
        d = workdir("shardnamed")
        cfg = self.config(d)
        names = ["acct%02d" % i for i in range(10)]
        r = test_run.run("--config", cfg, "--shard", "1/3", "--json", *names)
        self.assertExit(r, 0)
        got = [a["account"] for a in json.loads(r.stdout)["accounts"]]
        self.assertEqual(got, [x for x in names if shard_of(x, 3) == 1])
