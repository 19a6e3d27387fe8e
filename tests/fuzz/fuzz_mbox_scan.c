/*
 * fuzz_mbox_scan.c — the mbox splitter (lib/store/mbox_scan.c) that verify
 * and restore read a backup's mbox and mbox.gz files with, against a
 * reference splitter written from its header comment.
 *
 * fuzz-sources: lib/store/mbox_scan.c lib/store/common.c lib/store/flags.c lib/beneath.c lib/fsname.c lib/utf8.c lib/error.c
 * fuzz-packages: zlib libcrypto
 *
 * The input: one byte, then the file.  The byte's low 2 bits: 0, the
 * file as INBOX.mbox; 1, gzip-compressed as INBOX.mbox.gz; 2, the same
 * in two gzip members cut in the middle; 3, the bytes as they are as
 * INBOX.mbox.gz (damaged compressed data).  Its high 6 bits: the most
 * bytes the caller wants of each message (4 times their value), 63 for
 * no limit callback.
 * Checked beyond "no crash, no leak, no undefined behaviour":
 *  - the callbacks come in store.h's order (begin, data..., end or
 *    unreadable), and no message gets more than limit + 1 bytes;
 *  - for modes 0 to 2, the messages are the reference's: a message at
 *    each From line (a line that starts with "From "), its location
 *    "INBOX.mbox[.gz]@<offset of the From line>", its bytes those from
 *    after its From line to the line end before the next From line (or
 *    to the end of the file, less one final LF), cut at limit + 1; a
 *    file that does not start with a From line is unreadable, and an
 *    empty one holds nothing.
 */
#include <fcntl.h>
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "store/store.h"

#define MAX_MSGS 4096

static char dir[64];

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_mbox_scan: %s\n", what);
		abort();
	}
}

struct msg {
	uint64_t at;             /* offset of the From line */
	const uint8_t *p;        /* reference: the message's bytes */
	size_t len;
};

struct scan {
	const char *file;        /* "INBOX.mbox" or "INBOX.mbox.gz" */
	uint64_t limit;
	bool in_msg;
	char loc[sizeof ((struct store_location *)0)->location];
	/* What the scan gave, message by message. */
	size_t n;
	uint64_t at[MAX_MSGS];
	uint8_t *data[MAX_MSGS];
	size_t len[MAX_MSGS];
	size_t unreadable;
	bool too_many;
};

static enum isnap_status on_begin(void *ctx, const char *location,
				  struct isnap_error *err)
{
	struct scan *s = ctx;
	size_t fl = strlen(s->file);
	char *end;

	(void)err;
	check(!s->in_msg, "a message begun inside another");
	check(!strncmp(location, s->file, fl) && location[fl] == '@' &&
		      location[fl + 1] >= '0' && location[fl + 1] <= '9',
	      "a location not <file>@<offset>");
	snprintf(s->loc, sizeof s->loc, "%s", location);
	s->in_msg = true;
	if (s->n == MAX_MSGS) {
		s->too_many = true;
		return ISNAP_OK;
	}
	s->at[s->n] = strtoull(location + fl + 1, &end, 10);
	check(*end == '\0', "a location with more after its offset");
	s->data[s->n] = NULL;
	s->len[s->n] = 0;
	return ISNAP_OK;
}

static uint64_t on_limit(void *ctx)
{
	struct scan *s = ctx;

	check(s->in_msg, "limit asked outside a message");
	return s->limit;
}

static enum isnap_status on_data(void *ctx, const void *data, size_t len,
				 struct isnap_error *err)
{
	struct scan *s = ctx;
	uint8_t *p;

	(void)err;
	check(s->in_msg, "data outside a message");
	check(len > 0, "empty data");
	if (s->too_many)
		return ISNAP_OK;
	check(s->len[s->n] + len <= s->limit + 1 || s->limit == UINT64_MAX,
	      "more than the limit and one byte");
	p = realloc(s->data[s->n], s->len[s->n] + len);
	if (!p)
		abort();
	memcpy(p + s->len[s->n], data, len);
	s->data[s->n] = p;
	s->len[s->n] += len;
	return ISNAP_OK;
}

static enum isnap_status on_end(void *ctx, struct isnap_error *err)
{
	struct scan *s = ctx;

	(void)err;
	check(s->in_msg, "end outside a message");
	s->in_msg = false;
	if (!s->too_many)
		s->n++;
	return ISNAP_OK;
}

static enum isnap_status on_unreadable(void *ctx, const char *location,
				       const char *why,
				       struct isnap_error *err)
{
	struct scan *s = ctx;

	(void)err;
	check(location && *location && why && *why,
	      "unreadable without a location or a reason");
	if (s->in_msg) {
		check(!strcmp(location, s->loc),
		      "a message begun, another one unreadable");
		s->in_msg = false;
		if (!s->too_many) {
			free(s->data[s->n]);
			s->data[s->n] = NULL;
		}
	}
	s->unreadable++;
	return ISNAP_OK;
}

