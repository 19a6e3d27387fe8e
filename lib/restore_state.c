/*
 * restore_state.c — see restore_state.h.
 *
 * Why a log rather than a file rewritten whole (as lib/state.c does):
 * a restore records every message it appends, and rewriting a file that
 * grows with the account after every batch would cost time quadratic in
 * the account's size.  Appending lines and syncing them costs one
 * fdatasync per batch; the one rewrite happens at open, when the log is
 * compacted (and that rewrite is atomic: temporary file, fsync, rename).
 */
#include "restore_state.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "beneath.h"
#include "lock.h"

#define LOG_FILE "restore.jsonl"
#define LOG_TMP "restore.jsonl.tmp"
#define LOG_VERSION 1
#define LINE_MAX_LEN (64 * 1024)
#define WBUF 65536

struct entry {
	unsigned char key[RESTORE_KEY_LEN];
	uint32_t folder; /* index + 1; 0 is an empty slot */
	uint32_t gen;
	uint32_t uid;
};

struct restore_state {
	char *dir;
	bool readonly;
	int dir_fd;   /* `dir`, opened once; -1 in a dry run without one */
	int lock_fd, fd;
	/* Each folder allocated on its own: callers keep pointers to them
	 * while more folders are added. */
	struct restore_state_folder **folders;
	size_t nfolders, afolders;
	struct entry *set;
	size_t cap, n;
	char *wbuf;
	size_t wlen;
};

void restore_state_key(const char *host, const char *user,
		       const char *folder_raw, uint32_t uidvalidity,
		       uint32_t uid, unsigned char key[RESTORE_KEY_LEN])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	char nums[32];
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	int n = snprintf(nums, sizeof nums, "%" PRIu32 "/%" PRIu32,
			 uidvalidity, uid);

	/* NUL separates the parts: none of them can contain one. */
	if (!ctx || !EVP_DigestInit_ex(ctx, EVP_sha256(), NULL)) {
		/* Out of memory: a key that can match nothing real. */
		memset(key, 0xff, RESTORE_KEY_LEN);
		EVP_MD_CTX_free(ctx);
		return;
	}
	if (!EVP_DigestUpdate(ctx, host, strlen(host) + 1) ||
	    !EVP_DigestUpdate(ctx, user, strlen(user) + 1) ||
	    !EVP_DigestUpdate(ctx, folder_raw, strlen(folder_raw) + 1) ||
	    !EVP_DigestUpdate(ctx, nums, (size_t)n) ||
	    !EVP_DigestFinal_ex(ctx, md, &mdlen) || mdlen < RESTORE_KEY_LEN) {
		/* As above: a key that can match nothing real. */
		memset(key, 0xff, RESTORE_KEY_LEN);
		EVP_MD_CTX_free(ctx);
		return;
	}
	EVP_MD_CTX_free(ctx);
	memcpy(key, md, RESTORE_KEY_LEN);
}

/* ---------------------------------------------------------------------- */
/* The set of (folder, generation, key)                                   */

static uint64_t slot_of(const unsigned char *key, uint32_t folder)
{
	uint64_t h;

	memcpy(&h, key, sizeof h);
	return h ^ ((uint64_t)folder * 0x9e3779b97f4a7c15u);
}

static struct entry *find(const struct restore_state *st,
			  const unsigned char *key, uint32_t folder)
{
	if (!st->cap)
		return NULL;
	for (size_t i = slot_of(key, folder) & (st->cap - 1);;
	     i = (i + 1) & (st->cap - 1)) {
		struct entry *e = &st->set[i];
		if (!e->folder)
			return NULL;
		if (e->folder == folder && !memcmp(e->key, key, RESTORE_KEY_LEN))
			return e;
	}
}

static int grow(struct restore_state *st)
{
	size_t cap = st->cap ? 2 * st->cap : 1024;
	struct entry *set = calloc(cap, sizeof *set);

	if (!set)
		return -1;
	for (size_t j = 0; j < st->cap; j++) {
		struct entry *e = &st->set[j];
		size_t i;
		if (!e->folder)
			continue;
		for (i = slot_of(e->key, e->folder) & (cap - 1); set[i].folder;
		     i = (i + 1) & (cap - 1))
			;
		set[i] = *e;
	}
	free(st->set);
	st->set = set;
	st->cap = cap;
	return 0;
}

