/*
 * manifest.c — the run record and the store decorator that writes it.
 * The format is docs/manifest.md (JSON Lines, RFC 8259 + jsonlines.org);
 * SHA-256 is FIPS 180-4 through OpenSSL's EVP interface.
 *
 * Lines are appended to the run file through a small buffer and made
 * durable (fdatasync) before the real store commits; a "commit" line,
 * also synced, follows once the store's commit (or, for stores durable
 * only at finish, its finish) succeeded.  The chain file is rewritten
 * whole (temporary file, fsync, rename, fsync of the directory), so that a
 * crash leaves either the old chain or the new one.
 */
#include "manifest.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <pthread.h>
#include <openssl/evp.h>

#include "beneath.h"
#include "folder_path.h"
#include "manifest_chain.h"

#define MANIFEST_VERSION 3
/* The buffer is written out once it holds this much. */
#define OUT_FLUSH (64 * 1024)

struct mstore;

/* Lines built and not yet handed to the run file. */
struct lines {
	char *p;
	size_t len, cap;
};

/*
 * Threads.  A manifest may watch several stores (manifest_wrap_another),
 * each used by one thread.  What a store records — its folder, the hash of
 * the message being written, the lines of its batch — is its own, in its
 * struct mstore.  The run file, the counts and the sticky failure are
 * shared and guarded by `lock`.  A store's lines reach the run file as
 * one block, under the lock, together with the real store's commit and
 * the `commit` line: so the message lines a `commit` line confirms are
 * exactly the ones since the previous `commit` line, whichever store wrote
 * them (docs/manifest.md).
 */
struct manifest {
	pthread_mutex_t lock;
	int fd;        /* the run file, O_APPEND */
	int dir_fd;    /* state_dir/manifest, or -1 for single-file exports */
	char *dir_name; /* it, for messages (NULL with dir_fd -1) */
	char *path;    /* the run file, NULL when it is an unlinked temp */
	char name[MANIFEST_RUN_NAME_MAX];

	struct lines out; /* lines not written to fd yet */

	/* The first failure to record; it sticks (manifest.h). */
	enum isnap_status failed;
	struct isnap_error fail_err;

	char *chain;   /* the chain file's bytes, and what we append */
	size_t chain_len;
	char sha256[65];
	bool finished;

	struct mstore *store;   /* the first store wrapped */
	struct mstore **others; /* manifest_wrap_another's */
	size_t n_others;

	uint64_t recorded, recorded_bytes, skipped;
	bool have_summary;
	struct manifest_summary sum;
	struct timespec ended;
};

struct mstore {
	struct store base;
	struct store_ops ops; /* the inner store's, with ours in place */
	struct store *inner;
	struct manifest *m;   /* NULL once the manifest is freed */

	struct {
		char *name, *utf8;
		uint32_t uidvalidity;
		bool open;
	} folder;
	/* The raw names (and UIDVALIDITY) of the "folder" lines this store
	 * wrote: several folders' units share a session, and a folder
	 * opened again (its fetch behind another folder's EXAMINE) gets no
	 * second line. */
	struct examined_folder {
		char *name;
		uint32_t uidvalidity;
	} *examined;
	size_t n_examined, alloc_examined;

	EVP_MD_CTX *md;
	bool in_msg;
	uint64_t received;

	struct lines pend; /* this store's lines not in `out` yet */
	uint64_t batch;    /* message lines in `pend` */
	/* A line since the last sync that must be durable before the
	 * store's next commit or close: any but a folder's own record, so
	 * that a folder with nothing new costs no sync of its own (the next
	 * one, the run's end at the latest, takes its record along). */
	bool ahead;
};

/* ---------------------------------------------------------------------- */
/* Small helpers                                                           */

static void hex(const unsigned char *bin, size_t n, char *out)
{
	static const char digits[] = "0123456789abcdef";

	for (size_t i = 0; i < n; i++) {
		out[2 * i] = digits[bin[i] >> 4];
		out[2 * i + 1] = digits[bin[i] & 15];
	}
	out[2 * n] = '\0';
}

static void lock(struct manifest *m)
{
	pthread_mutex_lock(&m->lock);
}

static void unlock(struct manifest *m)
{
	pthread_mutex_unlock(&m->lock);
}

/* Record the first failure; later ones are consequences of it.  With the
 * lock held. */
static void stick_locked(struct manifest *m, const struct isnap_error *e)
{
	if (m->failed)
		return;
	m->failed = e->status ? e->status : ISNAP_ELOCAL;
	m->fail_err = *e;
	m->fail_err.status = m->failed;
}

static void stick(struct manifest *m, const struct isnap_error *e)
{
	lock(m);
	stick_locked(m, e);
	unlock(m);
}

static void stick_oom(struct manifest *m)
{
	struct isnap_error e;

	isnap_fail(&e, ISNAP_ENOMEM, "manifest: out of memory");
	stick(m, &e);
}

static enum isnap_status failed_locked(const struct manifest *m,
				       struct isnap_error *err)
{
	if (err && m->failed)
		*err = m->fail_err;
	return m->failed;
}

/* The sticky failure, or ISNAP_OK. */
static enum isnap_status failed(struct manifest *m, struct isnap_error *err)
{
	enum isnap_status rc;

