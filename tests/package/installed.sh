#!/bin/sh
# installed.sh — check the installed Debian package (CI runs it after
# `apt-get install ./build/deb/imapsnap_*.deb`): the program is
# /usr/bin/imapsnap and says the package's version, every file the
# package promises is where Debian looks for it, the systemd units are
# valid and not enabled, and the installed binary backs up an account of
# the test Dovecot (a few integration tests run against it).
set -eu
cd "$(dirname "$0")/../.."

fail() {
	echo "installed.sh: $*" >&2
	exit 1
}

version=$(dpkg-query -W -f='${Version}' imapsnap) ||
	fail "the imapsnap package is not installed"
[ "$(command -v imapsnap)" = /usr/bin/imapsnap ] ||
	fail "imapsnap is $(command -v imapsnap), not /usr/bin/imapsnap"
got=$(imapsnap --version)
[ "$got" = "imapsnap $version" ] ||
	fail "imapsnap --version says '$got', the package is $version"
echo "installed.sh: $got"

for f in \
	/usr/share/man/man1/imapsnap.1.gz \
	/usr/share/man/man5/imapsnap.conf.5.gz \
	/usr/share/bash-completion/completions/imapsnap \
	/usr/share/zsh/vendor-completions/_imapsnap \
	/usr/share/fish/vendor_completions.d/imapsnap.fish \
	/lib/systemd/system/imapsnap.service \
	/lib/systemd/system/imapsnap.timer \
	/usr/lib/systemd/user/imapsnap@.service \
	/usr/lib/systemd/user/imapsnap@.timer \
	/usr/share/doc/imapsnap/examples/crontab.example \
	/usr/share/doc/imapsnap/examples/imapsnap-rules.yml \
	/usr/share/doc/imapsnap/copyright; do
	[ -f "$f" ] || fail "$f is missing"
done
# The library is internal (docs/decisions.md).
if dpkg -L imapsnap | grep -E '\.(a|so|pc|h)$'; then
	fail "the package ships library files"
fi

# Shipped, not enabled (Debian practice for a job that needs a config
# first): nothing links the timer into timers.target.
[ ! -e /etc/systemd/system/timers.target.wants/imapsnap.timer ] ||
	fail "imapsnap.timer is enabled"
if command -v systemd-analyze >/dev/null 2>&1; then
	# (The user units too, as system units: --user needs a user
	# manager, which CI does not have; the checks are the same.)
	systemd-analyze verify --man=no /lib/systemd/system/imapsnap.service \
		/lib/systemd/system/imapsnap.timer \
		/usr/lib/systemd/user/imapsnap@.service \
		/usr/lib/systemd/user/imapsnap@.timer ||
		fail "systemd-analyze verify: the units"
fi

# The installed binary against the test Dovecot: a full backup checked
# byte for byte, a config run with metrics, and a sharded run.
python3 tests/integration/run.py --binary /usr/bin/imapsnap \
	test_backup.FullBackup \
	test_metrics.Metrics.test_run_writes_one_file_with_an_account_label_each \
	test_shard.Shard.test_four_workers_by_hand
