/*
 * archive_kind.h — the archive formats the archive store writes and reads
 * through libarchive, and how each is set up, so that the writer
 * (archive.c), the scanner (archive_scan.c) and store_single_file_format
 * agree on names and settings.
 */
#ifndef IMAPSNAP_STORE_ARCHIVE_KIND_H
#define IMAPSNAP_STORE_ARCHIVE_KIND_H

#include <locale.h>
#include <stdbool.h>

struct archive;
struct archive_entry;

struct archive_kind {
	const char *format; /* --format name: "tar.gz" */
	const char *ext;    /* volume suffix: ".tar.gz" */
	bool zip;
};

/* The kind named `format` ("tar", "tar.gz", "tar.zst", "tar.xz", "zip"),
 * or NULL. */
const struct archive_kind *archive_kind_by_format(const char *format);

/* The kind a file name's suffix implies (".tgz" is tar.gz; case does not
 * matter), or NULL.  The suffix must follow at least one other byte. */
const struct archive_kind *archive_kind_by_suffix(const char *name);

/* A new libarchive writer for `k`, not yet opened; NULL when out of memory
 * or when this libarchive cannot write `k` (*why says so). */
struct archive *archive_kind_writer(const struct archive_kind *k,
				    const char **why);

/* A new libarchive reader accepting `k` (and any compression); NULL when
 * out of memory or when libarchive cannot be loaded (*why says which). */
struct archive *archive_kind_reader(const struct archive_kind *k,
				    const char **why);

/* Set an entry's path from our UTF-8 name the way `k` stores it: raw
 * bytes in a GNU tar header (which tar, bsdtar and Python read back as
 * the same bytes, in any locale), UTF-8 flagged names in zip. */
void archive_kind_set_path(const struct archive_kind *k,
			   struct archive_entry *e, const char *path);

/* The entry's path as written by archive_kind_set_path; NULL when it
 * cannot be had. */
const char *archive_kind_get_path(const struct archive_kind *k,
				  struct archive_entry *e);

/* libarchive converts entry names through the calling thread's locale,
 * and in the C locale it cannot read UTF-8 zip names at all (no name is
 * returned).  Bracket libarchive calls that handle names with these: they
 * switch this thread, and only it, to C.UTF-8 (when the system has it) and
 * back.  The process's locale is never changed. */
locale_t archive_kind_utf8_begin(void);
void archive_kind_utf8_end(locale_t saved);

#endif
