#!/bin/sh
# start.sh DIR — start a private, throwaway Dovecot on 127.0.0.1 for tests
# and the demo.
#
# Everything lives in DIR (created if missing): the config, a throwaway CA
# (DIR/ca.pem) and a server certificate it signed (CN=localhost,
# subjectAltName DNS:localhost and IP:127.0.0.1), the users alice, bob and
# carol (password: USER-Pa55word), their mail under DIR/mail/USER/Maildir,
# and the log, DIR/dovecot.log, where each session's end is logged with its
# counters (body_count=, body_bytes=).
#
# Four listeners, on free ports picked at start:
#   IMAP_PORT      127.0.0.1, imap with STARTTLS offered (plaintext LOGIN is
#                  allowed too)
#   IMAPS_PORT     127.0.0.1, imaps (implicit TLS)
#   PLAIN_PORT     127.0.0.2, imap with TLS off: no STARTTLS in CAPABILITY,
#                  to test that a client refuses plaintext by default
#   MISMATCH_PORT  127.0.0.3, imaps with the same certificate, whose names
#                  do not include 127.0.0.3: hostname verification must fail
#
# When the server answers on every port, DIR/env is written (shell
# assignments, also read by tests/integration) and printed.  Stop the
# server with tests/dovecot/stop.sh DIR.
#
# Users: each has a passwd-file of its own, DIR/users/USER, with one line
# "user:{PLAIN}password::::::".  A new file is read at the user's first
# login, so tests/dovecot/adduser.sh can add users at any time.  (One shared
# file would not do: Dovecot looks at a passwd-file's mtime at most once a
# second, so a user added just after another user's login stays unknown for
# up to a second.)
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
mkdir -p "$1"
DIR=$(cd "$1" && pwd)
HERE=$(cd "$(dirname "$0")" && pwd)

PIDFILE=$DIR/run/master.pid
if [ -f "$PIDFILE" ] && kill -0 "$(cat "$PIDFILE")" 2>/dev/null; then
	echo "$0: a Dovecot already runs in $DIR (pid $(cat "$PIDFILE"))" >&2
	exit 1
fi

for prog in dovecot openssl python3; do
	if ! command -v "$prog" >/dev/null 2>&1; then
		echo "$0: $prog not found (run: sh contrib/install-deps.sh)" >&2
		exit 1
	fi
done

# Mail processes refuse to run as root, and imap-login refuses to run as
# root, so as root the usual system users take those roles.  As an ordinary
# user every process runs as that user.
if [ "$(id -u)" -eq 0 ]; then
	LOGIN_USER=dovenull
	INTERNAL_USER=dovecot
	INTERNAL_GROUP=dovecot
	MAIL_UID=nobody
	MAIL_GID=nogroup
else
	LOGIN_USER=$(id -un)
	INTERNAL_USER=$(id -un)
	INTERNAL_GROUP=$(id -gn)
	MAIL_UID=$(id -un)
	MAIL_GID=$(id -gn)
fi

# Dovecot's auth and mail processes run as other users: they must be able
# to reach DIR (mkdtemp makes directories only their owner can enter).
chmod 755 "$DIR"
p=$DIR
while [ "$(id -u)" -eq 0 ] && [ "$p" != / ]; do
	p=$(dirname "$p")
	if [ -z "$(find "$p" -maxdepth 0 -perm -001)" ]; then
		echo "$0: $p is closed to other users, so Dovecot's processes" \
			"cannot reach $DIR: chmod o+x $p, or use another DIR" >&2
		exit 1
	fi
done
mkdir -p "$DIR/run" "$DIR/state" "$DIR/mail"
chown "$MAIL_UID:$MAIL_GID" "$DIR/mail"

# --- certificates -----------------------------------------------------------
sh "$HERE/../tls/make-certs.sh" "$DIR"

# --- users ------------------------------------------------------------------
mkdir -p "$DIR/users"
for u in alice bob carol; do
	[ -f "$DIR/users/$u" ] || sh "$HERE/adduser.sh" "$DIR" "$u" "$u-Pa55word"
done

# --- ports ------------------------------------------------------------------
# shellcheck disable=SC2046 # four port numbers, one word each
set -- $(python3 "$HERE/../net.py" ports 127.0.0.1 127.0.0.1 127.0.0.2 127.0.0.3)
IMAP_PORT=$1 IMAPS_PORT=$2 PLAIN_PORT=$3 MISMATCH_PORT=$4

