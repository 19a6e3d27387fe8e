/*
 * fuzz_throttle.c — the recognition of throttling answers
 * (lib/imap/throttle.c) on any response line a server may send.
 *
 * fuzz-sources: lib/imap/throttle.c
 *
 * Checked beyond "no crash, no leak, no undefined behaviour": a verdict is
 * one of the three kinds; a retry waits from 0 to the cap; NONE and STOP
 * carry no wait; anything but NO, BAD and BYE is never throttling; and
 * the verdict does not depend on bytes after the line (the parser must not
 * read past `len`).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/throttle.h"

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_throttle: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* An exact-size copy: ASan catches any read past the end. */
	char *line = malloc(size ? size : 1);
	struct imap_throttle t;
	const char *sp;

	if (!line)
		return 0;
	memcpy(line, data, size);
	t = imap_throttle_parse_line(line, size);
	check(t.kind == IMAP_THROTTLE_NONE || t.kind == IMAP_THROTTLE_RETRY ||
		      t.kind == IMAP_THROTTLE_STOP,
	      "an unknown kind");
	check(t.why != NULL, "no reason");
	if (t.kind == IMAP_THROTTLE_RETRY)
		check(t.wait_ms >= 0 && t.wait_ms <= IMAP_THROTTLE_WAIT_MAX_MS,
		      "a wait out of bounds");
	else
		check(t.wait_ms == 0, "a wait without a retry");
	if (t.kind != IMAP_THROTTLE_NONE) {
		sp = memchr(line, ' ', size);
		check(sp != NULL, "throttling without a condition");
		check(!strncasecmp(sp + 1, "NO ", 3) ||
			      !strncasecmp(sp + 1, "BAD ", 4) ||
			      !strncasecmp(sp + 1, "BYE ", 4),
		      "throttling on a condition other than NO, BAD, BYE");
	}
	free(line);
	return 0;
}
