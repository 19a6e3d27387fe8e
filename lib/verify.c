/*
 * verify.c — see verify.h; the manifest format and the chain are
 * docs/manifest.md.
 *
 * Three passes, all streaming:
 *   1. read every manifest (in chain order), checking each file's SHA-256
 *      against the chain and its "prev" against the run before it, and
 *      keep one small record per message: location → size, SHA-256,
 *      folder, UID, and whether a commit line confirmed it;
 *   2. store_scan each format the runs used, hashing every message as it
 *      streams past and comparing it with its record (or reporting it as
 *      unexpected);
 *   3. report the confirmed records no scan found as missing.
 * Memory is the records (about 150 bytes and a location per message).
 */
#include "verify.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "beneath.h"
#include "manifest.h"
#include "manifest_chain.h"
#include "manifest_read.h"
#include "store/store.h"
#include "tsa.h"

/* Longer lines are not ours (manifest_read.h). */
#define LINE_LIMIT MANIFEST_LINE_LIMIT
#define ARENA_CHUNK (64 * 1024)
#define MAX_FORMATS 16
#define NO_INDEX UINT32_MAX

/* ---------------------------------------------------------------------- */
/* An arena for the strings that live as long as the verification         */

struct chunk {
	struct chunk *next;
	size_t used, size;
	char data[];
};

struct arena {
	struct chunk *head;
};

static const char *arena_strdup(struct arena *a, const char *s)
{
	size_t n = strlen(s) + 1;
	struct chunk *c = a->head;

	if (!c || c->size - c->used < n) {
		size_t size = n > ARENA_CHUNK ? n : ARENA_CHUNK;
		c = malloc(sizeof *c + size);
		if (!c)
			return NULL;
		c->used = 0;
		c->size = size;
		/* A big string gets a chunk of its own, behind the current
		 * one, so that the current one's free space is not lost. */
		if (a->head && size > ARENA_CHUNK) {
			c->next = a->head->next;
			a->head->next = c;
		} else {
			c->next = a->head;
			a->head = c;
		}
	}
	memcpy(c->data + c->used, s, n);
	c->used += n;
	return c->data + c->used - n;
}

static void arena_free(struct arena *a)
{
	while (a->head) {
		struct chunk *next = a->head->next;
		free(a->head);
		a->head = next;
	}
}

/* ---------------------------------------------------------------------- */
/* String → index, open addressing                                        */

struct smap {
	const char **keys;
	uint32_t *vals;
	size_t cap, n;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603u; /* FNV-1a */

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211u;
	return h;
}