static enum isnap_status on_stray(void *ctx, const char *path,
				  const char *what, bool leftover,
				  struct isnap_error *err)
{
	(void)ctx, (void)what, (void)leftover, (void)err;
	fprintf(stderr, "fuzz_mbox_scan: stray %s\n", path);
	check(0, "a stray where only the mbox file is");
	return ISNAP_OK;
}

/* The reference: messages as the header comment of mbox_scan.c says. */
static size_t reference(const uint8_t *b, size_t n, struct msg *out,
			bool *bad)
{
	size_t k = 0;

	*bad = false;
	if (n == 0)
		return 0;
	if (n < 5 || memcmp(b, "From ", 5)) {
		*bad = true;
		return 0;
	}
	for (size_t p = 0; p + 5 <= n && k < MAX_MSGS; p++)
		if ((p == 0 || b[p - 1] == '\n') && !memcmp(b + p, "From ", 5))
			out[k++].at = p;
	for (size_t i = 0; i < k; i++) {
		const uint8_t *lf = memchr(b + out[i].at, '\n', n - out[i].at);
		size_t fe = lf ? (size_t)(lf - b) + 1 : n, end;
		if (i + 1 < k)
			end = out[i + 1].at - 1 > fe ? out[i + 1].at - 1 : fe;
		else {
			end = n;
			if (end > fe && b[end - 1] == '\n')
				end--;
		}
		out[i].p = b + fe;
		out[i].len = end - fe;
	}
	return k;
}

static void put(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || (len && write(fd, data, len) != (ssize_t)len) ||
	    close(fd) != 0)
		abort();
}

/* One gzip member of data[0..len) appended to *out. */
static void gzip_member(const uint8_t *data, size_t len, uint8_t **out,
			size_t *olen)
{
	z_stream z = { 0 };
	size_t cap = compressBound(len) + 64;
	uint8_t *p = realloc(*out, *olen + cap);

	if (!p || deflateInit2(&z, 6, Z_DEFLATED, 15 + 16, 8,
			       Z_DEFAULT_STRATEGY) != Z_OK)
		abort();
	z.next_in = (Bytef *)data;
	z.avail_in = (uInt)len;
	z.next_out = p + *olen;
	z.avail_out = (uInt)cap;
	if (deflate(&z, Z_FINISH) != Z_STREAM_END)
		abort();
	*olen += cap - z.avail_out;
	*out = p;
	deflateEnd(&z);
}

static void cleanup(void)
{
	char path[128];

	snprintf(path, sizeof path, "%s/INBOX.mbox", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/INBOX.mbox.gz", dir);
	unlink(path);
	rmdir(dir);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct scan s;
	static struct msg ref[MAX_MSGS];
	struct store_scan_cb cb = {
		.ctx = &s, .begin = on_begin, .data = on_data, .end = on_end,
		.unreadable = on_unreadable, .stray = on_stray,
	};
	struct isnap_error err = { 0 };
	unsigned mode, lim;
	char path[128];
	uint8_t *gz = NULL;
	size_t gzlen = 0, nref;
	bool bad;
	enum isnap_status rc;

	if (size < 1)
		return 0;
	if (!dir[0]) {
		const char *base =
			access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
		snprintf(dir, sizeof dir, "%s/fuzz_mbox_scan.XXXXXX", base);
		if (!mkdtemp(dir))
			abort();
		atexit(cleanup);
	}
	mode = data[0] & 3;
	lim = data[0] >> 2;
	data++, size--;
	memset(&s, 0, sizeof s);
	s.file = mode ? "INBOX.mbox.gz" : "INBOX.mbox";
	s.limit = lim == 63 ? UINT64_MAX : (uint64_t)lim * 4;
	if (lim != 63)
		cb.limit = on_limit;
	snprintf(path, sizeof path, "%s/%s", dir, s.file);
	if (mode == 0 || mode == 3) {
		put(path, data, size);
	} else {
		size_t half = mode == 2 ? size / 2 : size;
		gzip_member(data, half, &gz, &gzlen);
		if (mode == 2)
			gzip_member(data + half, size - half, &gz, &gzlen);
		put(path, gz, gzlen);
		free(gz);
	}

	rc = store_mbox_scan(dir, mode != 0, &cb, &err);
	check(rc == ISNAP_OK || rc == ISNAP_ENOMEM, "the scan failed");
	check(!s.in_msg, "a message that never ended");
	if (mode != 3 && !s.too_many) {
		nref = reference(data, size, ref, &bad);
		check(bad == (s.unreadable > 0),
		      bad ? "a file that is no mbox was read"
			  : "an mbox file was called unreadable");
		check(s.n == nref, "not the reference's number of messages");
		for (size_t i = 0; i < nref; i++) {
			size_t want = ref[i].len;
			if (s.limit != UINT64_MAX && want > s.limit + 1)
				want = (size_t)s.limit + 1;
			check(s.at[i] == ref[i].at,
			      "a message's location differs");
			check(s.len[i] == want &&
				      (!want ||
				       !memcmp(s.data[i], ref[i].p, want)),
			      "a message's bytes differ");
		}
	}
	for (size_t i = 0; i < s.n && i < MAX_MSGS; i++)
		free(s.data[i]);
	unlink(path);
	return 0;
}
