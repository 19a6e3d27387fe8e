/*
 * flag_record_file.c — a folder's flag record on disk,
 * DEST/.imapsnap/flags/<name> (flag_record.h; docs/state.md, "Flag
 * records"):
 *
 *     imapsnap-flags 1
 *     # comments
 *     folder "INBOX.Archive"
 *     uidvalidity 1700000000
 *     flags "\\Seen"
 *     uids 1:480,482:490
 *     flags "\\Answered" "\\Seen" "$Forwarded"
 *     uids 491:500
 *     flags
 *     uids 481
 *     eof
 *
 * Each distinct set of flags once, with the UIDs that have it.  The
 * reader is as strict as the state's (linefile.h): a damaged record is
 * refused with its line number, never half-read.
 */
#include "flag_record.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "beneath.h"
#include "linefile.h"
#include "store/store.h"

#define FR_MAGIC "imapsnap-flags"
#define FR_VERSION 1
#define FR_DIR "flags"

void flag_record_file_name(const char *folder, char out[33])
{
	static const char hex[] = "0123456789abcdef";
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!EVP_Digest(folder, strlen(folder), md, &mdlen, EVP_sha256(),
			NULL) ||
	    mdlen < 16) {
		/* libcrypto cannot fail to hash in memory; should it, one
		 * name that never matches a record beats a wrong one. */
		memset(out, '0', 32);
		out[32] = '\0';
		return;
	}
	for (int i = 0; i < 16; i++) {
		out[2 * i] = hex[md[i] >> 4];
		out[2 * i + 1] = hex[md[i] & 15];
	}
	out[32] = '\0';
}

int flag_record_open_dir(int state_fd, bool create)
{
	if (state_fd < 0) {
		errno = ENOENT;
		return -1;
	}
	return beneath_open_dir(state_fd, FR_DIR, create);
}

/* ---------------------------------------------------------------------- */
/* Writing                                                                 */

struct saving {
	const struct flag_record *fr;
	const char *folder;
	uint32_t *order;  /* run indices, grouped by set, sets in UID order */
	uint32_t *group;  /* where each group starts in `order`, n + 1 */
	size_t ngroups;
};

static void w_flags(struct lf_writer *w, const struct flag_record *fr,
		    uint32_t set)
{
	const char *kw;
	unsigned flags = flag_record_flags(fr, set, &kw);

	lf_str(w, "flags");
	for (unsigned bit = 1; store_flag_name(bit); bit <<= 1)
		if (flags & bit) {
			const char *name = store_flag_name(bit);
			lf_str(w, " ");
			lf_quoted(w, name, strlen(name));
		}
	while (*kw) {
		size_t n = strcspn(kw, " ");
		lf_str(w, " ");
		lf_quoted(w, kw, n);
		kw += n;
		if (*kw == ' ')
			kw++;
	}
	lf_str(w, "\n");
}

static int fill(int fd, const void *ctx)
{
	const struct saving *sv = ctx;
	const struct flag_record *fr = sv->fr;
	struct lf_writer w = { .fd = fd };

	lf_str(&w, FR_MAGIC " 1\n"
		   "# The flags each saved message had when imapsnap last saw "
		   "it, for a server\n"
		   "# without CONDSTORE; see docs/state.md.  Each run replaces "
		   "this file.\n");
	lf_str(&w, "folder ");
	lf_quoted(&w, sv->folder, strlen(sv->folder));
	lf_str(&w, "\nuidvalidity ");
	lf_u64(&w, flag_record_uidvalidity(fr));
	lf_str(&w, "\n");
	for (size_t g = 0; g < sv->ngroups; g++) {
		uint32_t first, last, set;
		size_t k = 0;
		flag_record_run(fr, sv->order[sv->group[g]], &first, &last,
				&set);
		w_flags(&w, fr, set);
		for (size_t i = sv->group[g]; i < sv->group[g + 1]; i++, k++) {
			flag_record_run(fr, sv->order[i], &first, &last, &set);
			lf_str(&w, k % LF_RANGES_PER_LINE ? "," : "uids ");
			lf_u64(&w, first);
			if (last != first) {
				lf_str(&w, ":");
				lf_u64(&w, last);
			}
			if (k % LF_RANGES_PER_LINE == LF_RANGES_PER_LINE - 1 ||
			    i + 1 == sv->group[g + 1])
				lf_str(&w, "\n");
		}
	}
	lf_str(&w, "eof\n");
	lf_flush(&w);
	return w.errnum;
}

