/*
 * restore_backup.c — see restore_backup.h; docs/restore.md says why.
 *
 * Three steps:
 *   1. read every manifest: one record per message location (the latest
 *      line for a location wins, later `flags` lines update the flags),
 *      and per folder its delimiter and latest UIDVALIDITY;
 *   2. plan: the records of each folder's latest generation, selected by
 *      --include/--exclude, grouped by target folder; the target side
 *      marks those already there;
 *   3. store_scan each format the backup uses; every message still to do
 *      is rebuilt into a spool while its SHA-256 is computed, compared
 *      with the manifest's, and appended.
 * Memory: one record per message (about 150 bytes and its location) and
 * one spool (1 MiB in memory at most, bigger messages in a temporary
 * file).
 */
#include "restore_backup.h"

#include <errno.h>
#include <fnmatch.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "folder_map.h"
#include "gmail_labels.h"
#include "manifest.h"
#include "manifest_read.h"
#include "mutf7.h"
#include "restore_spool.h"
#include "restore_state.h"
#include "store/mboxrd.h"
#include "store/store.h"

#define SPOOL_MEM (1u << 20)
#define MAX_FORMATS 16
#define NONE UINT32_MAX

/* ---------------------------------------------------------------------- */
/* A string → index map                                                    */

struct smap {
	char **keys;
	uint32_t *vals;
	size_t cap, n;
};

static uint64_t hash_str(const char *s)
{
	uint64_t h = 1469598103934665603u;

	while (*s)
		h = (h ^ (unsigned char)*s++) * 1099511628211u;
	return h;
}

static uint32_t *smap_slot(struct smap *m, const char *key)
{
	if (!m->cap)
		return NULL;
	for (size_t i = hash_str(key) & (m->cap - 1);;
	     i = (i + 1) & (m->cap - 1)) {
		if (!m->keys[i])
			return NULL;
		if (!strcmp(m->keys[i], key))
			return &m->vals[i];
	}
}

static uint32_t smap_get(struct smap *m, const char *key)
{
	uint32_t *v = smap_slot(m, key);

	return v ? *v : NONE;
}

/* Set key → val (the map keeps its own copy of a new key). */
static int smap_set(struct smap *m, const char *key, uint32_t val)
{
	uint32_t *v = smap_slot(m, key);
	size_t i;

	if (v) {
		*v = val;
		return 0;
	}
	if (2 * (m->n + 1) > m->cap) {
		size_t cap = m->cap ? 2 * m->cap : 1024;
		char **keys = calloc(cap, sizeof *keys);
		uint32_t *vals = calloc(cap, sizeof *vals);
		if (!keys || !vals) {
			free(keys);
			free(vals);
			return -1;
		}
		for (size_t j = 0; j < m->cap; j++) {
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
	}
	for (i = hash_str(key) & (m->cap - 1); m->keys[i];
	     i = (i + 1) & (m->cap - 1))
		;
	if (!(m->keys[i] = strdup(key)))
		return -1;
	m->vals[i] = val;
	m->n++;
	return 0;
}

static void smap_free(struct smap *m)
{
	for (size_t i = 0; i < m->cap; i++)
		free(m->keys[i]);
	free(m->keys);
	free(m->vals);
	memset(m, 0, sizeof *m);
}

/* ---------------------------------------------------------------------- */

struct rec {
	char *location;
	uint32_t folder;      /* into folders */
	uint32_t run;         /* into runs: host and user */
	uint32_t uidvalidity, uid;
	int64_t date;         /* STORE_NO_DATE when none */
	int tz;
	bool leap;            /* date is :59 of a leap second's minute */
	uint64_t received;
	uint64_t stored_size; /* bytes as stored, which store_scan reads */
	uint32_t added;       /* of them, header lines the store added at
				 the start (mbox: Status:), not the
				 server's */
	unsigned char sha[32];
	unsigned flags;
	char *keywords;
	uint8_t fmt;
	bool stored;          /* mbox: the bytes were changed (LF, quoting) */
	bool superseded;      /* a later record has the same message */
	/* Gmail (the line has gm_labels): placed by its labels, not by the
	 * folder it was stored from (docs/gmail.md). */
	bool gmail;
	char **labels;        /* gm_labels, UTF-8 */
	size_t nlabels;
	const char **slabels; /* of them, those a Gmail target is to STORE */
	size_t nslabels;
	uint32_t place;       /* its first place (into places), or NONE */
};

/* One target folder a message goes to (a Gmail message to several: one
 * per label), as a pending entry there; a record's places are a list. */
struct place {
	uint32_t tf, pi;      /* target folder and pending index */
	uint32_t next;        /* the record's next place, or NONE */
};

struct sfolder {
	char *raw, *utf8;
	char *path;           /* logical path (folder_path.h); from the
				 manifest, or worked out in plan() */
	char *role;           /* special-use role, or NULL */
	char delim;
	bool has_delim;
	bool seen;            /* a `folder` line: the backup examined it */
	uint32_t latest;      /* UIDVALIDITY of the latest generation */
	/* Its target folder (index into tf, valid once mapped), or that
	 * it cannot have one. */
	bool mapped, unmappable;
	uint32_t tf;
};

struct run_info {
	char *host, *user;
};

struct tfolder {
	char *raw, *utf8;
	struct restore_pending *p;
	uint32_t *rec;
	size_t n, a;
	struct restore_target_folder *h;
};

struct restorer {
	const struct restore_opts *o;
	const struct restore_events *ev;
	struct restore_summary *sum;
	struct isnap_error *err;

	struct rec *recs;
	size_t nrecs, arecs;
	struct smap by_location, by_message, folder_ix, target_ix;
	struct sfolder *folders;
	size_t nfolders, afolders;
	struct run_info *runs;
	size_t nruns, aruns;
	const char *formats[MAX_FORMATS];
	size_t nformats;
	int cur_fmt;
	uint64_t cur_version; /* of the manifest being read */
	struct tfolder *tf;
	size_t ntf, atf;
	struct place *places;
	size_t nplaces, aplaces;
	struct smap path_ix;  /* logical path -> folders (Gmail labels) */
	bool gmail_backup;    /* a message line had gm_labels */

	struct restore_target *target;
	struct restore_spool spool;
	EVP_MD_CTX *md;
	bool md_failed;   /* libcrypto refused a step of md */

	/* The message being read back. */
	uint32_t cur;         /* record, or NONE */
	bool cur_failed;
	uint64_t cur_skip;    /* added bytes still to leave out */
	char cur_why[ISNAP_ERROR_MAX + 64]; /* when it cannot be held */
	/* mboxrd undone as it streams (mboxrd.h), and a CRLF whose hashing
	 * waits (the last one may not be the server's: mbox adds a final
	 * line end). */
	struct mboxrd_undo undo;
	bool crlf_held;
};

static enum isnap_status oom(struct isnap_error *err)
{
	return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
}

static void warn(struct restorer *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void warn(struct restorer *r, const char *fmt, ...)
{
	char text[1200];
	va_list ap;

	if (!r->ev || !r->ev->warning)
		return;
	va_start(ap, fmt);
	vsnprintf(text, sizeof text, fmt, ap);
	va_end(ap);
	r->ev->warning(r->ev->ctx, text);
}

/* "2023-11-15T00:13:20+02:00" → epoch and zone; a leap second (:60)
 * is :59 of its minute, and *leap says so. */
static bool parse_iso(const char *s, int64_t *epoch, int *tz, bool *leap)
{
	struct tm tm = { 0 };
	int y, mo, d, h, mi, sec, zh, zm, n = 0;
	char sign;

	if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%c%2d:%2d%n", &y, &mo, &d,
			 &h, &mi, &sec, &sign, &zh, &zm, &n) != 9 ||
	    s[n] || (sign != '+' && sign != '-'))
		return false;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec == 60 ? 59 : sec;
	*leap = sec == 60;
	*tz = (zh * 60 + zm) * (sign == '-' ? -1 : 1);
	*epoch = (int64_t)timegm(&tm) - (int64_t)*tz * 60;
	return true;
}

