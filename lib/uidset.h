/*
 * uidset.h — sets of IMAP UIDs kept as sorted, disjoint, non-adjacent
 * ranges, with the IMAP sequence-set text form ("1:5,7,9:12").
 *
 * UIDs are 1..4294967295; 0 is never a member.  All memory belongs to the
 * set; uidset_free releases it and leaves an empty, reusable set.
 */
#ifndef IMAPSNAP_UIDSET_H
#define IMAPSNAP_UIDSET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct uid_range {
	uint32_t first, last; /* inclusive, first <= last */
};

struct uidset {
	struct uid_range *r;
	size_t n, alloc;
};

#define UIDSET_INIT { NULL, 0, 0 }

void uidset_free(struct uidset *s);
void uidset_clear(struct uidset *s); /* empty, keeps the memory */

/* Add one UID or a range; merges with neighbours.  0 is ignored, and a
 * range given backwards (first > last) is taken as last:first.  Adding at
 * or past the largest member is O(1) amortized.  Returns 0 or -1 (ENOMEM). */
int uidset_add(struct uidset *s, uint32_t uid);
int uidset_add_range(struct uidset *s, uint32_t first, uint32_t last);
int uidset_add_set(struct uidset *s, const struct uidset *other);
/* Remove a range (first > last is taken as last:first).  Needs memory only
 * to split a range in two.  Returns 0 or -1 (ENOMEM). */
int uidset_remove_range(struct uidset *s, uint32_t first, uint32_t last);

bool uidset_contains(const struct uidset *s, uint32_t uid);
uint64_t uidset_count(const struct uidset *s);
bool uidset_empty(const struct uidset *s);
uint32_t uidset_max(const struct uidset *s); /* 0 when empty */

/* Parse the text form ("1:5,7"; "5:1" is accepted as 1:5; "*" is not),
 * replacing the contents of `s`.  Numbers are RFC 3501 nz-numbers: no
 * sign, no leading zero, at most 4294967295; no spaces anywhere.  The empty
 * string is the empty set.  Returns 0, or -1 with errno EINVAL or ENOMEM
 * (the set is then emptied). */
int uidset_parse(struct uidset *s, const char *text, size_t len);

/* Write the text form into *out (malloc'd; "" for the empty set).
 * Returns 0 or -1 (ENOMEM). */
int uidset_format(const struct uidset *s, char **out);

/* Clear `out` and fill it with the (up to) `max_count` smallest members of
 * `s` that are greater than *after; set *after to the largest one taken.
 * Used to cut a large set into commands of bounded length (500 UIDs format
 * to at most 5.5 KB).  Returns how many were taken (0 at the end), or -1
 * (ENOMEM). */
long uidset_next_batch(const struct uidset *s, uint32_t *after,
		       uint32_t max_count, struct uidset *out);

#endif
