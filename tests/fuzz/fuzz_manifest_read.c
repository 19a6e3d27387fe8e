/*
 * fuzz_manifest_read.c — the manifest line splitter and field accessors
 * (lib/manifest_read.c) against any bytes a damaged or edited run file
 * may hold.
 *
 * fuzz-sources: lib/manifest_read.c lib/beneath.c lib/manifest_chain.c lib/store/archive_kind.c lib/store/archive_lib.c lib/store/store.c lib/store/common.c lib/store/flags.c lib/store/maildir.c lib/store/maildir_scan.c lib/store/mbox.c lib/store/mbox_scan.c lib/store/mbox_index.c lib/store/mbox_check.c lib/store/mbox_ident.c lib/store/mbox_out.c lib/store/mboxrd.c lib/store/archive.c lib/store/archive_record.c lib/store/archive_scan.c lib/store/held.c lib/fsname.c lib/utf8.c lib/uidset.c lib/linefile.c lib/error.c
 * fuzz-packages: jansson libcrypto zlib libarchive
 *
 * The input's first byte seeds the chunking; the rest is a run file.
 * Checked beyond "no crash, no leak, no undefined behaviour":
 *  - the lines handed over are exactly the input cut at its newlines
 *    (without them), however the input is chunked, and a last line
 *    without its newline is pending, not handed over;
 *  - on every line that parses, the accessors agree with each other:
 *    get_u32 is get_u64 within range, a string given by get_str is the
 *    JSON string, parse_sha accepts exactly 64 lower-case hex digits and
 *    sha_hex gives them back;
 *  - manifest_location_key returns a pointer into the location, after a
 *    '!' when it is not the location itself.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest_read.h"

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_manifest_read: %s\n", what);
		abort();
	}
}

struct expect {
	const uint8_t *data; /* the whole run file */
	size_t size, pos;    /* where the next line starts */
	size_t lines;
};

static const char *const keys[] = {
	"type", "uid", "uidvalidity", "received", "sha256", "stored_sha256",
	"location", "folder", "manifest", "messages", "gm_msgid", "flags",
};

static void check_fields(const json_t *o)
{
	for (size_t i = 0; i < sizeof keys / sizeof *keys; i++) {
		const json_t *v = json_object_get(o, keys[i]);
		uint64_t u64 = 0;
		uint32_t u32 = 0;
		bool has64 = manifest_get_u64(o, keys[i], &u64);
		bool has32 = manifest_get_u32(o, keys[i], &u32);
		const char *s = manifest_get_str(o, keys[i]);
		unsigned char sha[32];
		char hex[65];

		check(has32 == (has64 && u64 <= UINT32_MAX),
		      "get_u32 and get_u64 disagree");
		check(!has32 || u32 == u64, "get_u32 changed the value");
		check(!has64 || json_is_integer(v) || json_is_string(v),
		      "get_u64 from something neither number nor string");
		check(!has64 || !json_is_integer(v) ||
			      (uint64_t)json_integer_value(v) == u64,
		      "get_u64 changed a number");
		check((s != NULL) == json_is_string(v),
		      "get_str and the JSON type disagree");
		if (has64 && s)
			check(s[0] >= '0' && s[0] <= '9' &&
				      strspn(s, "0123456789") == strlen(s),
			      "get_u64 from a string not all digits");
		if (manifest_parse_sha(s, sha)) {
			check(strlen(s) == 64 &&
				      strspn(s, "0123456789abcdef") == 64,
			      "parse_sha accepted what is no SHA-256");
			manifest_sha_hex(sha, hex);
			check(strcmp(hex, s) == 0, "sha_hex(parse_sha(s)) != s");
		} else if (s) {
			check(strlen(s) != 64 ||
				      strspn(s, "0123456789abcdef") != 64,
			      "parse_sha refused a SHA-256");
		}
	}
	{
		const char *loc = manifest_get_str(o, "location");
		const char *fmt = manifest_get_str(o, "format");
		uint64_t version = 1;
		if (loc) {
			const char *k;
			manifest_get_u64(o, "manifest", &version);
			k = manifest_location_key(fmt ? fmt : "tar.gz", version,
						  loc);
			check(k >= loc && k <= loc + strlen(loc),
			      "location key outside the location");
			check(k == loc || k[-1] == '!',
			      "location key not after a '!'");
			check(version < 2 || k == loc,
			      "a version 2 location was cut");
		}
	}
}

static int on_line(void *ctx, const char *text, size_t len)
{
	struct expect *e = ctx;
	const uint8_t *nl;
	size_t want;
	json_t *o;

	check(e->pos <= e->size, "a line past the input");
	nl = memchr(e->data + e->pos, '\n', e->size - e->pos);
	check(nl != NULL, "a line handed over without its newline");
	want = (size_t)(nl - (e->data + e->pos));
	if (want > MANIFEST_LINE_LIMIT) {
		check(text == NULL && len == 0, "an overlong line was kept");
	} else {
		check(text != NULL, "a line within the limit called overlong");
		check(len == want && memcmp(text, e->data + e->pos, len) == 0,
		      "a line differs from the input");
		o = json_loadb(text, len, JSON_REJECT_DUPLICATES, NULL);
		if (json_is_object(o))
			check_fields(o);
		json_decref(o);
	}
	e->pos += want + 1;
	e->lines++;
	return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct manifest_lines ml = { 0 };
	struct expect e;
	unsigned seed;
	size_t off = 0, lines = 0;

	if (size < 1)
		return 0;
	seed = data[0];
	data++, size--;
	e = (struct expect){ .data = data, .size = size };
	while (off < size) {
		size_t n = 1 + (seed * 7919u + off) % (seed % 64 + 1);
		if (seed & 1)
			n = size - off; /* whole */
		if (n > size - off)
			n = size - off;
		check(manifest_lines_feed(&ml, (const char *)data + off, n,
					  on_line, &e) == 0,
		      "feed failed");
		off += n;
	}
	for (size_t i = 0; i < size; i++)
		lines += data[i] == '\n';
	check(e.lines == lines, "not every line was handed over");
	check(manifest_lines_pending(&ml) == (e.pos < size),
	      "pending does not say whether a line was cut short");
	manifest_lines_reset(&ml);
	check(!manifest_lines_pending(&ml), "pending after reset");
	manifest_lines_free(&ml);
	return 0;
}