/* The manifest's flag list → store flag bits and keywords. */
static int parse_flags(const json_t *list, unsigned *bits, char **keywords)
{
	char buf[8192];
	size_t n = 0, i;
	json_t *v;

	*bits = 0;
	buf[0] = '\0';
	json_array_foreach(list, i, v) {
		const char *f = json_string_value(v);
		unsigned bit;
		size_t len;
		if (!f)
			continue; /* {"hex": ...}: not an atom anyway */
		bit = store_flag_by_name(f);
		*bits |= bit;
		len = strlen(f);
		if (bit || n + len + 2 > sizeof buf)
			continue;
		if (n)
			buf[n++] = ' ';
		memcpy(buf + n, f, len + 1);
		n += len;
	}
	free(*keywords);
	*keywords = NULL;
	if (n && !(*keywords = strdup(buf)))
		return -1;
	return 0;
}

static void free_labels(struct rec *rec)
{
	for (size_t i = 0; i < rec->nlabels; i++)
		free(rec->labels[i]);
	free(rec->labels);
	free(rec->slabels);
	rec->labels = NULL;
	rec->slabels = NULL;
	rec->nlabels = rec->nslabels = 0;
}

/* The manifest's gm_labels → rec->labels.  -1: out of memory; else the
 * number of entries that are no label (not a string: not understood,
 * left out). */
static int parse_labels(const json_t *list, struct rec *rec)
{
	size_t i, n = json_array_size(list);
	json_t *v;
	int bad = 0;

	free_labels(rec);
	if (!n)
		return 0;
	if (!(rec->labels = calloc(n, sizeof *rec->labels)))
		return -1;
	json_array_foreach(list, i, v) {
		const char *l = json_string_value(v);
		if (!l || !*l) {
			bad++;
			continue;
		}
		if (!(rec->labels[rec->nlabels] = strdup(l)))
			return -1;
		rec->nlabels++;
	}
	return bad;
}

/* ---------------------------------------------------------------------- */
/* Step 1: the manifests                                                   */

static uint32_t folder_of(struct restorer *r, const json_t *o)
{
	const char *raw = manifest_get_str(o, "folder_raw");
	const char *utf8 = manifest_get_str(o, "folder");
	uint32_t ix;

	if (!raw)
		raw = utf8;
	if (!utf8)
		utf8 = raw;
	if (!raw)
		return NONE; /* only a hex name: not something to restore */
	ix = smap_get(&r->folder_ix, raw);
	if (ix != NONE)
		return ix;
	if (r->nfolders == r->afolders) {
		size_t a = r->afolders ? 2 * r->afolders : 32;
		struct sfolder *f = realloc(r->folders, a * sizeof *f);
		if (!f)
			return NONE - 1;
		r->folders = f;
		r->afolders = a;
	}
	struct sfolder *f = &r->folders[r->nfolders];
	memset(f, 0, sizeof *f);
	f->raw = strdup(raw);
	f->utf8 = strdup(utf8);
	if (!f->raw || !f->utf8 ||
	    smap_set(&r->folder_ix, raw, (uint32_t)r->nfolders)) {
		free(f->raw);
		free(f->utf8);
		return NONE - 1;
	}
	return (uint32_t)r->nfolders++;
}

/* The key of by_location: a location is only unique within its format
 * (tar and zip volumes hold entries of the same names), and a version 1
 * manifest named an archive's volume in it (manifest_location_key). */
static void location_key(char *buf, size_t size, int fmt, const char *loc)
{
	snprintf(buf, size, "%c%s", 'A' + (fmt < 0 ? 0 : fmt), loc);
}

static void message_key(char *buf, size_t size, uint32_t folder,
			uint32_t uidvalidity, uint32_t uid)
{
	snprintf(buf, size, "%" PRIu32 "/%" PRIu32 "/%" PRIu32, folder,
		 uidvalidity, uid);
}

/* The record for location key `lkey`: the one there when it holds the
 * same message (recorded again), else a new one, so that a message whose
 * place another took since (an mbox a reader rewrote) keeps its record. */
static enum isnap_status record_at(struct restorer *r, const char *lkey,
				   const char *loc, uint32_t folder,
				   uint32_t uv, uint32_t uid, uint32_t *out)
{
	uint32_t ix = smap_get(&r->by_location, lkey);
	struct rec *rec;

	if (ix != NONE && r->recs[ix].folder == folder &&
	    r->recs[ix].uidvalidity == uv && r->recs[ix].uid == uid) {
		*out = ix;
		return ISNAP_OK;
	}
	if (r->nrecs == r->arecs) {
		size_t a = r->arecs ? 2 * r->arecs : 1024;
		struct rec *v = realloc(r->recs, a * sizeof *v);
		if (!v)
			return oom(r->err);
		r->recs = v;
		r->arecs = a;
	}
	ix = (uint32_t)r->nrecs;
	rec = &r->recs[ix];
	memset(rec, 0, sizeof *rec);
	if (!(rec->location = strdup(loc)) ||
	    smap_set(&r->by_location, lkey, ix)) {
		free(rec->location);
		return oom(r->err);
	}
	r->nrecs++;
	*out = ix;
	return ISNAP_OK;
}

/* `ix` is the latest record of its message: the one before is not. */
static enum isnap_status latest_of(struct restorer *r, uint32_t ix)
{
	const struct rec *rec = &r->recs[ix];
	char key[64];
	uint32_t prev;

	message_key(key, sizeof key, rec->folder, rec->uidvalidity, rec->uid);
	prev = smap_get(&r->by_message, key);
	if (prev != NONE && prev != ix)
		r->recs[prev].superseded = true;
	return smap_set(&r->by_message, key, ix) ? oom(r->err) : ISNAP_OK;
}

/* A store found a message saved earlier at another place (an mbox a mail
 * reader rewrote): its record moves there, with the size as stored now. */
static enum isnap_status on_moved(struct restorer *r, const json_t *o,
				  const char *file, unsigned long line_no)
{
	const char *loc = manifest_get_str(o, "location");
	uint32_t folder = folder_of(r, o), ix, prev, uv = 0, uid = 0;
	char key[64], lkey[sizeof ((struct store_location *)0)->location + 2];
	uint64_t size;
	struct rec *rec;
	enum isnap_status st;

	if (folder == NONE - 1)
		return oom(r->err);
	if (folder == NONE || !loc || !*loc ||
	    !manifest_get_u32(o, "uid", &uid) || !uid ||
	    !manifest_get_u32(o, "uidvalidity", &uv) ||
	    !manifest_get_u64(o, "stored_size", &size)) {
		r->sum->manifest_errors++;
		warn(r, "%s line %lu: a moved line without folder, UID, "
		     "location or size", file, line_no);
		return ISNAP_OK;
	}
	message_key(key, sizeof key, folder, uv, uid);
	prev = smap_get(&r->by_message, key);
	if (prev == NONE)
		return ISNAP_OK; /* nothing known of it to restore */
	location_key(lkey, sizeof lkey, r->cur_fmt, loc);
	st = record_at(r, lkey, loc, folder, uv, uid, &ix);
	if (st || ix == prev) {
		if (!st)
			r->recs[ix].stored_size = size;
		return st;
	}
	rec = &r->recs[ix];
	{
		char *location = rec->location;
		const struct rec *was = &r->recs[prev];
		*rec = *was;
		rec->location = location;
		rec->keywords = NULL;
		if (was->keywords && !(rec->keywords = strdup(was->keywords)))
			return oom(r->err);
	}
	rec->stored_size = size;
	rec->stored = true;
	rec->superseded = false;
	return latest_of(r, ix);
}