DH=
if [ -f /usr/share/dovecot/dh.pem ]; then
	DH="ssl_dh = </usr/share/dovecot/dh.pem"
fi

cat >"$DIR/dovecot.conf" <<CONF
# Written by tests/dovecot/start.sh; throwaway test server.
protocols = imap
listen = 127.0.0.1
base_dir = $DIR/run
state_dir = $DIR/state
instance_name = imapsnap-test-$IMAP_PORT
log_path = $DIR/dovecot.log
info_log_path = $DIR/dovecot.log
debug_log_path = $DIR/dovecot.log
auth_verbose = yes
# The default logout line, spelled out because tests read its counters.
imap_logout_format = in=%i out=%o deleted=%{deleted} expunged=%{expunged} trashed=%{trashed} hdr_count=%{fetch_hdr_count} hdr_bytes=%{fetch_hdr_bytes} body_count=%{fetch_body_count} body_bytes=%{fetch_body_bytes}

default_login_user = $LOGIN_USER
default_internal_user = $INTERNAL_USER
default_internal_group = $INTERNAL_GROUP

ssl = yes
ssl_cert = <$DIR/cert.pem
ssl_key = <$DIR/key.pem
$DH
disable_plaintext_auth = no
auth_mechanisms = plain login

passdb {
  driver = passwd-file
  args = scheme=PLAIN $DIR/users/%u
}
userdb {
  driver = static
  args = uid=$MAIL_UID gid=$MAIL_GID home=$DIR/mail/%u
}

mail_location = maildir:~/Maildir
namespace inbox {
  inbox = yes
  separator = /
}

service imap-login {
  chroot =
  inet_listener imap {
    address = 127.0.0.1
    port = $IMAP_PORT
  }
  inet_listener imaps {
    address = 127.0.0.1
    port = $IMAPS_PORT
    ssl = yes
  }
  inet_listener plain {
    address = 127.0.0.2
    port = $PLAIN_PORT
  }
  inet_listener mismatch {
    address = 127.0.0.3
    port = $MISMATCH_PORT
    ssl = yes
  }
}
service auth {
  chroot =
}
# No auth penalty: by default each failed login from an IP makes the next
# one wait longer (up to 15 s), which would make test runs depend on their
# order.  The fixed auth_failure_delay (2 s) still applies.
service anvil {
  chroot =
  unix_listener anvil-auth-penalty {
    mode = 0
  }
}

# Connections to 127.0.0.2 get no TLS at all, hence no STARTTLS.
local 127.0.0.2 {
  ssl = no
}
CONF

# The daemon must not hold on to our stdout: a caller reading it to the end
# would wait for as long as Dovecot runs.
if ! dovecot -c "$DIR/dovecot.conf" </dev/null >"$DIR/dovecot.out" 2>&1; then
	echo "$0: dovecot failed to start:" >&2
	cat "$DIR/dovecot.out" >&2
	exit 1
fi

# Wait until every listener answers with a greeting.
python3 "$HERE/../net.py" greets 127.0.0.1:$IMAP_PORT 127.0.0.1:$IMAPS_PORT+tls \
	127.0.0.2:$PLAIN_PORT 127.0.0.3:$MISMATCH_PORT+tls || { echo "$0: Dovecot did not come up; see $DIR/dovecot.log" >&2; tail -n 20 "$DIR/dovecot.log" >&2; exit 1; }

cat >"$DIR/env.tmp" <<ENV
DOVECOT_DIR=$DIR
HOST=127.0.0.1
IMAP_PORT=$IMAP_PORT
IMAPS_PORT=$IMAPS_PORT
PLAIN_HOST=127.0.0.2
PLAIN_PORT=$PLAIN_PORT
MISMATCH_HOST=127.0.0.3
MISMATCH_PORT=$MISMATCH_PORT
CACERT=$DIR/ca.pem
USERS_DIR=$DIR/users
MAIL_ROOT=$DIR/mail
LOG=$DIR/dovecot.log
MAIL_OWNER=$MAIL_UID:$MAIL_GID
ENV
mv "$DIR/env.tmp" "$DIR/env"
cat "$DIR/env"
