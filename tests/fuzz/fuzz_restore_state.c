/*
 * fuzz_restore_state.c — the restore state log (lib/restore_state.c)
 * against any bytes a damaged or hand-edited restore.jsonl may hold.
 *
 * fuzz-sources: lib/restore_state.c lib/lock.c lib/beneath.c lib/error.c
 * fuzz-packages: jansson libcrypto
 *
 * The input is written as restore.jsonl in a scratch directory (under
 * /dev/shm when it exists, so that the fsyncs cost nothing) and opened,
 * read-only (a dry run) and for writing (which compacts the log).
 * Checked beyond "no crash, no leak, no undefined behaviour":
 *  - both opens agree on whether the log is acceptable; a refusal is
 *    ISNAP_ELOCAL (or ISNAP_ENOMEM) with a message, and leaves the file
 *    as it was;
 *  - the compacted log opens again, and compacting it again gives the
 *    same lines (in any order: the hash set's order is its own);
 *  - the compacted log holds exactly the "done" lines still live in the
 *    input (not forgotten by a later UIDVALIDITY of their folder), one
 *    per folder and key, and the state opened from it has each of them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "restore_state.h"

static char dir[64];
static char log_path[96];

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_restore_state: %s\n", what);
		abort();
	}
}

static void cleanup(void)
{
	char path[128];

	unlink(log_path);
	snprintf(path, sizeof path, "%s/restore.jsonl.tmp", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/lock", dir);
	unlink(path);
	rmdir(dir);
}

static void setup(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	snprintf(dir, sizeof dir, "%s/fuzz_restore_state.XXXXXX", base);
	if (!mkdtemp(dir))
		abort();
	snprintf(log_path, sizeof log_path, "%s/restore.jsonl", dir);
}

static void write_log(const uint8_t *data, size_t size)
{
	int fd = open(log_path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, data, size) != (ssize_t)size || close(fd))
		abort();
}

static char *read_log(size_t *len)
{
	FILE *f = fopen(log_path, "rb");
	char *buf = NULL;
	size_t cap = 0, n = 0, got;

	check(f != NULL, "the log cannot be read back");
	do {
		if (n == cap) {
			cap = cap ? 2 * cap : 65536;
			if (!(buf = realloc(buf, cap + 1)))
				abort();
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got > 0);
	fclose(f);
	buf[n] = '\0';
	*len = n;
	return buf;
}

static int cmp_line(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The log's lines, sorted, joined: the same for two logs that say the
 * same in another order. */
static char *sorted(char *text, size_t len)
{
	size_t n = 0, k = 0;
	char **v, *out, *p;

	for (size_t i = 0; i < len; i++)
		n += text[i] == '\n';
	v = malloc((n + 1) * sizeof *v);
	out = malloc(len + 1);
	if (!v || !out)
		abort();
	for (p = text; k < n; k++) {
		char *nl = strchr(p, '\n');
		check(nl != NULL, "a NUL in the compacted log");
		*nl = '\0';
		v[k] = p;
		p = nl + 1;
	}
	check(*p == '\0', "the compacted log ends without a newline");
	qsort(v, n, sizeof *v, cmp_line);
	p = out;
	for (k = 0; k < n; k++) {
		size_t l = strlen(v[k]);
		memcpy(p, v[k], l);
		p += l;
		*p++ = '\n';
	}
	*p = '\0';
	free(v);
	return out;
}

static bool unhex(const char *s, unsigned char *out)
{
	if (!s || strlen(s) != 2 * RESTORE_KEY_LEN ||
	    strspn(s, "0123456789abcdef") != 2 * RESTORE_KEY_LEN)
		return false;
	for (int i = 0; i < RESTORE_KEY_LEN; i++) {
		unsigned v;
		sscanf(s + 2 * i, "%2x", &v);
		out[i] = (unsigned char)v;
	}
	return true;
}

/* Every "done" line of the compacted log names a folder and a key that
 * the state opened from it holds. */
static void check_done(struct restore_state *st, const char *text)
{
	const char *p = text;

	while (*p) {
		const char *nl = strchr(p, '\n');
		json_t *o = json_loadb(p, (size_t)(nl - p), 0, NULL);
		const char *type = json_string_value(json_object_get(o, "type"));
		check(o != NULL, "the compacted log holds a line that is no JSON");
		if (type && !strcmp(type, "done")) {
			const char *name =
				json_string_value(json_object_get(o, "folder"));
			unsigned char key[RESTORE_KEY_LEN];
			struct restore_state_folder *f;
			check(name && unhex(json_string_value(json_object_get(
						    o, "key")),
					    key),
			      "a malformed done line in the compacted log");
			f = restore_state_folder(st, name, false);
			check(f != NULL, "a done line's folder is not found");
			check(restore_state_has(st, f, key),
			      "a done line's key is not found");
		}
		json_decref(o);
		p = nl + 1;
	}
}

/* What the input says is done: (folder, key) pairs of the folder's
 * current UIDVALIDITY, as restore_state.h describes the log. */
struct live {
	char *folder;
	unsigned char key[RESTORE_KEY_LEN];
	uint32_t gen;
};

