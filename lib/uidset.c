/*
 * uidset.c — sets of UIDs as sorted, disjoint, non-adjacent ranges.
 *
 * The text form is RFC 3501's sequence-set without "*": nz-number or
 * nz-number ":" nz-number, separated by commas.
 *
 * The usual caller adds UIDs in increasing order (a folder's 100k saved
 * messages), so adding at or past the end is a fast path that never moves
 * memory; anything else finds its place by binary search.
 */
#include "uidset.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void uidset_free(struct uidset *s)
{
	free(s->r);
	s->r = NULL;
	s->n = s->alloc = 0;
}

void uidset_clear(struct uidset *s)
{
	s->n = 0;
}

/* Make room for at least `need` ranges. */
static int reserve(struct uidset *s, size_t need)
{
	struct uid_range *r;
	size_t alloc;

	if (need <= s->alloc)
		return 0;
	alloc = s->alloc ? s->alloc : 8;
	while (alloc < need) {
		if (alloc > SIZE_MAX / 2 / sizeof *r) {
			errno = ENOMEM;
			return -1;
		}
		alloc *= 2;
	}
	r = realloc(s->r, alloc * sizeof *r);
	if (!r) {
		errno = ENOMEM;
		return -1;
	}
	s->r = r;
	s->alloc = alloc;
	return 0;
}

