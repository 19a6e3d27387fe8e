#!/bin/sh
# adduser.sh DIR USER PASSWORD — add a user to the test Cyrus in DIR
# (running or not).  The user's INBOX is created at the first login.
set -eu
if [ $# -ne 3 ]; then
	echo "usage: $0 DIR USER PASSWORD" >&2
	exit 2
fi
case $2 in
"" | *[!a-z0-9_-]*)
	echo "$0: user names here are [a-z0-9_-]+" >&2
	exit 2
	;;
esac
printf '%s' "$3" | saslpasswd2 -f "$1/sasldb2" -p -c "$2"