/* The runs grouped by set, the sets in the order of their first UID (so
 * that the file reads roughly in UID order), by counting: no sort. */
static int group_runs(struct saving *sv)
{
	const struct flag_record *fr = sv->fr;
	size_t nruns = flag_record_runs(fr), nsets = flag_record_sets(fr);
	uint32_t *rank = malloc((nsets ? nsets : 1) * sizeof *rank);
	uint32_t *at;

	sv->order = malloc((nruns ? nruns : 1) * sizeof *sv->order);
	sv->group = calloc(nsets + 1, sizeof *sv->group);
	if (!rank || !sv->order || !sv->group) {
		free(rank);
		return -1;
	}
	for (size_t s = 0; s < nsets; s++)
		rank[s] = FLAG_RECORD_NONE;
	sv->ngroups = 0;
	for (size_t i = 0; i < nruns; i++) {
		uint32_t first, last, set;
		flag_record_run(fr, i, &first, &last, &set);
		if (rank[set] == FLAG_RECORD_NONE)
			rank[set] = (uint32_t)sv->ngroups++;
		sv->group[rank[set] + 1]++;
	}
	for (size_t g = 0; g < sv->ngroups; g++)
		sv->group[g + 1] += sv->group[g];
	/* Fill each group from its start, in UID order. */
	at = malloc((sv->ngroups ? sv->ngroups : 1) * sizeof *at);
	if (!at) {
		free(rank);
		return -1;
	}
	memcpy(at, sv->group, sv->ngroups * sizeof *at);
	for (size_t i = 0; i < nruns; i++) {
		uint32_t first, last, set;
		flag_record_run(fr, i, &first, &last, &set);
		sv->order[at[rank[set]]++] = (uint32_t)i;
	}
	free(at);
	free(rank);
	return 0;
}

static void names(const char *folder, char name[33], char tmp[40],
		  char pending[40])
{
	flag_record_file_name(folder, name);
	snprintf(tmp, 40, "%s.tmp", name);
	snprintf(pending, 40, "%s.new", name);
}

enum isnap_status flag_record_save(int dfd, const char *dir,
				   const char *folder,
				   const struct flag_record *fr, bool pending,
				   struct isnap_error *err)
{
	struct saving sv = { .fr = fr, .folder = folder };
	char name[33], tmp[40], later[40];
	enum isnap_status st;

	names(folder, name, tmp, later);
	if (group_runs(&sv))
		st = isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	else
		st = lf_replace(dfd, dir, pending ? later : name, tmp, fill,
				&sv, err);
	free(sv.order);
	free(sv.group);
	return st;
}

enum isnap_status flag_record_publish(int dfd, const char *dir,
				      const char *folder,
				      struct isnap_error *err)
{
	char name[33], tmp[40], later[40];

	names(folder, name, tmp, later);
	/* None: the folder was planned again and did not get as far. */
	if (renameat(dfd, later, dfd, name) != 0 && errno != ENOENT)
		return isnap_fail_errno(err, ISNAP_ELOCAL,
					"renaming %s/%s to %s", dir, later,
					name);
	return ISNAP_OK;
}

void flag_record_remove(int dfd, const char *folder)
{
	char name[33], tmp[40], later[40];

	if (dfd < 0)
		return;
	names(folder, name, tmp, later);
	unlinkat(dfd, name, 0);
	unlinkat(dfd, later, 0);
}

