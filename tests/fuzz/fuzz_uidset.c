/*
 * fuzz_uidset.c — UID sets (lib/uidset.c) in their IMAP text form
 * ("1:5,7,9:12"), as they arrive in ESEARCH answers and the state file.
 *
 * fuzz-sources: lib/uidset.c
 *
 * Whatever parses must be sorted, disjoint, non-adjacent ranges of UIDs
 * 1..4294967295; formatting it and parsing that again gives the same set;
 * batching it (as the fetch does) visits every UID once, in order.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "uidset.h"

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_uidset: %s\n", what);
		abort();
	}
}

static void well_formed(const struct uidset *s)
{
	for (size_t i = 0; i < s->n; i++) {
		check(s->r[i].first >= 1 && s->r[i].first <= s->r[i].last,
		      "a range that is empty or holds UID 0");
		if (i > 0)
			check((uint64_t)s->r[i - 1].last + 1 < s->r[i].first,
			      "ranges not sorted, disjoint and non-adjacent");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct uidset s = UIDSET_INIT, t = UIDSET_INIT, batch = UIDSET_INIT;
	char *text = NULL;

	if (uidset_parse(&s, (const char *)data, size) != 0) {
		uidset_free(&s);
		return 0;
	}
	well_formed(&s);
	check(uidset_format(&s, &text) == 0, "format failed");
	check(uidset_parse(&t, text, strlen(text)) == 0,
	      "a formatted set does not parse");
	check(s.n == t.n && (s.n == 0 || !memcmp(s.r, t.r, s.n * sizeof *s.r)),
	      "parse(format(s)) != s");
	check(uidset_count(&s) == uidset_count(&t), "counts differ");
	check(uidset_empty(&s) == (s.n == 0), "empty is wrong");

	/* Batches of up to 7 UIDs, as the fetch cuts its commands. */
	{
		uint32_t after = 0, last = 0;
		uint64_t seen = 0;
		long n = 0;
		for (int round = 0; round < 64; round++) {
			n = uidset_next_batch(&s, &after, 7, &batch);
			check(n >= 0, "next_batch failed");
			if (n == 0)
				break;
			well_formed(&batch);
			check(uidset_count(&batch) == (uint64_t)n && n <= 7,
			      "a batch of the wrong size");
			check(batch.r[0].first > last,
			      "batches out of order or overlapping");
			for (size_t i = 0; i < batch.n; i++)
				for (uint64_t u = batch.r[i].first;
				     u <= batch.r[i].last; u++)
					check(uidset_contains(&s, (uint32_t)u),
					      "a batch holds a UID not in the "
					      "set");
			last = uidset_max(&batch);
			check(after == last, "*after is not the last UID taken");
			seen += (uint64_t)n;
		}
		if (n == 0)
			check(seen == uidset_count(&s),
			      "the batches do not cover the set");
	}
	free(text);
	uidset_free(&s);
	uidset_free(&t);
	uidset_free(&batch);
	return 0;
}
