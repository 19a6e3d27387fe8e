#!/bin/sh
# start.sh DIR [stock|alt] — start a private, throwaway Cyrus IMAP 3.6 on
# 127.0.0.1 for the integration tests.
#
# The server is the cyrus-imapd package unpacked by tests/install-servers.sh
# (it conflicts with dovecot-imapd, so it is not installed), run by the
# installed cyrus-common's master(8) with every path inside DIR:
# DIR/imapd.conf, DIR/cyrus.conf, the mailbox database and spool, the
# users' SASL database (DIR/sasldb2; tests/cyrus/adduser.sh adds users at
# any time, and a user's INBOX is created at the first login), and a
# throwaway CA and certificate (tests/tls/make-certs.sh).
#
# Namespace:
#   stock  Debian's default (altnamespace: no, unixhierarchysep: no):
#          every folder below INBOX., "." as delimiter.
#   alt    altnamespace: yes, unixhierarchysep: yes: folders beside INBOX,
#          "/" as delimiter.
# Everything else is Debian's default, so stock Cyrus rewrites 8-bit bytes
# in headers to "X" on APPEND (munge8bit).
#
# Listeners, on free ports picked at start: IMAP_PORT (STARTTLS offered,
# plaintext LOGIN allowed) and IMAPS_PORT (implicit TLS).  When both
# answer, DIR/env is written (shell assignments, also read by
# tests/integration) and printed.  Stop with tests/cyrus/stop.sh DIR.
# The per-user protocol logs ("telemetry") of a user go to
# DIR/conf/log/USER/ when that directory exists.
set -eu

if [ $# -lt 1 ] || [ $# -gt 2 ]; then
	echo "usage: $0 DIR [stock|alt]" >&2
	exit 2
fi
MODE=${2:-stock}
case $MODE in
stock) ALT=no ;;
alt) ALT=yes ;;
*)
	echo "$0: namespace is stock or alt, not $MODE" >&2
	exit 2
	;;
esac
mkdir -p "$1"
DIR=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)

PIDFILE=$DIR/master.pid
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
	echo "$0: a Cyrus already runs in $DIR (pid $(cat "$PIDFILE"))" >&2
	exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "$0: Cyrus's master runs as root (it drops to user cyrus)" >&2
	exit 1
fi
MASTER=/usr/lib/cyrus/bin/master
for f in $MASTER /usr/sbin/saslpasswd2; do
	if [ ! -x "$f" ]; then
		echo "$0: $f not found (run: sh contrib/install-deps.sh)" >&2
		exit 1
	fi
done
CYRUS=$(sh "$HERE/../install-servers.sh" --path cyrus-imapd)
IMAPD=$CYRUS/usr/lib/cyrus/bin/imapd
[ -x "$IMAPD" ] || { echo "$0: $IMAPD missing" >&2; exit 1; }

# The server runs as cyrus: it must reach DIR.
chmod 755 "$DIR"
p=$DIR
while [ "$p" != / ]; do
	p=$(dirname "$p")
	if [ -z "$(find "$p" -maxdepth 0 -perm -001)" ]; then
		echo "$0: $p is closed to other users, so Cyrus cannot reach" \
			"$DIR: chmod o+x $p, or use another DIR" >&2
		exit 1
	fi
done
mkdir -p "$DIR/conf/log" "$DIR/spool" "$DIR/proc" "$DIR/lock" "$DIR/socket"
sh "$HERE/../tls/make-certs.sh" "$DIR"
cp "$DIR/key.pem" "$DIR/server-key.pem"
# saslpasswd2 makes the database on its first change; make it now, so
# that it can be given to user cyrus before any user is added.
[ -f "$DIR/sasldb2" ] || saslpasswd2 -f "$DIR/sasldb2" -d nobody 2>/dev/null || true

# shellcheck disable=SC2046 # two port numbers, one word each
set -- $(python3 "$HERE/../net.py" ports 127.0.0.1 127.0.0.1)
IMAP_PORT=$1 IMAPS_PORT=$2

cat >"$DIR/imapd.conf" <<CONF
# Written by tests/cyrus/start.sh; throwaway test server ($MODE namespace).
configdirectory: $DIR/conf
defaultpartition: default
partition-default: $DIR/spool
proc_path: $DIR/proc
mboxname_lockpath: $DIR/lock
lmtpsocket: $DIR/socket/lmtp
idlesocket: $DIR/socket/idle
notifysocket: $DIR/socket/notify
syslog_prefix: imapsnap-test-cyrus-$IMAP_PORT
altnamespace: $ALT
unixhierarchysep: $ALT
autocreate_quota: 0
allowplaintext: yes
sasl_pwcheck_method: auxprop
sasl_auxprop_plugin: sasldb
sasl_sasldb_path: $DIR/sasldb2
sasl_mech_list: PLAIN LOGIN
tls_server_cert: $DIR/cert.pem
tls_server_key: $DIR/server-key.pem
CONF
cat >"$DIR/cyrus.conf" <<CONF
# Written by tests/cyrus/start.sh.
START {
  recover cmd="/usr/lib/cyrus/bin/ctl_cyrusdb -C $DIR/imapd.conf -r"
}
SERVICES {
  imap cmd="$IMAPD -C $DIR/imapd.conf" listen="127.0.0.1:$IMAP_PORT" prefork=0 maxchild=100
  imaps cmd="$IMAPD -s -C $DIR/imapd.conf" listen="127.0.0.1:$IMAPS_PORT" prefork=0 maxchild=100
}
EVENTS {
}
CONF
chown -R cyrus:mail "$DIR/conf" "$DIR/spool" "$DIR/proc" "$DIR/lock" \
	"$DIR/socket" "$DIR/server-key.pem" "$DIR/sasldb2"
chmod 600 "$DIR/server-key.pem"
chmod 640 "$DIR/sasldb2"

if ! "$MASTER" -C "$DIR/imapd.conf" -M "$DIR/cyrus.conf" -p "$PIDFILE" \
	-L "$DIR/master.log" -d </dev/null >"$DIR/master.out" 2>&1; then
	echo "$0: Cyrus's master failed to start:" >&2
	cat "$DIR/master.out" "$DIR/master.log" >&2 2>/dev/null
	exit 1
fi

python3 "$HERE/../net.py" greets 127.0.0.1:$IMAP_PORT 127.0.0.1:$IMAPS_PORT+tls || { echo "$0: Cyrus did not come up; see $DIR/master.log" >&2; tail -n 20 "$DIR/master.log" >&2; sh "$HERE/stop.sh" "$DIR"; exit 1; }

cat >"$DIR/env.tmp" <<ENV
CYRUS_DIR=$DIR
NAMESPACE_MODE=$MODE
HOST=127.0.0.1
IMAP_PORT=$IMAP_PORT
IMAPS_PORT=$IMAPS_PORT
CACERT=$DIR/ca.pem
LOG=$DIR/master.log
ENV
mv "$DIR/env.tmp" "$DIR/env"
cat "$DIR/env"
