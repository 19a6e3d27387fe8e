/*
 * flag_record.c — a folder's flag record in memory (flag_record.h); its
 * file is flag_record_file.c.
 */
#include "flag_record.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct fr_set {
	unsigned flags;
	char *kw;          /* canonical: sorted, space-separated */
	size_t kwlen;
	uint64_t hash;
};

struct fr_run {
	uint32_t first, last, set;
};

struct flag_record {
	uint32_t uidvalidity;
	struct fr_set *sets;
	size_t nsets, asets;
	size_t text;              /* bytes of keywords over all sets */
	uint32_t *slots;          /* hash table: set index + 1, 0 empty */
	size_t nslots;            /* a power of two, or 0 */
	struct fr_run *runs;      /* in UID order, disjoint, coalesced */
	size_t nruns, aruns;
	struct flag_changes staged;
};

struct flag_record *flag_record_new(uint32_t uidvalidity)
{
	struct flag_record *fr = calloc(1, sizeof *fr);

	if (fr)
		fr->uidvalidity = uidvalidity;
	return fr;
}

void flag_record_free(struct flag_record *fr)
{
	if (!fr)
		return;
	for (size_t i = 0; i < fr->nsets; i++)
		free(fr->sets[i].kw);
	free(fr->sets);
	free(fr->slots);
	free(fr->runs);
	flag_changes_free(&fr->staged);
	free(fr);
}

uint32_t flag_record_uidvalidity(const struct flag_record *fr)
{
	return fr->uidvalidity;
}

uint64_t flag_record_count(const struct flag_record *fr)
{
	uint64_t n = 0;

	for (size_t i = 0; i < fr->nruns; i++)
		n += (uint64_t)fr->runs[i].last - fr->runs[i].first + 1;
	return n;
}

/* --- sets ----------------------------------------------------------------- */

static int cmp_word(const void *a, const void *b)
{
	return strcasecmp(*(char *const *)a, *(char *const *)b);
}

/* `keywords` sorted, without repeats (case ignored: the first spelling
 * stays), space-separated, into a new string.  NULL: out of memory. */
static char *canonical(const char *keywords, size_t *len)
{
	size_t n = 0, cap = 1;
	char *copy, *out, *o, **words;

	for (const char *p = keywords; *p; p++)
		cap += *p == ' ';
	copy = strdup(keywords);
	words = malloc(cap * sizeof *words);
	out = malloc(strlen(keywords) + 1);
	if (!copy || !words || !out) {
		free(copy);
		free(words);
		free(out);
		return NULL;
	}
	for (char *p = copy; *p;) {
		char *end = strchr(p, ' ');
		if (end)
			*end = '\0';
		if (*p)
			words[n++] = p;
		if (!end)
			break;
		p = end + 1;
	}
	/* Of words equal but for case, the one given first stays: qsort is
	 * not stable, so it is the one at the lowest address in `copy`. */
	qsort(words, n, sizeof *words, cmp_word);
	o = out;
	for (size_t i = 0; i < n; i++) {
		size_t j = i, wl;
		const char *pick = words[i];
		while (j + 1 < n && !strcasecmp(words[j + 1], words[i]))
			if (words[++j] < pick)
				pick = words[j];
		if (o != out)
			*o++ = ' ';
		wl = strlen(pick);
		memcpy(o, pick, wl);
		o += wl;
		i = j;
	}
	*o = '\0';
	*len = (size_t)(o - out);
	free(copy);
	free(words);
	return out;
}

static uint64_t hash_set(unsigned flags, const char *kw, size_t len)
{
	uint64_t h = 1469598103934665603u;

	for (unsigned i = 0; i < sizeof flags; i++)
		h = (h ^ ((flags >> (8 * i)) & 0xff)) * 1099511628211u;
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)kw[i];
		if (c >= 'A' && c <= 'Z')
			c = (unsigned char)(c - 'A' + 'a');
		h = (h ^ c) * 1099511628211u;
	}
	return h;
}

static int grow_slots(struct flag_record *fr)
{
	size_t n = fr->nslots ? 2 * fr->nslots : 64;
	uint32_t *slots = calloc(n, sizeof *slots);

	if (!slots)
		return -1;
	for (size_t i = 0; i < fr->nsets; i++) {
		size_t k = fr->sets[i].hash & (n - 1);
		while (slots[k])
			k = (k + 1) & (n - 1);
		slots[k] = (uint32_t)i + 1;
	}
	free(fr->slots);
	fr->slots = slots;
	fr->nslots = n;
	return 0;
}

