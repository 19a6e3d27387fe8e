/*
 * gmail.c — see gmail.h.  Gmail's IMAP extensions documentation
 * (X-GM-LABELS as astrings, system labels \Inbox \Sent \Draft \Important
 * \Starred \Trash \Spam), RFC 3501 §5.1.3 (modified UTF-7) and §4.3
 * (quoted strings).
 */
#include "imap/gmail.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "mutf7.h"
#include "utf8.h"

void gmail_labels_free(struct gmail_labels *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->v[i]);
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

static int cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Sort, drop repeats. */
static void normalise(struct gmail_labels *l)
{
	size_t w = 0;

	if (l->n < 2)
		return; /* and qsort must not see v == NULL */
	qsort(l->v, l->n, sizeof *l->v, cmp);
	for (size_t i = 0; i < l->n; i++) {
		if (w && !strcmp(l->v[w - 1], l->v[i])) {
			free(l->v[i]);
			continue;
		}
		l->v[w++] = l->v[i];
	}
	l->n = w;
}

static bool utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s;
	uint32_t cp;

	for (size_t i = 0; i < len;) {
		size_t n = utf8_decode(p + i, len - i, &cp);
		if (!n || !cp)
			return false;
		i += n;
	}
	return true;
}

static bool clean(const char *s)
{
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static enum isnap_status bad(struct gmail_labels *l, struct isnap_error *err,
			     const char *why)
{
	gmail_labels_free(l);
	return isnap_fail(err, ISNAP_EPROTO, "X-GM-LABELS: %s", why);
}

/* One label's text as sent into a UTF-8 name (malloc'd), or NULL. */
static char *label_name(const char *s, size_t len, bool atom)
{
	char *out = NULL;

	/* The limit is on the name; its modified UTF-7 may be longer. */
	if (!len || len > 4 * GMAIL_LABEL_MAX || memchr(s, '\0', len))
		return NULL;
	/* System labels are atoms with a backslash; pass them as they are. */
	if (atom && s[0] == '\\') {
		out = strndup(s, len);
	} else if (mutf7_decode(s, len, &out) != 0) {
		/* Not modified UTF-7: UTF-8 (UTF8=ACCEPT), or nothing. */
		out = utf8_valid(s, len) ? strndup(s, len) : NULL;
	}
	if (out && (!clean(out) || strlen(out) > GMAIL_LABEL_MAX)) {
		free(out);
		out = NULL;
	}
	return out;
}

enum isnap_status gmail_labels_parse(const struct imap_arg *list,
				     struct gmail_labels *out,
				     struct isnap_error *err)
{
	memset(out, 0, sizeof *out);
	if (!list || list->type != IMAP_ARG_LIST)
		return bad(out, err, "not a list");
	if (list->count > GMAIL_LABELS_MAX)
		return bad(out, err, "too many labels");
	if (list->count && !(out->v = calloc(list->count, sizeof *out->v)))
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	for (size_t i = 0; i < list->count; i++) {
		const struct imap_arg *a = &list->list[i];
		if (a->type != IMAP_ARG_ATOM && a->type != IMAP_ARG_STRING)
			return bad(out, err, "a label that is not a string");
		if (!(out->v[out->n] = label_name(a->str, a->len,
						  a->type == IMAP_ARG_ATOM)))
			return bad(out, err, "an empty, over-long or "
				   "undecodable label");
		out->n++;
	}
	normalise(out);
	return ISNAP_OK;
}

enum isnap_status gmail_labels_from(const char *const *names, size_t n,
				    struct gmail_labels *out,
				    struct isnap_error *err)
{
	memset(out, 0, sizeof *out);
	if (n > GMAIL_LABELS_MAX)
		return bad(out, err, "too many labels");
	if (n && !(out->v = calloc(n, sizeof *out->v)))
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		size_t len = strlen(names[i]);
		if (!len || len > GMAIL_LABEL_MAX || !clean(names[i]) ||
		    !utf8_valid(names[i], len))
			return bad(out, err, "an empty, over-long or "
				   "undecodable label");
		if (!(out->v[out->n] = strdup(names[i])))
			return gmail_labels_free(out),
			       isnap_fail(err, ISNAP_ENOMEM, "out of memory");
		out->n++;
	}
	normalise(out);
	return ISNAP_OK;
}

bool gmail_labels_equal(const struct gmail_labels *a,
			const struct gmail_labels *b)
{
	if (a->n != b->n)
		return false;
	for (size_t i = 0; i < a->n; i++)
		if (strcmp(a->v[i], b->v[i]))
			return false;
	return true;
}

static bool system_label(const char *s)
{
	return s[0] == '\\' && s[1] &&
	       strspn(s + 1, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") ==
		       strlen(s + 1);
}

enum isnap_status gmail_labels_store_list(const struct gmail_labels *l,
					  char **out, struct isnap_error *err)
{
	size_t cap = 3, len = 0;
	char *buf, **enc = l->n ? calloc(l->n, sizeof *enc) : NULL;
	enum isnap_status st = ISNAP_OK;

	*out = NULL;
	if (l->n && !enc)
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	for (size_t i = 0; i < l->n && !st; i++) {
		if (system_label(l->v[i]))
			enc[i] = strdup(l->v[i]);
		else if (mutf7_encode(l->v[i], strlen(l->v[i]), &enc[i]) != 0)
			enc[i] = NULL;
		if (!enc[i])
			st = isnap_fail(err, ISNAP_EUSAGE, "label %s cannot be "
					"sent", l->v[i]);
		else
			cap += 2 * strlen(enc[i]) + 3;
	}
	if (!st && !(buf = malloc(cap)))
		st = isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	if (!st) {
		buf[len++] = '(';
		for (size_t i = 0; i < l->n; i++) {
			bool atom = system_label(enc[i]);
			if (i)
				buf[len++] = ' ';
			if (!atom)
				buf[len++] = '"';
			for (const char *p = enc[i]; *p; p++) {
				if (!atom && (*p == '"' || *p == '\\'))
					buf[len++] = '\\';
				buf[len++] = *p;
			}
			if (!atom)
				buf[len++] = '"';
		}
		buf[len++] = ')';
		buf[len] = '\0';
		*out = buf;
	}
	for (size_t i = 0; i < l->n && enc; i++)
		free(enc[i]);
	free(enc);
	return st;
}

struct gmail_target gmail_label_target(const char *label)
{
	struct gmail_target t = { GMAIL_TARGET_NONE, NULL, NULL };

	if (!strcmp(label, "\\Inbox")) {
		t.kind = GMAIL_TARGET_INBOX;
	} else if (!strcmp(label, "\\Sent")) {
		t.kind = GMAIL_TARGET_ROLE;
		t.role = "\\Sent";
		t.folder = "Sent";
	} else if (!strcmp(label, "\\Draft")) {
		t.kind = GMAIL_TARGET_ROLE;
		t.role = "\\Drafts";
		t.folder = "Drafts";
	} else if (!strcmp(label, "\\Trash")) {
		t.kind = GMAIL_TARGET_ROLE;
		t.role = "\\Trash";
		t.folder = "Trash";
	} else if (!strcmp(label, "\\Spam")) {
		t.kind = GMAIL_TARGET_ROLE;
		t.role = "\\Junk";
		t.folder = "Junk";
	} else if (label[0] != '\\') {
		t.kind = GMAIL_TARGET_FOLDER;
		t.folder = label;
	}
	/* \Important, \Starred and other system labels are Gmail's own
	 * views (\Starred is the \Flagged flag, which is restored). */
	return t;
}