	lock(m);
	rc = failed_locked(m, err);
	unlock(m);
	return rc;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static const char *where(const struct manifest *m)
{
	return m->path ? m->path : "the manifest (temporary file)";
}

/* With the lock held. */
static void out_flush_locked(struct manifest *m)
{
	struct isnap_error e;

	if (m->failed || !m->out.len)
		return;
	if (write_all(m->fd, m->out.p, m->out.len) != 0) {
		isnap_fail_errno(&e, ISNAP_ELOCAL, "writing %s", where(m));
		stick_locked(m, &e);
		return;
	}
	m->out.len = 0;
}

/* Everything recorded so far is on disk when this returns without a
 * sticky failure.  With the lock held. */
static void out_sync_locked(struct manifest *m)
{
	struct isnap_error e;

	out_flush_locked(m);
	if (!m->failed && fdatasync(m->fd) != 0 && errno != EINVAL) {
		isnap_fail_errno(&e, ISNAP_ELOCAL, "syncing %s", where(m));
		stick_locked(m, &e);
	}
}

static void out_sync(struct manifest *m)
{
	lock(m);
	out_sync_locked(m);
	unlock(m);
}

/* Append `n` bytes to `l`; -1 when out of memory. */
static int lines_add(struct lines *l, const char *s, size_t n)
{
	if (l->len + n > l->cap) {
		size_t cap = l->cap ? l->cap : OUT_FLUSH * 2;
		char *p;
		while (cap < l->len + n)
			cap *= 2;
		p = realloc(l->p, cap);
		if (!p)
			return -1;
		l->p = p;
		l->cap = cap;
	}
	memcpy(l->p + l->len, s, n);
	l->len += n;
	return 0;
}

/* Hand `l` to the run file's buffer, written out once it is large.  With
 * the lock held. */
static void out_add_locked(struct manifest *m, struct lines *l)
{
	if (!m->failed && l->len) {
		if (lines_add(&m->out, l->p, l->len)) {
			struct isnap_error e;
			isnap_fail(&e, ISNAP_ENOMEM, "manifest: out of memory");
			stick_locked(m, &e);
		}
	}
	l->len = 0;
	if (m->out.len >= OUT_FLUSH)
		out_flush_locked(m);
}

/* `o` as one line of text (newline included, no NUL), and release it;
 * NULL when out of memory (or `o` is NULL). */
static char *dump_line(json_t *o, size_t *len)
{
	char *s;

	if (!o)
		return NULL;
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	if (!s)
		return NULL;
	*len = strlen(s);
	s[*len] = '\n'; /* over the NUL: the line's end */
	++*len;
	return s;
}

static char *dump(struct manifest *m, json_t *o, size_t *len)
{
	char *s = dump_line(o, len);

	if (!s)
		stick_oom(m);
	return s;
}

/* Append `o` as one line, and release it: among the lines of store `ms`
 * (so that they reach the run file in the order that store wrote them),
 * else of the first store wrapped, else straight to the run file. */
static void emit_to(struct manifest *m, struct mstore *ms, json_t *o)
{
	size_t n = 0;
	char *s;

	if (!ms)
		ms = m->store;
	s = dump(m, o, &n);
	if (!s)
		return;
	if (!ms) {
		struct lines one = { s, n, n };
		lock(m);
		out_add_locked(m, &one);
		unlock(m);
		free(s);
		return;
	}
	if (lines_add(&ms->pend, s, n)) {
		free(s);
		stick_oom(m);
		return;
	}
	free(s);
	ms->ahead = true;
	/* Lines of a batch wait for their commit; others need not. */
	if (!ms->batch && ms->pend.len >= OUT_FLUSH) {
		lock(m);
		out_add_locked(m, &ms->pend);
		unlock(m);
	}
}

/* ---------------------------------------------------------------------- */
/* Building lines.  Each setter returns 0 or -1 (out of memory); callers
 * add the results up and treat any failure as out of memory.            */

/* JSON strings are Unicode; a server can send any bytes.  A value that is
 * not valid UTF-8 is written as "<key>_hex" instead, so nothing is lost
 * and the line stays valid JSON. */
static int set_str(json_t *o, const char *key, const char *s)
{
	char hkey[64];
	char *h;
	size_t n;
	int rc;

	if (!s)
		return 0;
	json_t *v = json_string(s);
	if (v)
		return json_object_set_new(o, key, v);
	n = strlen(s);
	h = malloc(2 * n + 1);
	if (!h)
		return -1;
	hex((const unsigned char *)s, n, h);
	snprintf(hkey, sizeof hkey, "%s_hex", key);
	rc = json_object_set_new(o, hkey, json_string(h));
	free(h);
	return rc;
}

/* Numbers beyond JSON's safe integers are written as text. */
static int set_u64(json_t *o, const char *key, uint64_t v)
{
	char buf[24];

	if (v <= (uint64_t)INT64_MAX)
		return json_object_set_new(o, key, json_integer((json_int_t)v));
	snprintf(buf, sizeof buf, "%" PRIu64, v);
	return json_object_set_new(o, key, json_string(buf));
}

static int set_bool(json_t *o, const char *key, bool v)
{
	return json_object_set_new(o, key, json_boolean(v));
}

static json_t *line(const char *type)
{
	json_t *o = json_object();

	if (o && json_object_set_new(o, "type", json_string(type))) {
		json_decref(o);
		return NULL;
	}
	return o;
}

/* Emit `o` unless building it failed. */
static void emit_built_to(struct manifest *m, struct mstore *ms, json_t *o,
			  int bad)
{
	if (bad) {
		json_decref(o);
		stick_oom(m);
		return;
	}
	emit_to(m, ms, o);
}

static void emit_built(struct manifest *m, json_t *o, int bad)
{
	emit_built_to(m, NULL, o, bad);
}

static void iso_utc(const struct timespec *ts, char *buf, size_t size)
{
	struct tm tm;
	time_t t = ts->tv_sec;
	size_t n;

	gmtime_r(&t, &tm);
	n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	snprintf(buf + n, size - n, ".%06uZ",
		 (unsigned)(ts->tv_nsec / 1000) % 1000000u);
}

/* INTERNALDATE in ISO 8601 with the zone the server gave it in. */
static bool iso_zoned(int64_t epoch, int tz_minutes, bool leap_second,
		      char *buf, size_t size)
{
	struct tm tm;
	time_t t;
	unsigned off = (unsigned)(tz_minutes < 0 ? -tz_minutes : tz_minutes);
	size_t n;

	/* Far outside any date a mail server keeps: not worth a line. */
	if (epoch < -((int64_t)1 << 40) || epoch > (int64_t)1 << 40 ||
	    off > 24 * 60)
		return false;
	t = (time_t)(epoch + (int64_t)tz_minutes * 60);
	if (!gmtime_r(&t, &tm))
		return false;
	n = strftime(buf, size, "%Y-%m-%dT%H:%M:%S", &tm);
	if (!n)
		return false;
	/* RFC 3339 5.7: the leap second is 23:59:60, as the server said. */
	if (leap_second && tm.tm_sec == 59)
		memcpy(buf + n - 2, "60", 2);
	snprintf(buf + n, size - n, "%c%02u:%02u", tz_minutes < 0 ? '-' : '+',
		 off / 60 % 100, off % 60);
	return true;
}

static int set_folder(json_t *o, const char *raw, const char *utf8,
		      uint32_t uidvalidity)
{
	int bad = 0;

	bad |= set_str(o, "folder", utf8 ? utf8 : raw);
	bad |= set_str(o, "folder_raw", raw);
	if (uidvalidity)
		bad |= set_u64(o, "uidvalidity", uidvalidity);
	return bad;
}

/* The IMAP names of the flags, then the keywords as the server spelled
 * them. */
static int set_flags(json_t *o, unsigned flags, const char *keywords)
{
	json_t *a = json_array();
	int bad = !a;

	for (unsigned bit = 1; a && store_flag_name(bit); bit <<= 1)
		if (flags & bit)
			bad |= json_array_append_new(
				a, json_string(store_flag_name(bit)));
	for (const char *p = keywords; a && p && *p;) {
		size_t n = strcspn(p, " ");
		if (n) {
			json_t *v = json_stringn(p, n);
			if (!v) { /* not UTF-8: keep the bytes */
				char *h = malloc(2 * n + 1);
				if (!h) {
					bad = 1;
					break;
				}
				hex((const unsigned char *)p, n, h);
				v = json_pack("{ss}", "hex", h);
				free(h);
			}
			bad |= json_array_append_new(a, v);
		}
		p += n;
		while (*p == ' ')
			p++;
	}
	return bad | json_object_set_new(o, "flags", a);
}

/* ---------------------------------------------------------------------- */
/* Files                                                                   */

static enum isnap_status chain_add(struct manifest *m, const char *text,
				   struct isnap_error *err)
{
	size_t n = strlen(text);
	char *p = realloc(m->chain, m->chain_len + n + 1);