/* ---------------------------------------------------------------------- */
/* Reading                                                                 */

enum { WANT_FOLDER, WANT_UIDVALIDITY, IN_BODY };

struct loading {
	struct flag_record *fr;
	int phase;
	char *folder;           /* as the file names it */
	uint32_t uidvalidity;
	uint32_t set;           /* of the last `flags` line; NONE: none yet */
	bool set_has_uids;
};

/* The words of a `flags` line into bits and space-separated keywords. */
static enum isnap_status read_flags_line(struct lf_reader *r,
					 struct loading *ld)
{
	char *kw = malloc((size_t)(r->end - r->p) + 1);
	size_t kn = 0, before = flag_record_sets(ld->fr);
	const char *canon;
	unsigned flags = 0;
	uint32_t id;
	enum isnap_status rc = ISNAP_OK;

	if (!kw)
		return lf_oom(r);
	kw[0] = '\0';
	while (!rc && !lf_at_eol(r)) {
		char *word;
		size_t len;
		unsigned bit;
		if ((rc = lf_read_quoted(r, &word, &len)))
			break;
		bit = store_flag_by_name(word);
		if (!len || memchr(word, ' ', len))
			rc = lf_bad(r, "a flag is one word, not empty");
		else if (bit && (flags & bit))
			rc = lf_bad(r, "a flag given twice");
		else if (bit)
			flags |= bit;
		else {
			if (kn)
				kw[kn++] = ' ';
			memcpy(kw + kn, word, len);
			kn += len;
			kw[kn] = '\0';
		}
		free(word);
	}
	if (rc) {
		free(kw);
		return rc;
	}
	id = flag_record_intern(ld->fr, flags, kw);
	free(kw);
	if (id == FLAG_RECORD_NONE)
		return errno == E2BIG ? lf_bad(r, "more sets of flags than a "
						  "folder may have")
				      : lf_oom(r);
	if (id < before)
		return lf_bad(r, "the same flags twice");
	/* Interning drops repeated keywords (case ignored): the same
	 * length means there were none. */
	flag_record_flags(ld->fr, id, &canon);
	if (strlen(canon) != kn)
		return lf_bad(r, "a keyword given twice");
	ld->set = id;
	ld->set_has_uids = false;
	return ISNAP_OK;
}

static enum isnap_status read_uids_line(struct lf_reader *r,
					struct loading *ld)
{
	struct uidset part = UIDSET_INIT;
	enum isnap_status rc;

	if (ld->set == FLAG_RECORD_NONE)
		return lf_bad(r, "uids before any flags line");
	rc = lf_set_line(r, "uids", &part);
	for (size_t i = 0; !rc && i < part.n; i++)
		if (flag_record_add_run(ld->fr, part.r[i].first,
					part.r[i].last, ld->set))
			rc = lf_oom(r);
	uidset_free(&part);
	ld->set_has_uids = true;
	return rc;
}

static enum isnap_status on_line(void *ctx, struct lf_reader *r,
				 const char *word, size_t wlen)
{
	struct loading *ld = ctx;
	size_t len;
	uint64_t v;
	enum isnap_status rc;

	if (ld->phase == WANT_FOLDER) {
		if (!lf_word_is(word, wlen, "folder"))
			return lf_bad(r, "expected folder");
		if ((rc = lf_read_quoted(r, &ld->folder, &len)))
			return rc;
		ld->phase = WANT_UIDVALIDITY;
		return lf_eol(r);
	}
	if (ld->phase == WANT_UIDVALIDITY) {
		if (!lf_word_is(word, wlen, "uidvalidity"))
			return lf_bad(r, "expected uidvalidity");
		if ((rc = lf_number_line(r, UINT32_MAX, "uidvalidity", &v)))
			return rc;
		if (!v)
			return lf_bad(r, "uidvalidity 0 is no generation");
		if (!(ld->fr = flag_record_new((uint32_t)v)))
			return lf_oom(r);
		ld->phase = IN_BODY;
		return ISNAP_OK;
	}
	if (lf_word_is(word, wlen, "flags")) {
		if (ld->set != FLAG_RECORD_NONE && !ld->set_has_uids)
			return lf_bad(r, "the flags line before has no uids");
		return read_flags_line(r, ld);
	}
	if (lf_word_is(word, wlen, "uids"))
		return read_uids_line(r, ld);
	if (lf_word_is(word, wlen, "folder") ||
	    lf_word_is(word, wlen, "uidvalidity"))
		return lf_bad(r, "%.*s given twice", (int)wlen, word);
	if (wlen == 0)
		return lf_bad(r, "expected a keyword");
	return lf_bad(r, "unknown keyword \"%.*s\"", (int)wlen, word);
}

