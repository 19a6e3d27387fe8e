/*
 * restore_labels.c — see restore_labels.h.  Gmail's IMAP extensions
 * (X-GM-LABELS in STORE), RFC 3501 (UID STORE), RFC 3501 5.1.3 (modified
 * UTF-7 for names).
 */
#include "restore_labels.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "mutf7.h"
#include "uidset.h"

/* Commands stay under the ~8000 octets servers take. */
#define STORE_COMMAND_MAX 7000

static bool atom_label(const char *s)
{
	if (s[0] != '\\' || !s[1])
		return false;
	for (const char *p = s + 1; *p; p++) {
		unsigned char ch = (unsigned char)*p;
		if (ch <= 0x20 || ch >= 0x7f || strchr("(){%*\"\\]", ch))
			return false;
	}
	return true;
}

/* Append `s` to buf as an IMAP quoted string; false when it cannot be
 * one (a control character) or does not fit. */
static bool put_quoted(char *buf, size_t size, size_t *n, const char *s)
{
	if (*n + 1 >= size)
		return false;
	buf[(*n)++] = '"';
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;
		if (ch < 0x20 || ch == 0x7f || ch >= 0x80 || *n + 3 >= size)
			return false;
		if (ch == '"' || ch == '\\')
			buf[(*n)++] = '\\';
		buf[(*n)++] = (char)ch;
	}
	buf[(*n)++] = '"';
	buf[*n] = '\0';
	return true;
}

char *restore_labels_list(const char *const *labels, size_t nl, bool *bad)
{
	size_t size = 3, n = 0;
	char *buf;

	*bad = false;
	for (size_t i = 0; i < nl; i++)
		size += 8 * strlen(labels[i]) + 4;
	if (!(buf = malloc(size)))
		return NULL;
	buf[n++] = '(';
	for (size_t i = 0; i < nl; i++) {
		char *enc = NULL;
		bool ok;
		if (i)
			buf[n++] = ' ';
		if (atom_label(labels[i])) {
			size_t len = strlen(labels[i]);
			memcpy(buf + n, labels[i], len);
			n += len;
			continue;
		}
		if (mutf7_encode(labels[i], strlen(labels[i]), &enc)) {
			*bad = errno == EINVAL;
			free(buf);
			return NULL;
		}
		ok = put_quoted(buf, size, &n, enc);
		free(enc);
		if (!ok) {
			free(buf);
			*bad = true;
			return NULL;
		}
	}
	buf[n++] = ')';
	buf[n] = '\0';
	return buf;
}

struct keyed {
	struct restore_label_item *it;
	char *list;
};

static int cmp_keyed(const void *a, const void *b)
{
	const struct keyed *x = a, *y = b;

	return strcmp(x->list, y->list);
}

/* One group (the same labels): its UIDs in commands that fit. */
static enum isnap_status store_group(struct imap_client *c,
				     struct keyed *g, size_t n,
				     size_t *failed, char *why,
				     size_t why_size,
				     struct isnap_error *err)
{
	size_t used = strlen(g[0].list) + 48;
	/* A UID and its comma take 11 characters at most. */
	long per = used + 11 * 4 < STORE_COMMAND_MAX
			   ? (long)((STORE_COMMAND_MAX - used) / 11)
			   : 4;
	struct uidset all = UIDSET_INIT, batch = UIDSET_INIT;
	uint32_t after = 0;
	enum isnap_status rc = ISNAP_OK;
	long got;

	for (size_t i = 0; i < n; i++)
		if (uidset_add(&all, g[i].it->uid)) {
			uidset_free(&all);
			return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
		}
	while (!rc && (got = uidset_next_batch(&all, &after, per,
					       &batch)) > 0) {
		struct isnap_error serr = { 0 };
		char *set, *cmd;
		size_t len;
		if (uidset_format(&batch, &set)) {
			rc = isnap_fail(err, ISNAP_ENOMEM, "out of memory");
			break;
		}
		len = strlen(set) + strlen(g[0].list) + 32;
		if (!(cmd = malloc(len))) {
			free(set);
			rc = isnap_fail(err, ISNAP_ENOMEM, "out of memory");
			break;
		}
		snprintf(cmd, len, "UID STORE %s +X-GM-LABELS %s", set,
			 g[0].list);
		free(set);
		rc = imap_client_simple_folder(c, cmd, NULL, NULL, &serr);
		free(cmd);
		if (rc == ISNAP_EFOLDER) {
			/* NO or BAD: these messages keep their labels
			 * unset; the others go on. */
			snprintf(why, why_size, "%s", serr.msg);
			for (size_t i = 0; i < n; i++)
				if (uidset_contains(&batch, g[i].it->uid))
					++*failed;
			rc = ISNAP_OK;
			continue;
		}
		if (rc) {
			*err = serr;
			break;
		}
		for (size_t i = 0; i < n; i++)
			if (uidset_contains(&batch, g[i].it->uid))
				g[i].it->ok = true;
	}
	if (!rc && got < 0)
		rc = isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	uidset_free(&batch);
	uidset_free(&all);
	return rc;
}

enum isnap_status restore_labels_store(struct imap_client *c,
				       struct restore_label_item *items,
				       size_t n, size_t *failed, char *why,
				       size_t why_size,
				       struct isnap_error *err)
{
	struct keyed *k = n ? calloc(n, sizeof *k) : NULL;
	size_t nk = 0;
	enum isnap_status rc = ISNAP_OK;

	*failed = 0;
	if (why_size)
		why[0] = '\0';
	if (n && !k)
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	for (size_t i = 0; i < n; i++) {
		bool bad;
		items[i].ok = false;
		if (!items[i].nlabels) {
			items[i].ok = true;
			continue;
		}
		k[nk].it = &items[i];
		if (!(k[nk].list = restore_labels_list(items[i].labels,
						       items[i].nlabels,
						       &bad))) {
			if (!bad) {
				rc = isnap_fail(err, ISNAP_ENOMEM,
						"out of memory");
				break;
			}
			snprintf(why, why_size, "a label that cannot be "
				 "written for IMAP (a control character or "
				 "invalid UTF-8)");
			++*failed;
			continue;
		}
		nk++;
	}
	if (!rc && nk)
		qsort(k, nk, sizeof *k, cmp_keyed);
	for (size_t i = 0, j; !rc && i < nk; i = j) {
		for (j = i + 1; j < nk && !strcmp(k[i].list, k[j].list); j++)
			;
		rc = store_group(c, k + i, j - i, failed, why, why_size, err);
	}
	for (size_t i = 0; i < nk; i++)
		free(k[i].list);
	free(k);
	return rc;
}