static int put(struct restore_state *st, const unsigned char *key,
	       uint32_t folder, uint32_t gen, uint32_t uid)
{
	struct entry *e = find(st, key, folder);
	size_t i;

	if (e) {
		e->gen = gen;
		e->uid = uid;
		return 0;
	}
	if (2 * (st->n + 1) > st->cap && grow(st))
		return -1;
	for (i = slot_of(key, folder) & (st->cap - 1); st->set[i].folder;
	     i = (i + 1) & (st->cap - 1))
		;
	memcpy(st->set[i].key, key, RESTORE_KEY_LEN);
	st->set[i].folder = folder;
	st->set[i].gen = gen;
	st->set[i].uid = uid;
	st->n++;
	return 0;
}

/* ---------------------------------------------------------------------- */

struct restore_state_folder *restore_state_folder(struct restore_state *st,
						  const char *name,
						  bool create)
{
	struct restore_state_folder *f;

	for (size_t i = 0; i < st->nfolders; i++)
		if (!strcmp(st->folders[i]->name, name))
			return st->folders[i];
	if (!create)
		return NULL;
	if (st->nfolders == st->afolders) {
		size_t a = st->afolders ? 2 * st->afolders : 16;
		struct restore_state_folder **v =
			realloc(st->folders, a * sizeof *v);
		if (!v)
			return NULL;
		st->folders = v;
		st->afolders = a;
	}
	if (!(f = calloc(1, sizeof *f)))
		return NULL;
	if (!(f->name = strdup(name))) {
		free(f);
		return NULL;
	}
	f->ix = (uint32_t)st->nfolders + 1;
	st->folders[st->nfolders++] = f;
	return f;
}

static uint32_t folder_ix(const struct restore_state *st,
			  const struct restore_state_folder *f)
{
	(void)st;
	return f->ix;
}

bool restore_state_has(const struct restore_state *st,
		       const struct restore_state_folder *f,
		       const unsigned char key[RESTORE_KEY_LEN])
{
	const struct entry *e = find(st, key, folder_ix(st, f));

	return e && e->gen == f->gen;
}

/* ---------------------------------------------------------------------- */
/* Writing lines                                                           */

static enum isnap_status flush(struct restore_state *st,
			       struct isnap_error *err)
{
	size_t off = 0;

	while (off < st->wlen) {
		ssize_t n = write(st->fd, st->wbuf + off, st->wlen - off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return isnap_fail_errno(err, ISNAP_ELOCAL,
						"writing %s/" LOG_FILE,
						st->dir);
		off += (size_t)n;
	}
	st->wlen = 0;
	return ISNAP_OK;
}

static enum isnap_status emit(struct restore_state *st, json_t *o,
			      struct isnap_error *err)
{
	char *text;
	size_t len;
	enum isnap_status rc = ISNAP_OK;

	if (!o)
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	text = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!text)
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	if (st->readonly) {
		free(text);
		return ISNAP_OK;
	}
	len = strlen(text);
	if (st->wlen + len + 1 > WBUF)
		rc = flush(st, err);
	if (!rc && len + 1 > WBUF)
		rc = isnap_fail(err, ISNAP_ELOCAL, "a state line too long");
	if (!rc) {
		memcpy(st->wbuf + st->wlen, text, len);
		st->wbuf[st->wlen + len] = '\n';
		st->wlen += len + 1;
	}
	free(text);
	return rc;
}

static void hexkey(const unsigned char *key, char out[2 * RESTORE_KEY_LEN + 1])
{
	static const char d[] = "0123456789abcdef";

	for (int i = 0; i < RESTORE_KEY_LEN; i++) {
		out[2 * i] = d[key[i] >> 4];
		out[2 * i + 1] = d[key[i] & 15];
	}
	out[2 * RESTORE_KEY_LEN] = '\0';
}

static json_t *folder_line(const struct restore_state_folder *f)
{
	return json_pack("{s:s, s:s, s:I, s:I}", "type", "folder", "folder",
			 f->name, "uidvalidity", (json_int_t)f->uidvalidity,
			 "checked", (json_int_t)f->checked);
}

static json_t *done_line(const struct restore_state_folder *f,
			 const unsigned char *key, uint32_t uid)
{
	char hex[2 * RESTORE_KEY_LEN + 1];

	hexkey(key, hex);
	return json_pack("{s:s, s:s, s:s, s:I}", "type", "done", "folder",
			 f->name, "key", hex, "uid", (json_int_t)uid);
}

enum isnap_status restore_state_set(struct restore_state *st,
				    struct restore_state_folder *f,
				    uint32_t uidvalidity, uint32_t checked,
				    struct isnap_error *err)
{
	if (f->uidvalidity != uidvalidity) {
		f->gen++;
		f->uidvalidity = uidvalidity;
	}
	f->checked = checked;
	return emit(st, folder_line(f), err);
}