static uint32_t smap_get(const struct smap *m, const char *key)
{
	if (!m->cap)
		return NO_INDEX;
	for (size_t i = hash_str(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (!m->keys[i])
			return NO_INDEX;
		if (strcmp(m->keys[i], key) == 0)
			return m->vals[i];
	}
}

static int smap_grow(struct smap *m)
{
	size_t cap = m->cap ? 2 * m->cap : 1024;
	const char **keys = calloc(cap, sizeof *keys);
	uint32_t *vals = calloc(cap, sizeof *vals);

	if (!keys || !vals) {
		free(keys);
		free(vals);
		return -1;
	}
	for (size_t j = 0; j < m->cap; j++) {
		size_t i;
		if (!m->keys[j])
			continue;
		for (i = hash_str(m->keys[j]) & (cap - 1); keys[i];
		     i = (i + 1) & (cap - 1))
			;
		keys[i] = m->keys[j];
		vals[i] = m->vals[j];
	}
	free(m->keys);
	free(m->vals);
	m->keys = keys;
	m->vals = vals;
	m->cap = cap;
	return 0;
}

/* The value stored for `key`, to change it; NULL when absent. */
static uint32_t *smap_slot(struct smap *m, const char *key)
{
	if (!m->cap)
		return NULL;
	for (size_t i = hash_str(key) & (m->cap - 1);; i = (i + 1) & (m->cap - 1)) {
		if (!m->keys[i])
			return NULL;
		if (strcmp(m->keys[i], key) == 0)
			return &m->vals[i];
	}
}

/* `key` must outlive the map and not be in it yet. */
static int smap_put(struct smap *m, const char *key, uint32_t val)
{
	size_t i;

	if (2 * (m->n + 1) > m->cap && smap_grow(m) != 0)
		return -1;
	for (i = hash_str(key) & (m->cap - 1); m->keys[i];
	     i = (i + 1) & (m->cap - 1))
		;
	m->keys[i] = key;
	m->vals[i] = val;
	m->n++;
	return 0;
}

static void smap_free(struct smap *m)
{
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------------- */
/* State                                                                   */

struct record {
	const char *location;
	uint32_t folder;      /* index into folders */
	uint32_t run;         /* index into runs */
	uint32_t uidvalidity, uid;
	uint64_t size;
	unsigned char sha[32];
	uint8_t fmt;          /* index into formats */
	bool confirmed, found;
	bool gmail;           /* recorded with Gmail labels */
	/* A later line records the same message (folder, UIDVALIDITY, UID)
	 * at another place: it was fetched again, or a store found it moved
	 * (a `moved` line), and this place no longer counts. */
	bool superseded;
};

/* A message found where no manifest put one; paired at the end with a
 * recorded message not found, in case it was only moved (a generation
 * kept aside when UIDVALIDITY changed). */
struct found {
	const char *location; /* as shown: "<volume>!<entry>" in a volume */
	size_t raw;           /* where the location proper starts in it */
	uint64_t size;
	unsigned char sha[32];
};

struct stray {
	const char *path;
	const char *what;
	uint8_t fmt;
};

/* The manifest being read. */
struct reader {
	const char *name;     /* for findings */
	uint32_t run;
	unsigned long line_no;
	bool header, ended, skip;
	bool end_confirms;    /* inside an archive: the archive is complete
				 only if its run reached the end line */
	int fmt;              /* -1 until the header names it */
	uint64_t version;     /* the run line's "manifest" */
	bool prev_null, prev_set;
	char prev_name[MANIFEST_RUN_NAME_MAX], prev_sha[65];
	uint32_t *batch;      /* records since the last commit line */
	size_t nbatch, abatch;
	struct manifest_lines lines; /* the line being assembled */
	EVP_MD_CTX *md;       /* the whole file's hash */
};

struct verifier {
	const char *dest;
	const struct verify_callbacks *cb;
	struct verify_result *res;
	struct isnap_error *err;
	enum isnap_status fatal; /* out of memory: stop */

	struct arena arena;
	struct record *rec;
	size_t nrec, arec;
	struct smap by_location;
	struct smap by_container; /* where an unexpected message sits */
	struct smap folder_ix;
	struct smap by_message;   /* "<folder>/<uidvalidity>/<uid>" */
	const char **folders;
	size_t nfolders, afolders;
	const char **runs;
	size_t nruns, aruns;
	const char *formats[MAX_FORMATS];
	bool format_failed[MAX_FORMATS]; /* some of it could not be read */
	bool scan_failed[MAX_FORMATS];   /* its scan stopped */
	size_t nformats;
	int single_fmt;           /* single-file export: its format */

	struct smap retired;      /* "<uidvalidity>/<folder>" kept aside */
	struct smap by_identity;  /* "<fmt>/<uidvalidity>/<uid>/<folder>":
				     the latest record of that message */
	struct found *unexp;      /* found, at no recorded location */
	size_t nunexp, aunexp;

	struct reader rd;
	uint64_t max_size;        /* of any record: bounds what is read of an
				     unexpected message */

	/* What the scans found that is no message (store_scan_cb.stray):
	 * reported once every format's scan is done, and only when no
	 * other format's scan accounts for it (a destination written in
	 * two formats holds the files of both). */
	struct stray *strays;
	size_t nstrays, astrays;

	/* The message store_scan is reading. */
	int scan_fmt;             /* the format being scanned */
	char volume[4096];        /* inside this volume, or "" */
	EVP_MD_CTX *md;
	uint32_t cur;             /* record, or NO_INDEX */
	bool cur_open;            /* begun, not ended yet */
	uint64_t cur_size;
	size_t cur_raw;           /* cur_loc past the volume's name */
	char cur_loc[sizeof ((struct store_location *)0)->location];
};

static enum isnap_status oom(struct verifier *v)
{
	if (!v->fatal)
		v->fatal = isnap_fail(v->err, ISNAP_ENOMEM, "out of memory");
	return v->fatal;
}

static void count(struct verify_result *res, enum verify_kind kind)
{
	switch (kind) {
	case VERIFY_MISSING: res->missing++; break;
	case VERIFY_ALTERED: res->altered++; break;
	case VERIFY_UNEXPECTED: res->unexpected++; break;
	case VERIFY_UNREADABLE: res->unreadable++; break;
	case VERIFY_CHAIN: res->chain_errors++; break;
	case VERIFY_MANIFEST: res->manifest_errors++; break;
	case VERIFY_NOTE: res->notes++; break;
	}
}

static void report(struct verifier *v, enum verify_kind kind,
		   const struct record *r, const char *location,
		   const char *run, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
static void report(struct verifier *v, enum verify_kind kind,
		   const struct record *r, const char *location,
		   const char *run, const char *fmt, ...)
{
	char detail[1024];
	struct verify_finding f = { .kind = kind, .location = location,
				    .run = run, .detail = detail };
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(detail, sizeof detail, fmt, ap);
	va_end(ap);
	if (r) {
		f.folder = v->folders[r->folder];
		f.uidvalidity = r->uidvalidity;
		f.uid = r->uid;
		if (!f.location)
			f.location = r->location;
		if (!f.run)
			f.run = v->runs[r->run];
	}
	count(v->res, kind);
	if (v->cb && v->cb->finding)
		v->cb->finding(v->cb->ctx, &f);
}

int verify_kind_fails(enum verify_kind kind)
{
	return kind != VERIFY_NOTE;
}

const char *verify_kind_name(enum verify_kind kind)
{
	switch (kind) {
	case VERIFY_MISSING: return "MISSING";
	case VERIFY_ALTERED: return "ALTERED";
	case VERIFY_UNEXPECTED: return "UNEXPECTED";
	case VERIFY_UNREADABLE: return "UNREADABLE";
	case VERIFY_CHAIN: return "CHAIN";
	case VERIFY_MANIFEST: return "MANIFEST";
	case VERIFY_NOTE: return "NOTE";
	}
	return "?";
}

static bool is_sha_text(const char *s)
{
	unsigned char tmp[32];

	return manifest_parse_sha(s, tmp);
}

/* ---------------------------------------------------------------------- */
/* Tables                                                                  */

static uint32_t intern_folder(struct verifier *v, const char *name)
{
	uint32_t ix = smap_get(&v->folder_ix, name);
	const char *copy;

	if (ix != NO_INDEX)
		return ix;
	if (v->nfolders == v->afolders) {
		size_t a = v->afolders ? 2 * v->afolders : 64;
		const char **f = realloc(v->folders, a * sizeof *f);
		if (!f)
			return NO_INDEX;
		v->folders = f;
		v->afolders = a;
	}
	copy = arena_strdup(&v->arena, name);
	if (!copy || smap_put(&v->folder_ix, copy, (uint32_t)v->nfolders))
		return NO_INDEX;
	v->folders[v->nfolders] = copy;
	return (uint32_t)v->nfolders++;
}

static int add_run(struct verifier *v, const char *name)
{
	const char *copy;

	if (v->nruns == v->aruns) {
		size_t a = v->aruns ? 2 * v->aruns : 16;
		const char **r = realloc(v->runs, a * sizeof *r);
		if (!r)
			return -1;
		v->runs = r;
		v->aruns = a;
	}
	if (!(copy = arena_strdup(&v->arena, name)))
		return -1;
	v->runs[v->nruns++] = copy;
	return 0;
}

static int intern_format(struct verifier *v, const char *fmt)
{
	for (size_t i = 0; i < v->nformats; i++)
		if (strcmp(v->formats[i], fmt) == 0)
			return (int)i;
	if (v->nformats == MAX_FORMATS)
		return -2;
	if (!(v->formats[v->nformats] = arena_strdup(&v->arena, fmt)))
		return -1;
	return (int)v->nformats++;
}

/* The place that holds a location's message: the mbox file before '@',
 * else the directory (or archive directory) before the last '/'.  An
 * unexpected message is named after a recorded one in the same place. */
static void container_of(const char *loc, char *out, size_t size)
{
	const char *cut = strrchr(loc, '@');
	size_t n;

	if (!cut)
		cut = strrchr(loc, '/');
	n = cut ? (size_t)(cut - loc) : 0;
	if (n >= size)
		n = size - 1;
	memcpy(out, loc, n);
	out[n] = '\0';
}

/* ---------------------------------------------------------------------- */
/* Reading a manifest                                                      */

/* libcrypto refused to hash: nothing verify says could be trusted. */
static enum isnap_status hash_failed(struct verifier *v)
{
	if (!v->fatal)
		v->fatal = isnap_fail(v->err, ISNAP_ENOMEM,
				      "computing a SHA-256 failed (libcrypto)");
	return v->fatal;
}

static void reader_start(struct verifier *v, const char *name)
{
	struct reader *rd = &v->rd;
	EVP_MD_CTX *md = rd->md;
	struct manifest_lines lines = rd->lines;
	uint32_t *batch = rd->batch;
	size_t abatch = rd->abatch;

	memset(rd, 0, sizeof *rd);
	rd->md = md;
	rd->lines = lines;
	manifest_lines_reset(&rd->lines);
	rd->batch = batch;
	rd->abatch = abatch;
	rd->fmt = -1;
	rd->run = (uint32_t)v->nruns - 1;
	rd->name = name;
	if (!EVP_DigestInit_ex(rd->md, EVP_sha256(), NULL))
		hash_failed(v);
}

static bool is_retired(struct verifier *v, const struct record *r);

/* The key of by_location: a location is only unique within its format
 * (a tar and a zip volume hold entries of the same names). */
static void location_key(char *buf, size_t size, int fmt, const char *loc)
{
	snprintf(buf, size, "%c%s", 'A' + fmt, loc);
}

/* Point `key` at a fresh record, leaving the one it named in place. */
static int new_record_at(struct verifier *v, const char *key, uint32_t *ix)
{
	uint32_t *slot = smap_slot(&v->by_location, key);
	const char *copy = v->rec[*ix].location;

	if (v->nrec == v->arec) {
		size_t a = v->arec ? 2 * v->arec : 1024;
		struct record *n = realloc(v->rec, a * sizeof *n);
		if (!n) {
			oom(v);
			return -1;
		}
		v->rec = n;
		v->arec = a;
	}
	*ix = (uint32_t)v->nrec++;
	memset(&v->rec[*ix], 0, sizeof v->rec[*ix]);
	v->rec[*ix].location = copy;
	*slot = *ix;
	return 0;
}

/* Gmail's fields of a message or flags line (docs/manifest.md): gm_labels
 * a list of label names, gm_msgid and gm_thrid decimal strings of 64
 * bits.  NULL when they are well formed (or absent), else what is not. */
static const char *gmail_fields_bad(const json_t *o)
{
	static const char *const ids[] = { "gm_msgid", "gm_thrid" };
	const json_t *l = json_object_get(o, "gm_labels");
	size_t i;
	json_t *e;

	if (l && !json_is_array(l))
		return "gm_labels is not a list";
	json_array_foreach(l, i, e)
		if (!json_is_string(e) || !json_string_length(e))
			return "gm_labels holds something that is no label "
			       "name";
	for (i = 0; i < 2; i++) {
		const json_t *id = json_object_get(o, ids[i]);
		const char *t = json_string_value(id);
		size_t n = t ? strspn(t, "0123456789") : 0;
		if (!id)
			continue;
		if (!t || !n || t[n] || n > 20 ||
		    (n == 20 && strcmp(t, "18446744073709551615") > 0))
			return i ? "gm_thrid is not a decimal string of 64 bits"
				 : "gm_msgid is not a decimal string of 64 bits";
	}
	return NULL;
}

static void message_key(char *buf, size_t size, const char *folder,
			uint32_t uidvalidity, uint32_t uid)
{
	snprintf(buf, size, "%s/%" PRIu32 "/%" PRIu32, folder, uidvalidity,
		 uid);
}


/* The latest record of a message is `ix`: an earlier one of the same
 * message elsewhere is superseded. */
static void note_identity(struct verifier *v, uint32_t ix)
{
	const struct record *r = &v->rec[ix];
	char key[4400];
	uint32_t *slot, was;
	const char *copy;

	snprintf(key, sizeof key, "%u/%" PRIu32 "/%" PRIu32 "/%s",
		 (unsigned)r->fmt, r->uidvalidity, r->uid,
		 v->folders[r->folder]);
	slot = smap_slot(&v->by_identity, key);
	if (slot) {
		was = *slot;
		*slot = ix;
		/* The record there may have been reused since for another
		 * message at its place. */
		if (was != ix && v->rec[was].uid == r->uid &&
		    v->rec[was].uidvalidity == r->uidvalidity &&
		    v->rec[was].folder == r->folder &&
		    v->rec[was].fmt == r->fmt)
			v->rec[was].superseded = true;
		return;
	}
	if (!(copy = arena_strdup(&v->arena, key)) ||
	    smap_put(&v->by_identity, copy, ix))
		oom(v);
}

/* A `message` line, or a `moved` line (a store found a message saved
 * earlier at another place: the same record, with the new place and
 * the bytes as stored now). */
static void on_message_line(struct verifier *v, const json_t *o, bool moved)
{
	struct reader *rd = &v->rd;
	const char *loc = manifest_get_str(o, "location");
	const char *sha = manifest_get_str(o, "stored_sha256");
	const char *folder = manifest_get_str(o, "folder");
	uint64_t size = 0, uid = 0, uidvalidity = 0;
	unsigned char digest[32];
	char key[sizeof ((struct store_location *)0)->location + 2];
	struct record *r;
	uint32_t ix;
	int fmt;
	bool sized;

	if (!folder)
		folder = manifest_get_str(o, "folder_raw");
	if (!folder)
		folder = manifest_get_str(o, "folder_hex");
	sized = sha ? manifest_get_u64(o, "stored_size", &size)
		    : manifest_get_u64(o, "received", &size);
	if (!sha && !moved)
		sha = manifest_get_str(o, "sha256");
	if (!manifest_get_u64(o, "uid", &uid) || !uid || uid > UINT32_MAX ||
	    (manifest_get_u64(o, "uidvalidity", &uidvalidity) &&
	     uidvalidity > UINT32_MAX) ||
	    !manifest_parse_sha(sha, digest) || !sized) {
		report(v, VERIFY_MANIFEST, NULL, loc, rd->name,
		       "line %lu: a message line without a valid uid, size "
		       "or sha256",
		       rd->line_no);
		return;
	}
	if (!loc || !*loc) {
		report(v, VERIFY_MANIFEST, NULL, NULL, rd->name,
		       "line %lu: %s UID %" PRIu64 " was recorded without a "
		       "location, so it cannot be checked",
		       rd->line_no, folder ? folder : "?", uid);
		return;
	}
	fmt = v->single_fmt >= 0 ? v->single_fmt : rd->fmt >= 0 ? rd->fmt : 0;
	loc = manifest_location_key(v->formats[fmt], rd->version, loc);
	location_key(key, sizeof key, fmt, loc);
	ix = smap_get(&v->by_location, key);
	if (ix != NO_INDEX && v->rec[ix].uidvalidity != uidvalidity &&
	    is_retired(v, &v->rec[ix])) {
		/* The place was reused by a new generation (mbox offsets
		 * start again at 0); the old record stays, unreachable by
		 * location, and pair_moved finds its copy by hash. */
		if (new_record_at(v, key, &ix))
			return;
	} else if (ix != NO_INDEX &&
		   (v->rec[ix].uid != uid ||
		    v->rec[ix].uidvalidity != uidvalidity ||
		    strcmp(v->folders[v->rec[ix].folder],
			   folder ? folder : "?") != 0) &&
		   !v->rec[ix].superseded) {
		/* Another message at the place of one (an mbox a reader
		 * rewrote, a healed tail): the one recorded there before
		 * keeps its record, missing unless recorded again. */
		if (new_record_at(v, key, &ix))
			return;
	}
	if (ix == NO_INDEX) {
		const char *copy;
		char where[4300];
		if (v->nrec == v->arec) {
			size_t a = v->arec ? 2 * v->arec : 1024;
			struct record *n = realloc(v->rec, a * sizeof *n);
			if (!n) {
				oom(v);
				return;
			}
			v->rec = n;
			v->arec = a;
		}
		copy = arena_strdup(&v->arena, key);
		if (!copy || smap_put(&v->by_location, copy,
				      (uint32_t)v->nrec)) {
			oom(v);
			return;
		}
		copy++; /* past the format */
		ix = (uint32_t)v->nrec++;
		v->rec[ix].location = copy;
		container_of(copy, where, sizeof where);
		if (smap_get(&v->by_container, where) == NO_INDEX) {
			const char *c = arena_strdup(&v->arena, where);
			if (!c || smap_put(&v->by_container, c, ix)) {
				oom(v);
				return;
			}
		}
	}
	/* Recorded again (a later run saved the same place anew): the
	 * latest record is the one that counts. */
	r = &v->rec[ix];
	r->folder = intern_folder(v, folder ? folder : "?");
	if (r->folder == NO_INDEX) {
		oom(v);
		return;
	}
	r->run = rd->run;
	r->uid = (uint32_t)uid;
	r->uidvalidity = (uint32_t)uidvalidity;
	r->size = size;
	memcpy(r->sha, digest, 32);
	r->fmt = (uint8_t)fmt;
	if (size > v->max_size)
		v->max_size = size;
	r->confirmed = false;
	r->found = false;
	{
		const char *bad = gmail_fields_bad(o);
		char mkey[4400];
		const char *copy;
		if (bad)
			report(v, VERIFY_MANIFEST, NULL, loc, rd->name,
			       "line %lu: %.200s UID %" PRIu64 ": %s",
			       rd->line_no, folder ? folder : "?", uid, bad);
		r->gmail = !bad && json_is_array(json_object_get(o, "gm_labels"));
		message_key(mkey, sizeof mkey, folder ? folder : "?",
			    (uint32_t)uidvalidity, (uint32_t)uid);
		uint32_t *slot = smap_slot(&v->by_message, mkey);
		/* Moved: the labels are those recorded before. */
		if (moved && slot && *slot != ix)
			r->gmail = v->rec[*slot].gmail;
		if (slot) {
			*slot = ix; /* the latest record of the message */
		} else if (!(copy = arena_strdup(&v->arena, mkey)) ||
			   smap_put(&v->by_message, copy, ix)) {
			oom(v);
			return;
		}
	}
	r->superseded = false;
	note_identity(v, ix);
	if (rd->nbatch == rd->abatch) {
		size_t a = rd->abatch ? 2 * rd->abatch : 1024;
		uint32_t *b = realloc(rd->batch, a * sizeof *b);
		if (!b) {
			oom(v);
			return;
		}
		rd->batch = b;
		rd->abatch = a;
	}
	rd->batch[rd->nbatch++] = ix;
}

/* A flags line: flags (and, on Gmail, labels) changed for a message
 * saved earlier.  Its labels must be well formed; a change for a message
 * no manifest recorded is noted. */
static void on_flags_line(struct verifier *v, const json_t *o)
{
	const char *folder = manifest_get_str(o, "folder");
	const char *bad = gmail_fields_bad(o);
	uint64_t uid = 0, uidvalidity = 0;
	char key[4400];
	uint32_t ix;

	if (!folder)
		folder = manifest_get_str(o, "folder_raw");
	if (!folder)
		folder = manifest_get_str(o, "folder_hex");
	if (!folder || !manifest_get_u64(o, "uid", &uid) || !uid ||
	    uid > UINT32_MAX ||
	    !manifest_get_u64(o, "uidvalidity", &uidvalidity) ||
	    uidvalidity > UINT32_MAX) {
		report(v, VERIFY_MANIFEST, NULL, NULL, v->rd.name,
		       "line %lu: a flags line without folder, uidvalidity "
		       "or uid",
		       v->rd.line_no);
		return;
	}
	if (bad) {
		report(v, VERIFY_MANIFEST, NULL, NULL, v->rd.name,
		       "line %lu: %.200s UID %" PRIu64 ": %s", v->rd.line_no,
		       folder, uid, bad);
		return;
	}
	if (!json_object_get(o, "gm_labels"))
		return;
	message_key(key, sizeof key, folder, (uint32_t)uidvalidity,
		    (uint32_t)uid);
	ix = smap_get(&v->by_message, key);
	if (ix == NO_INDEX) {
		report(v, VERIFY_NOTE, NULL, NULL, v->rd.name,
		       "line %lu: a label change for %.200s UID %" PRIu64
		       ", which no manifest before it recorded",
		       v->rd.line_no, folder, uid);
		return;
	}
	v->rec[ix].gmail = true;
	v->res->label_changes++;
}

static void retired_key(char *buf, size_t size, uint32_t uidvalidity,
			const char *folder)
{
	snprintf(buf, size, "%" PRIu32 "/%s", uidvalidity, folder);
}

/* A folder's generation was moved aside: its messages now live elsewhere
 * (the store's scan says where), with the same bytes. */
static void on_retire_line(struct verifier *v, const json_t *o)
{
	const char *folder = manifest_get_str(o, "folder");
	uint64_t old = 0;
	char key[4400];
	const char *copy;

	if (!folder)
		folder = manifest_get_str(o, "folder_raw");
	if (!folder)
		folder = manifest_get_str(o, "folder_hex");
	if (!folder || !manifest_get_u64(o, "uidvalidity_old", &old) ||
	    old > UINT32_MAX) {
		report(v, VERIFY_MANIFEST, NULL, NULL, v->rd.name,
		       "line %lu: a retire line without folder or "
		       "uidvalidity_old",
		       v->rd.line_no);
		return;
	}
	retired_key(key, sizeof key, (uint32_t)old, folder);
	if (smap_get(&v->retired, key) != NO_INDEX)
		return;
	if (!(copy = arena_strdup(&v->arena, key)) ||
	    smap_put(&v->retired, copy, 0))
		oom(v);
}

static void on_header(struct verifier *v, const json_t *o)
{
	struct reader *rd = &v->rd;
	const json_t *prev = json_object_get(o, "prev");
	const char *fmt = manifest_get_str(o, "format");
	uint64_t version = 0;

	rd->header = true;
	if (!manifest_get_u64(o, "manifest", &version) || version < 1 ||
	    version > MANIFEST_VERSION_MAX) {
		report(v, VERIFY_MANIFEST, NULL, NULL, rd->name,
		       "manifest version %" PRIu64 " is not one this imapsnap "
		       "reads (1 to %d); the rest of the file is skipped",
		       version, MANIFEST_VERSION_MAX);
		rd->skip = true;
		return;
	}
	rd->version = version;
	if (json_is_null(prev)) {
		rd->prev_null = true;
	} else if (json_is_object(prev) && manifest_get_str(prev, "file") &&
		   is_sha_text(manifest_get_str(prev, "sha256"))) {
		rd->prev_set = true;
		snprintf(rd->prev_name, sizeof rd->prev_name, "%s",
			 manifest_get_str(prev, "file"));
		snprintf(rd->prev_sha, sizeof rd->prev_sha, "%s",
			 manifest_get_str(prev, "sha256"));
	}
	if (v->single_fmt >= 0)
		return;
	if (!fmt) {
		report(v, VERIFY_MANIFEST, NULL, NULL, rd->name,
		       "the run line names no format");
		return;
	}
	rd->fmt = intern_format(v, fmt);
	if (rd->fmt == -1)
		oom(v);
	else if (rd->fmt == -2)
		report(v, VERIFY_MANIFEST, NULL, NULL, rd->name,
		       "more than %d formats in one destination", MAX_FORMATS);
}

static void confirm_batch(struct verifier *v)
{
	struct reader *rd = &v->rd;

	for (size_t i = 0; i < rd->nbatch; i++)
		v->rec[rd->batch[i]].confirmed = true;
	rd->nbatch = 0;
}

static void handle_line(struct verifier *v, const char *text, size_t len)
{
	struct reader *rd = &v->rd;
	json_error_t jerr;
	json_t *o;
	const char *type;

	rd->line_no++;
	if (rd->skip)
		return;
	o = json_loadb(text, len, JSON_REJECT_DUPLICATES, &jerr);
	type = manifest_get_str(o, "type");
	if (!o || !type) {
		report(v, VERIFY_MANIFEST, NULL, NULL, rd->name,
		       "line %lu: %s", rd->line_no,
		       o ? "no \"type\"" : jerr.text);
		json_decref(o);
		return;
	}
	if (!rd->header && strcmp(type, "run") != 0) {
		report(v, VERIFY_MANIFEST, NULL, NULL, rd->name,
		       "line %lu: the file does not start with a run line",
		       rd->line_no);
		rd->header = true; /* say it once */
	}
	if (strcmp(type, "run") == 0) {
		if (rd->line_no == 1)
			on_header(v, o);
		else
			report(v, VERIFY_MANIFEST, NULL, NULL, rd->name,
			       "line %lu: a second run line", rd->line_no);
	} else if (strcmp(type, "message") == 0) {
		on_message_line(v, o, false);
	} else if (strcmp(type, "moved") == 0) {
		on_message_line(v, o, true);
	} else if (strcmp(type, "commit") == 0) {
		confirm_batch(v);
	} else if (strcmp(type, "commit_failed") == 0) {
		rd->nbatch = 0;
	} else if (strcmp(type, "end") == 0) {
		rd->ended = true;
		if (rd->end_confirms)
			confirm_batch(v);
	} else if (strcmp(type, "retire") == 0) {
		on_retire_line(v, o);
	} else if (strcmp(type, "flags") == 0) {
		on_flags_line(v, o);
	} else if (strcmp(type, "server") && strcmp(type, "server_id") &&
		   strcmp(type, "folder") && strcmp(type, "skipped")) {
		report(v, VERIFY_MANIFEST, NULL, NULL, rd->name,
		       "line %lu: unknown line type \"%.40s\"", rd->line_no,
		       type);
	}
	json_decref(o);
}

static int feed_line(void *ctx, const char *text, size_t len)
{
	struct verifier *v = ctx;

	if (!text) {
		v->rd.line_no++;
		report(v, VERIFY_MANIFEST, NULL, NULL, v->rd.name,
		       "line %lu is longer than %u bytes", v->rd.line_no,
		       LINE_LIMIT);
	} else {
		handle_line(v, text, len);
	}
	return v->fatal ? 1 : 0;
}

static void reader_feed(struct verifier *v, const char *data, size_t len)
{
	if (!v->fatal && !EVP_DigestUpdate(v->rd.md, data, len))
		hash_failed(v);
	if (!v->fatal &&
	    manifest_lines_feed(&v->rd.lines, data, len, feed_line, v) < 0)
		oom(v);
}

/* The file ended; `sha` receives its SHA-256. */
static void reader_end(struct verifier *v, char sha[65])
{
	struct reader *rd = &v->rd;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;

	if (!EVP_DigestFinal_ex(rd->md, md, &mdlen) || mdlen != 32) {
		hash_failed(v);
		memset(md, 0, sizeof md);
	}
	manifest_sha_hex(md, sha);
	if (manifest_lines_pending(&rd->lines) && !rd->skip) {
		/* A crash can cut the last line short; after an "end" line
		 * nothing may be cut. */
		report(v, rd->ended ? VERIFY_MANIFEST : VERIFY_NOTE, NULL,
		       NULL, rd->name,
		       rd->ended ? "the file ends in an incomplete line"
				 : "the run was interrupted in the middle "
				   "of a line; that line is ignored");
	}
	if (!rd->header)
		report(v, VERIFY_NOTE, NULL, NULL, rd->name,
		       "the run was interrupted before it recorded anything");
	else if (!rd->ended && !rd->skip)
		report(v, VERIFY_NOTE, NULL, NULL, rd->name,
		       "the run did not end (interrupted); messages it "
		       "recorded without a commit may be absent");
	v->res->runs++;
	if (!rd->ended)
		v->res->runs_interrupted++;
	rd->nbatch = 0; /* never confirmed */
	manifest_lines_reset(&rd->lines);
}

/* Read the manifest at dirfd/name (a run file). */
static enum isnap_status read_run_file(struct verifier *v, int dirfd,
				       const char *name, char sha[65],
				       bool *present)
{
	char buf[65536];
	int fd;

	*present = false;
	if (add_run(v, name) != 0)
		return oom(v);
	/* A FIFO named like a run file must not block verify. */
	fd = beneath_open_file(dirfd, name, O_RDONLY, 0);
	if (fd < 0) {
		if (errno != ENOENT) {
			*present = true; /* there, but not readable */
			report(v, VERIFY_UNREADABLE, NULL, NULL, name,
			       "%s", isnap_strerror(errno));
			snprintf(sha, 65, "(unreadable)");
		}
		return ISNAP_OK;
	}
	*present = true;
	reader_start(v, v->runs[v->nruns - 1]);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			report(v, VERIFY_UNREADABLE, NULL, NULL, name, "%s",
			       strerror(errno));
			break;
		}
		if (n == 0)
			break;
		reader_feed(v, buf, (size_t)n);
		if (v->fatal)
			break;
	}
	close(fd);
	reader_end(v, sha);
	return v->fatal;
}

/* ---------------------------------------------------------------------- */
/* The chain (DEST/.imapsnap/manifest)                                     */

struct chain_entry {
	char sha[65];
	char name[MANIFEST_RUN_NAME_MAX];
};

static int cmp_name(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Parse the chain file; malformed lines are reported and left out. */
static enum isnap_status read_chain(struct verifier *v, int dirfd,
				    struct chain_entry **out, size_t *n)
{
	struct chain_entry *e = NULL;
	size_t ne = 0, ae = 0, len, line_no = 0;
	char *text;
	bool exists;

	*out = NULL;
	*n = 0;
	/* A symbolic link or a FIFO there is neither followed nor opened,
	 * and fails like an unreadable chain. */
	if (manifest_chain_read(dirfd, &text, &len, &exists) != 0)
		return errno == ENOMEM ? oom(v)
				       : isnap_fail_errno(v->err, ISNAP_ELOCAL,
							  "%s/.imapsnap/%s/%s",
							  v->dest, MANIFEST_DIR,
							  MANIFEST_CHAIN);
	if (strlen(text) != len)
		report(v, VERIFY_CHAIN, NULL, NULL, MANIFEST_CHAIN,
		       "holds a NUL byte; what follows it is not read");
	for (char *p = text; *p;) {
		char *nl = strchr(p, '\n');
		size_t l = nl ? (size_t)(nl - p) : strlen(p);
		line_no++;
		if (ne == ae) {
			size_t a = ae ? 2 * ae : 64;
			struct chain_entry *x = realloc(e, a * sizeof *x);
			if (!x) {
				free(e);
				free(text);
				return oom(v);
			}
			e = x;
			ae = a;
		}
		if (nl && manifest_chain_parse(p, l, e[ne].sha, e[ne].name))
			ne++;
		else
			report(v, VERIFY_CHAIN, NULL, NULL, MANIFEST_CHAIN,
			       "line %zu is not \"<sha256>  <run file>\"%s",
			       line_no, nl ? "" : " (no newline)");
		p += l + (nl ? 1 : 0);
	}
	free(text);
	*out = e;
	*n = ne;
	return ISNAP_OK;
}

/* Does the run just read name `prev` as its predecessor? */
static void check_prev(struct verifier *v, const struct chain_entry *prev)
{
	struct reader *rd = &v->rd;

	if (!rd->header || rd->skip)
		return;
	if (!prev) {
		if (!rd->prev_null)
			report(v, VERIFY_CHAIN, NULL, NULL, rd->name,
			       "the first run in the chain names a previous "
			       "run (%s): earlier runs were removed",
			       rd->prev_set ? rd->prev_name : "malformed");
		return;
	}
	if (!rd->prev_set || strcmp(rd->prev_name, prev->name) != 0 ||
	    strcmp(rd->prev_sha, prev->sha) != 0)
		report(v, VERIFY_CHAIN, NULL, NULL, rd->name,
		       "names %s %.16s… as the run before it, but the chain "
		       "has %s %.16s… there",
		       rd->prev_set ? rd->prev_name : "none",
		       rd->prev_set ? rd->prev_sha : "", prev->name,
		       prev->sha);
}

static bool in_chain(const struct chain_entry *e, size_t n, const char *name)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(e[i].name, name) == 0)
			return true;
	return false;
}

