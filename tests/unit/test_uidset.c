/* Unit tests for lib/uidset.c. */
#include <criterion/criterion.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "uidset.h"

/* The set's text form, for compact assertions. */
static char *fmt(const struct uidset *s)
{
	char *out = NULL;
	cr_assert_eq(uidset_format(s, &out), 0);
	return out;
}

static void expect_text(const struct uidset *s, const char *want)
{
	char *got = fmt(s);
	cr_expect_str_eq(got, want);
	free(got);
}

/* The representation invariant: sorted, disjoint, non-adjacent, no 0. */
static void check_invariant(const struct uidset *s)
{
	for (size_t i = 0; i < s->n; i++) {
		cr_assert_geq(s->r[i].first, 1);
		cr_assert_leq(s->r[i].first, s->r[i].last);
		if (i)
			cr_assert_gt((uint64_t)s->r[i].first,
				     (uint64_t)s->r[i - 1].last + 1,
				     "ranges %zu and %zu touch", i - 1, i);
	}
}

static void parse_ok(struct uidset *s, const char *text)
{
	cr_assert_eq(uidset_parse(s, text, strlen(text)), 0, "parse \"%s\"",
		     text);
	check_invariant(s);
}

Test(uidset, empty_set)
{
	struct uidset s = UIDSET_INIT;

	cr_expect(uidset_empty(&s));
	cr_expect_eq(uidset_count(&s), 0);
	cr_expect_eq(uidset_max(&s), 0);
	cr_expect_not(uidset_contains(&s, 1));
	expect_text(&s, "");
	uidset_free(&s);
}

Test(uidset, add_merges_adjacent_and_overlapping)
{
	struct uidset s = UIDSET_INIT;

	cr_assert_eq(uidset_add(&s, 5), 0);
	cr_assert_eq(uidset_add(&s, 7), 0);
	expect_text(&s, "5,7");
	cr_assert_eq(uidset_add(&s, 6), 0); /* bridges the two */
	expect_text(&s, "5:7");
	cr_expect_eq(s.n, 1);
	cr_assert_eq(uidset_add(&s, 4), 0); /* adjacent below */
	cr_assert_eq(uidset_add(&s, 8), 0); /* adjacent above */
	expect_text(&s, "4:8");
	cr_assert_eq(uidset_add_range(&s, 20, 30), 0);
	cr_assert_eq(uidset_add_range(&s, 40, 50), 0);
	cr_assert_eq(uidset_add_range(&s, 1, 2), 0);
	expect_text(&s, "1:2,4:8,20:30,40:50");
	cr_assert_eq(uidset_add_range(&s, 3, 45), 0); /* swallows three */
	expect_text(&s, "1:50");
	cr_expect_eq(uidset_count(&s), 50);
	check_invariant(&s);
	uidset_free(&s);
}

Test(uidset, add_ignores_zero_and_swaps_backwards_ranges)
{
	struct uidset s = UIDSET_INIT;

	cr_assert_eq(uidset_add(&s, 0), 0);
	cr_expect(uidset_empty(&s));
	cr_assert_eq(uidset_add_range(&s, 0, 3), 0);
	expect_text(&s, "1:3");
	cr_assert_eq(uidset_add_range(&s, 9, 7), 0);
	expect_text(&s, "1:3,7:9");
	cr_expect_not(uidset_contains(&s, 0));
	uidset_free(&s);
}

Test(uidset, extremes)
{
	struct uidset s = UIDSET_INIT;

	cr_assert_eq(uidset_add(&s, UINT32_MAX), 0);
	cr_assert_eq(uidset_add(&s, UINT32_MAX - 1), 0);
	cr_assert_eq(uidset_add(&s, 1), 0);
	expect_text(&s, "1,4294967294:4294967295");
	cr_expect_eq(uidset_max(&s), UINT32_MAX);
	cr_assert_eq(uidset_add_range(&s, 1, UINT32_MAX), 0);
	cr_expect_eq(uidset_count(&s), (uint64_t)UINT32_MAX);
	cr_expect_eq(s.n, 1);
	uidset_free(&s);
}

Test(uidset, increasing_appends_stay_cheap_and_correct)
{
	struct uidset s = UIDSET_INIT;

	/* Every third UID missing: 66 667 ranges, built by appends only. */
	for (uint32_t uid = 1; uid <= 200000; uid++)
		if (uid % 3)
			cr_assert_eq(uidset_add(&s, uid), 0);
	cr_expect_eq(s.n, 66667);
	cr_expect_eq(uidset_count(&s), 200000 - 66666);
	cr_expect(uidset_contains(&s, 199999));
	cr_expect_not(uidset_contains(&s, 199998));
	check_invariant(&s);
	uidset_free(&s);
	cr_expect_null(s.r);
	cr_expect_eq(s.n, 0);
}

