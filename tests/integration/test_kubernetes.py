"""contrib/kubernetes: the manifests pass a schema check against the
Kubernetes API's OpenAPI schema (tests/kubernetes/check.mjs; there is no
cluster here for kubectl --dry-run=client to ask), the check itself
catches what it must (each mutation below has to fail it), and the
pieces fit together: N is the same in completions, parallelism and
--shard auto/N, the config is one imapsnap itself accepts, and every
file and path it names is in the Secret or on the backup volume."""

import fcntl
import os
import re
import shutil
import subprocess

from harness import TestCase, imapsnap, workdir

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
K8S = os.path.join(ROOT, "contrib", "kubernetes")
CHECK = os.path.join(ROOT, "tests", "kubernetes")
MANIFESTS = sorted(f for f in os.listdir(K8S) if f.endswith(".yaml"))
ONCE = os.path.join(K8S, "once")


def install():
    """npm ci in tests/kubernetes once, from its lock file (several test
    runs may race)."""
    done = os.path.join(CHECK, "node_modules", ".package-lock.json")
    if os.path.exists(done):
        return
    if not shutil.which("npm"):
        raise AssertionError("npm not found (contrib/install-deps.sh)")
    with open(os.path.join(CHECK, ".install.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not os.path.exists(done):
            subprocess.run(["npm", "ci", "--no-audit", "--no-fund",
                            "--silent"], cwd=CHECK, check=True,
                           stdout=subprocess.DEVNULL, timeout=300)


def run_check(directory, *more):
    node = shutil.which("node")
    if not node:
        raise AssertionError("node not found (contrib/install-deps.sh)")
    install()
    files = []
    for d in (directory,) + more:
        files += sorted(os.path.join(d, f) for f in os.listdir(d)
                        if f.endswith(".yaml"))
    p = subprocess.run([node, os.path.join(CHECK, "check.mjs")] + files,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                       timeout=120)
    return p.returncode, p.stdout.decode("utf-8", "replace")


def read(name):
    with open(os.path.join(K8S, name)) as f:
        return f.read()


class Manifests(TestCase):
    def test_schema_check_passes(self):
        rc, out = run_check(K8S, ONCE)
        self.assertEqual(rc, 0, out)
        # metrics-exporter.yaml holds two documents; once/ one.
        self.assertIn("%d documents, no problem" % (len(MANIFESTS) + 2), out)
        self.assertIn("checked volume-shell.yaml: Pod imapsnap-shell", out)

    def test_schema_check_catches_mistakes(self):
        cases = [
            ("cronjob.yaml", "parallelism: 8", "paralelism: 8",
             'unknown field "paralelism"'),
            ("cronjob.yaml", "completions: 8", "completions: eight",
             "completions must be integer"),
            ("cronjob.yaml", "memory: 32Mi", "memory: lots",
             "memory must match format"),
            ("cronjob.yaml", 'schedule: "0 1 * * *"', "",
             "must have required property schedule"),
            ("cronjob.yaml", "operator: In", "operator: Inn",
             "must be equal to one of the allowed values"),
            ("cronjob.yaml", "readOnly: true", "readonly: true",
             'unknown field "readonly"'),
            ("pvc.yaml", "accessModes: [ReadWriteMany]",
             "accessMode: [ReadWriteMany]", 'unknown field "accessMode"'),
            ("kustomization.yaml", "  - pvc.yaml\n", "",
             "but the manifests are"),
        ]
        for name, old, new, why in cases:
            with self.subTest(file=name, change=new or "(removed)"):
                d = workdir("k8smut")
                for f in MANIFESTS:
                    shutil.copy(os.path.join(K8S, f), d)
                text = read(name)
                self.assertIn(old, text)
                with open(os.path.join(d, name), "w") as f:
                    f.write(text.replace(old, new, 1))
                rc, out = run_check(d)
                self.assertEqual(rc, 1, out)
                self.assertIn(why, out)

    def test_one_n_everywhere(self):
        text = read("cronjob.yaml")
        completions = re.findall(r"(?m)^\s+completions: (\d+)$", text)
        parallelism = re.findall(r"(?m)^\s+parallelism: (\d+)$", text)
        shard = re.findall(r"(?m)^\s+- auto/(\d+)$", text)
        self.assertEqual(len(completions), 1)
        self.assertEqual(completions, parallelism)
        self.assertEqual(completions, shard)
        self.assertRegex(text, r"(?m)^\s+completionMode: Indexed$")
        self.assertRegex(text, r"(?m)^\s+concurrencyPolicy: Forbid$")
        self.assertRegex(text, r"(?m)^\s+restartPolicy: Never$")

    def config_text(self):
        text = read("config.yaml")
        block = text.split("  config: |\n", 1)[1]
        return "".join(ln[4:] + "\n" for ln in block.splitlines())

    def test_config_is_one_imapsnap_accepts(self):
        d = workdir("k8scfg")
        path = os.path.join(d, "config")
        with open(path, "w") as f:
            f.write(self.config_text())
        # Parsed and checked, then refused only for the account name
        # asked for, which lists those it has: no connection is made.
        r = imapsnap("run", "--config", path, "--dry-run", "no-such",
                     env={"HOME": "/nonexistent"})
        self.assertExit(r, 2)
        self.assertIn(b"(it has: alice bob carol)", r.stderr)

    def test_paths_fit_the_volumes(self):
        config = self.config_text()
        cron = read("cronjob.yaml")
        secret_keys = set(re.findall(r"(?m)^  ([\w.-]+): ",
                                     read("secret.example.yaml")
                                     .split("stringData:", 1)[1]))
        named = set(re.findall(r"/run/secrets/imapsnap/([\w.-]+)", config))
        self.assertTrue(named)
        self.assertEqual(named - secret_keys, set(),
                         "files the config names that the Secret lacks")
        self.assertIn("mountPath: /run/secrets/imapsnap", cron)
        self.assertIn("mountPath: /backup\n", cron)
        for key in ("destination", "oauth2_token_file"):
            paths = re.findall(r"(?m)^%s = (.*)$" % key, config)
            self.assertTrue(paths, key)
            for path in paths:
                self.assertTrue(path.startswith("/backup/"),
                                "%s = %s: not on the backup volume"
                                % (key, path))
        self.assertRegex(cron, r"- --metrics\n\s+- /backup/[\w.-]+\.prom\n")
        self.assertIn("--collector.textfile.directory=/backup",
                      read("metrics-exporter.yaml"))