static enum isnap_status on_message(struct restorer *r, const json_t *o,
				    const char *file, unsigned long line_no)
{
	const char *loc = manifest_get_str(o, "location");
	uint32_t folder = folder_of(r, o), ix, uv = 0, uid = 0;
	struct rec *rec;
	char lkey[sizeof ((struct store_location *)0)->location + 2];
	unsigned char sha[32];
	uint64_t received;

	if (folder == NONE - 1)
		return oom(r->err);
	if (folder == NONE || !loc || !*loc ||
	    !manifest_get_u32(o, "uid", &uid) || !uid ||
	    !manifest_get_u32(o, "uidvalidity", &uv) ||
	    !manifest_get_u64(o, "received", &received) ||
	    !manifest_parse_sha(manifest_get_str(o, "sha256"), sha)) {
		r->sum->manifest_errors++;
		warn(r, "%s line %lu: a message line imapsnap cannot restore "
		     "from (no folder, UID, location, size or SHA-256)",
		     file, line_no);
		return ISNAP_OK;
	}
	loc = manifest_location_key(r->cur_fmt >= 0 ? r->formats[r->cur_fmt]
						    : NULL,
				    r->cur_version, loc);
	location_key(lkey, sizeof lkey, r->cur_fmt, loc);
	{
		enum isnap_status st = record_at(r, lkey, loc, folder, uv,
						 uid, &ix);
		if (st)
			return st;
	}
	rec = &r->recs[ix];
	rec->folder = folder;
	rec->run = (uint32_t)(r->nruns ? r->nruns - 1 : 0);
	rec->uidvalidity = uv;
	rec->uid = uid;
	rec->received = received;
	memcpy(rec->sha, sha, 32);
	rec->stored = manifest_get_str(o, "stored_sha256") != NULL;
	{
		const char *added = manifest_get_str(o, "added");
		rec->added = added ? (uint32_t)strnlen(added, 4096) : 0;
	}
	if (!rec->stored ||
	    !manifest_get_u64(o, "stored_size", &rec->stored_size))
		/* mbox adds at most a final line end */
		rec->stored_size = received + (rec->stored ? 1 : 0);
	rec->fmt = (uint8_t)(r->cur_fmt >= 0 ? r->cur_fmt : 0);
	rec->place = NONE;
	rec->superseded = false;
	{
		const json_t *gl = json_object_get(o, "gm_labels");
		int bad;
		rec->gmail = json_is_array(gl);
		r->gmail_backup |= rec->gmail;
		if ((bad = parse_labels(gl, rec)) < 0)
			return oom(r->err);
		if (bad || (gl && !rec->gmail)) {
			r->sum->manifest_errors++;
			warn(r, "%s line %lu: gm_labels is not a list of label "
			     "names; %s", file, line_no,
			     rec->gmail ? "the names that are left are used"
					: "restored into its own folder");
		}
	}
	if (!parse_iso(manifest_get_str(o, "internaldate"), &rec->date,
		       &rec->tz, &rec->leap)) {
		rec->date = STORE_NO_DATE;
		rec->tz = 0;
		rec->leap = false;
	}
	if (parse_flags(json_object_get(o, "flags"), &rec->flags,
			&rec->keywords))
		return oom(r->err);
	r->folders[folder].latest = uv;
	/* The same message recorded again (fetched anew after a crash or
	 * because the backup lost it, or by a run in another format): the
	 * latest record is the one. */
	return latest_of(r, ix);
}

static enum isnap_status on_flags(struct restorer *r, const json_t *o,
				  const char *file, unsigned long line_no)
{
	uint32_t folder = folder_of(r, o), uv, uid, ix;
	char key[64];

	if (folder == NONE - 1)
		return oom(r->err);
	if (folder == NONE || !manifest_get_u32(o, "uidvalidity", &uv) ||
	    !manifest_get_u32(o, "uid", &uid))
		return ISNAP_OK;
	message_key(key, sizeof key, folder, uv, uid);
	ix = smap_get(&r->by_message, key);
	if (ix == NONE)
		return ISNAP_OK;
	if (parse_flags(json_object_get(o, "flags"), &r->recs[ix].flags,
			&r->recs[ix].keywords))
		return oom(r->err);
	/* On Gmail a label added or removed is a change too. */
	if (r->recs[ix].gmail && json_object_get(o, "gm_labels")) {
		const json_t *gl = json_object_get(o, "gm_labels");
		int bad = json_is_array(gl) ? parse_labels(gl, &r->recs[ix])
					    : 1;
		if (bad < 0)
			return oom(r->err);
		if (bad) {
			r->sum->manifest_errors++;
			warn(r, "%s line %lu: gm_labels is not a list of label "
			     "names; %s", file, line_no,
			     json_is_array(gl) ? "the names that are left are "
						 "used"
					       : "the labels before it are kept");
		}
	}
	return ISNAP_OK;
}

static enum isnap_status on_run(struct restorer *r, const json_t *o)
{
	const char *fmt = manifest_get_str(o, "format");
	const char *single = store_single_file_format(r->o->backup);
	const char *host, *user;
	struct run_info *ri;

	if (single)
		fmt = single;
	if (!manifest_get_u64(o, "manifest", &r->cur_version))
		r->cur_version = 1;
	r->cur_fmt = -1;
	for (size_t i = 0; fmt && i < r->nformats; i++)
		if (!strcmp(r->formats[i], fmt))
			r->cur_fmt = (int)i;
	if (fmt && r->cur_fmt < 0 && r->nformats < MAX_FORMATS) {
		if (!(r->formats[r->nformats] = strdup(fmt)))
			return oom(r->err);
		r->cur_fmt = (int)r->nformats++;
	}
	if (r->nruns == r->aruns) {
		size_t a = r->aruns ? 2 * r->aruns : 16;
		struct run_info *v = realloc(r->runs, a * sizeof *v);
		if (!v)
			return oom(r->err);
		r->runs = v;
		r->aruns = a;
	}
	ri = &r->runs[r->nruns];
	host = manifest_get_str(o, "host");
	user = manifest_get_str(o, "user");
	ri->host = strdup(host ? host : "");
	ri->user = strdup(user ? user : "");
	if (!ri->host || !ri->user) {
		free(ri->host);
		free(ri->user);
		return oom(r->err);
	}
	r->nruns++;
	return ISNAP_OK;
}

