/*
 * mbox_out.c — see mbox_out.h.  gzip framing per RFC 1952; the deflate
 * stream (RFC 1951) comes from zlib in raw mode, so that the member's
 * header and trailer are ours and a member can be ended at a point zlib
 * does not know about (rewind).
 */
#include "store/mbox_out.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zlib.h>

#include "store/common.h"

struct mbox_out {
	int fd;
	bool gzip;
	char *buf;
	size_t len;       /* bytes in buf, not yet in the file */
	uint64_t flushed; /* file offset where buf goes */

	/* The mark: where the current message started. */
	uint64_t mark_pos;
	bool mark_in_member;
	uint32_t mark_crc;
	uint64_t mark_isize;

	/* gzip */
	z_stream z;
	bool z_ready;
	bool in_member;
	bool dirty;       /* input fed since the last flush point */
	uint32_t crc;
	uint64_t isize;
};

/* Minimal gzip member header: deflate, no name, no time, OS Unix. */
static const unsigned char member_header[10] = { 0x1f, 0x8b, 8, 0, 0, 0, 0, 0,
					     0,    3 };
/* An empty stored block with BFINAL set: ends a deflate stream that was
 * cut right after a sync flush. */
static const unsigned char final_block[5] = { 0x01, 0x00, 0x00, 0xff, 0xff };

static uint64_t pos(const struct mbox_out *o)
{
	return o->flushed + o->len;
}

static int flush(struct mbox_out *o)
{
	const char *p = o->buf;
	size_t n = o->len;

	while (n) {
		ssize_t w = pwrite(o->fd, p, n, (off_t)o->flushed);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0) {
			if (w == 0)
				errno = EIO;
			/* Keep what was not written: the caller gives up
			 * or rewinds, both of which know o->flushed. */
			memmove(o->buf, p, n);
			o->len = n;
			return -1;
		}
		p += w;
		n -= (size_t)w;
		o->flushed += (uint64_t)w;
	}
	o->len = 0;
	return 0;
}

static int put(struct mbox_out *o, const void *data, size_t n)
{
	const char *p = data;

	while (n) {
		size_t k = STORE_CHUNK - o->len;
		if (k > n)
			k = n;
		memcpy(o->buf + o->len, p, k);
		o->len += k;
		p += k;
		n -= k;
		if (o->len == STORE_CHUNK && flush(o))
			return -1;
	}
	return 0;
}

static int put_le32(struct mbox_out *o, uint32_t v)
{
	unsigned char b[4] = { (unsigned char)v, (unsigned char)(v >> 8),
			       (unsigned char)(v >> 16),
			       (unsigned char)(v >> 24) };

	return put(o, b, 4);
}

int mbox_out_new(int fd, bool gzip, struct mbox_out **out)
{
	struct mbox_out *o = calloc(1, sizeof *o);
	off_t end;

	*out = NULL;
	if (!o || !(o->buf = malloc(STORE_CHUNK))) {
		free(o);
		close(fd);
		errno = ENOMEM;
		return -1;
	}
	o->fd = fd;
	o->gzip = gzip;
	end = lseek(fd, 0, SEEK_END);
	if (end < 0)
		goto fail;
	o->flushed = o->mark_pos = (uint64_t)end;
	if (gzip) {
		int zr = deflateInit2(&o->z, MBOX_GZ_LEVEL, Z_DEFLATED, -15, 8,
				      Z_DEFAULT_STRATEGY);
		if (zr != Z_OK) {
			errno = zr == Z_MEM_ERROR ? ENOMEM : EIO;
			goto fail;
		}
		o->z_ready = true;
	}
	*out = o;
	return 0;
fail:
	mbox_out_free(o);
	return -1;
}

/* Run deflate over what is in o->z.next_in with `mode`, until the input is
 * used up (Z_NO_FLUSH), the flush is complete (Z_SYNC_FLUSH) or the stream
 * has ended (Z_FINISH). */