uint32_t flag_record_intern(struct flag_record *fr, unsigned flags,
			    const char *keywords)
{
	size_t len, k;
	char *kw = canonical(keywords ? keywords : "", &len);
	uint64_t h;
	struct fr_set *s;

	if (!kw) {
		errno = ENOMEM;
		return FLAG_RECORD_NONE;
	}
	h = hash_set(flags, kw, len);
	for (k = fr->nslots ? h & (fr->nslots - 1) : 0;
	     fr->nslots && fr->slots[k]; k = (k + 1) & (fr->nslots - 1)) {
		s = &fr->sets[fr->slots[k] - 1];
		if (s->hash == h && s->flags == flags && s->kwlen == len &&
		    !strcasecmp(s->kw, kw)) {
			free(kw);
			return fr->slots[k] - 1;
		}
	}
	if (fr->nsets >= FLAG_RECORD_SETS_MAX ||
	    len > FLAG_RECORD_TEXT_MAX - fr->text) {
		free(kw);
		errno = E2BIG;
		return FLAG_RECORD_NONE;
	}
	if (2 * (fr->nsets + 1) > fr->nslots && grow_slots(fr))
		goto oom;
	if (fr->nsets == fr->asets) {
		size_t a = fr->asets ? 2 * fr->asets : 16;
		if (!(s = realloc(fr->sets, a * sizeof *s)))
			goto oom;
		fr->sets = s;
		fr->asets = a;
	}
	fr->sets[fr->nsets] = (struct fr_set){ flags, kw, len, h };
	for (k = h & (fr->nslots - 1); fr->slots[k];
	     k = (k + 1) & (fr->nslots - 1))
		;
	fr->slots[k] = (uint32_t)fr->nsets + 1;
	fr->text += len;
	return (uint32_t)fr->nsets++;
oom:
	free(kw);
	errno = ENOMEM;
	return FLAG_RECORD_NONE;
}

unsigned flag_record_flags(const struct flag_record *fr, uint32_t id,
			   const char **keywords)
{
	*keywords = fr->sets[id].kw;
	return fr->sets[id].flags;
}

size_t flag_record_sets(const struct flag_record *fr)
{
	return fr->nsets;
}

/* --- runs ----------------------------------------------------------------- */

uint32_t flag_record_get(const struct flag_record *fr, uint32_t uid)
{
	size_t lo = 0, hi = fr->nruns;

	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		const struct fr_run *r = &fr->runs[mid];
		if (uid < r->first)
			hi = mid;
		else if (uid > r->last)
			lo = mid + 1;
		else
			return r->set;
	}
	return FLAG_RECORD_NONE;
}

size_t flag_record_runs(const struct flag_record *fr)
{
	return fr->nruns;
}

void flag_record_run(const struct flag_record *fr, size_t i, uint32_t *first,
		     uint32_t *last, uint32_t *set)
{
	*first = fr->runs[i].first;
	*last = fr->runs[i].last;
	*set = fr->runs[i].set;
}

/* Into a buffer sized for the worst case: never fails. */
static void emit(struct fr_run *out, size_t *n, uint32_t first, uint32_t last,
		 uint32_t set)
{
	struct fr_run *p = *n ? &out[*n - 1] : NULL;

	if (p && p->set == set && p->last != UINT32_MAX && p->last + 1 == first)
		p->last = last;
	else
		out[(*n)++] = (struct fr_run){ first, last, set };
}

int flag_record_apply(struct flag_record *fr, const struct flag_changes *c)
{
	const struct fr_run *in = fr->runs;
	struct fr_run *out;
	size_t cap, n = 0, i = 0;
	uint32_t from = fr->nruns ? in[0].first : 0;

	if (!c->n)
		return 0;
	/* Each change splits at most one run in two, and adds itself. */
	if (c->n > (SIZE_MAX / sizeof *out - fr->nruns - 1) / 2) {
		errno = ENOMEM;
		return -1;
	}
	cap = fr->nruns + 2 * c->n + 1;
	out = malloc(cap * sizeof *out);
	if (!out)
		return -1;
	for (size_t k = 0; k < c->n; k++) {
		uint32_t u = c->v[k].uid;
		while (i < fr->nruns && in[i].last < u) {
			emit(out, &n, from, in[i].last, in[i].set);
			if (++i < fr->nruns)
				from = in[i].first;
		}
		if (i < fr->nruns && from <= u) {
			if (from < u)
				emit(out, &n, from, u - 1, in[i].set);
			if (u == in[i].last) {
				if (++i < fr->nruns)
					from = in[i].first;
			} else {
				from = u + 1;
			}
		}
		emit(out, &n, u, u, c->v[k].set);
	}
	while (i < fr->nruns) {
		emit(out, &n, from, in[i].last, in[i].set);
		if (++i < fr->nruns)
			from = in[i].first;
	}
	free(fr->runs);
	fr->runs = out;
	fr->nruns = n;
	fr->aruns = cap;
	return 0;
}