struct model {
	struct live *v;
	size_t n, a;
	struct {
		char *name;
		uint32_t uidvalidity, gen;
	} f[64];
	size_t nf;
	bool too_many;
};

static size_t model_folder(struct model *m, const char *name)
{
	for (size_t i = 0; i < m->nf; i++)
		if (!strcmp(m->f[i].name, name))
			return i;
	if (m->nf == 64) {
		m->too_many = true;
		return 0;
	}
	m->f[m->nf].name = strdup(name);
	m->f[m->nf].uidvalidity = 0;
	m->f[m->nf].gen = 0;
	return m->nf++;
}

static void model_line(struct model *m, const char *p, size_t len)
{
	json_t *o = json_loadb(p, len, 0, NULL);
	const char *type = json_string_value(json_object_get(o, "type"));
	const char *name = json_string_value(json_object_get(o, "folder"));
	size_t fi;

	if (!type || !name || m->too_many) {
		json_decref(o);
		return;
	}
	fi = model_folder(m, name);
	if (!strcmp(type, "folder")) {
		uint32_t uv = (uint32_t)json_integer_value(
			json_object_get(o, "uidvalidity"));
		if (uv != m->f[fi].uidvalidity)
			m->f[fi].gen++;
		m->f[fi].uidvalidity = uv;
	} else if (!strcmp(type, "done")) {
		unsigned char key[RESTORE_KEY_LEN];
		size_t i;
		if (!unhex(json_string_value(json_object_get(o, "key")), key))
			abort(); /* the log was accepted */
		for (i = 0; i < m->n; i++)
			if (!strcmp(m->v[i].folder, m->f[fi].name) &&
			    !memcmp(m->v[i].key, key, RESTORE_KEY_LEN))
				break;
		if (i == m->n) {
			if (m->n == m->a) {
				m->a = m->a ? 2 * m->a : 16;
				if (!(m->v = realloc(m->v, m->a * sizeof *m->v)))
					abort();
			}
			m->v[m->n].folder = m->f[fi].name;
			memcpy(m->v[m->n].key, key, RESTORE_KEY_LEN);
			m->n++;
		}
		m->v[i].gen = m->f[fi].gen;
	}
	json_decref(o);
}

static void model_check(struct model *m, const uint8_t *data, size_t size,
			struct restore_state *st, const char *compacted)
{
	size_t start = 0, live = 0, done = 0;

	for (size_t i = 0; i < size; i++)
		if (data[i] == '\n') {
			model_line(m, (const char *)data + start, i - start);
			start = i + 1;
		}
	if (m->too_many)
		return;
	for (size_t i = 0; i < m->n; i++) {
		size_t fi = model_folder(m, m->v[i].folder);
		struct restore_state_folder *f;
		if (m->v[i].gen != m->f[fi].gen)
			continue;
		live++;
		f = restore_state_folder(st, m->v[i].folder, false);
		check(f && restore_state_has(st, f, m->v[i].key),
		      "a message done in the log is forgotten");
	}
	for (const char *p = compacted; (p = strstr(p, "\"type\":\"done\""));
	     p++)
		done++;
	check(done == live, "the compacted log holds other done lines");
}

static void model_free(struct model *m)
{
	for (size_t i = 0; i < m->nf; i++)
		free(m->f[i].name);
	free(m->v);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct restore_state *ro = NULL, *rw = NULL, *again = NULL;
	struct isnap_error err = { 0 };
	enum isnap_status rc_ro, rc_rw;
	char *once, *twice, *s1, *s2;
	size_t l1, l2;

	if (!dir[0]) {
		setup();
		atexit(cleanup);
	}
	write_log(data, size);
	rc_ro = restore_state_open(dir, true, &ro, &err);
	restore_state_close(ro);
	isnap_error_clear(&err);
	rc_rw = restore_state_open(dir, false, &rw, &err);
	if (rc_rw == ISNAP_ENOMEM || rc_ro == ISNAP_ENOMEM) {
		restore_state_close(rw);
		return 0;
	}
	check(rc_ro == rc_rw, "a dry run and a run disagree about the log");
	if (rc_rw != ISNAP_OK) {
		size_t len;
		char *now;
		check(rc_rw == ISNAP_ELOCAL, "a refusal that is not ISNAP_ELOCAL");
		check(err.msg[0] != '\0', "a refusal without a message");
		check(rw == NULL, "a refusal with a state");
		now = read_log(&len);
		check(len == size && memcmp(now, data, size) == 0,
		      "a refused log was changed");
		free(now);
		return 0;
	}
	restore_state_close(rw);

	once = read_log(&l1);
	check(restore_state_open(dir, false, &again, &err) == ISNAP_OK,
	      "the compacted log does not open");
	check_done(again, once);
	{
		struct model m = { 0 };
		model_check(&m, data, size, again, once);
		model_free(&m);
	}
	restore_state_close(again);
	twice = read_log(&l2);
	s1 = sorted(once, l1);
	s2 = sorted(twice, l2);
	check(l1 == l2 && strcmp(s1, s2) == 0,
	      "compacting the compacted log changed it");
	free(once);
	free(twice);
	free(s1);
	free(s2);
	return 0;
}
