/*
 * fuzz_archive_scan.c — reading back an archive anyone may have changed
 * (lib/store/archive_scan.c, through libarchive) as verify and restore
 * do: store_archive_scan over a single-file export or a directory of
 * volumes.
 *
 * fuzz-sources: lib/store/archive_scan.c lib/store/archive_kind.c lib/store/archive_lib.c lib/store/common.c lib/store/flags.c lib/beneath.c lib/fsname.c lib/utf8.c lib/error.c
 * fuzz-packages: libarchive libcrypto
 *
 * The input: one byte, then the archive.  The byte's low 3 bits choose
 * the format (tar, tar.gz, tar.zst, tar.xz, zip; the rest: tar), bit 3
 * writes the archive as a volume of a directory of volumes (with a
 * stray file and a leftover temporary volume beside it) instead of a
 * single-file export, bits 4-7 the most bytes the caller wants of each
 * message (the `limit` callback: 0, 1, 2, ... 15 times 64).
 * Checked beyond "no crash, no leak, no undefined behaviour":
 *  - the callbacks come in the order store.h gives: volume(name) ...
 *    volume(NULL) around the entries; begin, data..., then end or
 *    unreadable for the same location; data only within a message;
 *  - no message gets more than limit + 1 bytes (an archive bomb costs
 *    nothing);
 *  - locations, strays and reasons are non-empty strings;
 *  - the status is a documented one, and a failure has a message.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "store/store.h"

static const char *const formats[] = { "tar", "tar.gz", "tar.zst", "tar.xz",
				       "zip" };

static char dir[64];

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_archive_scan: %s\n", what);
		abort();
	}
}

struct scan {
	uint64_t limit;
	bool in_volume, in_msg;
	char loc[sizeof ((struct store_location *)0)->location];
	uint64_t got;
	unsigned volumes, messages;
};

static enum isnap_status on_begin(void *ctx, const char *location,
				  struct isnap_error *err)
{
	struct scan *s = ctx;

	(void)err;
	check(s->in_volume, "a message outside a volume");
	check(!s->in_msg, "a message begun inside another");
	check(location && *location &&
		      strlen(location) < sizeof s->loc,
	      "a message without a location, or one too long");
	snprintf(s->loc, sizeof s->loc, "%s", location);
	s->in_msg = true;
	s->got = 0;
	s->messages++;
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

	(void)err;
	check(s->in_msg, "data outside a message");
	check(len > 0 && data != NULL, "empty data");
	s->got += len;
	check(s->got <= s->limit + 1, "more than the limit and one byte");
	return ISNAP_OK;
}

static enum isnap_status on_end(void *ctx, struct isnap_error *err)
{
	struct scan *s = ctx;

	(void)err;
	check(s->in_msg, "end outside a message");
	s->in_msg = false;
	return ISNAP_OK;
}

static enum isnap_status on_unreadable(void *ctx, const char *location,
				       const char *why,
				       struct isnap_error *err)
{
	struct scan *s = ctx;

	(void)err;
	check(location && *location, "unreadable without a location");
	check(why && *why, "unreadable without a reason");
	if (s->in_msg) {
		check(!strcmp(location, s->loc),
		      "a message begun, another one unreadable");
		s->in_msg = false;
	}
	return ISNAP_OK;
}

static enum isnap_status on_stray(void *ctx, const char *path,
				  const char *what, bool leftover,
				  struct isnap_error *err)
{
	struct scan *s = ctx;

	(void)leftover;
	(void)err;
	check(!s->in_msg, "a stray inside a message");
	check(path && *path && what && *what, "a stray without a name");
	return ISNAP_OK;
}

static void on_volume(void *ctx, const char *name)
{
	struct scan *s = ctx;

	check(!s->in_msg, "a volume changed inside a message");
	if (name) {
		check(!s->in_volume, "a volume inside a volume");
		check(*name != '\0', "a volume without a name");
		s->volumes++;
	} else {
		check(s->in_volume, "a volume ended that did not begin");
	}
	s->in_volume = name != NULL;
}

static void put(const char *path, const void *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);

	if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) != 0)
		abort();
}

static void cleanup(void)
{
	char path[160];

	for (size_t i = 0; i < sizeof formats / sizeof *formats; i++) {
		snprintf(path, sizeof path, "%s/export.%s", dir, formats[i]);
		unlink(path);
		snprintf(path, sizeof path, "%s/vols/20240501.%s", dir,
			 formats[i]);
		unlink(path);
		snprintf(path, sizeof path, "%s/vols/.20240502.%s.tmp-12", dir,
			 formats[i]);
		unlink(path);
	}
	snprintf(path, sizeof path, "%s/vols/stray", dir);
	unlink(path);
	snprintf(path, sizeof path, "%s/vols", dir);
	rmdir(path);
	rmdir(dir);
}

static void setup(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	char path[160];

	snprintf(dir, sizeof dir, "%s/fuzz_archive_scan.XXXXXX", base);
	if (!mkdtemp(dir))
		abort();
	snprintf(path, sizeof path, "%s/vols", dir);
	if (mkdir(path, 0700) != 0)
		abort();
	snprintf(path, sizeof path, "%s/vols/stray", dir);
	put(path, "x", 1);
	atexit(cleanup);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct scan s = { 0 };
	struct store_scan_cb cb = {
		.ctx = &s, .begin = on_begin, .data = on_data, .end = on_end,
		.unreadable = on_unreadable, .stray = on_stray,
		.limit = on_limit, .volume = on_volume,
	};
	struct isnap_error err = { 0 };
	const char *format;
	char path[160], tmp[160], dest[160];
	enum isnap_status rc;
	bool volumes;

	if (size < 1)
		return 0;
	if (!dir[0])
		setup();
	format = formats[(data[0] & 7) < 5 ? data[0] & 7 : 0];
	volumes = data[0] & 8;
	s.limit = (uint64_t)(data[0] >> 4) * 64;
	if (volumes) {
		snprintf(dest, sizeof dest, "%s/vols", dir);
		snprintf(path, sizeof path, "%s/20240501.%s", dest, format);
		snprintf(tmp, sizeof tmp, "%s/.20240502.%s.tmp-12", dest,
			 format);
		put(tmp, data + 1, size - 1);
	} else {
		snprintf(path, sizeof path, "%s/export.%s", dir, format);
		snprintf(dest, sizeof dest, "%s", path);
	}
	put(path, data + 1, size - 1);

	rc = store_archive_scan(format, dest, &cb, &err);
	check(rc == ISNAP_OK || rc == ISNAP_EINTEGRITY || rc == ISNAP_ELOCAL ||
		      rc == ISNAP_ENOMEM,
	      "an undocumented status");
	check(rc == ISNAP_OK || err.msg[0] != '\0', "a failure without text");
	check(!s.in_volume, "a volume that never ended");
	check(!s.in_msg || rc != ISNAP_OK, "a message that never ended");
	check(s.volumes == 1 || rc != ISNAP_OK, "not exactly one volume read");

	unlink(path);
	if (volumes)
		unlink(tmp);
	return 0;
}
