#!/bin/sh
# stop.sh DIR — stop the Courier that start.sh DIR started (its whole
# session: authdaemond, couriertcpd and the sessions) and wait for
# it to go away.  Leaves DIR in place.
set -eu
if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
PIDFILE=$1/courier.pid
[ -f "$PIDFILE" ] || exit 0
PID=$(cat "$PIDFILE")
# couriertcpd puts itself in a process group of its own, but the
# session is the one start.sh made.
pkill -TERM -s "$PID" 2>/dev/null || { rm -f "$PIDFILE"; exit 0; }
i=0
while pgrep -s "$PID" >/dev/null 2>&1; do
	i=$((i + 1))
	if [ $i -ge 100 ]; then
		pkill -KILL -s "$PID" 2>/dev/null || true
		break
	fi
	sleep 0.1
done
rm -f "$PIDFILE"