static enum isnap_status on_line(void *ctx, const char *file,
				 unsigned long line_no, json_t *o,
				 const char *why, struct isnap_error *err)
{
	struct restorer *r = ctx;
	const char *type = manifest_get_str(o, "type");

	(void)err;
	if (!o || !type) {
		r->sum->manifest_errors++;
		warn(r, "%s line %lu: %s", file, line_no,
		     why ? why : "no \"type\"");
		return ISNAP_OK;
	}
	if (!strcmp(type, "run"))
		return on_run(r, o);
	if (!strcmp(type, "message"))
		return on_message(r, o, file, line_no);
	if (!strcmp(type, "moved"))
		return on_moved(r, o, file, line_no);
	if (!strcmp(type, "flags"))
		return on_flags(r, o, file, line_no);
	if (!strcmp(type, "folder")) {
		uint32_t f = folder_of(r, o), uv;
		const json_t *d = json_object_get(o, "delim");
		if (f == NONE - 1)
			return oom(r->err);
		if (f == NONE)
			return ISNAP_OK;
		if (json_is_string(d) && strlen(json_string_value(d)) == 1) {
			r->folders[f].delim = json_string_value(d)[0];
			r->folders[f].has_delim = true;
		} else if (json_is_null(d)) {
			r->folders[f].delim = '\0';
			r->folders[f].has_delim = true;
		}
		if (manifest_get_u32(o, "uidvalidity", &uv) && uv)
			r->folders[f].latest = uv;
		r->folders[f].seen = true;
		/* Written since the manifest knew namespaces; the latest
		 * line wins. */
		if (manifest_get_str(o, "path")) {
			free(r->folders[f].path);
			if (!(r->folders[f].path =
				      strdup(manifest_get_str(o, "path"))))
				return oom(r->err);
		}
		free(r->folders[f].role);
		r->folders[f].role = NULL;
		if (folder_role(manifest_get_str(o, "role")) &&
		    !(r->folders[f].role = strdup(
			      folder_role(manifest_get_str(o, "role")))))
			return oom(r->err);
	}
	return ISNAP_OK;
}

/* ---------------------------------------------------------------------- */
/* Step 2: the plan                                                        */

bool restore_selected(const struct restore_common_opts *o,
		      const char *path)
{
	for (size_t i = 0; i < o->n_exclude; i++)
		if (fnmatch(o->exclude[i], path, 0) == 0)
			return false;
	if (!o->n_include)
		return true;
	for (size_t i = 0; i < o->n_include; i++)
		if (fnmatch(o->include[i], path, 0) == 0)
			return true;
	return false;
}

static uint32_t target_folder(struct restorer *r, const char *raw,
			      const char *utf8)
{
	uint32_t ix = smap_get(&r->target_ix, raw);

	if (ix != NONE)
		return ix;
	if (r->ntf == r->atf) {
		size_t a = r->atf ? 2 * r->atf : 32;
		struct tfolder *v = realloc(r->tf, a * sizeof *v);
		if (!v)
			return NONE;
		r->tf = v;
		r->atf = a;
	}
	memset(&r->tf[r->ntf], 0, sizeof r->tf[0]);
	if (!(r->tf[r->ntf].utf8 = strdup(utf8)) ||
	    !(r->tf[r->ntf].raw = strdup(raw)) ||
	    smap_set(&r->target_ix, raw, (uint32_t)r->ntf)) {
		free(r->tf[r->ntf].utf8);
		free(r->tf[r->ntf].raw);
		return NONE;
	}
	return (uint32_t)r->ntf++;
}

/* Manifests written before namespaces were recorded have no `path`:
 * work it out from the names the backup holds, as imap_list infers a
 * namespace the server does not announce (everything below INBOX and
 * its delimiter: the prefix is "INBOX" and the delimiter). */
static enum isnap_status old_paths(struct restorer *r)
{
	bool below_inbox = false, others = false;
	char prefix[7] = "";

	for (size_t i = 0; i < r->nfolders; i++) {
		const struct sfolder *sf = &r->folders[i];
		char d = sf->has_delim ? sf->delim : '/';
		if (sf->path || !strcasecmp(sf->raw, "INBOX"))
			continue;
		if (d && !strncasecmp(sf->raw, "INBOX", 5) && sf->raw[5] == d) {
			below_inbox = true;
			memcpy(prefix, sf->raw, 5);
			prefix[5] = d;
		} else {
			others = true;
		}
	}
	if (others)
		prefix[0] = '\0';
	for (size_t i = 0; i < r->nfolders; i++) {
		struct sfolder *sf = &r->folders[i];
		if (sf->path)
			continue;
		sf->path = folder_logical_path(
			sf->raw, sf->has_delim ? sf->delim : '/',
			below_inbox ? prefix : "");
		if (!sf->path)
			return oom(r->err);
	}
	return ISNAP_OK;
}

/* The target folder of source folder `sf`: NONE when it cannot have one
 * (reported), NONE - 1 when out of memory. */
static uint32_t map_folder(struct restorer *r, struct sfolder *sf)
{
	struct folder_target ft;
	struct isnap_error ferr = { 0 };
	enum isnap_status rc;

	if (sf->mapped)
		return sf->tf;
	if (sf->unmappable)
		return NONE;
	rc = folder_map_target(restore_target_map(r->target), sf->path,
			       sf->role, &ft, &ferr);
	if (rc == ISNAP_EFOLDER) {
		sf->unmappable = true;
		r->sum->t.folders_failed++;
		if (r->ev && r->ev->folder_failed)
			r->ev->folder_failed(r->ev->ctx, sf->path, ferr.msg);
		return NONE;
	}
	if (rc)
		return NONE - 1;
	sf->tf = target_folder(r, ft.raw, ft.utf8);
	if (sf->tf != NONE) {
		sf->mapped = true;
		if (r->ev && r->ev->mapped)
			r->ev->mapped(r->ev->ctx, sf->path, ft.utf8, sf->role,
				      ft.by_role);
	}
	folder_target_free(&ft);
	return sf->tf == NONE ? NONE - 1 : sf->tf;
}

/* One more pending message for target folder t: record `ix`, with the
 * key of its source message and the labels a Gmail target is to set. */
static enum isnap_status add_pending(struct restorer *r, uint32_t t,
				     uint32_t ix,
				     const unsigned char key[RESTORE_KEY_LEN],
				     bool with_labels)
{
	struct tfolder *tf = &r->tf[t];
	struct rec *rec = &r->recs[ix];
	struct restore_pending *p;

	/* Two labels that go to one folder: one copy there. */
	for (size_t j = tf->n; j-- > 0 && j + 8 >= tf->n;)
		if (tf->rec[j] == ix)
			return ISNAP_OK;
	if (tf->n == tf->a) {
		size_t a = tf->a ? 2 * tf->a : 64;
		struct restore_pending *pv = realloc(tf->p, a * sizeof *pv);
		if (!pv)
			return oom(r->err);
		tf->p = pv;
		uint32_t *rv = realloc(tf->rec, a * sizeof *rv);
		if (!rv)
			return oom(r->err);
		tf->rec = rv;
		tf->a = a;
	}
	p = &tf->p[tf->n];
	memset(p, 0, sizeof *p);
	memcpy(p->key, key, RESTORE_KEY_LEN);
	p->size = rec->received;
	p->has_sha = true;
	memcpy(p->sha, rec->sha, 32);
	if (with_labels) {
		p->labels = (const char *const *)rec->slabels;
		p->nlabels = rec->nslabels;
	}
	tf->rec[tf->n] = ix;
	tf->n++;
	return ISNAP_OK;
}

/* Record `ix` into the target folder of source folder `folder`; when that
 * folder cannot have one (reported), the message fails. */
static enum isnap_status place_in(struct restorer *r, uint32_t folder,
				  uint32_t ix,
				  const unsigned char key[RESTORE_KEY_LEN],
				  bool with_labels)
{
	uint32_t t = map_folder(r, &r->folders[folder]);

	if (t == NONE - 1)
		return oom(r->err);
	if (t == NONE) {
		r->sum->t.planned++;
		r->sum->t.failed++;
		return ISNAP_OK;
	}
	return add_pending(r, t, ix, key, with_labels);
}

/* A source folder that is only a label's (Gmail showed no such folder,
 * or the backup left it out): its logical path and role, not a server
 * name ("\001" before the path keeps it apart from real ones). */
