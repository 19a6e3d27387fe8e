/*
 * fuzz_verify.c — verify (lib/verify.c) and manifest_read_all
 * (lib/manifest_read.c) reading a backup whose manifests anyone may have
 * edited: the run files, the chain, and verify's index of the records
 * they hold (by location, by message, by identity, retired generations,
 * moves).
 *
 * fuzz-sources: lib/verify.c lib/manifest_read.c lib/manifest_chain.c lib/tsa.c lib/curl_init.c lib/beneath.c lib/store/archive_kind.c lib/store/archive_lib.c lib/store/store.c lib/store/common.c lib/store/flags.c lib/store/maildir.c lib/store/maildir_scan.c lib/store/mbox.c lib/store/mbox_scan.c lib/store/mbox_index.c lib/store/mbox_check.c lib/store/mbox_ident.c lib/store/mbox_out.c lib/store/mboxrd.c lib/store/archive.c lib/store/archive_record.c lib/store/archive_scan.c lib/store/held.c lib/fsname.c lib/utf8.c lib/uidset.c lib/linefile.c lib/error.c
 * fuzz-packages: jansson libcrypto zlib libarchive libcurl
 *
 * The input: one byte of flags, then up to two run files separated by a
 * NUL byte, written to DEST/.imapsnap/manifest/ in a scratch directory
 * (under /dev/shm when it exists).  Flags: bit 0, a chain that holds the
 * runs with their true SHA-256 (else no chain: the runs are unchained);
 * bit 1, an empty message file at INBOX/cur/1700000000_1.imapsnap:2,S;
 * bit 2, INBOX.mbox holding one message "a\n"; bit 3, a stray file;
 * bit 4, a FIFO as the first run's RFC 3161 token (<run>.tsr), which
 * verify must not wait on; bit 5, a token that is no token.
 * FUZZ_VERIFY_PRINT=1 in the environment prints what verify found.
 * Checked beyond "no crash, no leak, no undefined behaviour":
 *  - verify_run returns a documented status; ISNAP_OK exactly when no
 *    finding that fails was reported (and then no count of one is set),
 *    ISNAP_EINTEGRITY only with one;
 *  - each count in the result is the number of findings of its kind;
 *  - matched <= checked, moved <= matched;
 *  - manifest_read_all hands over, for each line, a parsed object or a
 *    reason, never both, with line numbers counting up by one per file.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "manifest_read.h"
#include "verify.h"

#define RUN1 "20240501T020000.000000Z.jsonl"
#define RUN2 "20240502T020000.000000Z.jsonl"

static char dest[80];

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_verify: %s\n", what);
		abort();
	}
}

static void path_of(char *buf, size_t size, const char *rel)
{
	snprintf(buf, size, "%s/%s", dest, rel);
}

static void put(const char *rel, const void *data, size_t len)
{
	char path[256];
	int fd;

	path_of(path, sizeof path, rel);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) != 0)
		abort();
}

static void gone(const char *rel)
{
	char path[256];

	path_of(path, sizeof path, rel);
	unlink(path);
}

static void mkdirs(void)
{
	static const char *const dirs[] = { ".imapsnap", ".imapsnap/manifest",
					    "INBOX", "INBOX/cur", "INBOX/new",
					    "INBOX/tmp" };
	char path[256];

	for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
		path_of(path, sizeof path, dirs[i]);
		if (mkdir(path, 0700) != 0)
			abort();
	}
}

static void setup(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	snprintf(dest, sizeof dest, "%s/fuzz_verify.XXXXXX", base);
	if (!mkdtemp(dest))
		abort();
	mkdirs();
}

static const char *const files[] = {
	".imapsnap/manifest/" RUN1, ".imapsnap/manifest/" RUN2,
	".imapsnap/manifest/chain", "INBOX/cur/1700000000_1.imapsnap:2,S",
	"INBOX.mbox", "stray", ".imapsnap/manifest/20240501T020000.000000Z.tsr",
};

static void cleanup(void)
{
	static const char *const dirs[] = { "INBOX/tmp", "INBOX/new",
					    "INBOX/cur", "INBOX",
					    ".imapsnap/manifest", ".imapsnap" };
	char path[256];

	for (size_t i = 0; i < sizeof files / sizeof *files; i++)
		gone(files[i]);
	for (size_t i = 0; i < sizeof dirs / sizeof *dirs; i++) {
		path_of(path, sizeof path, dirs[i]);
		rmdir(path);
	}
	rmdir(dest);
}

static void sha_hex(const void *data, size_t len, char out[65])
{
	unsigned char md[32];
	unsigned n = 0;

	if (!EVP_Digest(data, len, md, &n, EVP_sha256(), NULL) || n != 32)
		abort();
	manifest_sha_hex(md, out);
}

struct tally {
	uint64_t kinds[VERIFY_NOTE + 1];
	uint64_t failing;
};

static void on_finding(void *ctx, const struct verify_finding *f)
{
	struct tally *t = ctx;

	check(f->kind <= VERIFY_NOTE, "a finding of no kind");
	check(f->detail != NULL && f->detail[0] != '\0',
	      "a finding without a detail");
	if (getenv("FUZZ_VERIFY_PRINT"))
		fprintf(stderr, "%s %s: %s\n", verify_kind_name(f->kind),
			f->location ? f->location : "-", f->detail);
	t->kinds[f->kind]++;
	t->failing += verify_kind_fails(f->kind) != 0;
}

struct lines {
	char file[64];
	unsigned long last;
};

static enum isnap_status on_line(void *ctx, const char *file,
				 unsigned long line_no, json_t *o,
				 const char *why, struct isnap_error *err)
{
	struct lines *l = ctx;

	(void)err;
	check(file != NULL, "a line of no file");
	if (strcmp(file, l->file)) {
		snprintf(l->file, sizeof l->file, "%s", file);
		l->last = 0;
	}
	check(line_no == l->last + 1, "line numbers do not count up by one");
	l->last = line_no;
	check((o == NULL) == (why != NULL),
	      "a line both parsed and refused, or neither");
	return ISNAP_OK;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct verify_callbacks cb;
	struct verify_result res;
	struct isnap_error err = { 0 };
	struct tally t = { { 0 }, 0 };
	struct lines l = { "", 0 };
	struct manifest_read_cb rcb = { .ctx = &l, .line = on_line };
	const uint8_t *run1, *run2 = NULL, *nul;
	size_t len1, len2 = 0;
	enum isnap_status rc;
	unsigned flags;

	if (size < 1)
		return 0;
	if (!dest[0]) {
		setup();
		atexit(cleanup);
	}
	flags = data[0];
	run1 = data + 1;
	len1 = size - 1;
	if ((nul = memchr(run1, '\0', len1))) {
		run2 = nul + 1;
		len2 = len1 - (size_t)(run2 - run1);
		len1 = (size_t)(nul - run1);
	}
	put(".imapsnap/manifest/" RUN1, run1, len1);
	if (run2)
		put(".imapsnap/manifest/" RUN2, run2, len2);
	if (flags & 1) {
		char chain[300], h1[65], h2[65];
		int n;
		sha_hex(run1, len1, h1);
		n = snprintf(chain, sizeof chain, "%s  %s\n", h1, RUN1);
		if (run2) {
			sha_hex(run2, len2, h2);
			n += snprintf(chain + n, sizeof chain - (size_t)n,
				      "%s  %s\n", h2, RUN2);
		}
		put(".imapsnap/manifest/chain", chain, (size_t)n);
	}
	if (flags & 2)
		put("INBOX/cur/1700000000_1.imapsnap:2,S", "", 0);
	if (flags & 4)
		put("INBOX.mbox", "From a\na\n\n", 10);
	if (flags & 8)
		put("stray", "x", 1);
	if (flags & 16) {
		char path[256];
		path_of(path, sizeof path,
			".imapsnap/manifest/20240501T020000.000000Z.tsr");
		if (mkfifo(path, 0600) != 0)
			abort();
	} else if (flags & 32) {
		put(".imapsnap/manifest/20240501T020000.000000Z.tsr", "\x30\x03",
		    2);
	}

	cb = (struct verify_callbacks){ .ctx = &t, .finding = on_finding };
	rc = verify_run(dest, NULL, &cb, &res, &err);
	if (getenv("FUZZ_VERIFY_PRINT"))
		fprintf(stderr, "verify: %d %s\n", (int)rc, err.msg);
	check(rc == ISNAP_OK || rc == ISNAP_EINTEGRITY || rc == ISNAP_ELOCAL ||
		      rc == ISNAP_ENOMEM,
	      "verify returned an undocumented status");
	if (rc == ISNAP_OK)
		check(t.failing == 0, "ISNAP_OK with a failing finding");
	if (rc == ISNAP_EINTEGRITY)
		check(t.failing > 0, "ISNAP_EINTEGRITY without a finding");
	check(rc == ISNAP_OK || err.msg[0] != '\0', "a failure without text");
	check(res.missing == t.kinds[VERIFY_MISSING] &&
		      res.altered == t.kinds[VERIFY_ALTERED] &&
		      res.unexpected == t.kinds[VERIFY_UNEXPECTED] &&
		      res.unreadable == t.kinds[VERIFY_UNREADABLE] &&
		      res.chain_errors == t.kinds[VERIFY_CHAIN] &&
		      res.manifest_errors == t.kinds[VERIFY_MANIFEST] &&
		      res.notes == t.kinds[VERIFY_NOTE],
	      "a count differs from the findings of its kind");
	check(res.matched <= res.checked, "more matched than checked");
	check(res.moved <= res.matched, "more moved than matched");

	isnap_error_clear(&err);
	rc = manifest_read_all(dest, &rcb, &err);
	check(rc == ISNAP_OK || rc == ISNAP_ELOCAL || rc == ISNAP_ENOMEM,
	      "manifest_read_all returned an undocumented status");

	for (size_t i = 0; i < sizeof files / sizeof *files; i++)
		gone(files[i]);
	return 0;
}