	if (!p)
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	memcpy(p + m->chain_len, text, n + 1);
	m->chain = p;
	m->chain_len += n;
	return ISNAP_OK;
}

static enum isnap_status chain_append(struct manifest *m, const char *sha,
				      const char *name,
				      struct isnap_error *err)
{
	char line[64 + 2 + MANIFEST_RUN_NAME_MAX + 2];

	snprintf(line, sizeof line, "%s  %s\n", sha, name);
	return chain_add(m, line, err);
}

static enum isnap_status load_chain(struct manifest *m,
				    struct isnap_error *err)
{
	bool exists;

	if (manifest_chain_read(m->dir_fd, &m->chain, &m->chain_len,
				&exists) != 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "reading %s/%s",
					m->dir_name, MANIFEST_CHAIN);
	/* Never rewrite what is there (it is evidence), only complete it;
	 * a NUL byte someone put there stays too. */
	if (m->chain_len && m->chain[m->chain_len - 1] != '\n')
		return chain_add(m, "\n", err);
	return ISNAP_OK;
}

/* Calls `fn` with each line of the chain that parses, in order, until it
 * returns true. */
static bool chain_each(const struct manifest *m,
		       bool (*fn)(void *ctx, const char *sha,
				  const char *name),
		       void *ctx)
{
	for (size_t i = 0; i < m->chain_len;) {
		const char *l = m->chain + i;
		const char *e = memchr(l, '\n', m->chain_len - i);
		size_t len = e ? (size_t)(e - l) : m->chain_len - i;
		char sha[65], name[MANIFEST_RUN_NAME_MAX];
		if (manifest_chain_parse(l, len, sha, name) &&
		    fn(ctx, sha, name))
			return true;
		i += len + 1;
	}
	return false;
}

static bool same_name(void *ctx, const char *sha, const char *name)
{
	(void)sha;
	return strcmp(ctx, name) == 0;
}

struct head {
	char sha[65], name[MANIFEST_RUN_NAME_MAX];
	bool found;
};

static bool keep_last(void *ctx, const char *sha, const char *name)
{
	struct head *h = ctx;

	memcpy(h->sha, sha, sizeof h->sha);
	snprintf(h->name, sizeof h->name, "%s", name);
	h->found = true;
	return false;
}

static enum isnap_status write_chain(struct manifest *m,
				     struct isnap_error *err)
{
	if (manifest_chain_write(m->dir_fd, m->chain, m->chain_len) != 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "writing %s/%s",
					m->dir_name, MANIFEST_CHAIN);
	return ISNAP_OK;
}

static int cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Run files no chain line names belong to runs that stopped before their
 * end (a crash, a kill): chain them as they are, in time order, so that
 * from now on an edit of them shows. */
static enum isnap_status chain_orphans(struct manifest *m,
				       struct isnap_error *err)
{
	DIR *d;
	struct dirent *de;
	char **names = NULL;
	size_t n = 0, alloc = 0;
	enum isnap_status rc = ISNAP_OK;
	int dfd = openat(m->dir_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (dfd < 0 || !(d = fdopendir(dfd))) {
		if (dfd >= 0)
			close(dfd);
		return isnap_fail_errno(err, ISNAP_ELOCAL, "reading %s",
					m->dir_name);
	}
	for (errno = 0; (de = readdir(d)) != NULL; errno = 0) {
		if (!manifest_is_run_name(de->d_name) ||
		    chain_each(m, same_name, de->d_name))
			continue;
		if (n == alloc) {
			size_t a = alloc ? 2 * alloc : 8;
			char **v = realloc(names, a * sizeof *v);
			if (!v)
				break;
			names = v;
			alloc = a;
		}
		if (!(names[n] = strdup(de->d_name)))
			break;
		n++;
	}
	if (errno) {
		rc = errno == ENOMEM ? isnap_fail(err, ISNAP_ENOMEM,
						  "out of memory")
				     : isnap_fail_errno(err, ISNAP_ELOCAL,
							"reading %s",
							m->dir_name);
	}
	closedir(d);
	if (n)
		qsort(names, n, sizeof *names, cmp_str);
	for (size_t i = 0; !rc && i < n; i++) {
		char sha[65];
		int fd = beneath_open_file(m->dir_fd, names[i], O_RDONLY, 0);
		if (fd < 0 || manifest_sha256_fd(fd, sha) != 0)
			rc = isnap_fail_errno(err, ISNAP_ELOCAL,
					      "reading %s/%s", m->dir_name,
					      names[i]);
		if (fd >= 0)
			close(fd);
		if (!rc)
			rc = chain_append(m, sha, names[i], err);
	}
	if (!rc && n)
		rc = write_chain(m, err);
	for (size_t i = 0; i < n; i++)
		free(names[i]);
	free(names);
	return rc;
}

/* Create the run file under a fresh name (two runs within a microsecond
 * get different names). */
static enum isnap_status create_run_file(struct manifest *m,
					 const char *state_dir,
					 struct timespec ts,
					 struct isnap_error *err)
{
	for (int attempt = 0; attempt < 1000; attempt++) {
		manifest_run_name(&ts, m->name);
		m->fd = openat(m->dir_fd, m->name,
			       O_RDWR | O_CREAT | O_EXCL | O_APPEND |
				       O_CLOEXEC | O_NOFOLLOW,
			       0600);
		if (m->fd >= 0)
			break;
		if (errno != EEXIST)
			return isnap_fail_errno(err, ISNAP_ELOCAL,
						"creating %s/%s/%s", state_dir,
						MANIFEST_DIR, m->name);
		ts.tv_nsec += 1000;
		if (ts.tv_nsec >= 1000000000) {
			ts.tv_sec++;
			ts.tv_nsec -= 1000000000;
		}
	}
	if (m->fd < 0)
		return isnap_fail(err, ISNAP_ELOCAL,
				  "creating a run file in %s/%s: every name "
				  "is taken",
				  state_dir, MANIFEST_DIR);
	if (asprintf(&m->path, "%s/%s/%s", state_dir, MANIFEST_DIR,
		     m->name) < 0) {
		m->path = NULL;
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	}
	/* The new name is durable before anything refers to it. */
	if (store_fsync_dir(m->dir_fd, "") != 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "syncing %s/%s",
					state_dir, MANIFEST_DIR);
	return ISNAP_OK;
}

/* Single-file exports: an unlinked file in $TMPDIR, which vanishes with
 * the process; finish copies it into the archive. */
static enum isnap_status create_temp_file(struct manifest *m,
					  struct isnap_error *err)
{
	const char *dir = getenv("TMPDIR");
	char *tmpl = NULL;

