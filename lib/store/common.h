/*
 * common.h — helpers the store files share (maildir.c, mbox.c, archive.c
 * and the scanners); not part of the store interface.
 */
#ifndef IMAPSNAP_STORE_COMMON_H
#define IMAPSNAP_STORE_COMMON_H

#include <dirent.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "store/store.h"

/* Bytes read or buffered at a time by the stores and scanners. */
#define STORE_CHUNK (64 * 1024)

enum isnap_status store_oom(struct isnap_error *err);

/* "the destination is full: " for ENOSPC (and the quota's wording for
 * EDQUOT), "" otherwise: the one failure the user can act on at once. */
const char *store_space_hint(int errnum);

/* ISNAP_EFOLDER for errors that concern one path (a name too long, a file
 * where a directory should be), ISNAP_ELOCAL for the rest. */
enum isnap_status store_path_status(int errnum);

/* The failure (errno) to create or open `shown`/`rel`, where `rel` is
 * relative to `at` and `shown` is how the user knows `at` (the
 * destination, or a folder in it): with the space hint, and, when the
 * path meets a symbolic link, a FIFO or a file where a directory belongs,
 * naming the component at fault rather than the whole path.  The status
 * is store_path_status(errno). */
enum isnap_status store_fail_path(struct isnap_error *err, const char *shown,
				  int at, const char *rel);

/* `name` with every byte outside printable ASCII shown as '?', cut to fit
 * `size`: a server chooses folder names, and errors reach terminals. */
const char *store_printable(const char *name, char *buf, size_t size);

/* The relative path of folder `f` below the destination (fsname.h), checked
 * once more to be relative and free of "." and ".." components.  *path is
 * malloc'd. */
enum isnap_status store_folder_path(const struct store_folder *f, char **path,
				    struct isnap_error *err);

/* One entry of a directory listing.  `type` is DT_REG, DT_DIR, DT_LNK or
 * DT_UNKNOWN for anything else (never followed through a symlink). */
struct store_dirent {
	char *name;
	unsigned char type;
};

/* The entries of at/rel ("" for `at` itself), without "." and "..",
 * sorted by name so that scans are reproducible; no component of rel is
 * followed if it is a symbolic link (ELOOP).  Returns 0, or -1 with
 * errno.  Free with store_dirents_free. */
int store_list_dir(int at, const char *rel, struct store_dirent **out,
		   size_t *n);
void store_dirents_free(struct store_dirent *v, size_t n);

/* "a" + "/" + "b" (or just "b" when a is ""), malloc'd; NULL when out of
 * memory. */
char *store_join(const char *a, const char *b);

/* Open dirfd/rel for reading a regular file, following no symbolic link
 * and opening no FIFO, socket or device (beneath_open_file).  Returns the
 * fd, or -1 with errno (ELOOP, ENXIO, EISDIR: not a regular file). */
int store_open_regular(int dirfd, const char *rel);

/* Whether store_open_regular's errno says that something other than a
 * regular file is there (ELOOP, ENXIO, EISDIR). */
bool store_not_a_file(int errnum);

/* One message's bytes on their way to cb->data, bounded by cb->limit:
 *
 *   rc = cb->begin(...); store_feed_start(&f, cb);
 *   while (more && !store_feed_full(&f)) rc = store_feed(&f, p, n, err);
 *   ... skip the rest of the message ...; rc = cb->end(...)
 */
struct store_feed {
	const struct store_scan_cb *cb;
	uint64_t left;  /* bytes the caller still takes */
};
void store_feed_start(struct store_feed *f, const struct store_scan_cb *cb);
/* Hands over what the caller still takes of p[0..n) and drops the rest. */
enum isnap_status store_feed(struct store_feed *f, const void *p, size_t n,
			     struct isnap_error *err);
/* The caller takes nothing more of this message. */
bool store_feed_full(const struct store_feed *f);

/* Read the file at fd from its current offset and hand it to cb->data in
 * chunks of at most STORE_CHUNK bytes, no more than the caller's limit
 * (store_feed).  ISNAP_ELOCAL when reading fails. */
enum isnap_status store_feed_file(int fd, const char *what,
				  const struct store_scan_cb *cb,
				  struct isnap_error *err);

/* For a scanner: report what cannot be read (cb->unreadable) and go on,
 * or, without that callback, return `rc` with err as it is.  `err` holds
 * the reason. */
enum isnap_status store_scan_unreadable(const struct store_scan_cb *cb,
					const char *location,
					enum isnap_status rc,
					struct isnap_error *err);
/* For a scanner: report a stray (cb->stray), or pass over it. */
enum isnap_status store_scan_stray(const struct store_scan_cb *cb,
				   const char *path, const char *what,
				   bool leftover, struct isnap_error *err);
/* What a directory entry of this type is, for a stray: "a symbolic
 * link", "a FIFO", ... ("a file" for DT_REG). */
const char *store_type_name(int dirfd, const char *rel, unsigned char type);
/* Whether dirfd/rel is a directory holding anything (a directory that
 * cannot be read counts as holding something). */
bool store_dir_has_entries(int dirfd, const char *rel);

/* Parse "<uidvalidity>_<uid>.imapsnap" at the start of `name` (numbers
 * without leading zeros, 32 bits); *rest points after ".imapsnap".  The
 * Maildir message name of docs/maildir.md. */
bool store_parse_message_name(const char *name, uint32_t *uidvalidity,
			      uint32_t *uid, const char **rest);

#endif
