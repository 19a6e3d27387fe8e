#!/bin/sh
# install-servers.sh [--path PACKAGE] — put the Cyrus and Courier IMAP
# servers that the integration tests run where tests/cyrus/start.sh and
# tests/courier/start.sh find them (Debian 12).
#
# cyrus-imapd and courier-imap conflict with dovecot-imapd (all three
# provide imap-server), so they are not installed: their packages are
# downloaded and unpacked privately under $IMAPSNAP_TEST_SERVERS (default
# /var/lib/imapsnap-test-servers), one directory per package and version.
# Their dependencies (cyrus-common, sasl2-bin, courier-base,
# courier-authlib-userdb, ...) do not conflict: contrib/install-deps.sh
# installs them.  Quiet and fast when everything is in place.
#
# With --path PACKAGE (cyrus-imapd or courier-imap), prints the directory
# the package is unpacked in, after unpacking it if needed.
set -eu
ROOT=${IMAPSNAP_TEST_SERVERS:-/var/lib/imapsnap-test-servers}

fail() {
	echo "install-servers: $*" >&2
	exit 1
}

installed() {
	dpkg-query -W -f='${Version}' "$1" 2>/dev/null ||
		fail "$1 is not installed (run: sh contrib/install-deps.sh)"
}

# The version to unpack: the one that goes with the installed
# dependencies (cyrus-imapd depends on cyrus-common of its own version;
# courier-imap's version is courier-base's with its own in front:
# 5.0.13+1.0.16-3+b6 goes with courier-base 1.0.16-3+b6).
version() {
	case $1 in
	cyrus-imapd) installed cyrus-common ;;
	courier-imap)
		base=$(installed courier-base)
		v=$(apt-cache madison courier-imap 2>/dev/null |
			awk -v b="+$base" '{ if (substr($3, length($3) - length(b) + 1) == b) { print $3; exit } }')
		if [ -z "$v" ] && [ "$(id -u)" -eq 0 ]; then
			apt-get update >/dev/null 2>&1 || true
			v=$(apt-cache madison courier-imap 2>/dev/null |
				awk -v b="+$base" '{ if (substr($3, length($3) - length(b) + 1) == b) { print $3; exit } }')
		fi
		[ -n "$v" ] || fail "no courier-imap for courier-base $base"
		echo "$v"
		;;
	*) fail "unknown package $1" ;;
	esac
}

# unpack PACKAGE: prints its directory.
unpack() {
	ver=$(version "$1")
	dir=$ROOT/$1-$ver
	if [ ! -f "$dir/.complete" ]; then
		[ "$(id -u)" -eq 0 ] || fail "as root, run: sh $0"
		mkdir -p "$ROOT"
		tmp=$(mktemp -d "$ROOT/.tmp.XXXXXX")
		# apt-get download works as user _apt where it can.
		chmod 755 "$tmp"
		(cd "$tmp" && apt-get download -q "$1=$ver" >/dev/null 2>&1) ||
			{ apt-get update >/dev/null 2>&1 || true
			  (cd "$tmp" && apt-get download -q "$1=$ver" >/dev/null); } ||
			fail "cannot download $1 $ver"
		rm -rf "$dir"
		dpkg-deb -x "$tmp"/*.deb "$dir"
		rm -rf "$tmp"
		touch "$dir/.complete"
		echo "install-servers: $1 $ver unpacked in $dir" >&2
	fi
	echo "$dir"
}

if [ "${1:-}" = --path ]; then
	[ $# -eq 2 ] || fail "usage: $0 [--path PACKAGE]"
	unpack "$2"
	exit 0
fi
unpack cyrus-imapd >/dev/null
unpack courier-imap >/dev/null