	if (!dir || !*dir)
		dir = "/tmp";
	m->fd = open(dir, O_TMPFILE | O_RDWR | O_APPEND | O_CLOEXEC, 0600);
	if (m->fd >= 0)
		return ISNAP_OK;
	/* No O_TMPFILE there (older kernels, some filesystems). */
	if (asprintf(&tmpl, "%s/imapsnap-manifest.XXXXXX", dir) < 0)
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	m->fd = mkostemp(tmpl, O_APPEND | O_CLOEXEC);
	if (m->fd >= 0)
		unlink(tmpl);
	else
		isnap_fail_errno(err, ISNAP_ELOCAL, "creating a temporary "
				 "file in %s", dir);
	free(tmpl);
	return m->fd >= 0 ? ISNAP_OK : ISNAP_ELOCAL;
}

static void emit_header(struct manifest *m, const struct manifest_run_info *in,
			const struct timespec *started, const struct head *prev)
{
	char when[40];
	json_t *o = line("run");
	int bad = !o;

	iso_utc(started, when, sizeof when);
	if (o) {
		bad |= set_u64(o, "manifest", MANIFEST_VERSION);
		bad |= set_str(o, "tool", "imapsnap");
		bad |= set_str(o, "version", in->tool_version);
		bad |= set_str(o, "format", in->format);
		bad |= set_str(o, "dest", in->dest);
		bad |= set_str(o, "host", in->host);
		bad |= set_str(o, "user", in->user);
		bad |= set_str(o, "started", when);
		if (m->dir_fd >= 0)
			bad |= set_str(o, "file", m->name);
		bad |= json_object_set_new(
			o, "prev",
			prev ? json_pack("{ssss}", "file", prev->name, "sha256",
					 prev->sha)
			     : json_null());
	}
	emit_built(m, o, bad);
}

enum isnap_status manifest_open(int state_fd, const char *state_dir,
				const struct manifest_run_info *info,
				struct manifest **out, struct isnap_error *err)
{
	static const struct manifest_run_info none = { 0 };
	struct manifest *m;
	struct timespec now;
	struct head prev = { .found = false };
	enum isnap_status rc;

