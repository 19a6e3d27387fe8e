/*
 * fuzz_mbox_check.c — reading an mbox file that anyone may have changed
 * (lib/store/mbox_check.c, mbox_ident.c) against an index.
 *
 * fuzz-sources: lib/store/mbox_check.c lib/store/mbox_ident.c
 * fuzz-packages: libcrypto zlib
 *
 * The input: one byte of flags (bit 0: the file is gzip), eight bytes
 * that place four index entries (offset and length, in steps of 16
 * bytes; bit 7 of the length: the entry has an identity, that of the
 * first message of the file), then the file.  Checked:
 *  - what is kept lies in the file's data, in file order, without
 *    overlap, each index entry kept at most once;
 *  - keep_file and data_end do not pass the file; separator is 0 to 2.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "store/mbox_check.h"

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_mbox_check: %s\n", what);
		abort();
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mbox_known known[4];
	struct mbox_check c;
	bool gzip;
	int fd;

	if (size < 9)
		return 0;
	gzip = data[0] & 1;
	memset(known, 0, sizeof known);
	for (int i = 0; i < 4; i++) {
		known[i].e.uidvalidity = 7;
		known[i].e.uid = (uint32_t)i + 1;
		known[i].e.offset = (uint64_t)data[1 + 2 * i] * 16;
		known[i].e.length = (uint64_t)(data[2 + 2 * i] & 0x7f) * 16 + 1;
		known[i].has_ident = data[2 + 2 * i] & 0x80;
		memset(known[i].ident, i, 32);
	}
	fd = memfd_create("mbox", 0);
	if (fd < 0)
		return 0;
	if (write(fd, data + 9, size - 9) != (ssize_t)(size - 9)) {
		close(fd);
		return 0;
	}
	if (mbox_check_file(fd, gzip, known, 4, &c) == 0) {
		uint64_t end = 0;
		bool seen[4] = { false };
		check(c.keep_file <= c.file_size, "keep_file past the file");
		check(gzip || c.data_end <= c.file_size, "data past the file");
		check(c.separator <= 2, "separator");
		for (size_t i = 0; i < c.nkept; i++) {
			const struct mbox_kept *k = &c.kept[i];
			check(k->known < 4 && !seen[k->known], "kept twice");
			seen[k->known] = true;
			check(k->offset >= end, "kept out of order");
			end = k->offset + k->length;
			check(end <= c.data_end + 1, "kept past the data");
		}
		mbox_check_free(&c);
	}
	close(fd);
	return 0;
}