static int deflate_run(struct mbox_out *o, int mode)
{
	for (;;) {
		size_t room = STORE_CHUNK - o->len;
		int zr;

		o->z.next_out = (Bytef *)o->buf + o->len;
		o->z.avail_out = (uInt)room;
		zr = deflate(&o->z, mode);
		o->len += room - o->z.avail_out;
		if (zr == Z_STREAM_ERROR) {
			errno = EIO;
			return -1;
		}
		if (o->len == STORE_CHUNK) {
			if (flush(o))
				return -1;
			continue; /* there may be more output */
		}
		if (mode == Z_FINISH ? zr == Z_STREAM_END
				     : o->z.avail_in == 0)
			return 0;
	}
	/* not reached */
}

static int start_member(struct mbox_out *o)
{
	if (deflateReset(&o->z) != Z_OK) {
		errno = EIO;
		return -1;
	}
	o->crc = (uint32_t)crc32(0L, Z_NULL, 0);
	o->isize = 0;
	o->in_member = true;
	o->dirty = false;
	return put(o, member_header, sizeof member_header);
}

int mbox_out_write(struct mbox_out *o, const void *data, size_t len)
{
	const unsigned char *p = data;

	if (!o->gzip)
		return put(o, data, len);
	if (!o->in_member && len && start_member(o))
		return -1;
	while (len) {
		/* zlib counts in uInt. */
		uInt k = len > (1u << 30) ? (1u << 30) : (uInt)len;
		o->crc = (uint32_t)crc32(o->crc, p, k);
		o->isize += k;
		o->z.next_in = (Bytef *)p;
		o->z.avail_in = k;
		if (deflate_run(o, Z_NO_FLUSH))
			return -1;
		o->dirty = true;
		p += k;
		len -= k;
	}
	return 0;
}

int mbox_out_mark(struct mbox_out *o)
{
	if (o->gzip && o->in_member && o->dirty) {
		o->z.next_in = Z_NULL;
		o->z.avail_in = 0;
		if (deflate_run(o, Z_SYNC_FLUSH))
			return -1;
		o->dirty = false;
	}
	o->mark_pos = pos(o);
	o->mark_in_member = o->gzip && o->in_member;
	o->mark_crc = o->crc;
	o->mark_isize = o->isize;
	return 0;
}

int mbox_out_rewind(struct mbox_out *o)
{
	if (o->mark_pos >= o->flushed) {
		o->len = (size_t)(o->mark_pos - o->flushed);
	} else {
		o->len = 0;
		if (ftruncate(o->fd, (off_t)o->mark_pos) != 0)
			return -1;
		o->flushed = o->mark_pos;
	}
	if (o->gzip && o->in_member) {
		o->in_member = false;
		o->dirty = false;
		/* The member goes on up to the mark only: close it there. */
		if (o->mark_in_member &&
		    (put(o, final_block, sizeof final_block) ||
		     put_le32(o, o->mark_crc) ||
		     put_le32(o, (uint32_t)o->mark_isize)))
			return -1;
	}
	return mbox_out_mark(o);
}

int mbox_out_commit(struct mbox_out *o, uint64_t *file_end)
{
	if (o->gzip && o->in_member) {
		o->z.next_in = Z_NULL;
		o->z.avail_in = 0;
		if (deflate_run(o, Z_FINISH) || put_le32(o, o->crc) ||
		    put_le32(o, (uint32_t)o->isize))
			return -1;
		o->in_member = false;
		o->dirty = false;
	}
	if (flush(o) || fdatasync(o->fd) != 0)
		return -1;
	*file_end = o->flushed;
	return mbox_out_mark(o);
}

int mbox_out_empty_member(struct mbox_out *o)
{
	uint64_t end;

	if (!o->gzip || pos(o) != 0 || o->in_member)
		return 0;
	if (start_member(o))
		return -1;
	return mbox_out_commit(o, &end);
}

void mbox_out_free(struct mbox_out *o)
{
	if (!o)
		return;
	if (o->z_ready)
		deflateEnd(&o->z);
	close(o->fd);
	free(o->buf);
	free(o);
}