	*out = NULL;
	if (!info)
		info = &none;
	m = calloc(1, sizeof *m);
	if (!m)
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	pthread_mutex_init(&m->lock, NULL);
	m->fd = m->dir_fd = -1;
	clock_gettime(CLOCK_REALTIME, &now);
	if (state_fd >= 0) {
		if (asprintf(&m->dir_name, "%s/%s", state_dir,
			     MANIFEST_DIR) < 0) {
			m->dir_name = NULL;
			rc = isnap_fail(err, ISNAP_ENOMEM, "out of memory");
			goto fail;
		}
		m->dir_fd = beneath_open_dir(state_fd, MANIFEST_DIR, true);
		if (m->dir_fd < 0) {
			rc = isnap_fail_errno(err, ISNAP_ELOCAL, "%s/%s",
					      state_dir, MANIFEST_DIR);
			goto fail;
		}
		rc = load_chain(m, err);
		if (!rc)
			rc = chain_orphans(m, err);
		if (!rc)
			rc = create_run_file(m, state_dir, now, err);
		if (rc)
			goto fail;
		chain_each(m, keep_last, &prev);
	} else {
		rc = create_temp_file(m, err);
		if (rc)
			goto fail;
	}
	emit_header(m, info, &now, prev.found ? &prev : NULL);
	out_sync(m);
	if (m->failed) {
		rc = failed(m, err);
		goto fail;
	}
	*out = m;
	return ISNAP_OK;
fail:
	manifest_free(m);
	return rc;
}

/* ---------------------------------------------------------------------- */
/* The lines the caller adds                                               */

void manifest_server(struct manifest *m, const char *greeting,
		     const char *capabilities)
{
	json_t *o = line("server"), *caps = json_array();
	int bad = !o || !caps;

	if (!m) {
		json_decref(o);
		json_decref(caps);
		return;
	}
	if (o)
		bad |= set_str(o, "greeting", greeting);
	for (const char *p = capabilities; caps && p && *p;) {
		size_t n = strcspn(p, " ");
		if (n)
			bad |= json_array_append_new(caps, json_stringn(p, n));
		p += n;
		while (*p == ' ')
			p++;
	}
	if (o)
		bad |= json_object_set_new(o, "capabilities", caps);
	else
		json_decref(caps);
	emit_built(m, o, bad);
}

void manifest_server_id(struct manifest *m, bool answered,
			char *const *field, char *const *value, size_t n)
{
	json_t *o, *id;
	int bad;

	if (!m)
		return;
	o = line("server_id");
	id = answered ? json_object() : json_null();
	bad = !o || !id;
	for (size_t i = 0; !bad && answered && i < n; i++) {
		/* A server may send any bytes: a field name that is not
		 * UTF-8 is left out rather than fail the line. */
		json_t *k = json_string(field[i]);
		if (!k || strlen(field[i]) > 60) {
			json_decref(k);
			continue;
		}
		json_decref(k);
		bad |= value[i] ? set_str(id, field[i], value[i])
				: json_object_set_new(id, field[i],
						      json_null());
	}
	if (o && id)
		bad |= json_object_set_new(o, "id", id);
	else
		json_decref(id);
	emit_built(m, o, bad);
}

static struct examined_folder *find_examined(struct mstore *ms,
					     const char *name)
{
	for (size_t i = ms->n_examined; i-- > 0;)
		if (!strcmp(ms->examined[i].name, name))
			return &ms->examined[i];
	return NULL;
}

static void remember_examined(struct manifest *m, struct mstore *ms,
			      const char *name, uint32_t uidvalidity)
{
	struct examined_folder *e;
	char *copy;

	if (!ms)
		return;
	if ((e = find_examined(ms, name))) {
		e->uidvalidity = uidvalidity;
		return;
	}
	if (ms->n_examined == ms->alloc_examined) {
		size_t na = ms->alloc_examined ? 2 * ms->alloc_examined : 16;
		struct examined_folder *v =
			realloc(ms->examined, na * sizeof *v);
		if (!v) {
			stick_oom(m);
			return;
		}
		ms->examined = v;
		ms->alloc_examined = na;
	}
	if (!(copy = strdup(name))) {
		stick_oom(m);
		return;
	}
	ms->examined[ms->n_examined++] =
		(struct examined_folder){ .name = copy,
					  .uidvalidity = uidvalidity };
}

static void examined(struct manifest *m, struct mstore *ms,
		     const struct store_folder *f)
{
	json_t *o = line("folder");
	int bad = !o;
	struct mstore *to = ms ? ms : m->store;
	bool ahead = to && to->ahead;

	if (o) {
		char delim[2] = { f->delim, '\0' };
		bad |= set_folder(o, f->name, f->utf8, f->uidvalidity);
		bad |= f->delim ? set_str(o, "delim", delim)
				: json_object_set_new(o, "delim", json_null());
		if (f->ns_prefix) {
			char *path = folder_logical_path(f->name, f->delim,
							 f->ns_prefix);
			bad |= !path || set_str(o, "path", path);
			bad |= set_str(o, "ns_prefix", f->ns_prefix);
			free(path);
		}
		bad |= f->role ? set_str(o, "role", f->role)
			       : json_object_set_new(o, "role", json_null());
		bad |= set_u64(o, "uidnext", f->uidnext);
		bad |= set_u64(o, "exists", f->exists);
		bad |= set_u64(o, "highestmodseq", f->highestmodseq);
	}
	emit_built_to(m, ms, o, bad);
	if (to)
		to->ahead = ahead; /* nothing the store does depends on it */
	remember_examined(m, to, f->name, f->uidvalidity);
}

void manifest_examined(struct manifest *m, const struct store_folder *f)
{
	if (m && f && f->name)
		examined(m, NULL, f);
}

static void skipped(struct manifest *m, struct mstore *ms,
		    const struct store_folder *f, uint32_t uid,
		    const char *why)
{
	json_t *o = line("skipped");
	int bad = !o;

	if (!ms)
		ms = m->store;
	if (o) {
		if (f)
			bad |= set_folder(o, f->name, f->utf8, f->uidvalidity);
		else if (ms && ms->folder.open)
			bad |= set_folder(o, ms->folder.name, ms->folder.utf8,
					  ms->folder.uidvalidity);
		if (uid)
			bad |= set_u64(o, "uid", uid);
		bad |= set_str(o, "reason", why ? why : "");
	}
	emit_built_to(m, ms, o, bad);
	lock(m);
	m->skipped++;
	unlock(m);
}

void manifest_skipped(struct manifest *m, const struct store_folder *f,
		      uint32_t uid, const char *why)
{
	if (m)
		skipped(m, NULL, f, uid, why);
}

void manifest_end(struct manifest *m, const struct manifest_summary *sum)
{
	if (!m || !sum)
		return;
	lock(m);
	m->sum = *sum;
	m->have_summary = true;
	clock_gettime(CLOCK_REALTIME, &m->ended);
	unlock(m);
}

const char *manifest_sha256(const struct manifest *m)
{
	return m && m->sha256[0] ? m->sha256 : NULL;
}

const char *manifest_path(const struct manifest *m)
{
	return m ? m->path : NULL;
}

uint64_t manifest_recorded(const struct manifest *m)
{
	return m ? m->recorded : 0;
}

uint64_t manifest_skipped_count(const struct manifest *m)
{
	return m ? m->skipped : 0;
}

void manifest_free(struct manifest *m)
{
	if (!m)
		return;
	/* An unfinished run keeps what it recorded; no sync is needed for a
	 * record the next run only chains as it finds it. */
	for (size_t i = 0; i < m->n_others; i++) {
		out_add_locked(m, &m->others[i]->pend);
		m->others[i]->m = NULL;
	}
	if (m->store) {
		out_add_locked(m, &m->store->pend);
		m->store->m = NULL;
	}
	out_flush_locked(m);
	if (m->fd >= 0)
		close(m->fd);
	if (m->dir_fd >= 0)
		close(m->dir_fd);
	free(m->path);
	free(m->dir_name);
	free(m->out.p);
	free(m->chain);
	free(m->others);
	pthread_mutex_destroy(&m->lock);
	free(m);
}

/* ---------------------------------------------------------------------- */
/* The decorator                                                           */

static struct mstore *ms_of(struct store *s)
{
	return (struct mstore *)s;
}

static enum isnap_status detached(struct isnap_error *err)
{
	return isnap_fail(err, ISNAP_EUSAGE,
			  "the store's manifest was freed before the store");
}

static void close_folder_record(struct mstore *ms)
{
	free(ms->folder.name);
	free(ms->folder.utf8);
	ms->folder.name = ms->folder.utf8 = NULL;
	ms->folder.open = false;
}

/* A message the store found at another place than where it was saved
 * (store_ops.moves): a `moved` line, confirmed by the next commit line
 * like a message line. */
static void record_moved(void *ctx, uint32_t uid, const char *from,
			 const struct store_location *to)
{
	struct mstore *ms = ctx;
	char digest[65];
	json_t *o = line("moved");
	int bad = !o;

	if (o) {
		bad |= set_folder(o, ms->folder.name, ms->folder.utf8,
				  ms->folder.uidvalidity);
		bad |= set_u64(o, "uid", uid);
		bad |= set_str(o, "location", to->location);
		bad |= set_str(o, "from", from);
		hex(to->stored_sha256, 32, digest);
		bad |= set_u64(o, "stored_size", to->stored_size);
		bad |= set_str(o, "stored_sha256", digest);
	}
	ms->batch++;
	emit_built_to(ms->m, ms, o, bad);
}

static enum isnap_status ms_open_folder(struct store *s,
					const struct store_folder *f,
					struct uidset *present,
					struct isnap_error *err)
{
	struct mstore *ms = ms_of(s);
	struct manifest *m = ms->m;
	enum isnap_status rc;

	if (!m)
		return detached(err);
	if ((rc = failed(m, err)))
		return rc;
	rc = ms->inner->ops->open_folder(ms->inner, f, present, err);
	if (rc)
		return rc;
	close_folder_record(ms);
	ms->folder.name = strdup(f->name);
	ms->folder.utf8 = strdup(f->utf8 ? f->utf8 : f->name);
	ms->folder.uidvalidity = f->uidvalidity;
	ms->folder.open = true;
	if (!ms->folder.name || !ms->folder.utf8)
		stick_oom(m);
	else if (!find_examined(ms, f->name) ||
		 find_examined(ms, f->name)->uidvalidity != f->uidvalidity)
		examined(m, ms, f);
	if (ms->inner->ops->moves && ms->folder.open && !failed(m, NULL))
		ms->inner->ops->moves(ms->inner, record_moved, ms);
	return failed(m, err);
}

static enum isnap_status ms_retire_generation(struct store *s,
					      const struct store_folder *f,
					      uint32_t old,
					      struct isnap_error *err)
{
	struct mstore *ms = ms_of(s);
	struct manifest *m = ms->m;
	enum isnap_status rc;
	json_t *o;
	int bad;

