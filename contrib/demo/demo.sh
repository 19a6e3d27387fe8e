#!/bin/sh
# demo.sh BINARY — back up a throwaway local Dovecot full of sample mail.
#
# Starts a private Dovecot (tests/dovecot/start.sh) in a temporary
# directory, fills alice's mailbox with contrib/demo/gen_corpus.py, runs
# `BINARY backup` over TLS (checked against the demo's own CA) into
# ./demo-backup, runs it again to show that an up-to-date backup fetches
# nothing, and shows what was written.  The server is always stopped.
set -eu

if [ $# -ne 1 ]; then
	echo "usage: $0 path/to/imapsnap" >&2
	exit 2
fi
case $1 in
/*) BIN=$1 ;;
*) BIN=$(pwd)/$1 ;;
esac
if [ ! -x "$BIN" ]; then
	echo "$0: $BIN is not an executable (build it with make)" >&2
	exit 2
fi
HERE=$(cd "$(dirname "$0")" && pwd)
ROOT=$(cd "$HERE/../.." && pwd)
DEST=demo-backup

# A backup from an earlier demo run came from another server: start afresh,
# but never remove something that is not an old demo backup.
if [ -e "$DEST" ]; then
	if [ -d "$DEST/.imapsnap" ] || [ -z "$(ls -A "$DEST")" ]; then
		rm -rf "$DEST"
	else
		echo "$0: ./$DEST exists and is no imapsnap backup; move it away" >&2
		exit 1
	fi
fi

TMP=$(mktemp -d "${TMPDIR:-/tmp}/imapsnap-demo.XXXXXX")
chmod 755 "$TMP"
cleanup() {
	sh "$ROOT/tests/dovecot/stop.sh" "$TMP/dovecot" || true
	rm -rf "$TMP"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

echo "== Starting a private Dovecot in $TMP/dovecot"
sh "$ROOT/tests/dovecot/start.sh" "$TMP/dovecot" >/dev/null
. "$TMP/dovecot/env"

echo "== Writing sample mail for alice"
mkdir -p "$MAIL_ROOT/alice"
python3 "$HERE/gen_corpus.py" --seed 1 "$MAIL_ROOT/alice/Maildir"
chown -R "$MAIL_OWNER" "$MAIL_ROOT/alice"

IMAPSNAP_PASSWORD=alice-Pa55word
export IMAPSNAP_PASSWORD
URL=imaps://alice@localhost:$IMAPS_PORT

run() {
	echo "\$ IMAPSNAP_PASSWORD=... imapsnap backup --cacert $CACERT $URL $DEST"
	"$BIN" backup --cacert "$CACERT" "$URL" "$DEST"
}

# The body_count= of alice's sessions logged since line $1 of the log.
bodies() {
	i=0
	while [ $i -lt 50 ]; do
		n=$(tail -n +"$1" "$LOG" | grep -c 'imap(alice).*Disconnected' || true)
		[ "$n" -gt 0 ] && break
		sleep 0.1
		i=$((i + 1))
	done
	tail -n +"$1" "$LOG" | grep 'imap(alice).*Disconnected' |
		sed -n 's/.*body_count=\([0-9]*\).*/\1/p' |
		awk '{ s += $1 } END { print s + 0 }'
}

echo
echo "== First run: a full backup"
mark=$(($(wc -l <"$LOG") + 1))
run
echo "   (Dovecot's log: $(bodies $mark) message bodies fetched)"

echo
echo "== Second run: nothing new on the server"
mark=$(($(wc -l <"$LOG") + 1))
run
echo "   (Dovecot's log: $(bodies $mark) message bodies fetched)"

echo
echo "== What was written: one Maildir per folder"
find "$DEST" -type d -name cur | sed 's,/cur$,,' | LC_ALL=C sort |
	while read -r dir; do
		printf '%6d  %s/\n' "$(ls "$dir/cur" | wc -l)" "$dir"
	done
echo
echo "== A few message files (<uidvalidity>_<uid>.imapsnap:2,<flags>)"
ls -l "$DEST/INBOX/cur" | sed -n '2,5p'
echo
echo "The backup is in ./$DEST (read it with e.g. mutt -f ./$DEST/INBOX);"
echo "imapsnap's own state is in ./$DEST/.imapsnap/state."
