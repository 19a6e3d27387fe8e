#!/bin/sh
# stop.sh DIR — stop the Cyrus that start.sh DIR started, and wait for it
# (and the imapd processes it forked) to go away.  Leaves DIR in place.
set -eu
if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
PIDFILE=$1/master.pid
[ -f "$PIDFILE" ] || exit 0
PID=$(cat "$PIDFILE")
# master ends its children on SIGTERM.
kill "$PID" 2>/dev/null || { rm -f "$PIDFILE"; exit 0; }
i=0
while kill -0 "$PID" 2>/dev/null; do
	i=$((i + 1))
	if [ $i -ge 100 ]; then
		kill -9 "$PID" 2>/dev/null || true
		break
	fi
	sleep 0.1
done
rm -f "$PIDFILE"