	if (!m)
		return detached(err);
	if ((rc = failed(m, err)))
		return rc;
	rc = ms->inner->ops->retire_generation(ms->inner, f, old, err);
	if (rc)
		return rc;
	o = line("retire");
	bad = !o;
	if (o) {
		bad |= set_folder(o, f->name, f->utf8, 0);
		bad |= set_u64(o, "uidvalidity_old", old);
		bad |= set_u64(o, "uidvalidity", f->uidvalidity);
	}
	emit_built_to(m, ms, o, bad);
	return failed(m, err);
}

static enum isnap_status ms_begin_message(struct store *s,
					  const struct store_message *msg,
					  struct isnap_error *err)
{
	struct mstore *ms = ms_of(s);
	struct manifest *m = ms->m;
	enum isnap_status rc;

	if (!m)
		return detached(err);
	if ((rc = failed(m, err)))
		return rc;
	rc = ms->inner->ops->begin_message(ms->inner, msg, err);
	if (rc)
		return rc;
	if (!EVP_DigestInit_ex(ms->md, EVP_sha256(), NULL)) {
		ms->inner->ops->abort_message(ms->inner);
		stick_oom(m);
		return failed(m, err);
	}
	ms->in_msg = true;
	ms->received = 0;
	return ISNAP_OK;
}

static enum isnap_status ms_write(struct store *s, const void *data,
				  size_t len, struct isnap_error *err)
{
	struct mstore *ms = ms_of(s);
	struct manifest *m = ms->m;
	enum isnap_status rc;

	if (!m)
		return detached(err);
	rc = ms->inner->ops->write(ms->inner, data, len, err);
	if (rc || !ms->in_msg)
		return rc;
	/* Hash only what the store took, so the hash is of the bytes it
	 * holds. */
	if (!EVP_DigestUpdate(ms->md, data, len)) {
		stick_oom(m);
		return failed(m, err);
	}
	ms->received += len;
	return ISNAP_OK;
}

/* Gmail's id, thread and labels (docs/manifest.md): the ids as decimal
 * strings, since they use all 64 bits and JSON readers stop at 2^53. */
static int set_gmail(json_t *o, const struct store_message *msg)
{
	char num[24];
	int bad = 0;

	if (msg->gm_msgid) {
		snprintf(num, sizeof num, "%llu",
			 (unsigned long long)msg->gm_msgid);
		bad |= set_str(o, "gm_msgid", num);
	}
	if (msg->gm_thrid) {
		snprintf(num, sizeof num, "%llu",
			 (unsigned long long)msg->gm_thrid);
		bad |= set_str(o, "gm_thrid", num);
	}
	if (msg->has_gm_labels) {
		json_t *a = json_array();
		bad |= !a;
		for (size_t i = 0; a && i < msg->gm_nlabels; i++)
			bad |= json_array_append_new(a, json_string(
						msg->gm_labels[i]));
		bad |= json_object_set_new(o, "gm_labels", a);
	}
	return bad;
}

static void record_message(struct manifest *m, struct mstore *ms,
			   const struct store_message *msg,
			   const unsigned char *sha, unsigned shalen,
			   const struct store_location *loc)
{
	char digest[65], when[40];
	json_t *o = line("message");
	int bad = !o;

	if (o) {
		hex(sha, shalen, digest);
		bad |= set_folder(o, ms->folder.name, ms->folder.utf8,
				  ms->folder.uidvalidity);
		bad |= set_u64(o, "uid", msg->uid);
		if (msg->internaldate != STORE_NO_DATE &&
		    iso_zoned(msg->internaldate, msg->tz_minutes,
			      msg->leap_second, when,
			      sizeof when))
			bad |= set_str(o, "internaldate", when);
		if (msg->rfc822_size != STORE_NO_SIZE)
			bad |= set_u64(o, "rfc822_size", msg->rfc822_size);
		bad |= set_u64(o, "received", ms->received);
		bad |= set_str(o, "sha256", digest);
		bad |= set_flags(o, msg->flags, msg->keywords);
		if (msg->modseq)
			bad |= set_u64(o, "modseq", msg->modseq);
		bad |= set_gmail(o, msg);
		if (loc && loc->location[0])
			bad |= set_str(o, "location", loc->location);
		if (loc && loc->has_stored_sha256) {
			hex(loc->stored_sha256, 32, digest);
			bad |= set_u64(o, "stored_size", loc->stored_size);
			bad |= set_str(o, "stored_sha256", digest);
			if (loc->added[0])
				bad |= set_str(o, "added", loc->added);
		}
		if (msg->rfc822_size != STORE_NO_SIZE &&
		    msg->rfc822_size != ms->received)
			bad |= set_bool(o, "size_mismatch", true);
	}
	ms->batch++; /* before: the line must wait for its commit */
	emit_built_to(m, ms, o, bad);
	lock(m);
	m->recorded++;
	m->recorded_bytes += ms->received;
	unlock(m);
}

static enum isnap_status ms_end_message(struct store *s,
					const struct store_message *msg,
					struct isnap_error *err)
{
	struct mstore *ms = ms_of(s);
	struct manifest *m = ms->m;
	struct store_location loc;
	unsigned char sha[EVP_MAX_MD_SIZE];
	unsigned int shalen = 0;
	enum isnap_status rc;
	bool in_msg;

	if (!m)
		return detached(err);
	in_msg = ms->in_msg;
	ms->in_msg = false;
	rc = ms->inner->ops->end_message(ms->inner, msg, err);
	if (rc || !in_msg)
		return rc;
	if (!EVP_DigestFinal_ex(ms->md, sha, &shalen)) {
		/* Ended in the store and unrecordable: the sticky failure
		 * keeps it from ever being committed. */
		stick_oom(m);
		return failed(m, err);
	}
	memset(&loc, 0, sizeof loc);
	if (ms->inner->ops->locate)
		ms->inner->ops->locate(ms->inner, &loc);
	record_message(m, ms, msg, sha, shalen, &loc);
	return failed(m, err);
}

static void ms_abort_message(struct store *s)
{
	struct mstore *ms = ms_of(s);

	ms->in_msg = false;
	ms->inner->ops->abort_message(ms->inner);
}

/* A message saved earlier changed its flags on the server: the store
 * updates its copy where it can (Maildir: the name's suffix, never the
 * bytes), and the manifest records the change for every format, so that
 * verify and restore know the flags also of mbox and archive copies. */
static enum isnap_status ms_update_flags(struct store *s,
					 const struct store_message *msg,
					 struct isnap_error *err)
{
	struct mstore *ms = ms_of(s);
	struct manifest *m = ms->m;
	enum isnap_status rc;
	json_t *o;
	int bad;