int flag_record_add_run(struct flag_record *fr, uint32_t first, uint32_t last,
			uint32_t set)
{
	if (fr->nruns == fr->aruns) {
		size_t a = fr->aruns ? 2 * fr->aruns : 64;
		struct fr_run *v = realloc(fr->runs, a * sizeof *v);
		if (!v)
			return -1;
		fr->runs = v;
		fr->aruns = a;
	}
	fr->runs[fr->nruns++] = (struct fr_run){ first, last, set };
	return 0;
}

static int cmp_run(const void *a, const void *b)
{
	uint32_t x = ((const struct fr_run *)a)->first;
	uint32_t y = ((const struct fr_run *)b)->first;

	return x < y ? -1 : x > y;
}

int flag_record_seal(struct flag_record *fr, uint32_t *dup)
{
	size_t n = 0;

	if (!fr->nruns)
		return 0;
	qsort(fr->runs, fr->nruns, sizeof *fr->runs, cmp_run);
	for (size_t i = 0; i < fr->nruns; i++) {
		struct fr_run r = fr->runs[i];
		if (n && r.first <= fr->runs[n - 1].last) {
			*dup = r.first;
			return -1;
		}
		emit(fr->runs, &n, r.first, r.last, r.set);
	}
	fr->nruns = n;
	return 0;
}

/* --- changes and staging -------------------------------------------------- */

int flag_changes_add(struct flag_changes *c, uint32_t uid, uint32_t set)
{
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 256;
		struct flag_change *v = realloc(c->v, cap * sizeof *v);
		if (!v)
			return -1;
		c->v = v;
		c->cap = cap;
	}
	c->v[c->n++] = (struct flag_change){ uid, set };
	return 0;
}

/* A change and where it was in the list: among equal UIDs, the last
 * given wins. */
struct ordered {
	uint32_t uid, set;
	size_t pos;
};

static int cmp_ordered(const void *a, const void *b)
{
	const struct ordered *x = a, *y = b;

	if (x->uid != y->uid)
		return x->uid < y->uid ? -1 : 1;
	return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static int cmp_change(const void *a, const void *b)
{
	uint32_t x = ((const struct flag_change *)a)->uid;
	uint32_t y = ((const struct flag_change *)b)->uid;

	return x < y ? -1 : x > y;
}

void flag_changes_sort(struct flag_changes *c)
{
	struct ordered *o;
	size_t n = 0;
	bool sorted = true;

	for (size_t i = 1; i < c->n && sorted; i++)
		sorted = c->v[i - 1].uid < c->v[i].uid;
	if (sorted)
		return;
	o = malloc(c->n * sizeof *o);
	if (!o) {
		/* Sorting in place keeps the order of equal UIDs unknown:
		 * drop all but one of each rather than guess wrong. */
		qsort(c->v, c->n, sizeof *c->v, cmp_change);
		for (size_t i = 0; i < c->n; i++)
			if (!n || c->v[n - 1].uid != c->v[i].uid)
				c->v[n++] = c->v[i];
		c->n = n;
		return;
	}
	for (size_t i = 0; i < c->n; i++)
		o[i] = (struct ordered){ c->v[i].uid, c->v[i].set, i };
	qsort(o, c->n, sizeof *o, cmp_ordered);
	for (size_t i = 0; i < c->n; i++) {
		if (n && c->v[n - 1].uid == o[i].uid)
			n--; /* a later one for the same UID wins */
		c->v[n++] = (struct flag_change){ o[i].uid, o[i].set };
	}
	c->n = n;
	free(o);
}

void flag_changes_free(struct flag_changes *c)
{
	free(c->v);
	memset(c, 0, sizeof *c);
}

int flag_record_stage(struct flag_record *fr, uint32_t uid, uint32_t id)
{
	return flag_changes_add(&fr->staged, uid, id);
}

long flag_record_commit(struct flag_record *fr, const struct uidset *uids)
{
	struct flag_changes now = { 0 };
	size_t keep = 0;
	long n;

	for (size_t i = 0; i < fr->staged.n; i++)
		if (uidset_contains(uids, fr->staged.v[i].uid) &&
		    flag_changes_add(&now, fr->staged.v[i].uid,
				     fr->staged.v[i].set)) {
			flag_changes_free(&now);
			return -1;
		}
	if (!now.n)
		return 0;
	flag_changes_sort(&now);
	if (flag_record_apply(fr, &now)) {
		flag_changes_free(&now);
		return -1;
	}
	n = (long)now.n;
	flag_changes_free(&now);
	for (size_t i = 0; i < fr->staged.n; i++)
		if (!uidset_contains(uids, fr->staged.v[i].uid))
			fr->staged.v[keep++] = fr->staged.v[i];
	fr->staged.n = keep;
	return n;
}