static uint32_t label_folder_new(struct restorer *r, const char *path,
				 const char *role)
{
	char raw[4200];
	uint32_t f;

	/* \001 a label's, \002 a role's: a user's label "Sent" is not
	 * the \Sent folder. */
	snprintf(raw, sizeof raw, "%c%.4096s", role ? '\002' : '\001', path);
	f = smap_get(&r->folder_ix, raw);
	if (f != NONE)
		return f;
	json_t *o = json_pack("{ss ss}", "folder_raw", raw, "folder", path);
	if (!o)
		return NONE - 1;
	f = folder_of(r, o);
	json_decref(o);
	if (f >= NONE - 1)
		return NONE - 1;
	if (!(r->folders[f].path = strdup(path)) ||
	    (role && !(r->folders[f].role = strdup(role))) ||
	    (!role && smap_set(&r->path_ix, path, f)))
		return NONE - 1;
	return f;
}

/* The source folder of a label's path: the backup's own (Gmail shows
 * each label as a folder of that name), or one made for it. */
static uint32_t path_folder(struct restorer *r, const char *path)
{
	uint32_t f;

	if (!r->path_ix.n)
		for (size_t i = 0; i < r->nfolders; i++)
			if (r->folders[i].path &&
			    smap_get(&r->path_ix, r->folders[i].path) == NONE &&
			    smap_set(&r->path_ix, r->folders[i].path,
				     (uint32_t)i))
				return NONE - 1;
	f = smap_get(&r->path_ix, path);
	return f != NONE ? f : label_folder_new(r, path, NULL);
}

/* The source folder with special-use `role` ([Gmail]/Sent Mail for
 * \Sent), or one made for it, named as the role's folder usually is. */
static uint32_t role_folder(struct restorer *r, const char *role)
{
	static const struct {
		const char *role, *path;
	} names[] = { { "\\Sent", "Sent" },     { "\\Drafts", "Drafts" },
		      { "\\Trash", "Trash" },   { "\\Junk", "Junk" },
		      { "\\Archive", "Archive" } };
	const char *path = role;

	for (size_t i = 0; i < r->nfolders; i++)
		if (r->folders[i].role && r->folders[i].raw[0] != '\002' &&
		    !strcasecmp(r->folders[i].role, role))
			return (uint32_t)i;
	for (size_t i = 0; i < sizeof names / sizeof names[0]; i++)
		if (!strcasecmp(names[i].role, role))
			path = names[i].path;
	{
		char raw[64];
		uint32_t f;
		snprintf(raw, sizeof raw, "\002%s", path);
		f = smap_get(&r->folder_ix, raw);
		return f != NONE ? f : label_folder_new(r, path, role);
	}
}

/* The source folder a label stands for (gmail_labels.h); NONE when it
 * stands for none, NONE - 1 out of memory. */
static uint32_t label_source(struct restorer *r, const char *label)
{
	struct gmail_label_place pl = gmail_label_place(label);

	switch (pl.kind) {
	case GMAIL_LABEL_INBOX: return path_folder(r, "INBOX");
	case GMAIL_LABEL_ROLE: return role_folder(r, pl.role);
	case GMAIL_LABEL_FOLDER: return path_folder(r, label);
	default: return NONE;
	}
}

/* The folder the docs name for archived mail (no label that is a
 * folder): the target's \Archive folder, or Archive. */
static uint32_t archive_folder(struct restorer *r)
{
	return role_folder(r, "\\Archive");
}

/* A Gmail record into Gmail: appended once, to All Mail (or, for sent
 * mail and drafts, the folder that gives that label), its other labels
 * to be set.  Restored when one of its folders is selected. */
static enum isnap_status plan_gmail_into_gmail(
	struct restorer *r, uint32_t ix, const unsigned char key[RESTORE_KEY_LEN],
	bool *placed)
{
	struct rec *rec = &r->recs[ix];
	const char *role = gmail_append_role((const char *const *)rec->labels,
					     rec->nlabels);
	bool selected = false, any = false;

	for (size_t i = 0; i < rec->nlabels && !selected; i++) {
		uint32_t f = label_source(r, rec->labels[i]);
		if (f == NONE - 1)
			return oom(r->err);
		if (f == NONE)
			continue;
		any = true;
		selected = restore_selected(&r->o->common, r->folders[f].path);
	}
	if (!any)
		selected = restore_selected(&r->o->common,
					    r->folders[rec->folder].path);
	if (!selected)
		return ISNAP_OK;
	*placed = true;
	rec->nslabels = 0;
	if (!(rec->slabels = calloc(rec->nlabels + 1, sizeof *rec->slabels)))
		return oom(r->err);
	for (size_t i = 0; i < rec->nlabels; i++)
		if (gmail_label_storable(rec->labels[i]))
			rec->slabels[rec->nslabels++] = rec->labels[i];
	if (!strcmp(role, "\\All")) {
		const char *raw = restore_target_role_folder(r->target, "\\All");
		char *utf8 = NULL;
		uint32_t t;
		if (raw) {
			if (mutf7_decode(raw, strlen(raw), &utf8) && !utf8 &&
			    errno == ENOMEM)
				return oom(r->err);
			t = target_folder(r, raw, utf8 ? utf8 : raw);
			free(utf8);
			if (t == NONE)
				return oom(r->err);
			return add_pending(r, t, ix, key, true);
		}
		/* A Gmail without All Mail to be seen: into INBOX, which
		 * gives the \Inbox label whether it had it or not. */
		return place_in(r, path_folder(r, "INBOX"), ix, key, true);
	}
	{
		uint32_t f = role_folder(r, role);
		if (f == NONE - 1)
			return oom(r->err);
		return place_in(r, f, ix, key, true);
	}
}

/* A Gmail record into another server: into the folder of each label
 * that is one, or the archive folder when none is. */
static enum isnap_status plan_gmail_fan_out(
	struct restorer *r, uint32_t ix, const unsigned char key[RESTORE_KEY_LEN],
	bool *placed)
{
	bool any = false;
	enum isnap_status rc = ISNAP_OK;

	for (size_t i = 0; i < r->recs[ix].nlabels && !rc; i++) {
		uint32_t f = label_source(r, r->recs[ix].labels[i]);
		if (f == NONE - 1)
			return oom(r->err);
		if (f == NONE)
			continue;
		any = true;
		if (!restore_selected(&r->o->common, r->folders[f].path))
			continue;
		*placed = true;
		rc = place_in(r, f, ix, key, false);
	}
	if (!any && !rc) {
		uint32_t f = archive_folder(r);
		if (f == NONE - 1)
			return oom(r->err);
		if (restore_selected(&r->o->common, r->folders[f].path)) {
			*placed = true;
			rc = place_in(r, f, ix, key, false);
		}
	}
	return rc;
}

/* A Gmail message kept in Trash or Spam goes back there, labels or not:
 * restoring it into its labels' folders would bring deleted mail back. */
static bool in_trash_or_spam(const struct sfolder *sf)
{
	return sf->role && (!strcasecmp(sf->role, "\\Trash") ||
			    !strcasecmp(sf->role, "\\Junk"));
}

/* Folders a Gmail account shows that are no place of their own: All Mail
 * holds every message, Starred and Important are views by flag and by
 * Gmail's guess.  Not created elsewhere; on Gmail they exist. */
static bool gmail_view(const struct sfolder *sf)
{
	return sf->role && (!strcasecmp(sf->role, "\\All") ||
			    !strcasecmp(sf->role, "\\Flagged") ||
			    !strcasecmp(sf->role, "\\Important"));
}