Test(uidset, remove_range_splits_trims_and_drops)
{
	struct uidset s = UIDSET_INIT;

	parse_ok(&s, "1:10,20:30,40:50");
	cr_assert_eq(uidset_remove_range(&s, 5, 6), 0); /* split */
	expect_text(&s, "1:4,7:10,20:30,40:50");
	cr_assert_eq(uidset_remove_range(&s, 9, 25), 0); /* trim two */
	expect_text(&s, "1:4,7:8,26:30,40:50");
	cr_assert_eq(uidset_remove_range(&s, 26, 30), 0); /* drop one */
	expect_text(&s, "1:4,7:8,40:50");
	cr_assert_eq(uidset_remove_range(&s, 11, 39), 0); /* in a gap */
	expect_text(&s, "1:4,7:8,40:50");
	cr_assert_eq(uidset_remove_range(&s, 50, 40), 0); /* backwards */
	expect_text(&s, "1:4,7:8");
	cr_assert_eq(uidset_remove_range(&s, 1, 1), 0);
	expect_text(&s, "2:4,7:8");
	cr_assert_eq(uidset_remove_range(&s, 0, UINT32_MAX), 0);
	cr_expect(uidset_empty(&s));
	check_invariant(&s);
	uidset_free(&s);
}

Test(uidset, add_set_merges)
{
	struct uidset a = UIDSET_INIT, b = UIDSET_INIT;

	parse_ok(&a, "1:3,10,20:25");
	parse_ok(&b, "4:9,11,30");
	cr_assert_eq(uidset_add_set(&a, &b), 0);
	expect_text(&a, "1:11,20:25,30");
	check_invariant(&a);
	expect_text(&b, "4:9,11,30"); /* untouched */

	parse_ok(&b, "31:40,50"); /* the append path */
	cr_assert_eq(uidset_add_set(&a, &b), 0);
	expect_text(&a, "1:11,20:25,30:40,50");

	cr_assert_eq(uidset_add_set(&a, &a), 0); /* itself: no change */
	expect_text(&a, "1:11,20:25,30:40,50");
	uidset_free(&a);
	uidset_free(&b);
}

Test(uidset, parse_format_round_trip)
{
	static const char *const texts[] = {
		"1", "1:5", "1:5,7", "1:5,7,9:12", "3,5,7,9",
		"4294967295", "1:4294967295", "2,4294967294:4294967295",
	};
	struct uidset s = UIDSET_INIT;

	for (size_t i = 0; i < sizeof texts / sizeof *texts; i++) {
		parse_ok(&s, texts[i]);
		expect_text(&s, texts[i]);
	}
	uidset_free(&s);
}

Test(uidset, parse_normalises)
{
	struct uidset s = UIDSET_INIT;

	parse_ok(&s, "5:1");
	expect_text(&s, "1:5");
	parse_ok(&s, "9,1:3,4,8,2"); /* unordered, overlapping, adjacent */
	expect_text(&s, "1:4,8:9");
	parse_ok(&s, "");
	cr_expect(uidset_empty(&s));
	uidset_free(&s);
}

Test(uidset, parse_replaces_previous_contents)
{
	struct uidset s = UIDSET_INIT;

	parse_ok(&s, "1:100");
	parse_ok(&s, "200");
	expect_text(&s, "200");
	uidset_free(&s);
}

Test(uidset, parse_rejects_invalid_text)
{
	static const char *const bad[] = {
		"0", "a", "1:", ":1", "1,,2", ",1", "1,", "4294967296",
		"1:4294967296", "99999999999999999999", "01", "1:0", "*",
		"1:*", " 1", "1 ", "1;2", "-1", "+1", "1::2", "1:2:3",
	};
	struct uidset s = UIDSET_INIT;

	for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
		parse_ok(&s, "7:9"); /* must be emptied on failure */
		errno = 0;
		cr_expect_eq(uidset_parse(&s, bad[i], strlen(bad[i])), -1,
			     "\"%s\" accepted", bad[i]);
		cr_expect_eq(errno, EINVAL, "\"%s\": errno %d", bad[i], errno);
		cr_expect(uidset_empty(&s), "\"%s\" left members", bad[i]);
	}
	uidset_free(&s);
}

Test(uidset, parse_respects_length)
{
	struct uidset s = UIDSET_INIT;

	/* Only the first three bytes count; the rest would be invalid. */
	cr_assert_eq(uidset_parse(&s, "1:5garbage", 3), 0);
	expect_text(&s, "1:5");
	/* An embedded NUL inside the length is not a terminator. */
	cr_expect_eq(uidset_parse(&s, "1\0" "2", 3), -1);
	uidset_free(&s);
}

