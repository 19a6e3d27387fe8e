/*
 * gmail_index.c — see gmail_index.h.  An open-addressing hash set of
 * 64-bit ids (0 is no id: Gmail's are never 0).
 */
#include "gmail_index.h"

#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "manifest_read.h"

struct gmail_index {
	pthread_mutex_t lock;
	uint64_t *slot;
	size_t cap, n;  /* cap a power of two, n < cap / 2 */
	bool loaded;
	/* While reading: ids of message lines not yet confirmed by a commit
	 * line of the same run file. */
	uint64_t *pending;
	size_t npending, pending_cap;
	char file[256];
};

struct gmail_index *gmail_index_new(void)
{
	struct gmail_index *gi = calloc(1, sizeof *gi);

	if (gi)
		pthread_mutex_init(&gi->lock, NULL);
	return gi;
}

void gmail_index_free(struct gmail_index *gi)
{
	if (!gi)
		return;
	pthread_mutex_destroy(&gi->lock);
	free(gi->slot);
	free(gi->pending);
	free(gi);
}

static size_t hash(uint64_t v, size_t cap)
{
	v ^= v >> 33;
	v *= 0xff51afd7ed558ccdULL;
	v ^= v >> 33;
	return (size_t)v & (cap - 1);
}

static int grow(struct gmail_index *gi)
{
	size_t cap = gi->cap ? gi->cap * 2 : 1024;
	uint64_t *s = calloc(cap, sizeof *s);

	if (!s)
		return -1;
	for (size_t i = 0; i < gi->cap; i++) {
		uint64_t v = gi->slot[i];
		size_t h;
		if (!v)
			continue;
		for (h = hash(v, cap); s[h]; h = (h + 1) & (cap - 1))
			;
		s[h] = v;
	}
	free(gi->slot);
	gi->slot = s;
	gi->cap = cap;
	return 0;
}

/* 1 added, 0 was there, -1 out of memory.  Called with the lock held. */
static int add(struct gmail_index *gi, uint64_t v)
{
	size_t h;

	if (!v)
		return 0;
	if ((gi->n + 1) * 2 > gi->cap && grow(gi))
		return -1;
	for (h = hash(v, gi->cap); gi->slot[h]; h = (h + 1) & (gi->cap - 1))
		if (gi->slot[h] == v)
			return 0;
	gi->slot[h] = v;
	gi->n++;
	return 1;
}

static uint64_t msgid_of(json_t *o)
{
	const char *s = json_string_value(json_object_get(o, "gm_msgid"));
	char *end;
	unsigned long long v;

	if (!s || !*s || strspn(s, "0123456789") != strlen(s))
		return 0;
	v = strtoull(s, &end, 10);
	return (uint64_t)v;
}

/* A line of run file `file`: a new file forgets what the last one left
 * unconfirmed (it was never durable). */
static void line_of(struct gmail_index *gi, const char *file)
{
	if (strncmp(gi->file, file, sizeof gi->file - 1)) {
		gi->npending = 0;
		snprintf(gi->file, sizeof gi->file, "%s", file);
	}
}

static enum isnap_status pend(struct gmail_index *gi, uint64_t v,
			      struct isnap_error *err)
{
	if (!v)
		return ISNAP_OK;
	if (gi->npending == gi->pending_cap) {
		size_t cap = gi->pending_cap ? gi->pending_cap * 2 : 256;
		uint64_t *p = realloc(gi->pending, cap * sizeof *p);
		if (!p)
			return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
		gi->pending = p;
		gi->pending_cap = cap;
	}
	gi->pending[gi->npending++] = v;
	return ISNAP_OK;
}

static enum isnap_status confirm(struct gmail_index *gi,
				 struct isnap_error *err)
{
	for (size_t i = 0; i < gi->npending; i++)
		if (add(gi, gi->pending[i]) < 0)
			return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	gi->npending = 0;
	return ISNAP_OK;
}

