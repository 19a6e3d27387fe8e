#!/bin/sh
# install-deps.sh — make sure this machine has what building imapsnap, its
# tests and the demo need (Debian 12 and its derivatives).
#
# Quiet and fast when everything is installed.  Otherwise, as root, runs
# `apt-get update` and `apt-get install -y` for the missing packages; as any
# other user, prints the exact command to run and exits 1.
# On a system without dpkg, checks for the programs and pkg-config modules
# instead and says what is missing.
set -eu

# build: compiler, make, pkg-config and the libraries of the Makefile's
# PKGS (libcurl, libarchive, zlib, libcrypto, jansson, inih) and criterion (unit
# tests): keep this list in step with PKGS;
# integration tests and demo: Dovecot's IMAP server, openssl (test CA),
# python3; archive checks: bsdtar, unzip, zstd, xz; the mail readers the
# tests read backups with: mutt (driven through tmux) and notmuch;
# the other servers of the integration tests: what Cyrus's and Courier's
# IMAP servers need (the servers themselves conflict with Dovecot's and
# are unpacked privately by tests/install-servers.sh, run at the end);
# the Gmail-like test server (tests/gmail): node and npm, which bring
# hoodiecrow-imap.
PACKAGES="gcc make pkg-config libcurl4-openssl-dev libarchive-dev zlib1g-dev
libssl-dev libjansson-dev libinih-dev libcriterion-dev dovecot-imapd openssl python3
ca-certificates libarchive-tools unzip zstd xz-utils mutt tmux notmuch
cyrus-common sasl2-bin courier-base courier-authlib-userdb libcourier-unicode4
libgamin0 libidn12 libgdbm6"
# The --metrics file and the alert rules are checked with promtool
# (Debian's prometheus package); the shell completions are run in bash
# (with bash-completion), zsh and fish.
PACKAGES="$PACKAGES prometheus bash-completion zsh fish"
# make bench and contrib/bench/noop_cost.py --mbsync time mbsync (isync)
# beside imapsnap.
PACKAGES="$PACKAGES isync"

if ! command -v dpkg-query >/dev/null 2>&1; then
	missing=
	for prog in cc make pkg-config dovecot openssl python3 bsdtar unzip \
		zstd xz node npm mutt tmux notmuch; do
		command -v "$prog" >/dev/null 2>&1 || missing="$missing $prog"
	done
	for mod in libcurl libarchive zlib libcrypto jansson inih criterion; do
		pkg-config --exists "$mod" 2>/dev/null ||
			missing="$missing $mod(pkg-config)"
	done
	for prog in promtool zsh fish; do
		command -v "$prog" >/dev/null 2>&1 || missing="$missing $prog"
	done
	if [ -n "$missing" ]; then
		echo "install-deps: no dpkg here; install these yourself:$missing" >&2
		exit 1
	fi
	exit 0
fi

# node and npm may come from elsewhere (NodeSource's nodejs includes npm,
# and Debian's npm would not install beside it): look for the programs.
if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
	PACKAGES="$PACKAGES nodejs npm"
fi

missing=
for pkg in $PACKAGES; do
	status=$(dpkg-query -W -f='${db:Status-Abbrev}' "$pkg" 2>/dev/null || true)
	case $status in
	ii*) ;;
	*) missing="$missing $pkg" ;;
	esac
done
HERE=$(cd "$(dirname "$0")" && pwd)
if [ -z "$missing" ]; then
	sh "$HERE/../tests/install-servers.sh"
	exit 0
fi

echo "install-deps: missing:$missing"
if [ "$(id -u)" -ne 0 ]; then
	echo "install-deps: as root, run:" >&2
	echo "  apt-get update && apt-get install -y --no-install-recommends$missing" >&2
	exit 1
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update
# shellcheck disable=SC2086 # one word per package
apt-get install -y --no-install-recommends $missing
sh "$HERE/../tests/install-servers.sh"