static enum isnap_status plan(struct restorer *r)
{
	const struct restore_opts *o = r->o;
	bool into_gmail = restore_target_gmail(r->target);
	enum isnap_status rc = old_paths(r);
	size_t nrecs = r->nrecs;

	if (rc)
		return rc;
	for (size_t i = 0; i < nrecs; i++) {
		struct rec *rec = &r->recs[i];
		struct sfolder *sf = &r->folders[rec->folder];
		struct run_info *ri = &r->runs[rec->run];
		unsigned char key[RESTORE_KEY_LEN];
		bool placed = false;

		if (rec->superseded)
			continue;
		r->sum->records++;
		if (rec->uidvalidity != sf->latest) {
			r->sum->old_generation++;
			continue;
		}
		/* The key is the source message's: one for all its
		 * places, each target folder's state keeps its own. */
		restore_state_key(ri->host, ri->user, sf->raw, rec->uidvalidity,
				  rec->uid, key);
		if (rec->gmail && !in_trash_or_spam(sf)) {
			rc = into_gmail ? plan_gmail_into_gmail(r, (uint32_t)i,
								key, &placed)
					: plan_gmail_fan_out(r, (uint32_t)i,
							     key, &placed);
			if (rc)
				return rc;
			if (!placed)
				r->sum->excluded++;
			continue;
		}
		if (!restore_selected(&o->common, sf->path)) {
			r->sum->excluded++;
			continue;
		}
		rc = place_in(r, rec->folder, (uint32_t)i, key, false);
		if (rc)
			return rc;
	}
	/* Folders the backup saw empty are created too. */
	for (size_t i = 0; i < r->nfolders; i++) {
		struct sfolder *sf = &r->folders[i];
		if (!sf->seen || !restore_selected(&o->common, sf->path) ||
		    (r->gmail_backup && gmail_view(sf)))
			continue;
		if (map_folder(r, sf) == NONE - 1)
			return oom(r->err);
	}
	return ISNAP_OK;
}

/* Parents before children: a name sorts before the names it prefixes. */
static int cmp_tf(const void *a, const void *b)
{
	return strcmp(((const struct tfolder *)a)->raw,
		      ((const struct tfolder *)b)->raw);
}

/* ---------------------------------------------------------------------- */
/* Step 3: read back and append                                            */

#define PENDING_OF(r, pl) (&(r)->tf[(pl)->tf].p[(pl)->pi])

/* Whether some place of the record still waits for the message. */
static bool rec_todo(const struct restorer *r, const struct rec *rec)
{
	for (uint32_t k = rec->place; k != NONE; k = r->places[k].next)
		if (!PENDING_OF(r, &r->places[k])->done)
			return true;
	return false;
}

/* The places of the plan, from the target folders' pending lists (after
 * they are sorted): each record's list of where it goes. */
static enum isnap_status build_places(struct restorer *r)
{
	size_t n = 0;

	for (size_t i = 0; i < r->ntf; i++)
		n += r->tf[i].n;
	for (size_t i = 0; i < r->nrecs; i++)
		r->recs[i].place = NONE;
	r->nplaces = 0;
	if (n > r->aplaces) {
		struct place *v = realloc(r->places, n * sizeof *v);
		if (!v)
			return oom(r->err);
		r->places = v;
		r->aplaces = n;
	}
	/* Backwards, so that each list runs in folder order. */
	for (size_t i = r->ntf; i-- > 0;)
		for (size_t j = r->tf[i].n; j-- > 0;) {
			struct rec *rec = &r->recs[r->tf[i].rec[j]];
			r->places[r->nplaces] = (struct place){
				.tf = (uint32_t)i, .pi = (uint32_t)j,
				.next = rec->place };
			rec->place = (uint32_t)r->nplaces++;
		}
	return ISNAP_OK;
}

/* Hash the message being read; a failure shows at scan_end. */
static void md_update(struct restorer *r, const void *p, size_t n)
{
	if (!r->md_failed && !EVP_DigestUpdate(r->md, p, n))
		r->md_failed = true;
}

static enum isnap_status out(struct restorer *r, const char *p, size_t n)
{
	if (r->crlf_held) {
		md_update(r, "\r\n", 2);
		r->crlf_held = false;
	}
	md_update(r, p, n);
	return restore_spool_write(&r->spool, p, n, r->err);
}

static enum isnap_status out_crlf(struct restorer *r)
{
	if (r->crlf_held)
		md_update(r, "\r\n", 2);
	r->crlf_held = true;
	return restore_spool_write(&r->spool, "\r\n", 2, r->err);
}

/* mboxrd_undo's sinks: the server's bytes, and a line end (CRLF). */
static int undo_data(void *ctx, const char *p, size_t n)
{
	return (int)out(ctx, p, n);
}

static int undo_eol(void *ctx)
{
	return (int)out_crlf(ctx);
}

static enum isnap_status scan_begin(void *ctx, const char *location,
				    struct isnap_error *err)
{
	struct restorer *r = ctx;
	char key[sizeof ((struct store_location *)0)->location + 2];
	uint32_t ix;
	struct rec *rec;

	(void)err;
	location_key(key, sizeof key, r->cur_fmt, location);
	ix = smap_get(&r->by_location, key);
	r->cur = NONE;
	if (ix == NONE) {
		r->sum->unrecorded++;
		return ISNAP_OK;
	}
	rec = &r->recs[ix];
	if (!rec_todo(r, rec) || rec->fmt != (uint8_t)r->cur_fmt)
		return ISNAP_OK;
	r->cur = ix;
	r->cur_failed = false;
	r->cur_skip = rec->added;
	r->cur_why[0] = '\0';
	restore_spool_reset(&r->spool);
	r->md_failed = !EVP_DigestInit_ex(r->md, EVP_sha256(), NULL);
	mboxrd_undo_init(&r->undo, undo_data, undo_eol, r);
	r->crlf_held = false;
	return ISNAP_OK;
}

static enum isnap_status scan_data(void *ctx, const void *data, size_t len,
				   struct isnap_error *err)
{
	struct restorer *r = ctx;
	enum isnap_status rc;

	(void)err;
	if (r->cur == NONE || r->cur_failed)
		return ISNAP_OK;
	if (r->cur_skip) {
		/* The store's own header lines: not the server's bytes. */
		size_t k = len < r->cur_skip ? len : (size_t)r->cur_skip;
		r->cur_skip -= k;
		data = (const char *)data + k;
		if (!(len -= k))
			return ISNAP_OK;
	}
	if (r->recs[r->cur].stored) {
		rc = (enum isnap_status)mboxrd_undo_feed(&r->undo, data, len);
	} else {
		md_update(r, data, len);
		rc = restore_spool_write(&r->spool, data, len, r->err);
	}
	if (rc == ISNAP_ELOCAL) {
		/* The spool's temporary file (a small $TMPDIR): this message
		 * fails, the others go on. */
		snprintf(r->cur_why, sizeof r->cur_why,
			 "cannot be held for its APPEND: %s", r->err->msg);
		isnap_error_clear(r->err);
		r->cur_failed = true;
		restore_spool_reset(&r->spool);
		rc = ISNAP_OK;
	}
	return rc;
}

/* Read no more of a message than its manifest says it holds (one byte
 * more tells that it grew): an archive entry that inflates without end
 * fills neither memory nor $TMPDIR. */
static uint64_t scan_limit(void *ctx)
{
	struct restorer *r = ctx;

	return r->cur == NONE ? 0 : r->recs[r->cur].stored_size;
}

static void describe(void *ctx, const struct restore_pending *p, char *buf,
		     size_t size);

/* One message that failed to be read back, held or checked: reported
 * (in every folder it was to go to), done. */
