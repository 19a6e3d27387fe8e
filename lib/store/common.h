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
 * sorted by name so that scans are reproducible.  Returns 0, or -1 with
 * errno.  Free with store_dirents_free. */
int store_list_dir(int at, const char *rel, struct store_dirent **out,
		   size_t *n);
void store_dirents_free(struct store_dirent *v, size_t n);

/* "a" + "/" + "b" (or just "b" when a is ""), malloc'd; NULL when out of
 * memory. */
char *store_join(const char *a, const char *b);

/* Open dirfd/rel for reading a regular file (no symlink, no device).
 * Returns the fd, or -1 with errno (EINVAL: not a regular file). */
int store_open_regular(int dirfd, const char *rel);

/* Read the whole file at fd from its current offset and hand it to cb->data
 * in chunks of at most STORE_CHUNK bytes. */
enum isnap_status store_feed_file(int fd, const char *what,
				  const struct store_scan_cb *cb,
				  struct isnap_error *err);

/* Parse "<uidvalidity>_<uid>.imapsnap" at the start of `name` (numbers
 * without leading zeros, 32 bits); *rest points after ".imapsnap".  The
 * Maildir message name of docs/maildir.md. */
bool store_parse_message_name(const char *name, uint32_t *uidvalidity,
			      uint32_t *uid, const char **rest);

#endif