Test(uidset, next_batch_cuts_in_order)
{
	struct uidset s = UIDSET_INIT, out = UIDSET_INIT;
	uint32_t after = 0;

	parse_ok(&s, "1:3,10:14,20");
	cr_assert_eq(uidset_next_batch(&s, &after, 4, &out), 4);
	expect_text(&out, "1:3,10");
	cr_expect_eq(after, 10);
	cr_assert_eq(uidset_next_batch(&s, &after, 4, &out), 4);
	expect_text(&out, "11:14");
	cr_expect_eq(after, 14);
	cr_assert_eq(uidset_next_batch(&s, &after, 4, &out), 1);
	expect_text(&out, "20");
	cr_expect_eq(after, 20);
	cr_assert_eq(uidset_next_batch(&s, &after, 4, &out), 0);
	cr_expect(uidset_empty(&out));
	cr_expect_eq(after, 20);
	uidset_free(&s);
	uidset_free(&out);
}

Test(uidset, next_batch_starts_mid_range_and_covers_everything)
{
	struct uidset s = UIDSET_INIT, out = UIDSET_INIT, all = UIDSET_INIT;
	uint32_t after = 5;
	long got;
	uint64_t total = 0;

	parse_ok(&s, "1:1000,2000:2999,4294967290:4294967295");
	while ((got = uidset_next_batch(&s, &after, 333, &out)) > 0) {
		cr_assert_leq(got, 333);
		cr_assert_eq(uidset_count(&out), (uint64_t)got);
		cr_assert_eq(uidset_max(&out), after);
		cr_assert_eq(uidset_add_set(&all, &out), 0);
		total += (uint64_t)got;
	}
	cr_assert_eq(got, 0);
	cr_expect_eq(total, uidset_count(&s) - 5);
	expect_text(&all, "6:1000,2000:2999,4294967290:4294967295");
	cr_expect_eq(after, UINT32_MAX);
	uidset_free(&s);
	uidset_free(&out);
	uidset_free(&all);
}

Test(uidset, next_batch_of_500_fits_in_a_command_line)
{
	struct uidset s = UIDSET_INIT, out = UIDSET_INIT;
	uint32_t after = 0;
	char *text;

	/* Worst case for the text: isolated ten-digit UIDs. */
	for (uint32_t i = 0; i < 1000; i++)
		cr_assert_eq(uidset_add(&s, 4000000000u + 2 * i), 0);
	cr_assert_eq(uidset_next_batch(&s, &after, 500, &out), 500);
	text = fmt(&out);
	cr_expect_leq(strlen(text), 5500);
	free(text);
	uidset_free(&s);
	uidset_free(&out);
}

/* Compare with a plain bitmap under random operations in a small
 * universe, where every edge case (touching, splitting, bounds) occurs. */
#define UNIVERSE 200
Test(uidset, matches_a_bitmap_model)
{
	struct uidset s = UIDSET_INIT, parsed = UIDSET_INIT;
	bool model[UNIVERSE + 2] = { false };
	unsigned seed = 12345;

	for (int step = 0; step < 20000; step++) {
		uint32_t a = (uint32_t)(rand_r(&seed) % (UNIVERSE + 1));
		uint32_t b = (uint32_t)(rand_r(&seed) % (UNIVERSE + 1));
		bool add = rand_r(&seed) % 3 != 0;
		uint64_t count = 0;
		uint32_t lo, hi;

		if (rand_r(&seed) % 2)
			b = a; /* single UIDs often */
		lo = a < b ? a : b;
		hi = a < b ? b : a;
		/* Possibly backwards, possibly touching 0. */
		if (add)
			cr_assert_eq(uidset_add_range(&s, a, b), 0);
		else
			cr_assert_eq(uidset_remove_range(&s, a, b), 0);
		for (uint32_t u = lo ? lo : 1; u <= hi; u++)
			model[u] = add;
		check_invariant(&s);
		for (uint32_t u = 1; u <= UNIVERSE; u++) {
			cr_assert_eq(uidset_contains(&s, u), model[u],
				     "step %d uid %u", step, u);
			count += model[u];
		}
		cr_assert_eq(uidset_count(&s), count);
		if (step % 100 == 0) {
			char *text = fmt(&s);
			parse_ok(&parsed, text);
			cr_assert_eq(parsed.n, s.n);
			if (s.n)
				cr_assert_eq(memcmp(parsed.r, s.r,
						    s.n * sizeof *s.r), 0);
			free(text);
		}
	}
	uidset_free(&s);
	uidset_free(&parsed);
}

Test(uidset, clear_keeps_memory_free_releases_it)
{
	struct uidset s = UIDSET_INIT;

	parse_ok(&s, "1,3,5");
	uidset_clear(&s);
	cr_expect(uidset_empty(&s));
	cr_expect_not_null(s.r);
	cr_assert_eq(uidset_add(&s, 9), 0);
	expect_text(&s, "9");
	uidset_free(&s);
	cr_expect_null(s.r);
	cr_expect_eq(s.alloc, 0);
}