	if (!m)
		return detached(err);
	if ((rc = failed(m, err)))
		return rc;
	if (ms->inner->ops->update_flags) {
		rc = ms->inner->ops->update_flags(ms->inner, msg, err);
		if (rc)
			return rc;
	}
	o = line("flags");
	bad = !o;
	if (o) {
		bad |= set_folder(o, ms->folder.name, ms->folder.utf8,
				  ms->folder.uidvalidity);
		bad |= set_u64(o, "uid", msg->uid);
		bad |= set_flags(o, msg->flags, msg->keywords);
		if (msg->modseq)
			bad |= set_u64(o, "modseq", msg->modseq);
		bad |= set_gmail(o, msg);
	}
	emit_built_to(m, ms, o, bad);
	return failed(m, err);
}

static void ms_locate(struct store *s, struct store_location *loc)
{
	struct mstore *ms = ms_of(s);

	ms->inner->ops->locate(ms->inner, loc);
}

/* After the real store's commit (or finish): confirm the lines of the
 * batch, or say that they are not confirmed.  With the lock held, right
 * after the batch's lines went to the run file. */
static void confirm_locked(struct manifest *m, struct mstore *ms,
			   enum isnap_status rc, const struct isnap_error *err)
{
	struct isnap_error e;
	struct lines one = { 0 };
	json_t *o;
	int bad;

	if (!ms->batch && !rc)
		return;
	o = line(rc ? "commit_failed" : "commit");
	bad = !o;
	if (o) {
		bad |= set_u64(o, "messages", ms->batch);
		if (rc)
			bad |= set_str(o, "error", err ? err->msg : "");
	}
	ms->batch = 0;
	if (bad) {
		json_decref(o);
		o = NULL;
	}
	if (!(one.p = dump_line(o, &one.len))) {
		isnap_fail(&e, ISNAP_ENOMEM, "manifest: out of memory");
		stick_locked(m, &e);
		return;
	}
	one.cap = one.len;
	out_add_locked(m, &one);
	free(one.p);
	out_sync_locked(m);
}

/* commit, close_folder: lines first, then the store, then the word that
 * the store holds them.  Under the lock from the first to the last, so
 * that no other store's lines or commit come between. */
static enum isnap_status write_ahead(struct store *s,
				     enum isnap_status (*op)(struct store *,
							     struct isnap_error *),
				     struct isnap_error *err)
{
	struct mstore *ms = ms_of(s);
	struct manifest *m = ms->m;
	enum isnap_status rc;

	if (!m)
		return detached(err);
	lock(m);
	out_add_locked(m, &ms->pend);
	if (ms->batch || ms->ahead) {
		out_sync_locked(m);
		ms->ahead = false;
	}
	if (m->failed) {
		rc = failed_locked(m, err);
		unlock(m);
		return rc;
	}
	rc = op(ms->inner, err);
	if (!ms->ops.durable_at_finish)
		confirm_locked(m, ms, rc, err);
	/* A confirmation that could not be written (the disk filled) does
	 * not undo the commit: the messages are durable, and their lines
	 * were written before.  The failure sticks, and the next call
	 * returns it. */
	unlock(m);
	return rc;
}

static enum isnap_status ms_commit(struct store *s, struct isnap_error *err)
{
	return write_ahead(s, ms_of(s)->inner->ops->commit, err);
}

static enum isnap_status ms_close_folder(struct store *s,
					 struct isnap_error *err)
{
	struct mstore *ms = ms_of(s);
	enum isnap_status rc;

	ms->in_msg = false; /* close aborts a message still open */
	rc = write_ahead(s, ms->inner->ops->close_folder, err);
	if (ms->m && !failed(ms->m, NULL))
		close_folder_record(ms);
	return rc;
}

static enum isnap_status ms_add_meta_file(struct store *s, const char *name,
					  int fd, struct isnap_error *err)
{
	struct mstore *ms = ms_of(s);

	return ms->inner->ops->add_meta_file(ms->inner, name, fd, err);
}

static void emit_end(struct manifest *m)
{
	const struct manifest_summary *u = &m->sum;
	char when[40];
	json_t *o = line("end");
	int bad = !o;

	if (!m->have_summary)
		clock_gettime(CLOCK_REALTIME, &m->ended);
	iso_utc(&m->ended, when, sizeof when);
	if (o) {
		bad |= set_str(o, "ended", when);
		bad |= set_u64(o, "recorded", m->recorded);
		bad |= set_u64(o, "recorded_bytes", m->recorded_bytes);
		bad |= set_u64(o, "skipped", m->skipped);
	}
	if (o && m->have_summary) {
		bad |= set_str(o, "status", u->status
						    ? isnap_status_name(u->status)
						    : "ok");
		bad |= set_u64(o, "listed", u->listed);
		bad |= set_u64(o, "saved", u->saved);
		bad |= set_u64(o, "uncommitted", u->uncommitted);
		bad |= set_u64(o, "failed", u->failed);
		bad |= set_u64(o, "vanished", u->vanished);
		bad |= set_u64(o, "unexpected", u->unexpected);
		bad |= set_u64(o, "size_mismatch", u->size_mismatch);
		bad |= set_u64(o, "folders", u->folders);
		bad |= set_u64(o, "folders_failed", u->folders_failed);
		bad |= set_bool(o, "accounted",
				u->listed == u->saved + u->failed +
						     u->vanished &&
					u->saved == m->recorded);
	}
	emit_built(m, o, bad);
}

/* The run file is complete: hash it and add it to the chain. */
static enum isnap_status seal(struct manifest *m, struct isnap_error *err)
{
	if (manifest_sha256_fd(m->fd, m->sha256) != 0) {
		m->sha256[0] = '\0';
		return isnap_fail_errno(err, ISNAP_ELOCAL, "reading %s",
					where(m));
	}
	if (m->dir_fd < 0)
		return ISNAP_OK;
	enum isnap_status rc = chain_append(m, m->sha256, m->name, err);
	if (!rc)
		rc = write_chain(m, err);
	if (rc)
		isnap_error_prefix(err, "manifest chain");
	return rc;
}

/* Hand what `ms` holds to the run file. */
static void flush_store(struct manifest *m, struct mstore *ms)
{
	lock(m);
	out_add_locked(m, &ms->pend);
	unlock(m);
}

/* A store added by manifest_wrap_another: its lines go to the run file
 * and the real store finishes; the run's record is the first store's to
 * end. */
static enum isnap_status finish_another(struct mstore *ms,
					struct isnap_error *err)
{
	struct manifest *m = ms->m;
	enum isnap_status rc;

