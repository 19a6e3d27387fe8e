#!/bin/sh
# start.sh DIR — start a private, throwaway Courier IMAP 5 on 127.0.0.1 for
# the integration tests.
#
# The server is the courier-imap package unpacked by
# tests/install-servers.sh (it conflicts with dovecot-imapd, so it is not
# installed), with the installed courier-authlib (authdaemond, the userdb
# module) and courier-base (couriertcpd, couriertls).  Courier's paths
# are compiled in (/etc/courier, /run/courier/authdaemon), so the server
# runs in a mount namespace of its own (unshare -m) in which DIR/etc is
# /etc/courier and DIR/run is /run/courier; nothing outside DIR changes.
#
# Users: DIR/etc/userdb (tests/courier/adduser.sh), mail in
# DIR/mail/USER/Maildir, owned by nobody.  Namespace "INBOX." with "."
# (Maildir++), no CONDSTORE, no LIST-STATUS, no SPECIAL-USE.
#
# Listeners, on free ports picked at start: IMAP_PORT (STARTTLS offered,
# plaintext LOGIN allowed) and IMAPS_PORT (implicit TLS), with a throwaway
# CA and certificate (tests/tls/make-certs.sh).  When both answer,
# DIR/env is written and printed.  Every session's LOGOUT line, with its
# counters (body=, ...), goes to DIR/imapd.log.  Stop with
# tests/courier/stop.sh DIR.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
mkdir -p "$1"
DIR=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)

PIDFILE=$DIR/courier.pid
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
	echo "$0: a Courier already runs in $DIR (pid $(cat "$PIDFILE"))" >&2
	exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
	echo "$0: needs root (a mount namespace, and a login that changes user)" >&2
	exit 1
fi
AUTHDAEMOND=/usr/lib/courier/courier-authlib/authdaemond
for f in $AUTHDAEMOND /usr/sbin/couriertcpd /usr/bin/couriertls \
	/usr/sbin/makeuserdb /usr/bin/maildirmake.courier; do
	if [ ! -x "$f" ]; then
		echo "$0: $f not found (run: sh contrib/install-deps.sh)" >&2
		exit 1
	fi
done
COURIER=$(sh "$HERE/../install-servers.sh" --path courier-imap)
IMAPLOGIN=$COURIER/usr/lib/courier/courier/imaplogin
IMAPD=$COURIER/usr/bin/imapd
[ -x "$IMAPLOGIN" ] && [ -x "$IMAPD" ] ||
	{ echo "$0: $IMAPLOGIN or $IMAPD missing" >&2; exit 1; }

# The mail processes run as nobody: they must reach DIR.
chmod 755 "$DIR"
p=$DIR
while [ "$p" != / ]; do
	p=$(dirname "$p")
	if [ -z "$(find "$p" -maxdepth 0 -perm -001)" ]; then
		echo "$0: $p is closed to other users, so Courier cannot reach" \
			"$DIR: chmod o+x $p, or use another DIR" >&2
		exit 1
	fi
done
mkdir -p "$DIR/etc" "$DIR/run/authdaemon" "$DIR/mail"
chown nobody:nogroup "$DIR/mail"
sh "$HERE/../tls/make-certs.sh" "$DIR"
cat "$DIR/key.pem" "$DIR/cert.pem" >"$DIR/etc/imapd.pem"
# couriertls runs as user courier for STARTTLS.
chown courier "$DIR/etc/imapd.pem"
chmod 600 "$DIR/etc/imapd.pem"
if [ -f /etc/courier/dhparams.pem ]; then
	cp /etc/courier/dhparams.pem "$DIR/etc/dhparams.pem"
fi
cat >"$DIR/etc/authdaemonrc" <<CONF
authmodulelist="authuserdb"
authmodulelistorig="authuserdb"
daemons=3
authdaemonvar=/run/courier/authdaemon
DEBUG_LOGIN=0
DEFAULTOPTIONS=""
LOGGEROPTS=""
CONF
[ -f "$DIR/etc/userdb" ] || : >"$DIR/etc/userdb"
chmod 600 "$DIR/etc/userdb"

# shellcheck disable=SC2046 # two port numbers, one word each
set -- $(python3 "$HERE/../net.py" ports 127.0.0.1 127.0.0.1)
IMAP_PORT=$1 IMAPS_PORT=$2

# What /etc/courier/imapd and imapd-ssl would say, as the environment of
# couriertcpd and everything it starts.
cat >"$DIR/server.sh" <<SH
#!/bin/sh
# Written by tests/courier/start.sh; runs in its own mount namespace.
set -eu
mount --bind "$DIR/etc" /etc/courier
mount --bind "$DIR/run" /run/courier
makeuserdb
export IMAP_CAPABILITY="IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT THREAD=REFERENCES SORT QUOTA IDLE"
export IMAP_CAPABILITY_TLS="\$IMAP_CAPABILITY AUTH=PLAIN"
export IMAP_KEYWORDS=1 IMAP_ACL=1 IMAP_IDLE_TIMEOUT=60
export IMAP_MAILBOX_SANITY_CHECK=1 IMAP_UMASK=022 IMAP_USELOCKS=1
export IMAP_TRASHFOLDERNAME=Trash IMAP_EMPTYTRASH= IMAP_MOVE_EXPUNGE_TO_TRASH=0
export IMAP_STARTTLS=YES IMAP_TLS_REQUIRED=0 COURIERTLS=/usr/bin/couriertls
export TLS_CERTFILE=/etc/courier/imapd.pem TLS_DHPARAMS=/etc/courier/dhparams.pem
export TLS_VERIFYPEER=NONE TLS_CACHEFILE= TLS_CACHESIZE=0
$AUTHDAEMOND &
couriertcpd -address=127.0.0.1 -maxprocs=100 -maxperip=100 \
	-nodnslookup -noidentlookup $IMAP_PORT \
	"$IMAPLOGIN" "$IMAPD" Maildir &
IMAP_TLS=1 couriertcpd -address=127.0.0.1 -maxprocs=100 -maxperip=100 \
	-nodnslookup -noidentlookup $IMAPS_PORT \
	/usr/bin/couriertls -server -tcpd "$IMAPLOGIN" "$IMAPD" Maildir &
wait
SH
# A session of its own: stop.sh ends the whole session.
setsid unshare -m --propagation private sh "$DIR/server.sh" \
	</dev/null >>"$DIR/imapd.log" 2>&1 &
echo $! >"$PIDFILE"

python3 "$HERE/../net.py" greets 127.0.0.1:$IMAP_PORT 127.0.0.1:$IMAPS_PORT+tls || { echo "$0: Courier did not come up; see $DIR/imapd.log" >&2; tail -n 20 "$DIR/imapd.log" >&2; sh "$HERE/stop.sh" "$DIR"; exit 1; }

cat >"$DIR/env.tmp" <<ENV
COURIER_DIR=$DIR
HOST=127.0.0.1
IMAP_PORT=$IMAP_PORT
IMAPS_PORT=$IMAPS_PORT
CACERT=$DIR/ca.pem
LOG=$DIR/imapd.log
MAIL_ROOT=$DIR/mail
ENV
mv "$DIR/env.tmp" "$DIR/env"
cat "$DIR/env"