/* Run files present but not chained, sorted by name (= time). */
static enum isnap_status unchained_files(struct verifier *v, int dirfd,
					 const struct chain_entry *e, size_t n,
					 char ***out, size_t *nout)
{
	int fd = openat(dirfd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
	struct dirent *de;
	char **names = NULL;
	size_t nn = 0, an = 0;

	*out = NULL;
	*nout = 0;
	if (!d) {
		if (fd >= 0)
			close(fd);
		return isnap_fail_errno(v->err, ISNAP_ELOCAL,
					"%s/.imapsnap/%s", v->dest,
					MANIFEST_DIR);
	}
	while ((de = readdir(d)) != NULL) {
		if (!manifest_is_run_name(de->d_name) || in_chain(e, n, de->d_name))
			continue;
		if (nn == an) {
			size_t a = an ? 2 * an : 8;
			char **x = realloc(names, a * sizeof *x);
			if (!x)
				goto nomem;
			names = x;
			an = a;
		}
		if (!(names[nn] = strdup(de->d_name)))
			goto nomem;
		nn++;
	}
	closedir(d);
	if (nn)
		qsort(names, nn, sizeof *names, cmp_name);
	*out = names;
	*nout = nn;
	return ISNAP_OK;
nomem:
	closedir(d);
	for (size_t i = 0; i < nn; i++)
		free(names[i]);
	free(names);
	return oom(v);
}

/* A run's RFC 3161 token, <run>.tsr beside it (backup --tsa), must name
 * the run file's SHA-256; a token that does not is a CHAIN finding. */
static void check_timestamp(struct verifier *v, int mdir, const char *name,
			    const char *sha_hex, const struct verify_opts *o)
{
	char tsr[MANIFEST_RUN_NAME_MAX + 8], when[64];
	unsigned char sha[32];
	struct isnap_error e = { 0 };
	size_t n = strlen(name);
	bool signed_ok;
	struct stat sb;

	if (n < 6 || !manifest_parse_sha(sha_hex, sha))
		return;
	snprintf(tsr, sizeof tsr, "%.*s.tsr", (int)(n - 6), name);
	if (fstatat(mdir, tsr, &sb, AT_SYMLINK_NOFOLLOW) != 0)
		return;
	/* A link or a FIFO under the token's name is not opened: a FIFO
	 * would make verify wait forever. */
	if (tsa_check(mdir, tsr, sha, o ? o->tsa_cafile : NULL, &signed_ok,
		      when, sizeof when, &e)) {
		report(v, e.status == ISNAP_EINTEGRITY ? VERIFY_CHAIN
						       : VERIFY_UNREADABLE,
		       NULL, NULL, name, "its RFC 3161 timestamp: %s", e.msg);
		return;
	}
	v->res->timestamps++;
	report(v, VERIFY_NOTE, NULL, NULL, name,
	       "timestamped at %s (RFC 3161)%s", when,
	       signed_ok ? ", signature checked"
			 : "; signature not checked (give --tsa-cacert)");
}

static void set_head(struct verifier *v, const char *name, const char *sha)
{
	snprintf(v->res->head_run, sizeof v->res->head_run, "%s", name);
	snprintf(v->res->head_sha256, sizeof v->res->head_sha256, "%s", sha);
}

static enum isnap_status read_manifest_dir(struct verifier *v, int mdir,
					   const struct verify_opts *o)
{
	struct chain_entry *e = NULL;
	size_t n = 0, nun = 0;
	char **un = NULL;
	bool expected = false, have_last = false;
	struct chain_entry last;
	enum isnap_status rc;

	rc = read_chain(v, mdir, &e, &n);
	if (!rc)
		rc = unchained_files(v, mdir, e, n, &un, &nun);
	if (rc)
		goto out;
	if (!n && !nun) {
		report(v, VERIFY_CHAIN, NULL, NULL, NULL,
		       "no manifest at all in %s/.imapsnap/%s", v->dest,
		       MANIFEST_DIR);
		goto out;
	}
	for (size_t i = 0; i < n && !v->fatal; i++) {
		char sha[65];
		bool present;
		if (in_chain(e, i, e[i].name)) {
			report(v, VERIFY_CHAIN, NULL, NULL, e[i].name,
			       "listed twice in the chain");
			continue;
		}
		rc = read_run_file(v, mdir, e[i].name, sha, &present);
		if (rc == ISNAP_ENOMEM)
			goto out;
		rc = ISNAP_OK;
		if (!present) {
			report(v, VERIFY_CHAIN, NULL, NULL, e[i].name,
			       "in the chain, but the file is gone");
			continue;
		}
		if (sha[0] == '(')
			continue; /* unreadable, reported */
		if (strcmp(sha, e[i].sha) != 0)
			report(v, VERIFY_CHAIN, NULL, NULL, e[i].name,
			       "changed since it was chained: its SHA-256 is "
			       "%s, the chain says %s",
			       sha, e[i].sha);
		else if (o && o->expect_sha256 &&
			 strcmp(o->expect_sha256, sha) == 0)
			expected = true;
		check_timestamp(v, mdir, e[i].name, sha, o);
		check_prev(v, i ? &e[i - 1] : NULL);
		set_head(v, e[i].name, e[i].sha);
		last = e[i];
		have_last = true;
	}
	for (size_t i = 0; i < nun && !v->fatal; i++) {
		struct chain_entry here;
		bool present;
		rc = read_run_file(v, mdir, un[i], here.sha, &present);
		if (rc == ISNAP_ENOMEM)
			goto out;
		rc = ISNAP_OK;
		report(v, VERIFY_CHAIN, NULL, NULL, un[i],
		       "not in the chain: a run that was interrupted (the "
		       "next backup chains it) or a file added later");
		check_prev(v, have_last ? &last : NULL);
		snprintf(here.name, sizeof here.name, "%s", un[i]);
		set_head(v, here.name, here.sha);
		last = here;
		have_last = true;
	}
	if (o && o->expect_sha256 && !expected)
		report(v, VERIFY_CHAIN, NULL, NULL, NULL,
		       "no run in the chain has the SHA-256 %s that you "
		       "kept: the manifests were rewritten or are from "
		       "another backup",
		       o->expect_sha256);
out:
	for (size_t i = 0; i < nun; i++)
		free(un[i]);
	free(un);
	free(e);
	return v->fatal ? v->fatal : rc;
}

/* ---------------------------------------------------------------------- */
/* The manifest inside a single-file export                                */

/* The manifest entry, at the archive's current entry. */
static void read_meta_entry(struct verifier *v, struct manifest_archive *ma,
			    char sha[65])
{
	char buf[65536];
	long n;

	if (add_run(v, MANIFEST_META_NAME) != 0) {
		oom(v);
		return;
	}
	reader_start(v, v->runs[v->nruns - 1]);
	/* The copy inside an archive stops at the end line: the archive
	 * exists only because its run finished it. */
	v->rd.end_confirms = true;
	while ((n = manifest_archive_read(ma, buf, sizeof buf)) > 0 &&
	       !v->fatal)
		reader_feed(v, buf, (size_t)n);
	if (n < 0)
		report(v, VERIFY_UNREADABLE, NULL, NULL, MANIFEST_META_NAME,
		       "reading the manifest: %s", manifest_archive_error(ma));
	reader_end(v, sha);
	set_head(v, MANIFEST_META_NAME, sha);
}

static enum isnap_status read_manifest_archive(struct verifier *v,
					       const struct verify_opts *o)
{
	struct manifest_archive *ma = manifest_archive_open(v->dest, v->err);
	enum isnap_status rc = ISNAP_OK;
	bool found = false;
	char sha[65];
	int r;

	if (!ma)
		return ISNAP_ELOCAL;
	/* The file is there and readable: from here on, what fails is the
	 * backup, not the access to it. */
	if (!manifest_archive_start(ma)) {
		report(v, VERIFY_UNREADABLE, NULL, NULL, NULL, "%s: %s",
		       v->dest, manifest_archive_error(ma));
		goto out;
	}
	while ((r = manifest_archive_next(ma)) != 0 && !v->fatal) {
		if (r < 0) {
			report(v, VERIFY_UNREADABLE, NULL, NULL, NULL,
			       "reading %s: %s", v->dest,
			       manifest_archive_error(ma));
			break;
		}
		if (found)
			report(v, VERIFY_MANIFEST, NULL, NULL,
			       MANIFEST_META_NAME,
			       "the archive holds two manifests");
		else
			read_meta_entry(v, ma, sha);
		found = true;
	}
	if (!found)
		report(v, VERIFY_MANIFEST, NULL, NULL, NULL,
		       "%s holds no manifest (%s)", v->dest,
		       MANIFEST_META_NAME);
	else if (o && o->expect_sha256 && strcmp(o->expect_sha256, sha) != 0)
		report(v, VERIFY_CHAIN, NULL, NULL, MANIFEST_META_NAME,
		       "its SHA-256 is %s, not the %s that you kept", sha,
		       o->expect_sha256);
out:
	manifest_archive_close(ma);
	return v->fatal ? v->fatal : rc;
}

/* ---------------------------------------------------------------------- */
/* Reading the messages back                                               */

/* Where a found message or stray is, for a finding: inside a volume,
 * "<volume>!<entry>". */
static void display_location(const struct verifier *v, const char *loc,
			     char *buf, size_t size)
{
	snprintf(buf, size, "%s%s%s", v->volume, v->volume[0] ? "!" : "",
		 loc);
}

static enum isnap_status scan_begin(void *ctx, const char *location,
				    struct isnap_error *err)
{
	struct verifier *v = ctx;
	char key[sizeof v->cur_loc + 2];

	(void)err;
	display_location(v, location, v->cur_loc, sizeof v->cur_loc);
	v->cur_raw = v->volume[0] ? strlen(v->volume) + 1 : 0;
	location_key(key, sizeof key, v->scan_fmt, location);
	v->cur = smap_get(&v->by_location, key);
	/* A place whose message is recorded elsewhere since holds no
	 * recorded message now. */
	if (v->cur != NO_INDEX && v->rec[v->cur].superseded)
		v->cur = NO_INDEX;
	v->cur_open = true;
	v->cur_size = 0;
	if (!EVP_DigestInit_ex(v->md, EVP_sha256(), NULL))
		return oom(v);
	return ISNAP_OK;
}

/* Read no more of a message than its record's size (and one byte to
 * tell it grew); of a message no record names, no more than the largest
 * record (it can only be a recorded message moved). */
static uint64_t scan_limit(void *ctx)
{
	struct verifier *v = ctx;

	return v->cur != NO_INDEX ? v->rec[v->cur].size : v->max_size;
}

static enum isnap_status scan_data(void *ctx, const void *data, size_t len,
				   struct isnap_error *err)
{
	struct verifier *v = ctx;

	(void)err;
	if (!EVP_DigestUpdate(v->md, data, len))
		return oom(v);
	v->cur_size += len;
	v->res->bytes += len;
	return ISNAP_OK;
}

/* A 32-bit decimal without leading zero at *p. */
static int parse_u32(const char **p, uint32_t *out)
{
	uint64_t n = 0;
	const char *q = *p;

	if (*q < '1' || *q > '9')
		return -1;
	while (*q >= '0' && *q <= '9' && n <= UINT32_MAX)
		n = n * 10 + (uint64_t)(*q++ - '0');
	if (n > UINT32_MAX)
		return -1;
	*out = (uint32_t)n;
	*p = q;
	return 0;
}

/* "<uidvalidity>_<uid>.imapsnap", the Maildir name (docs/maildir.md). */
static int parse_maildir_name(const char *s, uint32_t *uidvalidity,
			      uint32_t *uid)
{
	if (parse_u32(&s, uidvalidity) || *s++ != '_' || parse_u32(&s, uid))
		return -1;
	return strncmp(s, ".imapsnap", 9) == 0 ? 0 : -1;
}

/* For an unexpected message: the folder of a recorded message in the same
 * place, and the UID from a Maildir-style name when there is one. */
static void guess_owner(struct verifier *v, const char *loc,
			struct record *out)
{
	char where[4300];
	const char *base = strrchr(loc, '/');
	uint32_t ix;

	memset(out, 0, sizeof *out);
	out->location = loc;
	out->folder = NO_INDEX;
	container_of(loc, where, sizeof where);
	ix = smap_get(&v->by_container, where);
	if (ix != NO_INDEX)
		out->folder = v->rec[ix].folder;
	base = base ? base + 1 : loc;
	if (parse_maildir_name(base, &out->uidvalidity, &out->uid) != 0)
		out->uidvalidity = out->uid = 0;
}

static enum isnap_status scan_end(void *ctx, struct isnap_error *err)
{
	struct verifier *v = ctx;
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned mdlen = 0;
	char want[65], got[65];
	struct record *r;

	(void)err;
	v->cur_open = false;
	if (!EVP_DigestFinal_ex(v->md, md, &mdlen))
		return oom(v);
	if (v->cur == NO_INDEX) {
		struct found *f;
		if (v->nunexp == v->aunexp) {
			size_t a = v->aunexp ? 2 * v->aunexp : 64;
			struct found *x = realloc(v->unexp, a * sizeof *x);
			if (!x)
				return oom(v);
			v->unexp = x;
			v->aunexp = a;
		}
		f = &v->unexp[v->nunexp];
		if (!(f->location = arena_strdup(&v->arena, v->cur_loc)))
			return oom(v);
		f->raw = v->cur_raw;
		f->size = v->cur_size;
		memcpy(f->sha, md, 32);
		v->nunexp++;
		return ISNAP_OK;
	}
	r = &v->rec[v->cur];
	if (r->found) {
		report(v, VERIFY_UNEXPECTED, r, v->cur_loc, NULL,
		       "in the backup twice");
		return ISNAP_OK;
	}
	r->found = true;
	v->res->checked++;
	manifest_sha_hex(r->sha, want);
	manifest_sha_hex(md, got);
	if (v->cur_size > r->size)
		report(v, VERIFY_ALTERED, r, v->cur_loc, NULL,
		       "longer than the %" PRIu64 " bytes recorded (not read "
		       "further)",
		       r->size);
	else if (v->cur_size != r->size)
		report(v, VERIFY_ALTERED, r, v->cur_loc, NULL,
		       "%" PRIu64 " bytes recorded, %" PRIu64 " found",
		       r->size, v->cur_size);
	else if (memcmp(md, r->sha, 32) != 0)
		report(v, VERIFY_ALTERED, r, v->cur_loc, NULL,
		       "SHA-256 %s recorded, %s found", want, got);
	else
		v->res->matched++;
	return ISNAP_OK;
}

/* store_scan_cb.unreadable: a message (begun or not) that cannot be
 * read, or a file, directory or volume. */
static enum isnap_status scan_unreadable(void *ctx, const char *location,
					 const char *why,
					 struct isnap_error *err)
{
	struct verifier *v = ctx;
	char key[sizeof v->cur_loc + 2], shown[sizeof v->cur_loc];
	uint32_t ix;
	struct record *r;

	(void)err;
	if (v->cur_open) {
		ix = v->cur;
		v->cur_open = false;
	} else {
		location_key(key, sizeof key, v->scan_fmt, location);
		ix = smap_get(&v->by_location, key);
	}
	display_location(v, location, shown, sizeof shown);
	if (ix == NO_INDEX) {
		/* No message of ours by that name: a file, a directory or a
		 * volume, whose messages are missing now. */
		if (!strchr(location, '@') && !strstr(location, ".imapsnap"))
			v->format_failed[v->scan_fmt] = true;
		report(v, VERIFY_UNREADABLE, NULL, shown, NULL, "%s", why);
		return ISNAP_OK;
	}
	r = &v->rec[ix];
	if (r->found)
		return ISNAP_OK;
	r->found = true;
	v->res->checked++;
	report(v, VERIFY_UNREADABLE, r, shown, NULL, "%s", why);
	return ISNAP_OK;
}

/* Our own entries inside a volume, which are no messages. */
static bool is_meta_entry(const char *path)
{
	return manifest_is_meta_entry(path) ||
	       !strncmp(path, ".imapsnap/", 10);
}

/* store_scan_cb.stray */
static enum isnap_status scan_stray(void *ctx, const char *path,
				    const char *what, bool leftover,
				    struct isnap_error *err)
{
	struct verifier *v = ctx;
	char shown[sizeof v->cur_loc];
	struct stray *st;

	(void)err;
	display_location(v, path, shown, sizeof shown);
	if (leftover) {
		report(v, VERIFY_NOTE, NULL, shown, NULL,
		       "%s; the next backup removes it", what);
		return ISNAP_OK;
	}
	if (v->volume[0]) {
		/* Only this format's scan sees inside its volumes. */
		if (!is_meta_entry(path))
			report(v, VERIFY_UNEXPECTED, NULL, shown, NULL,
			       "%s, recorded in no manifest", what);
		return ISNAP_OK;
	}
	if (v->nstrays == v->astrays) {
		size_t a = v->astrays ? 2 * v->astrays : 64;
		struct stray *x = realloc(v->strays, a * sizeof *x);
		if (!x)
			return oom(v);
		v->strays = x;
		v->astrays = a;
	}
	st = &v->strays[v->nstrays];
	st->path = arena_strdup(&v->arena, path);
	st->what = arena_strdup(&v->arena, what);
	if (!st->path || !st->what)
		return oom(v);
	st->fmt = (uint8_t)v->scan_fmt;
	v->nstrays++;
	return ISNAP_OK;
}

static void scan_volume(void *ctx, const char *name)
{
	struct verifier *v = ctx;

	snprintf(v->volume, sizeof v->volume, "%s", name ? name : "");
}

static enum isnap_status scan_all(struct verifier *v)
{
	const struct store_scan_cb cb = {
		.ctx = v,
		.begin = scan_begin,
		.data = scan_data,
		.end = scan_end,
		.unreadable = scan_unreadable,
		.stray = scan_stray,
		.limit = scan_limit,
		.volume = scan_volume,
	};

	for (size_t i = 0; i < v->nformats; i++) {
		struct isnap_error e = { 0 };
		enum isnap_status rc;
		v->scan_fmt = (int)i;
		v->volume[0] = '\0';
		rc = store_scan(v->formats[i], v->dest, &cb, &e);
		if (v->fatal)
			return v->fatal;
		if (rc == ISNAP_ENOMEM)
			return oom(v);
		if (rc) {
			v->format_failed[i] = v->scan_failed[i] = true;
			if (v->cur_open)
				scan_unreadable(v, v->cur_loc, e.msg, &e);
			report(v, VERIFY_UNREADABLE, NULL, NULL, NULL,
			       "reading the %s backup: %s", v->formats[i],
			       e.msg);
		}
		v->cur_open = false;
	}
	return ISNAP_OK;
}

/* Whether format `fmt`'s scan reported `path`, or a directory above it,
 * as a stray. */
static bool stray_for(const struct smap *set, int fmt, const char *path)
{
	char key[4400];
	size_t n = strlen(path);

	if (n + 2 > sizeof key)
		return true;
	location_key(key, sizeof key, fmt, path);
	for (;;) {
		char *slash;
		if (smap_get(set, key) != NO_INDEX)
			return true;
		if (!(slash = strrchr(key + 1, '/')))
			return false;
		*slash = '\0';
	}
}

/* A file no manifest accounts for is unexpected when no format's scan
 * claims it: each scan walks the whole destination and reports what is
 * no part of its format. */
static enum isnap_status report_strays(struct verifier *v)
{
	struct smap set = { 0 }, done = { 0 };
	enum isnap_status rc = ISNAP_OK;
	char key[4400];

	for (size_t i = 0; i < v->nstrays && !rc; i++) {
		const char *copy;
		location_key(key, sizeof key, v->strays[i].fmt,
			     v->strays[i].path);
		if (smap_get(&set, key) != NO_INDEX)
			continue;
		if (!(copy = arena_strdup(&v->arena, key)) ||
		    smap_put(&set, copy, 0))
			rc = oom(v);
	}
	for (size_t i = 0; i < v->nstrays && !rc; i++) {
		const struct stray *st = &v->strays[i];
		bool everywhere = true;
		for (size_t f = 0; f < v->nformats && everywhere; f++)
			if (f != st->fmt && !v->scan_failed[f])
				everywhere = stray_for(&set, (int)f, st->path);
		if (!everywhere || smap_get(&done, st->path) != NO_INDEX)
			continue;
		if (smap_put(&done, st->path, 0)) {
			rc = oom(v);
			break;
		}
		report(v, VERIFY_UNEXPECTED, NULL, st->path, NULL,
		       "%s, recorded in no manifest", st->what);
	}
	smap_free(&set);
	smap_free(&done);
	return rc;
}

static void report_unexpected(struct verifier *v, const struct found *u)
{
	struct record guess;
	struct verify_finding f = { .kind = VERIFY_UNEXPECTED,
				    .location = u->location };

	guess_owner(v, u->location + u->raw, &guess);
	f.folder = guess.folder != NO_INDEX ? v->folders[guess.folder] : NULL;
	f.uidvalidity = guess.uidvalidity;
	f.uid = guess.uid;
	f.detail = "in the backup, but recorded in no manifest";
	count(v->res, f.kind);
	if (v->cb && v->cb->finding)
		v->cb->finding(v->cb->ctx, &f);
}

static bool is_retired(struct verifier *v, const struct record *r)
{
	char key[4400];

	retired_key(key, sizeof key, r->uidvalidity, v->folders[r->folder]);
	return smap_get(&v->retired, key) != NO_INDEX;
}

/* Pair each message found at no recorded place with a recorded one not
 * found that has the same size and SHA-256: the same message, moved.  A
 * move the manifest explains (a retire line: the folder's generation was
 * kept aside) matches; any other is reported as missing from its place,
 * and the copy is not reported a second time as unexpected. */
static enum isnap_status pair_moved(struct verifier *v)
{
	struct smap by_sha = { 0 };
	uint32_t *next = NULL;
	enum isnap_status rc = ISNAP_OK;
	char key[65];

	if (!v->nunexp)
		return ISNAP_OK;
	if (v->nrec && !(next = malloc(v->nrec * sizeof *next)))
		return oom(v);
	for (size_t i = 0; i < v->nrec; i++) {
		uint32_t *head;
		const char *copy;
		if (v->rec[i].found || v->rec[i].superseded)
			continue;
		manifest_sha_hex(v->rec[i].sha, key);
		if ((head = smap_slot(&by_sha, key))) {
			next[i] = *head;
			*head = (uint32_t)i;
			continue;
		}
		next[i] = NO_INDEX;
		if (!(copy = arena_strdup(&v->arena, key)) ||
		    smap_put(&by_sha, copy, (uint32_t)i)) {
			rc = oom(v);
			goto out;
		}
	}
	for (size_t j = 0; j < v->nunexp; j++) {
		const struct found *u = &v->unexp[j];
		uint32_t i;
		manifest_sha_hex(u->sha, key);
		for (i = smap_get(&by_sha, key); i != NO_INDEX; i = next[i])
			if (!v->rec[i].found && v->rec[i].size == u->size)
				break;
		if (i == NO_INDEX) {
			report_unexpected(v, u);
			continue;
		}
		v->rec[i].found = true;
		v->res->checked++;
		if (is_retired(v, &v->rec[i])) {
			v->res->matched++;
			v->res->moved++;
		} else {
			report(v, VERIFY_MISSING, &v->rec[i], NULL, NULL,
			       "not where it was saved; found unchanged at "
			       "%s",
			       u->location);
		}
	}
out:
	free(next);
	smap_free(&by_sha);
	return rc;
}

/* The stray that `location` lies in or below (a symbolic link or a FIFO
 * where its folder's directory, its cur/ or its mbox file should be), or
 * that is its Maildir file (the location without ":2,<flags>"); -1 for
 * none. */
static ssize_t stray_container(const struct verifier *v, const char *location)
{
	size_t ln = strlen(location);

	for (size_t i = 0; i < v->nstrays; i++) {
		const char *p = v->strays[i].path;
		size_t n = strlen(p);
		if ((n <= ln && !strncmp(location, p, n) &&
		     strchr("/@!", location[n])) ||
		    (n > ln && !strncmp(location, p, ln) &&
		     strchr(":,", p[ln])))
			return (ssize_t)i;
	}
	return -1;
}

static void report_missing(struct verifier *v)
{
	for (size_t i = 0; i < v->nrec; i++) {
		struct record *r = &v->rec[i];
		ssize_t in;
		if (r->found || r->superseded)
			continue;
		if ((in = stray_container(v, r->location)) >= 0) {
			report(v, VERIFY_MISSING, r, NULL, NULL,
			       "not read: %s is %s, never followed or opened",
			       v->strays[in].path, v->strays[in].what);
			continue;
		}
		if (!r->confirmed) {
			report(v, VERIFY_NOTE, r, NULL, NULL,
			       "not in the backup, and its run never "
			       "confirmed saving it (interrupted)");
			continue;
		}
		report(v, VERIFY_MISSING, r, NULL, NULL,
		       v->format_failed[r->fmt]
			       ? "not found (reading the backup failed, see "
				 "above)"
			       : "recorded as saved, not in the backup");
	}
}

/* ---------------------------------------------------------------------- */

/* DEST/.imapsnap/manifest into *mdir (-1 when DEST holds no manifest
 * directory, which is reported), following no symbolic link at .imapsnap
 * or manifest: verify reads exactly what backup would have written. */
static enum isnap_status open_manifest_dir(struct verifier *v, int *mdir)
{
	static const char rel[] = ".imapsnap/" MANIFEST_DIR;
	int top = beneath_open_top(v->dest, false), sfd;
	enum isnap_status rc = ISNAP_OK;

	*mdir = -1;
	if (top < 0)
		return isnap_fail_errno(v->err, ISNAP_ELOCAL, "%s", v->dest);
	sfd = beneath_open_dir(top, ".imapsnap", false);
	if (sfd < 0 && errno == ENOENT)
		rc = isnap_fail(v->err, ISNAP_ELOCAL,
				"%s is not an imapsnap backup (no .imapsnap)",
				v->dest);
	else if (sfd < 0 || (*mdir = beneath_open_dir(sfd, MANIFEST_DIR,
						       false)) < 0) {
		if (sfd >= 0 && errno == ENOENT)
			report(v, VERIFY_CHAIN, NULL, NULL, NULL,
			       "%s/.imapsnap holds no manifest (%s/)", v->dest,
			       MANIFEST_DIR);
		else
			rc = isnap_fail_errno(v->err, ISNAP_ELOCAL, "%s/%.*s",
					      v->dest,
					      (int)beneath_culprit(top, rel),
					      rel);
	}
	if (sfd >= 0)
		close(sfd);
	close(top);
	return rc;
}

static enum isnap_status read_manifests(struct verifier *v,
					const struct verify_opts *o)
{
	int mdir;
	enum isnap_status rc;
	struct stat sb;
	const char *single = store_single_file_format(v->dest);

	if (single) {
		v->single_fmt = intern_format(v, single);
		if (v->single_fmt < 0)
			return oom(v);
		return read_manifest_archive(v, o);
	}
	if (stat(v->dest, &sb) != 0)
		return isnap_fail_errno(v->err, ISNAP_ELOCAL, "%s", v->dest);
	if (!S_ISDIR(sb.st_mode))
		return isnap_fail(v->err, ISNAP_ELOCAL,
				  "%s is neither a directory nor a "
				  "single-file export",
				  v->dest);
	rc = open_manifest_dir(v, &mdir);
	if (rc || mdir < 0)
		return rc;
	rc = read_manifest_dir(v, mdir, o);
	close(mdir);
	return rc;
}

enum isnap_status verify_run(const char *dest, const struct verify_opts *opts,
			     const struct verify_callbacks *cb,
			     struct verify_result *res,
			     struct isnap_error *err)
{
	struct verifier v = { .dest = dest, .cb = cb, .res = res, .err = err,
			      .single_fmt = -1 };
	enum isnap_status rc;

	memset(res, 0, sizeof *res);
	if (opts && opts->expect_sha256 && !is_sha_text(opts->expect_sha256))
		return isnap_fail(err, ISNAP_EUSAGE,
				  "\"%s\" is not a SHA-256 (64 lower-case hex "
				  "digits)",
				  opts->expect_sha256);
	v.md = EVP_MD_CTX_new();
	v.rd.md = EVP_MD_CTX_new();
	if (!v.md || !v.rd.md) {
		rc = oom(&v);
		goto out;
	}
	rc = read_manifests(&v, opts);
	if (!rc)
		rc = scan_all(&v);
	if (!rc)
		rc = pair_moved(&v);
	if (!rc)
		rc = report_strays(&v);
	if (!rc)
		report_missing(&v);
	res->recorded = v.nrec;
	for (size_t i = 0; i < v.nrec; i++) {
		res->labelled += v.rec[i].gmail && !v.rec[i].superseded;
		res->recorded -= v.rec[i].superseded;
	}
	if (!rc && (res->missing || res->altered || res->unexpected ||
		    res->unreadable || res->chain_errors ||
		    res->manifest_errors))
		rc = isnap_fail(err, ISNAP_EINTEGRITY,
				"%s does not match its manifests", dest);
out:
	EVP_MD_CTX_free(v.md);
	EVP_MD_CTX_free(v.rd.md);
	manifest_lines_free(&v.rd.lines);
	free(v.rd.batch);
	free(v.rec);
	free(v.folders);
	free(v.runs);
	smap_free(&v.by_location);
	smap_free(&v.by_container);
	smap_free(&v.folder_ix);
	smap_free(&v.by_message);
	smap_free(&v.retired);
	smap_free(&v.by_identity);
	free(v.unexp);
	free(v.strays);
	arena_free(&v.arena);
	return rc;
}