static enum isnap_status on_line(void *ctx, const char *file,
				 unsigned long line_no, json_t *o,
				 const char *why, struct isnap_error *err)
{
	struct gmail_index *gi = ctx;
	const char *type;

	(void)line_no;
	(void)why;
	line_of(gi, file);
	if (!o || !(type = json_string_value(json_object_get(o, "type"))))
		return ISNAP_OK;
	if (!strcmp(type, "message"))
		return pend(gi, msgid_of(o), err);
	if (!strcmp(type, "commit"))
		return confirm(gi, err);
	if (!strcmp(type, "commit_failed"))
		gi->npending = 0; /* those lines' copies are not durable */
	return ISNAP_OK;
}

/* Whether text[0..len) starts with `head`. */
static bool starts(const char *text, size_t len, const char *head)
{
	size_t n = strlen(head);

	return len >= n && !memcmp(text, head, n);
}

/*
 * The same from the text, without parsing: at 100,000 messages the
 * manifests are over 40 MB, and parsing every line took most of a
 * second.  imapsnap writes each line compact with "type" first, so the
 * type is the line's start; a message's "gm_msgid" is a string of digits
 * found by its key (a quote inside a JSON string is always escaped, so
 * the key's text cannot occur inside a value).  A line not written that
 * way goes to the parser (on_line) as before.
 */
static enum isnap_status on_raw(void *ctx, const char *file, const char *text,
				size_t len, bool *taken,
				struct isnap_error *err)
{
	static const char key[] = "\"gm_msgid\":\"";
	struct gmail_index *gi = ctx;
	const char *p, *end = text + len;
	uint64_t v = 0;

	if (!starts(text, len, "{\"type\":\"") || text[len - 1] != '}')
		return ISNAP_OK;
	*taken = true;
	line_of(gi, file);
	if (starts(text, len, "{\"type\":\"commit\",") ||
	    starts(text, len, "{\"type\":\"commit\"}"))
		return confirm(gi, err);
	if (starts(text, len, "{\"type\":\"commit_failed\"")) {
		gi->npending = 0;
		return ISNAP_OK;
	}
	if (!starts(text, len, "{\"type\":\"message\","))
		return ISNAP_OK; /* no other line says what is saved */
	if (!(p = memmem(text, len, key, sizeof key - 1)))
		return ISNAP_OK;
	for (p += sizeof key - 1; p < end && *p >= '0' && *p <= '9'; p++) {
		if (v > (UINT64_MAX - (uint64_t)(*p - '0')) / 10)
			return ISNAP_OK; /* past 64 bits: no id of Gmail */
		v = v * 10 + (uint64_t)(*p - '0');
	}
	if (p == end || *p != '"')
		return ISNAP_OK;
	return pend(gi, v, err);
}

enum isnap_status gmail_index_load(struct gmail_index *gi, const char *dest,
				   struct isnap_error *err)
{
	struct manifest_read_cb cb = { .ctx = gi, .line = on_line,
				       .raw = on_raw };
	enum isnap_status st = ISNAP_OK;
	struct isnap_error why = { 0 };

	pthread_mutex_lock(&gi->lock);
	if (!gi->loaded) {
		gi->file[0] = '\0';
		st = manifest_read_all(dest, &cb, &why);
		/* No backup there yet (a first run): nothing is held. */
		if (st == ISNAP_ELOCAL)
			st = ISNAP_OK;
		else if (st && err)
			*err = why;
		gi->loaded = !st;
		free(gi->pending);
		gi->pending = NULL;
		gi->npending = gi->pending_cap = 0;
	}
	pthread_mutex_unlock(&gi->lock);
	return st;
}

bool gmail_index_claim(struct gmail_index *gi, uint64_t msgid)
{
	int r;

	if (!msgid)
		return true; /* no id: nothing to compare, fetch it */
	pthread_mutex_lock(&gi->lock);
	r = add(gi, msgid);
	pthread_mutex_unlock(&gi->lock);
	return r != 0;
}

uint64_t gmail_index_count(const struct gmail_index *gi)
{
	return gi->n;
}
