#!/bin/sh
# adduser.sh DIR USER PASSWORD — add a user to the test Courier in DIR
# (running or not), with an empty Maildir in DIR/mail/USER/Maildir.
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
DIR=$(cd "$1" && pwd)
home=$DIR/mail/$2
su -s /bin/sh nobody -c "mkdir -p '$home' && maildirmake.courier '$home/Maildir'"
hash=$(printf '%s' "$3" | openssl passwd -6 -stdin)
printf '%s\tuid=65534|gid=65534|home=%s|mail=%s/Maildir|imappw=%s\n' \
	"$2" "$home" "$home" "$hash" >>"$DIR/etc/userdb"
# makeuserdb writes /etc/courier/userdb.dat: do it where that is DIR/etc.
unshare -m --propagation private sh -c \
	'mount --bind "$1/etc" /etc/courier && makeuserdb' sh "$DIR"
