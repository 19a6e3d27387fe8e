#!/bin/sh
# adduser.sh DIR USER PASSWORD — add a user to the test Dovecot in DIR
# (running or not): writes DIR/users/USER, read at the user's first login.
# The user's mail lives in DIR/mail/USER/Maildir; files written there before
# the first login are picked up by Dovecot.
set -eu
if [ $# -ne 3 ]; then
	echo "usage: $0 DIR USER PASSWORD" >&2
	exit 2
fi
case $2 in
"" | *[!A-Za-z0-9._-]* | .*)
	echo "$0: user names here are [A-Za-z0-9._-]+, not starting with '.'" >&2
	exit 2
	;;
esac
case $3 in
*:* | *"
"*)
	echo "$0: the password may not contain ':' or a newline" >&2
	exit 2
	;;
esac
mkdir -p "$1/users"
if [ -e "$1/users/$2" ]; then
	echo "$0: user $2 exists" >&2
	exit 1
fi
printf '%s:{PLAIN}%s::::::\n' "$2" "$3" >"$1/users/$2.tmp"
chmod 644 "$1/users/$2.tmp"
mv "$1/users/$2.tmp" "$1/users/$2"