static void fail_message(struct restorer *r, uint32_t ix, const char *why)
{
	struct rec *rec = &r->recs[ix];

	for (uint32_t k = rec->place; k != NONE; k = r->places[k].next) {
		struct tfolder *tf = &r->tf[r->places[k].tf];
		struct restore_pending *p = PENDING_OF(r, &r->places[k]);
		char what[600];
		if (p->done)
			continue;
		describe(r, p, what, sizeof what);
		restore_target_failed(r->target, tf->h, what, why);
		p->done = true; /* reported: not "missing" as well */
		p->found = false;
	}
}

/* store_scan_cb.unreadable: that message only. */
static enum isnap_status scan_unreadable(void *ctx, const char *location,
					 const char *why,
					 struct isnap_error *err)
{
	struct restorer *r = ctx;
	char key[sizeof ((struct store_location *)0)->location + 2];
	char text[ISNAP_ERROR_MAX + 64];
	uint32_t ix = r->cur;

	(void)err;
	r->cur = NONE;
	if (ix == NONE) {
		location_key(key, sizeof key, r->cur_fmt, location);
		ix = smap_get(&r->by_location, key);
		if (ix != NONE && (!rec_todo(r, &r->recs[ix]) ||
				   r->recs[ix].fmt != (uint8_t)r->cur_fmt))
			ix = NONE;
	}
	if (ix == NONE) {
		/* A file or a volume: its messages are reported missing. */
		warn(r, "reading the backup: %s", why);
		return ISNAP_OK;
	}
	snprintf(text, sizeof text, "the backup's copy cannot be read: %s",
		 why);
	fail_message(r, ix, text);
	return ISNAP_OK;
}

static void describe(void *ctx, const struct restore_pending *p, char *buf,
		     size_t size)
{
	struct restorer *r = ctx;
	const struct rec *rec = p->src;

	(void)r;
	if (!rec) {
		snprintf(buf, size, "a message");
		return;
	}
	snprintf(buf, size, "%s UID %" PRIu32 " (UIDVALIDITY %" PRIu32 ")",
		 r->folders[rec->folder].utf8, rec->uid, rec->uidvalidity);
}

static enum isnap_status scan_end(void *ctx, struct isnap_error *err)
{
	struct restorer *r = ctx;
	struct rec *rec;
	unsigned char with[32], without[32], norm[32];
	bool have_norm = false;
	unsigned len;
	bool ok;
	EVP_MD_CTX *copy;

	(void)err;
	if (r->cur == NONE)
		return ISNAP_OK;
	rec = &r->recs[r->cur];
	if (r->cur_failed) {
		fail_message(r, r->cur, r->cur_why);
		r->cur = NONE;
		return ISNAP_OK;
	}
	r->cur = NONE;
	if (rec->stored && mboxrd_undo_finish(&r->undo))
		return r->err->status;
	/* The last CRLF: the server's, or one mbox added to a message that
	 * ended without a line end.  The SHA-256 decides. */
	if (!(copy = EVP_MD_CTX_new()) || !EVP_MD_CTX_copy_ex(copy, r->md)) {
		EVP_MD_CTX_free(copy);
		return oom(r->err);
	}
	if (!EVP_DigestFinal_ex(copy, without, &len) || len != 32)
		r->md_failed = true;
	EVP_MD_CTX_free(copy);
	if (r->crlf_held)
		md_update(r, "\r\n", 2);
	if (!r->md_failed && (!EVP_DigestFinal_ex(r->md, with, &len) ||
			      len != 32))
		r->md_failed = true;
	/* Without a hash, a match cannot be told from a mismatch. */
	if (r->md_failed)
		return isnap_fail(r->err, ISNAP_ENOMEM,
				  "computing a SHA-256 failed (libcrypto)");
	ok = r->spool.size == rec->received && !memcmp(with, rec->sha, 32);
	if (!ok && r->crlf_held && r->spool.size == rec->received + 2 &&
	    !memcmp(without, rec->sha, 32)) {
		restore_spool_truncate(&r->spool, rec->received);
		ok = true;
	}
	if (!ok) {
		char want[65], got[65], why[1200];
		manifest_sha_hex(rec->sha, want);
		manifest_sha_hex(with, got);
		r->sum->mismatched++;
		snprintf(why, sizeof why,
			 "the backup's copy at %.200s does not match its "
			 "manifest (SHA-256 %.12s... of %" PRIu64 " bytes "
			 "recorded, %.12s... of %" PRIu64 " bytes read "
			 "back)%s",
			 rec->location, want, rec->received, got,
			 r->spool.size,
			 rec->stored ? "; mbox keeps LF line ends, and a "
				       "message with bare LFs cannot be "
				       "rebuilt exactly"
				     : "");
		fail_message(r, (uint32_t)(rec - r->recs), why);
		return ISNAP_OK;
	}
	struct store_message m = { .uid = rec->uid,
				   .flags = rec->flags,
				   .keywords = rec->keywords ? rec->keywords
							     : "",
				   .internaldate = rec->date,
				   .tz_minutes = rec->tz,
				   .leap_second = rec->leap,
				   .size = rec->received };
	/* Into every folder it goes to (a Gmail message: one per label),
	 * each from the start of the spool. */
	for (uint32_t k = rec->place; k != NONE; k = r->places[k].next) {
		struct tfolder *tf = &r->tf[r->places[k].tf];
		struct restore_pending *p = PENDING_OF(r, &r->places[k]);
		enum isnap_status rc;
		if (p->done)
			continue;
		if (restore_target_folder_wants_norm(tf->h)) {
			if (!have_norm &&
			    (rc = restore_spool_norm(&r->spool, norm, r->err)))
				return rc;
			have_norm = true;
			memcpy(p->norm, norm, 32);
			p->has_norm = true;
		}
		restore_spool_rewind(&r->spool);
		rc = restore_target_append(r->target, tf->h, p, &m,
					   restore_spool_read, &r->spool,
					   r->err);
		if (rc)
			return rc;
	}
	return ISNAP_OK;
}

/* ---------------------------------------------------------------------- */

/* Forget a plan, for another attempt after a lost connection. */
static void reset_plan(struct restorer *r)
{
	for (size_t i = 0; i < r->ntf; i++) {
		free(r->tf[i].utf8);
		free(r->tf[i].raw);
		free(r->tf[i].p);
		free(r->tf[i].rec);
	}
	free(r->tf);
	r->tf = NULL;
	r->ntf = r->atf = 0;
	smap_free(&r->target_ix);
	for (size_t i = 0; i < r->nrecs; i++) {
		r->recs[i].place = NONE;
		free(r->recs[i].slabels);
		r->recs[i].slabels = NULL;
		r->recs[i].nslabels = 0;
	}
	r->nplaces = 0;
	for (size_t i = 0; i < r->nfolders; i++)
		r->folders[i].mapped = r->folders[i].unmappable = false;
	r->cur = NONE;
	r->cur_fmt = -1;
}

static void restorer_free(struct restorer *r)
{
	reset_plan(r);
	for (size_t i = 0; i < r->nrecs; i++) {
		free(r->recs[i].location);
		free(r->recs[i].keywords);
		free_labels(&r->recs[i]);
	}
	free(r->recs);
	for (size_t i = 0; i < r->nfolders; i++) {
		free(r->folders[i].raw);
		free(r->folders[i].utf8);
		free(r->folders[i].path);
		free(r->folders[i].role);
	}
	free(r->folders);
	for (size_t i = 0; i < r->nruns; i++) {
		free(r->runs[i].host);
		free(r->runs[i].user);
	}
	free(r->runs);
	for (size_t i = 0; i < r->nformats; i++)
		free((char *)r->formats[i]);
	smap_free(&r->by_location);
	smap_free(&r->by_message);
	smap_free(&r->folder_ix);
	smap_free(&r->path_ix);
	free(r->places);
	restore_spool_free(&r->spool);
	EVP_MD_CTX_free(r->md);
}

