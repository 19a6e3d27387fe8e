/*
 * test_msg_norm.c — the canonical form that server rewrites on APPEND do
 * not change (lib/msg_norm.c): each rewrite seen on a real server gives
 * the same digest as the message sent, cut into pieces at every point;
 * a real change does not.
 */
#include <criterion/criterion.h>
#include <string.h>

#include "msg_norm.h"

static void digest(const char *s, size_t cut, unsigned char sha[32])
{
	struct msg_norm m;
	size_t len = strlen(s);

	cr_assert(msg_norm_init(&m));
	if (cut > len)
		cut = len;
	msg_norm_update(&m, s, cut);
	msg_norm_update(&m, s + cut, len - cut);
	msg_norm_final(&m, sha);
}

static void same(const char *sent, const char *stored)
{
	unsigned char a[32], b[32];

	digest(sent, 0, a);
	for (size_t cut = 0; cut <= strlen(stored); cut++) {
		digest(stored, cut, b);
		cr_assert(!memcmp(a, b, 32), "\"%s\" vs \"%s\" cut at %zu",
			  sent, stored, cut);
	}
}

static void differ(const char *x, const char *y)
{
	unsigned char a[32], b[32];

	digest(x, 0, a);
	digest(y, 0, b);
	cr_assert(memcmp(a, b, 32), "\"%s\" vs \"%s\"", x, y);
}

#define SENT "Subject: caf\xc3\xa9\r\nFrom: a@b\r\n\r\nbody caf\xc3\xa9\r\nend"

Test(msg_norm, server_rewrites_are_recognised)
{
	/* Courier: a final CRLF. */
	same(SENT, SENT "\r\n");
	/* Stock Cyrus: 8-bit header bytes as X, the body's kept. */
	same(SENT, "Subject: cafXX\r\nFrom: a@b\r\n\r\nbody caf\xc3\xa9\r\nend");
	/* Dovecot and Courier: bare LF as CRLF. */
	same("Subject: x\nFrom: a@b\n\nline\nline\n",
	     "Subject: x\r\nFrom: a@b\r\n\r\nline\r\nline\r\n");
	/* All of them at once. */
	same("Subject: \xc3\xa9\n\nb\xc3\xa9", "Subject: XX\r\n\r\nb\xc3\xa9\r\n");
}

Test(msg_norm, changes_are_not)
{
	differ(SENT, "Subject: cafXX\r\nFrom: a@b\r\n\r\nbody cafXX\r\nend");
	differ("a\r\n\r\nb\r\n", "a\r\n\r\nc\r\n");
	differ("a\r\n\r\nb\r\n", "a\r\n\r\nb\r\n\r\n");
	/* A header that ends only later is still the header. */
	differ("a: \xc3\xa9\r\nb\r\n\r\n", "a: \xc3\xa9\r\n\r\nb\r\n");
}

Test(msg_norm, size_bounds)
{
	cr_assert(msg_norm_size_fits(100, 100));
	cr_assert(msg_norm_size_fits(100, 102));
	cr_assert(msg_norm_size_fits(1600, 1702));
	cr_assert(!msg_norm_size_fits(1600, 1703));
	cr_assert(!msg_norm_size_fits(100, 99));
}