enum isnap_status restore_state_done(struct restore_state *st,
				     struct restore_state_folder *f,
				     const unsigned char key[RESTORE_KEY_LEN],
				     uint32_t uid, struct isnap_error *err)
{
	if (put(st, key, folder_ix(st, f), f->gen, uid))
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	return emit(st, done_line(f, key, uid), err);
}

enum isnap_status restore_state_sync(struct restore_state *st,
				     struct isnap_error *err)
{
	enum isnap_status rc;

	if (st->readonly)
		return ISNAP_OK;
	rc = flush(st, err);
	if (!rc && fdatasync(st->fd) != 0)
		rc = isnap_fail_errno(err, ISNAP_ELOCAL, "syncing %s/" LOG_FILE,
				      st->dir);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* Reading                                                                 */

static bool unhex(const char *s, unsigned char *out)
{
	if (!s || strlen(s) != 2 * RESTORE_KEY_LEN)
		return false;
	for (int i = 0; i < 2 * RESTORE_KEY_LEN; i++) {
		char c = s[i];
		int v = c >= '0' && c <= '9' ? c - '0'
			: c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
		if (v < 0)
			return false;
		if (i % 2)
			out[i / 2] = (unsigned char)(out[i / 2] << 4 | v);
		else
			out[i / 2] = (unsigned char)v;
	}
	return true;
}

static bool get_u32(json_t *o, const char *k, uint32_t *out)
{
	json_t *v = json_object_get(o, k);

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    json_integer_value(v) > UINT32_MAX)
		return false;
	*out = (uint32_t)json_integer_value(v);
	return true;
}

/* 0 accepted, -1 malformed, -2 out of memory. */
static int load_line(struct restore_state *st, const char *text, size_t len,
		     unsigned long lineno)
{
	json_t *o = json_loadb(text, len, 0, NULL);
	const char *type = json_string_value(json_object_get(o, "type"));
	const char *name = json_string_value(json_object_get(o, "folder"));
	struct restore_state_folder *f;
	int rc = -1;

	if (!type)
		goto out;
	if (!strcmp(type, "restore-state")) {
		uint32_t v;
		rc = lineno == 1 && get_u32(o, "version", &v) &&
				     v == LOG_VERSION
			     ? 0
			     : -1;
		goto out;
	}
	if (lineno == 1 || !name)
		goto out;
	if (!strcmp(type, "folder")) {
		uint32_t uv, checked;
		if (!get_u32(o, "uidvalidity", &uv) ||
		    !get_u32(o, "checked", &checked))
			goto out;
		if (!(f = restore_state_folder(st, name, true))) {
			rc = -2;
			goto out;
		}
		if (f->uidvalidity != uv)
			f->gen++;
		f->uidvalidity = uv;
		f->checked = checked;
		rc = 0;
	} else if (!strcmp(type, "done")) {
		unsigned char key[RESTORE_KEY_LEN];
		uint32_t uid;
		if (!unhex(json_string_value(json_object_get(o, "key")), key) ||
		    !get_u32(o, "uid", &uid))
			goto out;
		if (!(f = restore_state_folder(st, name, true)) ||
		    put(st, key, folder_ix(st, f), f->gen, uid)) {
			rc = -2;
			goto out;
		}
		rc = 0;
	}
out:
	json_decref(o);
	return rc;
}

static enum isnap_status load(struct restore_state *st, int fd,
			      struct isnap_error *err)
{
	char *line = malloc(LINE_MAX_LEN + 1);
	char buf[65536];
	size_t len = 0;
	unsigned long lineno = 0;
	bool overlong = false;
	enum isnap_status rc = ISNAP_OK;

	if (!line)
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = isnap_fail_errno(err, ISNAP_ELOCAL, "reading %s/"
					      LOG_FILE, st->dir);
			break;
		}
		if (n == 0)
			break; /* a last line without newline: cut by a crash */
		for (ssize_t i = 0; i < n && !rc; i++) {
			int r;
			if (buf[i] != '\n') {
				if (len < LINE_MAX_LEN)
					line[len++] = buf[i];
				else
					overlong = true;
				continue;
			}
			lineno++;
			r = overlong ? -1 : load_line(st, line, len, lineno);
			if (r == -2)
				rc = isnap_fail(err, ISNAP_ENOMEM,
						"out of memory");
			else if (r)
				rc = isnap_fail(err, ISNAP_ELOCAL,
						"%s/" LOG_FILE " line %lu is "
						"not a restore state line; "
						"move the file away to start "
						"afresh",
						st->dir, lineno);
			len = 0;
			overlong = false;
		}
		if (rc)
			break;
	}
	free(line);
	return rc;
}