/* Index of the first range whose last >= uid (s->n if none). */
static size_t first_ending_at_or_after(const struct uidset *s, uint64_t uid)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->r[mid].last < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Index of the first range whose first > uid (s->n if none). */
static size_t first_starting_after(const struct uidset *s, uint64_t uid)
{
	size_t lo = 0, hi = s->n;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (s->r[mid].first <= uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* Put first <= last and drop 0; returns false when nothing is left. */
static bool normalise(uint32_t *first, uint32_t *last)
{
	if (*first > *last) {
		uint32_t t = *first;
		*first = *last;
		*last = t;
	}
	if (*last == 0)
		return false;
	if (*first == 0)
		*first = 1;
	return true;
}

int uidset_add(struct uidset *s, uint32_t uid)
{
	return uidset_add_range(s, uid, uid);
}

int uidset_add_range(struct uidset *s, uint32_t first, uint32_t last)
{
	size_t i, j;

	if (!normalise(&first, &last))
		return 0;

	/* Fast path: at or past the end (uint64: last + 1 must not wrap). */
	if (s->n == 0 || first > (uint64_t)s->r[s->n - 1].last + 1) {
		if (reserve(s, s->n + 1))
			return -1;
		s->r[s->n].first = first;
		s->r[s->n].last = last;
		s->n++;
		return 0;
	}
	if (first >= s->r[s->n - 1].first) {
		if (last > s->r[s->n - 1].last)
			s->r[s->n - 1].last = last;
		return 0;
	}

	/* Ranges i..j-1 overlap [first, last] or touch it. */
	i = first_ending_at_or_after(s, (uint64_t)first - 1);
	j = first_starting_after(s, (uint64_t)last + 1);
	if (i == j) {
		if (reserve(s, s->n + 1))
			return -1;
		memmove(&s->r[i + 1], &s->r[i], (s->n - i) * sizeof *s->r);
		s->r[i].first = first;
		s->r[i].last = last;
		s->n++;
		return 0;
	}
	if (first < s->r[i].first)
		s->r[i].first = first;
	s->r[i].last = last > s->r[j - 1].last ? last : s->r[j - 1].last;
	memmove(&s->r[i + 1], &s->r[j], (s->n - j) * sizeof *s->r);
	s->n -= j - i - 1;
	return 0;
}

int uidset_add_set(struct uidset *s, const struct uidset *other)
{
	struct uidset out = UIDSET_INIT;
	size_t a = 0, b = 0;

	if (s == other || other->n == 0)
		return 0;
	/* Appending past the end keeps the fast path. */
	if (s->n == 0 ||
	    other->r[0].first > (uint64_t)s->r[s->n - 1].last + 1) {
		if (reserve(s, s->n + other->n))
			return -1;
		memcpy(&s->r[s->n], other->r, other->n * sizeof *s->r);
		s->n += other->n;
		return 0;
	}
	/* Otherwise merge both sorted lists into a new array: linear, where
	 * adding range by range could move memory for each one. */
	if (reserve(&out, s->n + other->n))
		return -1;
	while (a < s->n || b < other->n) {
		const struct uid_range *next;
		if (b == other->n ||
		    (a < s->n && s->r[a].first <= other->r[b].first))
			next = &s->r[a++];
		else
			next = &other->r[b++];
		/* Cannot fail: `out` has room for every range. */
		uidset_add_range(&out, next->first, next->last);
	}
	free(s->r);
	*s = out;
	return 0;
}

int uidset_remove_range(struct uidset *s, uint32_t first, uint32_t last)
{
	struct uid_range keep[2];
	size_t i, j, nkeep = 0;

	if (!normalise(&first, &last))
		return 0;
	i = first_ending_at_or_after(s, first);
	j = first_starting_after(s, last);
	if (i >= j)
		return 0;
	/* What survives of the ranges i..j-1 on either side of the hole. */
	if (s->r[i].first < first)
		keep[nkeep++] = (struct uid_range){ s->r[i].first, first - 1 };
	if (s->r[j - 1].last > last)
		keep[nkeep++] =
			(struct uid_range){ last + 1, s->r[j - 1].last };
	if (nkeep > j - i) {
		/* Splitting one range in two. */
		if (reserve(s, s->n + 1))
			return -1;
	}
	memmove(&s->r[i + nkeep], &s->r[j], (s->n - j) * sizeof *s->r);
	memcpy(&s->r[i], keep, nkeep * sizeof *keep);
	s->n = s->n - (j - i) + nkeep;
	return 0;
}

bool uidset_contains(const struct uidset *s, uint32_t uid)
{
	size_t i = first_ending_at_or_after(s, uid);

	return uid != 0 && i < s->n && s->r[i].first <= uid;
}

uint64_t uidset_count(const struct uidset *s)
{
	uint64_t total = 0;

	for (size_t i = 0; i < s->n; i++)
		total += (uint64_t)s->r[i].last - s->r[i].first + 1;
	return total;
}

bool uidset_empty(const struct uidset *s)
{
	return s->n == 0;
}

uint32_t uidset_max(const struct uidset *s)
{
	return s->n ? s->r[s->n - 1].last : 0;
}

/* An nz-number (no sign, no leading zero, at most 4294967295) at *p; moves
 * *p past it.  Returns 0 when there is none. */
static uint32_t parse_nz(const char **p, const char *end)
{
	uint64_t v = 0;
	const char *q = *p;

	if (q == end || *q < '1' || *q > '9')
		return 0;
	while (q < end && *q >= '0' && *q <= '9') {
		v = v * 10 + (uint64_t)(*q - '0');
		if (v > UINT32_MAX)
			return 0;
		q++;
	}
	*p = q;
	return (uint32_t)v;
}

int uidset_parse(struct uidset *s, const char *text, size_t len)
{
	const char *p = text, *end = text + len;

	uidset_clear(s);
	if (len == 0)
		return 0;
	for (;;) {
		uint32_t first = parse_nz(&p, end), last;
		if (!first)
			goto invalid;
		last = first;
		if (p < end && *p == ':') {
			p++;
			last = parse_nz(&p, end);
			if (!last)
				goto invalid;
		}
		if (uidset_add_range(s, first, last)) {
			uidset_clear(s);
			return -1;
		}
		if (p == end)
			return 0;
		if (*p++ != ',')
			goto invalid;
	}
invalid:
	uidset_clear(s);
	errno = EINVAL;
	return -1;
}

/* Longest text of one range: "4294967295:4294967295,". */
#define RANGE_TEXT_MAX 22

int uidset_format(const struct uidset *s, char **out)
{
	char *buf, *p;

	if (s->n > (SIZE_MAX - 1) / RANGE_TEXT_MAX) {
		errno = ENOMEM;
		return -1;
	}
	buf = malloc(s->n * RANGE_TEXT_MAX + 1);
	if (!buf) {
		errno = ENOMEM;
		return -1;
	}
	p = buf;
	*p = '\0';
	for (size_t i = 0; i < s->n; i++) {
		const char *sep = i ? "," : "";
		if (s->r[i].first == s->r[i].last)
			p += sprintf(p, "%s%lu", sep,
				     (unsigned long)s->r[i].first);
		else
			p += sprintf(p, "%s%lu:%lu", sep,
				     (unsigned long)s->r[i].first,
				     (unsigned long)s->r[i].last);
	}
	*out = buf;
	return 0;
}

long uidset_next_batch(const struct uidset *s, uint32_t *after,
		       uint32_t max_count, struct uidset *out)
{
	uint64_t want = max_count, taken = 0;
	size_t i;

	uidset_clear(out);
	for (i = first_ending_at_or_after(s, (uint64_t)*after + 1);
	     i < s->n && taken < want; i++) {
		uint32_t first = s->r[i].first > *after ? s->r[i].first
							 : *after + 1;
		uint64_t avail = (uint64_t)s->r[i].last - first + 1;
		uint32_t last = avail > want - taken
					? (uint32_t)(first + (want - taken) - 1)
					: s->r[i].last;
		if (uidset_add_range(out, first, last))
			return -1;
		taken += (uint64_t)last - first + 1;
		*after = last;
	}
	return (long)taken;
}
