/*
 * manifest_read.h — reading a backup's manifests back (docs/manifest.md),
 * for verify and restore.
 *
 * Two levels:
 *
 *  - struct manifest_lines cuts a byte stream into lines, bounded: a line
 *    longer than MANIFEST_LINE_LIMIT is reported as overlong instead of
 *    being kept.  verify feeds it while it hashes the file.
 *
 *  - manifest_read_all reads every manifest of a backup, in run order,
 *    and hands each line over parsed (jansson): the run files of
 *    DEST/.imapsnap/manifest/ in name order (names are the runs' start
 *    times, so this is the chain's order, and runs interrupted before
 *    being chained come last, as the chain would add them), or for a
 *    single-file export the manifest inside it.  It checks nothing about
 *    the chain: that is verify's job.  A last line cut short (a run that
 *    was killed) is not handed over.
 */
#ifndef IMAPSNAP_MANIFEST_READ_H
#define IMAPSNAP_MANIFEST_READ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "error.h"

/* Longer lines are not ours (a message line is a few hundred bytes). */
#define MANIFEST_LINE_LIMIT (1u << 20)

/* The newest manifest version this imapsnap reads (the run line's
 * "manifest"); every version from 1 up to it is read. */
#define MANIFEST_VERSION_MAX 3

struct manifest_lines {
	char *line;
	size_t len, cap;
	bool overlong;
};

/* Called once per complete line (without its newline); for an overlong
 * line `text` is NULL.  Non-zero stops the feed and is returned. */
typedef int (*manifest_line_fn)(void *ctx, const char *text, size_t len);

/* Feed bytes; returns 0, what `fn` returned, or -1 when out of memory. */
int manifest_lines_feed(struct manifest_lines *ml, const char *data,
			size_t len, manifest_line_fn fn, void *ctx);
/* Whether a line was begun and not ended (a file cut short). */
bool manifest_lines_pending(const struct manifest_lines *ml);
/* Forget the partial line (keeps the memory). */
void manifest_lines_reset(struct manifest_lines *ml);
void manifest_lines_free(struct manifest_lines *ml);

struct manifest_read_cb {
	void *ctx;
	/* One line: `o` is the parsed object, or NULL when the line is not
	 * JSON (or overlong: `why` says).  `file` is the run file's name
	 * (".imapsnap/manifest.jsonl" inside an archive). */
	enum isnap_status (*line)(void *ctx, const char *file,
				  unsigned long line_no, json_t *o,
				  const char *why, struct isnap_error *err);
	/* Optional, for a reader that wants a few things of many lines and
	 * can find them in the text imapsnap writes (compact, keys in the
	 * order written): each line's text first (not for an overlong one);
	 * *taken true means it was dealt with, and it is not parsed and not
	 * handed to `line`.  Parsing is most of the cost of reading. */
	enum isnap_status (*raw)(void *ctx, const char *file,
				 const char *text, size_t len, bool *taken,
				 struct isnap_error *err);
};

/* Read every manifest of the backup at `dest`.  ISNAP_ELOCAL when dest
 * is no imapsnap backup or cannot be read; else what a callback returned,
 * or ISNAP_OK. */
enum isnap_status manifest_read_all(const char *dest,
				    const struct manifest_read_cb *cb,
				    struct isnap_error *err);

/* A single-file export, opened to find the manifest entry inside it
 * (MANIFEST_META_NAME, with or without a leading "./").  This is the part
 * that manifest_read_all and verify share; verify also hashes the bytes
 * and wants to know of a second manifest entry.
 *
 *   ma = manifest_archive_open(path, err);    NULL: ISNAP_ELOCAL in err
 *   if (!manifest_archive_start(ma))          not readable as an archive
 *           ... manifest_archive_error(ma) ...
 *   while ((r = manifest_archive_next(ma)) > 0)
 *           ... manifest_archive_read(ma, buf, size) until 0, < 0 error
 *   if (r < 0)                                a header cannot be read
 *           ... manifest_archive_error(ma) ...
 *   manifest_archive_close(ma);
 *
 * Entry names are read as the archive scanner reads them (archive_kind.h)
 * from open to close, on the calling thread. */
struct manifest_archive;

/* Open the file, and an archive reader for the format its name says.
 * NULL when the file cannot be opened, is no archive format imapsnap
 * writes, or libarchive cannot be loaded (ISNAP_ELOCAL in err). */
struct manifest_archive *manifest_archive_open(const char *path,
					       struct isnap_error *err);
/* Start reading; false when the file is not readable as that archive. */
bool manifest_archive_start(struct manifest_archive *ma);
/* Move to the next manifest entry: 1 when there, 0 at the end of the
 * archive, -1 when an entry's header cannot be read. */
int manifest_archive_next(struct manifest_archive *ma);
/* Bytes of the current entry: how many were read, 0 at its end, -1 on
 * error. */
long manifest_archive_read(struct manifest_archive *ma, void *buf,
			   size_t size);
/* libarchive's text for the last failure. */
const char *manifest_archive_error(struct manifest_archive *ma);
/* Free everything; NULL is accepted. */
void manifest_archive_close(struct manifest_archive *ma);
/* Whether an archive entry's name is the manifest's. */
bool manifest_is_meta_entry(const char *name);

/* Where store_scan finds the message a line of manifest `version`
 * records at `location`, for a run of `format`.  Version 1 wrote an
 * archive's locations as "<volume file name>!<entry name>"; since version
 * 2 they are the entry's name alone, relative to the volume (so that a
 * volume renamed or moved still matches), and this returns that part of
 * an old one.  Every other location is returned as it is.  The result
 * points into `location`. */
const char *manifest_location_key(const char *format, uint64_t version,
				  const char *location);

/* Fields of a parsed line, as manifest.c writes them.  Each returns false
 * (or NULL) when `key` is missing or has another type, so that a caller
 * can treat "absent" and "malformed" alike. */

/* A non-negative JSON integer, or a decimal string of digits only:
 * numbers beyond 2^63 (JSON's safe range) are written as text. */
bool manifest_get_u64(const json_t *o, const char *key, uint64_t *out);
/* The same, and at most UINT32_MAX (UIDs, UIDVALIDITY). */
bool manifest_get_u32(const json_t *o, const char *key, uint32_t *out);
/* A string value, owned by `o`.  A value that was not valid UTF-8 is
 * written as "<key>_hex" (lower-case hex of its bytes) instead of "<key>":
 * this returns NULL for it, and a caller that can use the raw bytes asks
 * for "<key>_hex" itself. */
const char *manifest_get_str(const json_t *o, const char *key);
/* A SHA-256 as the manifest writes it: exactly 64 lower-case hex digits
 * (upper case is refused).  `s` may be NULL (false). */
bool manifest_parse_sha(const char *s, unsigned char out[32]);
/* The reverse: 32 bytes → 64 lower-case hex digits and a NUL. */
void manifest_sha_hex(const unsigned char sha[32], char out[65]);

#endif
