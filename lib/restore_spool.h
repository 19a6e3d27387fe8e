/*
 * restore_spool.h — one message held between its source and its APPEND:
 * in memory up to a bound, beyond it in an unlinked temporary file in
 * $TMPDIR (or /tmp), so that memory never depends on message size.  A
 * message must be whole (and checked) before its APPEND starts, since a
 * literal once begun cannot be taken back.
 *
 *   struct restore_spool sp; restore_spool_init(&sp, 1 << 20);
 *   restore_spool_reset(&sp); restore_spool_write(&sp, ...) ...;
 *   restore_spool_rewind(&sp); restore_spool_read(&sp, ...) ...;
 *   restore_spool_free(&sp);
 */
#ifndef IMAPSNAP_RESTORE_SPOOL_H
#define IMAPSNAP_RESTORE_SPOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"

struct restore_spool {
	size_t mem_max;
	char *mem;
	size_t mem_cap;
	int fd;         /* -1 until a message outgrows mem_max */
	bool in_file;   /* this message is in the file */
	uint64_t size;  /* bytes written */
	uint64_t pos;   /* read position */
};

void restore_spool_init(struct restore_spool *sp, size_t mem_max);
void restore_spool_free(struct restore_spool *sp);
void restore_spool_reset(struct restore_spool *sp);
enum isnap_status restore_spool_write(struct restore_spool *sp,
				      const void *data, size_t len,
				      struct isnap_error *err);
/* Forget everything after the first `size` bytes. */
void restore_spool_truncate(struct restore_spool *sp, uint64_t size);
void restore_spool_rewind(struct restore_spool *sp);
/* The msg_norm.h digest of the message held, read from the start; the
 * spool is rewound again after. */
enum isnap_status restore_spool_norm(struct restore_spool *sp,
				     unsigned char sha[32],
				     struct isnap_error *err);
/* An append_read_fn (imap/append.h); ctx is the spool. */
enum isnap_status restore_spool_read(void *ctx, void *buf, size_t len,
				     size_t *got, struct isnap_error *err);

#endif