	ms->in_msg = false;
	flush_store(m, ms);
	if ((rc = failed(m, err)))
		return rc;
	return ms->inner->ops->finish(ms->inner, err);
}

static enum isnap_status ms_finish(struct store *s, struct isnap_error *err)
{
	struct mstore *ms = ms_of(s);
	struct manifest *m = ms->m;
	struct store *in = ms->inner;
	struct isnap_error scratch = { 0 };
	enum isnap_status rc, src;

	if (!m)
		return detached(err);
	if (ms != m->store)
		return finish_another(ms, err);
	if (m->finished)
		return isnap_fail(err, ISNAP_EUSAGE, "finish: called twice");
	if ((rc = failed(m, err)))
		return rc;
	ms->in_msg = false; /* finish aborts a message still open */
	for (size_t i = 0; i < m->n_others; i++)
		flush_store(m, m->others[i]);
	emit_end(m);
	lock(m);
	out_add_locked(m, &ms->pend);
	out_sync_locked(m);
	rc = failed_locked(m, err);
	unlock(m);
	if (rc)
		return rc;
	/* The volume must carry its manifest: without it, it could not be
	 * verified on its own, so a failure here fails the volume. */
	rc = in->ops->add_meta_file
		     ? in->ops->add_meta_file(in, MANIFEST_META_NAME, m->fd,
					      err)
		     : ISNAP_OK;
	if (!rc)
		rc = in->ops->finish(in, err);
	m->finished = true;
	if (m->dir_fd < 0) {
		/* Single-file export: the archive holds the record; no
		 * chain, and nothing to seal if there is no archive. */
		if (!rc)
			rc = seal(m, err);
		return rc;
	}
	lock(m);
	confirm_locked(m, ms, rc, err);
	src = m->failed;
	unlock(m);
	if (src)
		return rc ? rc : failed(m, err);
	src = seal(m, rc ? &scratch : err);
	return rc ? rc : src;
}

static void ms_destroy(struct store *s)
{
	struct mstore *ms = ms_of(s);
	struct manifest *m = ms->m;

	if (m)
		flush_store(m, ms); /* kept, as manifest_free keeps them */
	if (m && m->store == ms) {
		m->store = NULL;
	} else if (m) {
		lock(m);
		for (size_t i = 0; i < m->n_others; i++)
			if (m->others[i] == ms)
				m->others[i] = m->others[--m->n_others];
		unlock(m);
	}
	store_free(ms->inner);
	close_folder_record(ms);
	for (size_t i = 0; i < ms->n_examined; i++)
		free(ms->examined[i].name);
	free(ms->examined);
	free(ms->pend.p);
	EVP_MD_CTX_free(ms->md);
	free(ms);
}

static enum isnap_status wrap(struct manifest *m, struct store *inner,
			      struct mstore **out, struct isnap_error *err)
{
	struct mstore *ms;

	*out = NULL;
	ms = calloc(1, sizeof *ms);
	if (!ms || !(ms->md = EVP_MD_CTX_new())) {
		free(ms);
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	}
	ms->base.dest = inner->dest ? strdup(inner->dest) : NULL;
	ms->base.dest_fd = inner->dest_fd >= 0
				   ? fcntl(inner->dest_fd, F_DUPFD_CLOEXEC, 0)
				   : -1;
	if ((inner->dest && !ms->base.dest) ||
	    (inner->dest_fd >= 0 && ms->base.dest_fd < 0)) {
		free(ms->base.dest);
		EVP_MD_CTX_free(ms->md);
		free(ms);
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	}
	/* Op by op, never a copy of the inner table: an op added to store.h
	 * later must not reach the inner store with our `s`. */
	ms->ops.format = inner->ops->format;
	ms->ops.caps = inner->ops->caps;
	ms->ops.durable_at_finish = inner->ops->durable_at_finish;
	ms->ops.open_folder = ms_open_folder;
	ms->ops.retire_generation = ms_retire_generation;
	ms->ops.begin_message = ms_begin_message;
	ms->ops.write = ms_write;
	ms->ops.end_message = ms_end_message;
	ms->ops.abort_message = ms_abort_message;
	ms->ops.update_flags = ms_update_flags; /* the line, at least */
	ms->ops.locate = inner->ops->locate ? ms_locate : NULL;
	ms->ops.commit = ms_commit;
	ms->ops.close_folder = ms_close_folder;
	ms->ops.add_meta_file = inner->ops->add_meta_file ? ms_add_meta_file
							  : NULL;
	ms->ops.finish = ms_finish;
	ms->ops.destroy = ms_destroy;
	ms->base.ops = &ms->ops;
	ms->inner = inner;
	ms->m = m;
	*out = ms;
	return ISNAP_OK;
}

enum isnap_status manifest_wrap(struct manifest *m, struct store *inner,
				struct store **out, struct isnap_error *err)
{
	struct mstore *ms;
	enum isnap_status rc;

	*out = NULL;
	if (m->store)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "manifest_wrap: the manifest already has a "
				  "store");
	if ((rc = wrap(m, inner, &ms, err)))
		return rc;
	m->store = ms;
	*out = &ms->base;
	return ISNAP_OK;
}

enum isnap_status manifest_wrap_another(struct manifest *m,
					struct store *inner,
					struct store **out,
					struct isnap_error *err)
{
	struct mstore *ms, **v;
	enum isnap_status rc;

	*out = NULL;
	if (!m->store)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "manifest_wrap_another: no first store");
	if (m->store->ops.durable_at_finish)
		return isnap_fail(err, ISNAP_EUSAGE,
				  "manifest_wrap_another: a %s store is "
				  "one stream", m->store->ops.format);
	if ((rc = wrap(m, inner, &ms, err)))
		return rc;
	lock(m);
	v = realloc(m->others, (m->n_others + 1) * sizeof *v);
	if (v) {
		m->others = v;
		v[m->n_others++] = ms;
	}
	unlock(m);
	if (!v) {
		/* `inner` stays the caller's. */
		free(ms->base.dest);
		if (ms->base.dest_fd >= 0)
			close(ms->base.dest_fd);
		EVP_MD_CTX_free(ms->md);
		free(ms);
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	}
	*out = &ms->base;
	return ISNAP_OK;
}

void manifest_store_examined(struct store *s, const struct store_folder *f)
{
	struct mstore *ms = ms_of(s);
	const struct examined_folder *e;

	if (!ms->m || !f || !f->name)
		return;
	/* Once per folder and generation: opening it may have recorded it
	 * already (from its STATUS, which said the same). */
	e = find_examined(ms, f->name);
	if (!e || e->uidvalidity != f->uidvalidity)
		examined(ms->m, ms, f);
}

void manifest_store_skipped(struct store *s, const struct store_folder *f,
			    uint32_t uid, const char *why)
{
	struct mstore *ms = ms_of(s);

	if (ms->m)
		skipped(ms->m, ms, f, uid, why);
}
