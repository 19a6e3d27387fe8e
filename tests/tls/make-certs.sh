#!/bin/sh
# make-certs.sh DIR — a throwaway CA (DIR/ca.pem) and a server certificate
# it signed (DIR/cert.pem, DIR/key.pem; CN=localhost, subjectAltName
# DNS:localhost and IP:127.0.0.1) for the test servers.  Does nothing when
# DIR/cert.pem exists.
set -eu
if [ $# -ne 1 ]; then
	echo "usage: $0 DIR" >&2
	exit 2
fi
DIR=$1
[ -f "$DIR/cert.pem" ] && exit 0
openssl req -x509 -newkey rsa:2048 -nodes -days 3650 \
	-subj "/CN=imapsnap test CA" \
	-addext "basicConstraints=critical,CA:TRUE" \
	-addext "keyUsage=critical,keyCertSign,cRLSign" \
	-keyout "$DIR/ca-key.pem" -out "$DIR/ca.pem" 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj "/CN=localhost" \
	-keyout "$DIR/key.pem" -out "$DIR/cert.csr" 2>/dev/null
printf '%s\n' \
	"basicConstraints=CA:FALSE" \
	"keyUsage=digitalSignature,keyEncipherment" \
	"extendedKeyUsage=serverAuth" \
	"subjectAltName=DNS:localhost,IP:127.0.0.1" >"$DIR/cert.ext"
openssl x509 -req -in "$DIR/cert.csr" -CA "$DIR/ca.pem" \
	-CAkey "$DIR/ca-key.pem" -CAcreateserial -days 3650 \
	-extfile "$DIR/cert.ext" -out "$DIR/cert.pem" 2>/dev/null
rm -f "$DIR/cert.csr" "$DIR/ca.srl"
chmod 644 "$DIR/ca.pem" "$DIR/cert.pem"
chmod 600 "$DIR/key.pem" "$DIR/ca-key.pem"