/* store_scan_cb.stray: something in the backup that is no message,
 * never followed or opened (a symbolic link, a FIFO, a stray file).  It
 * may be where a folder was: say so, and what was recorded below it is
 * reported missing at the end. */
static enum isnap_status scan_stray(void *ctx, const char *path,
				    const char *what, bool leftover,
				    struct isnap_error *err)
{
	struct restorer *r = ctx;

	(void)err;
	if (!leftover)
		warn(r, "%s/%s: %s; not read", r->o->backup, path, what);
	return ISNAP_OK;
}

static enum isnap_status transfer(struct restorer *r)
{
	struct store_scan_cb cb = { .ctx = r,
				    .begin = scan_begin,
				    .data = scan_data,
				    .end = scan_end,
				    .unreadable = scan_unreadable,
				    .stray = scan_stray,
				    .limit = scan_limit };
	enum isnap_status rc = ISNAP_OK;

	for (size_t i = 0; i < r->ntf && !rc; i++) {
		struct tfolder *tf = &r->tf[i];
		for (size_t j = 0; j < tf->n; j++)
			tf->p[j].src = &r->recs[tf->rec[j]];
		rc = restore_target_folder(r->target, tf->raw, tf->utf8, tf->p,
					   tf->n, &tf->h, r->err);
		if (rc == ISNAP_EFOLDER)
			rc = ISNAP_OK; /* reported; its messages stay undone */
	}
	if (rc || r->o->common.dry_run) {
		/* A dry run counts what would be appended. */
		for (size_t i = 0; i < r->ntf && !rc; i++)
			for (size_t j = 0; j < r->tf[i].n; j++)
				if (!r->tf[i].p[j].done) {
					r->sum->t.appended++;
					r->sum->t.bytes += r->tf[i].p[j].size;
				}
		return rc;
	}
	for (size_t f = 0; f < r->nformats && !rc; f++) {
		bool wanted = false;
		for (size_t i = 0; i < r->nrecs && !wanted; i++) {
			const struct rec *rec = &r->recs[i];
			wanted = rec->fmt == f && rec_todo(r, rec);
		}
		if (!wanted)
			continue;
		r->cur_fmt = (int)f;
		r->cur = NONE;
		rc = store_scan(r->formats[f], r->o->backup, &cb, r->err);
		if (rc == ISNAP_EINTEGRITY || rc == ISNAP_ELOCAL) {
			/* A damaged part of the backup: what could be read
			 * went; the rest is reported missing below. */
			warn(r, "reading the %s backup: %s", r->formats[f],
			     r->err->msg);
			rc = ISNAP_OK;
		}
	}
	if (!rc)
		rc = restore_target_drain(r->target, r->err);
	for (size_t i = 0; i < r->ntf && !rc; i++)
		if (r->tf[i].h)
			rc = restore_target_folder_end(r->target, r->tf[i].h,
						       r->err);
	return rc;
}

/* One connection's worth: log in, plan, append.  *logged_in tells
 * whether the login worked (only then is a lost connection retried). */
static enum isnap_status attempt(struct restorer *r,
				 struct restore_state *state,
				 const struct restore_target_opts *to,
				 bool *logged_in)
{
	const struct restore_opts *o = r->o;
	struct restore_summary *sum = r->sum;
	struct imap_client *c = NULL;
	struct isnap_error *err = r->err;
	enum isnap_status rc;

	rc = imap_client_open(&o->session, &c, err);
	if (rc)
		return rc;
	*logged_in = true;
	rc = restore_target_open(c, state, to, r->ev, &sum->t, &r->target,
				 err);
	if (!rc)
		rc = plan(r);
	if (!rc) {
		if (r->ntf)
			qsort(r->tf, r->ntf, sizeof *r->tf, cmp_tf);
		rc = build_places(r);
		if (!rc)
			rc = transfer(r);
	}
	if (!rc && !o->common.dry_run) {
		/* Planned, not done, not reported: the backup lacks it. */
		for (size_t i = 0; i < r->ntf; i++) {
			struct tfolder *tf = &r->tf[i];
			if (!tf->h)
				continue;
			for (size_t j = 0; j < tf->n; j++) {
				struct restore_pending *p = &tf->p[j];
				struct rec *rec = &r->recs[tf->rec[j]];
				char what[600], why[4400];
				if (p->done || !restore_target_folder_usable(
						       tf->h))
					continue;
				sum->missing++;
				describe(r, p, what, sizeof what);
				snprintf(why, sizeof why,
					 "recorded at %.4200s, but not found "
					 "in the backup",
					 rec->location);
				restore_target_failed(r->target, tf->h, what,
						      why);
			}
		}
	}
	restore_target_close(r->target);
	r->target = NULL;
	imap_client_close(c, rc != ISNAP_ECONN && rc != ISNAP_EPROTO);
	return rc;
}

enum isnap_status restore_run(const struct restore_opts *o,
			      const struct restore_events *ev,
			      struct restore_summary *sum,
			      struct isnap_error *err)
{
	struct restorer r = { .o = o, .ev = ev, .sum = sum, .err = err,
			      .cur_fmt = -1, .cur = NONE };
	struct manifest_read_cb mcb = { .ctx = &r, .line = on_line };
	struct restore_target_opts to = {
		.depth = o->common.depth,
		.dry_run = o->common.dry_run,
		.map = { .into = o->common.into,
			 .map_roles = !o->common.keep_roles },
		.describe = describe,
		.hash_ctx = &r,
	};
	struct restore_state *state = NULL;
	struct restore_stats before = { 0 };
	uint64_t manifest_errors;
	long delay = 250;
	enum isnap_status rc;

	memset(sum, 0, sizeof *sum);
	restore_spool_init(&r.spool, SPOOL_MEM);
	if (!(r.md = EVP_MD_CTX_new())) {
		rc = oom(err);
		goto out;
	}
	rc = manifest_read_all(o->backup, &mcb, err);
	if (rc)
		goto out;
	rc = restore_state_open(o->common.state_dir, o->common.dry_run,
				&state, err);
	if (rc)
		goto out;
	manifest_errors = sum->manifest_errors;
	for (unsigned n = 0;; n++) {
		bool logged_in = false;
		rc = attempt(&r, state, &to, &logged_in);
		if ((rc != ISNAP_ECONN && rc != ISNAP_EPROTO) || !logged_in ||
		    n >= o->common.retries)
			break;
		warn(&r, "%s; reconnecting (retry %u of %u)", err->msg, n + 1,
		     o->common.retries);
		restore_stats_keep(&before, &sum->t);
		memset(sum, 0, sizeof *sum);
		sum->manifest_errors = manifest_errors;
		reset_plan(&r);
		restore_sleep_backoff(&delay);
	}
	restore_stats_carry(&sum->t, &before);
	if (!rc && (sum->t.failed || sum->t.folders_failed))
		rc = isnap_fail(err, ISNAP_EMSG,
				"%" PRIu64 " message%s and %" PRIu64
				" folder%s not restored",
				sum->t.failed, sum->t.failed == 1 ? "" : "s",
				sum->t.folders_failed,
				sum->t.folders_failed == 1 ? "" : "s");
out:
	restore_state_close(state);
	restorer_free(&r);
	return rc;
}