/* Rewrite the log with what is live, atomically, and open it for
 * appending. */
static enum isnap_status compact(struct restore_state *st,
				 struct isnap_error *err)
{
	int dfd = st->dir_fd;
	enum isnap_status rc;

	st->fd = beneath_open_file(dfd, LOG_TMP, O_WRONLY | O_CREAT | O_TRUNC,
				   0600);
	if (st->fd < 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "%s/" LOG_TMP,
					st->dir);
	rc = emit(st, json_pack("{s:s, s:i}", "type", "restore-state",
				"version", LOG_VERSION),
		  err);
	for (size_t i = 0; i < st->nfolders && !rc; i++)
		rc = emit(st, folder_line(st->folders[i]), err);
	for (size_t j = 0; j < st->cap && !rc; j++) {
		const struct entry *e = &st->set[j];
		const struct restore_state_folder *f;
		if (!e->folder)
			continue;
		f = st->folders[e->folder - 1];
		if (e->gen == f->gen)
			rc = emit(st, done_line(f, e->key, e->uid), err);
	}
	if (!rc)
		rc = flush(st, err);
	if (!rc && fsync(st->fd) != 0)
		rc = isnap_fail_errno(err, ISNAP_ELOCAL, "syncing %s/" LOG_TMP,
				      st->dir);
	if (!rc && renameat(dfd, LOG_TMP, dfd, LOG_FILE) != 0)
		rc = isnap_fail_errno(err, ISNAP_ELOCAL, "renaming %s/" LOG_TMP,
				      st->dir);
	if (!rc && fsync(dfd) != 0)
		rc = isnap_fail_errno(err, ISNAP_ELOCAL, "syncing %s", st->dir);
	if (rc) {
		unlinkat(dfd, LOG_TMP, 0);
		close(st->fd);
		st->fd = -1;
	}
	return rc;
}

enum isnap_status restore_state_open(const char *dir, bool readonly,
				     struct restore_state **out,
				     struct isnap_error *err)
{
	struct restore_state *st = calloc(1, sizeof *st);
	enum isnap_status rc = ISNAP_OK;
	int fd;

	*out = NULL;
	if (!st || !(st->dir = strdup(dir)) || !(st->wbuf = malloc(WBUF))) {
		if (st)
			free(st->dir);
		free(st);
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	}
	st->readonly = readonly;
	st->lock_fd = st->fd = st->dir_fd = -1;
	/* The directory is the user's choice and may be a symbolic link;
	 * nothing in it is followed (beneath.h). */
	st->dir_fd = beneath_open_top(dir, !readonly);
	if (st->dir_fd < 0) {
		if (readonly && errno == ENOENT) {
			*out = st; /* a dry run before any run: empty */
			return ISNAP_OK;
		}
		rc = isnap_fail_errno(err, ISNAP_ELOCAL, "%s", dir);
		goto fail;
	}
	if (!readonly) {
		rc = lock_acquire(st->dir_fd, dir, &st->lock_fd, err);
		if (rc)
			goto fail;
	}
	fd = beneath_open_file(st->dir_fd, LOG_FILE, O_RDONLY, 0);
	if (fd < 0 && errno != ENOENT) {
		rc = isnap_fail_errno(err, ISNAP_ELOCAL, "%s/" LOG_FILE, dir);
		goto fail;
	}
	if (fd >= 0) {
		rc = load(st, fd, err);
		close(fd);
		if (rc)
			goto fail;
	}
	if (!readonly && (rc = compact(st, err)))
		goto fail;
	*out = st;
	return ISNAP_OK;
fail:
	restore_state_close(st);
	return rc;
}

void restore_state_close(struct restore_state *st)
{
	if (!st)
		return;
	if (st->fd >= 0) {
		flush(st, NULL);
		close(st->fd);
	}
	if (st->lock_fd >= 0)
		lock_release(st->lock_fd);
	if (st->dir_fd >= 0)
		close(st->dir_fd);
	for (size_t i = 0; i < st->nfolders; i++) {
		free(st->folders[i]->name);
		free(st->folders[i]);
	}
	free(st->folders);
	free(st->set);
	free(st->wbuf);
	free(st->dir);
	free(st);
}