static enum isnap_status on_end(void *ctx, struct lf_reader *r, bool saw_eof)
{
	struct loading *ld = ctx;

	if (!saw_eof)
		return ISNAP_OK;
	if (ld->phase != IN_BODY)
		return lf_bad(r, "eof before the folder and its uidvalidity");
	if (ld->set != FLAG_RECORD_NONE && !ld->set_has_uids)
		return lf_bad(r, "the flags line before has no uids");
	return ISNAP_OK;
}

static const struct lf_grammar fr_grammar = {
	.magic = FR_MAGIC,
	.version = FR_VERSION,
	.what = "an imapsnap flag record",
	.line = on_line,
	.end = on_end,
};

enum isnap_status flag_record_read(int fd, const char *path, char **folder,
				   struct flag_record **out,
				   struct isnap_error *err)
{
	struct lf_reader r = { .path = path, .err = err };
	struct loading ld = { .set = FLAG_RECORD_NONE };
	enum isnap_status rc;
	uint32_t dup;

	*folder = NULL;
	*out = NULL;
	rc = lf_read(fd, &r, &fr_grammar, &ld);
	if (!rc && flag_record_seal(ld.fr, &dup))
		rc = isnap_fail(err, ISNAP_EINTEGRITY,
				"%s: UID %u has two sets of flags", path, dup);
	if (rc) {
		flag_record_free(ld.fr);
		free(ld.folder);
		return rc;
	}
	*folder = ld.folder;
	*out = ld.fr;
	return ISNAP_OK;
}

enum isnap_status flag_record_load(int dfd, const char *dir,
				   const char *folder, uint32_t uidvalidity,
				   struct flag_record **out, bool *found,
				   struct isnap_error *err)
{
	char name[33], tmp[40], later[40], path[4200];
	struct flag_record *fr = NULL;
	char *theirs = NULL;
	enum isnap_status rc = ISNAP_OK;
	int fd = -1;

	*out = NULL;
	*found = false;
	names(folder, name, tmp, later);
	snprintf(path, sizeof path, "%s/%s", dir, name);
	if (dfd >= 0) {
		/* Left by a run that did not finish: it may name messages
		 * that never became durable. */
		unlinkat(dfd, later, 0);
		fd = beneath_open_file(dfd, name, O_RDONLY, 0);
		if (fd < 0 && errno != ENOENT)
			return isnap_fail_errno(err, ISNAP_ELOCAL, "%s", path);
	}
	if (fd >= 0 &&
	    (rc = flag_record_read(fd, path, &theirs, &fr, err)) == ISNAP_OK &&
	    !strcmp(theirs, folder) &&
	    flag_record_uidvalidity(fr) == uidvalidity)
		*found = true;
	free(theirs);
	if (rc)
		return rc;
	if (!*found) {
		/* None; or another folder's (it would take SHA-256 to
		 * collide), or the generation before: nothing of this
		 * one's. */
		flag_record_free(fr);
		if (!(fr = flag_record_new(uidvalidity)))
			return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	}
	*out = fr;
	return ISNAP_OK;
}
