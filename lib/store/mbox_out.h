/*
 * mbox_out.h — the output file of one mbox folder, plain or gzip, with the
 * two things the mbox store needs from it: going back to the start of the
 * message being written (abort), and commit points where the file is
 * durable and complete.
 *
 *   mbox_out_new(fd, gzip, &o)    // fd open for writing, at its end
 *   for each message:
 *       mbox_out_mark(o)          // a message starts here
 *       mbox_out_write(o, ...)    // its bytes (uncompressed)
 *       [mbox_out_rewind(o)]      // forget everything since the mark
 *   mbox_out_commit(o, &end)      // durable; `end` = file size
 *   mbox_out_free(o)              // closes fd
 *
 * Plain: bytes are buffered and written with pwrite; commit flushes and
 * fsyncs; rewind truncates the file back to the mark.
 *
 * gzip (RFC 1952): a commit ends the current gzip member, so that the file
 * is a valid gzip file (a series of members) at every commit point, and
 * the next batch starts a new member.  A mark flushes the deflate stream
 * to a byte boundary (Z_SYNC_FLUSH: history is kept, the cost is a few
 * bytes and a new block); a rewind cuts the file there and ends the member
 * with an empty final block and the trailer of what came before the mark.
 * Either way nothing of the abandoned message remains.
 *
 * Functions return 0, or -1 with errno (EIO for a zlib failure).  After a
 * failed write the file's tail is undefined until rewind or free: the
 * caller truncates back to the last commit point when it opens the file.
 */
#ifndef IMAPSNAP_STORE_MBOX_OUT_H
#define IMAPSNAP_STORE_MBOX_OUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct mbox_out;

/* `fd` is taken over (closed by mbox_out_free, also on failure here);
 * output is appended at its current size. */
int mbox_out_new(int fd, bool gzip, struct mbox_out **out);
int mbox_out_mark(struct mbox_out *o);
int mbox_out_write(struct mbox_out *o, const void *data, size_t len);
int mbox_out_rewind(struct mbox_out *o);
int mbox_out_commit(struct mbox_out *o, uint64_t *file_end);
/* gzip, and nothing was ever written to the file: write one empty gzip
 * member (20 bytes) and sync it, so that the file is a valid gzip file.
 * A no-op otherwise. */
int mbox_out_empty_member(struct mbox_out *o);
/* Closes the file; what was not committed stays as a torn tail. */
void mbox_out_free(struct mbox_out *o);

/* The gzip level used (zlib's default, 6: what gzip(1) uses too). */
#define MBOX_GZ_LEVEL 6

#endif
