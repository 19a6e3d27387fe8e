#!/bin/sh
# run.sh BINARY — benchmark imapsnap against mbsync (`make bench`).
#
# Installs what the benchmark needs and is missing (isync for mbsync, GNU
# time for peak RSS, Dovecot, python3): as root with apt-get, otherwise it
# prints the command to run and stops.  Then runs contrib/bench/bench.py,
# which starts a private Dovecot on 127.0.0.1, fills it with a generated
# corpus and times both tools; see docs/performance.md for what it measures.
#
# Environment:
#   BENCH_QUICK=1     2 repetitions instead of 5 (about half the time)
#   BENCH_REPS=N      N repetitions
#   BENCH_TLS=none    plaintext for both tools (default: STARTTLS)
#   BENCH_OUT=FILE    the report (default: build/bench/results.md beside
#                     BINARY; FILE's .json sibling holds every run)
#   BENCH_KEEP=1      keep the temporary directory (server log, backups)
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 path/to/imapsnap" >&2
	exit 2
fi
if [ ! -x "$1" ]; then
	echo "$0: $1 is not an executable (build it with make)" >&2
	exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)

# program -> Debian package
missing=
for pair in mbsync:isync /usr/bin/time:time dovecot:dovecot-imapd \
	python3:python3 openssl:openssl; do
	prog=${pair%%:*}
	pkg=${pair#*:}
	command -v "$prog" >/dev/null 2>&1 || missing="$missing $pkg"
done
if [ -n "$missing" ]; then
	if [ "$(id -u)" -ne 0 ]; then
		echo "$0: missing:$missing; as root, run:" >&2
		echo "  apt-get update && apt-get install -y --no-install-recommends$missing" >&2
		exit 1
	fi
	echo "bench: installing$missing"
	export DEBIAN_FRONTEND=noninteractive
	# shellcheck disable=SC2086 # one word per package
	apt-get install -y --no-install-recommends $missing >/dev/null 2>&1 || {
		apt-get update >/dev/null
		apt-get install -y --no-install-recommends $missing >/dev/null
	}
fi

set -- --imapsnap "$1" --out "${BENCH_OUT:-$(dirname "$1")/bench/results.md}"
[ "${BENCH_QUICK:-0}" = 1 ] && set -- "$@" --quick
[ -n "${BENCH_REPS:-}" ] && set -- "$@" --reps "$BENCH_REPS"
[ -n "${BENCH_TLS:-}" ] && set -- "$@" --tls "$BENCH_TLS"
[ "${BENCH_KEEP:-0}" = 1 ] && set -- "$@" --keep
exec python3 "$HERE/bench.py" "$@"
