/* restore_spool.c — see restore_spool.h. */
#include "restore_spool.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msg_norm.h"

void restore_spool_init(struct restore_spool *sp, size_t mem_max)
{
	memset(sp, 0, sizeof *sp);
	sp->mem_max = mem_max;
	sp->fd = -1;
}

void restore_spool_free(struct restore_spool *sp)
{
	free(sp->mem);
	if (sp->fd >= 0)
		close(sp->fd);
	restore_spool_init(sp, sp->mem_max);
}

void restore_spool_reset(struct restore_spool *sp)
{
	sp->size = sp->pos = 0;
	/* The file stays open for the next big message; its blocks go. */
	if (sp->in_file && ftruncate(sp->fd, 0) != 0) {
		close(sp->fd);
		sp->fd = -1;
	}
	sp->in_file = false;
}

static int open_tmp(void)
{
	const char *dir = getenv("TMPDIR");
	char path[4096];
	int fd;

	if (!dir || !*dir)
		dir = "/tmp";
	fd = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (fd >= 0)
		return fd;
	snprintf(path, sizeof path, "%s/imapsnap-spool-XXXXXX", dir);
	fd = mkostemp(path, O_CLOEXEC);
	if (fd >= 0)
		unlink(path);
	return fd;
}

static enum isnap_status write_all(int fd, uint64_t off, const char *p,
				   size_t len, struct isnap_error *err)
{
	while (len) {
		ssize_t n = pwrite(fd, p, len, (off_t)off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return isnap_fail_errno(err, ISNAP_ELOCAL,
						"writing a temporary file");
		p += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return ISNAP_OK;
}

enum isnap_status restore_spool_write(struct restore_spool *sp,
				      const void *data, size_t len,
				      struct isnap_error *err)
{
	enum isnap_status rc;

	if (!sp->in_file && sp->size + len <= sp->mem_max) {
		if (sp->size + len > sp->mem_cap) {
			size_t cap = sp->mem_cap ? sp->mem_cap : 65536;
			char *m;
			while (cap < sp->size + len)
				cap *= 2;
			if (cap > sp->mem_max)
				cap = sp->mem_max;
			if (!(m = realloc(sp->mem, cap)))
				return isnap_fail(err, ISNAP_ENOMEM,
						  "out of memory");
			sp->mem = m;
			sp->mem_cap = cap;
		}
		memcpy(sp->mem + sp->size, data, len);
		sp->size += len;
		return ISNAP_OK;
	}
	if (!sp->in_file) {
		/* Outgrew memory: what is there goes first. */
		if (sp->fd < 0 && (sp->fd = open_tmp()) < 0)
			return isnap_fail_errno(err, ISNAP_ELOCAL,
						"creating a temporary file");
		rc = write_all(sp->fd, 0, sp->mem, (size_t)sp->size, err);
		if (rc)
			return rc;
		sp->in_file = true;
	}
	rc = write_all(sp->fd, sp->size, data, len, err);
	if (!rc)
		sp->size += len;
	return rc;
}

void restore_spool_truncate(struct restore_spool *sp, uint64_t size)
{
	if (size < sp->size)
		sp->size = size;
}

void restore_spool_rewind(struct restore_spool *sp)
{
	sp->pos = 0;
}

enum isnap_status restore_spool_read(void *ctx, void *buf, size_t len,
				     size_t *got, struct isnap_error *err)
{
	struct restore_spool *sp = ctx;
	uint64_t left = sp->size - sp->pos;
	size_t n = left < len ? (size_t)left : len;

	*got = 0;
	if (!n)
		return ISNAP_OK;
	if (!sp->in_file) {
		memcpy(buf, sp->mem + sp->pos, n);
	} else {
		ssize_t r;
		do
			r = pread(sp->fd, buf, n, (off_t)sp->pos);
		while (r < 0 && errno == EINTR);
		if (r <= 0)
			return isnap_fail_errno(err, ISNAP_ELOCAL,
						"reading a temporary file");
		n = (size_t)r;
	}
	sp->pos += n;
	*got = n;
	return ISNAP_OK;
}

enum isnap_status restore_spool_norm(struct restore_spool *sp,
				     unsigned char sha[32],
				     struct isnap_error *err)
{
	struct msg_norm n;
	char buf[65536];
	size_t got;
	enum isnap_status rc = ISNAP_OK;

	if (!msg_norm_init(&n))
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	restore_spool_rewind(sp);
	do {
		rc = restore_spool_read(sp, buf, sizeof buf, &got, err);
		if (!rc)
			msg_norm_update(&n, buf, got);
	} while (!rc && got);
	if (!msg_norm_final(&n, sha) && !rc)
		rc = isnap_fail(err, ISNAP_ENOMEM,
				"computing a SHA-256 failed (libcrypto)");
	restore_spool_rewind(sp);
	return rc;
}
