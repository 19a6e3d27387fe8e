/* mbox_index.c — see mbox_index.h. */
#include "store/mbox_index.h"

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

size_t mbox_index_format(const struct mbox_index_entry *e, char *buf)
{
	int n = snprintf(buf, MBOX_INDEX_LINE_MAX,
			 "%" PRIu32 " %" PRIu32 " %" PRIu64 " %" PRIu64
			 " %" PRIu64 "\n",
			 e->uidvalidity, e->uid, e->offset, e->length,
			 e->file_end);

	return n > 0 ? (size_t)n : 0;
}

/* A decimal number, no sign, no leading zero (except "0" itself). */
static bool number(const char **p, const char *end, uint64_t max,
		   uint64_t *out)
{
	const char *q = *p;
	uint64_t v = 0;

	if (q == end || *q < '0' || *q > '9')
		return false;
	if (*q == '0' && q + 1 < end && q[1] >= '0' && q[1] <= '9')
		return false;
	while (q < end && *q >= '0' && *q <= '9') {
		unsigned d = (unsigned)(*q++ - '0');
		if (v > (max - d) / 10)
			return false;
		v = v * 10 + d;
	}
	*p = q;
	*out = v;
	return true;
}

int mbox_index_parse(const char *line, size_t len, struct mbox_index_entry *e)
{
	const char *p = line, *end = line + len;
	uint64_t v[5];

	for (int i = 0; i < 5; i++) {
		if (i && (p == end || *p++ != ' '))
			return -1;
		if (!number(&p, end, i < 2 ? UINT32_MAX : INT64_MAX, &v[i]))
			return -1;
	}
	if (p != end || v[0] == 0 || v[1] == 0 || v[3] == 0)
		return -1;
	e->uidvalidity = (uint32_t)v[0];
	e->uid = (uint32_t)v[1];
	e->offset = v[2];
	e->length = v[3];
	e->file_end = v[4];
	return 0;
}

/* Does `e` follow on from what the index said so far? */
static bool follows(const struct mbox_index_info *info,
		    const struct mbox_index_entry *e)
{
	if (info->n && e->uidvalidity != info->uidvalidity)
		return false;
	return e->offset >= info->data_end &&
	       e->length <= INT64_MAX - e->offset &&
	       e->file_end >= info->file_end;
}

int mbox_index_read(int fd, struct mbox_index_info *info,
		    int (*each)(void *ctx, const struct mbox_index_entry *e),
		    void *ctx)
{
	char buf[8192];
	char line[MBOX_INDEX_LINE_MAX];
	size_t line_len = 0;
	uint64_t at = 0; /* offset in the file of buf[0] */
	bool bad = false;

	memset(info, 0, sizeof *info);
	while (!bad) {
		ssize_t n = pread(fd, buf, sizeof buf, (off_t)at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n && !bad; i++) {
			struct mbox_index_entry e;
			if (buf[i] != '\n') {
				if (line_len == sizeof line)
					bad = true;
				else
					line[line_len++] = buf[i];
				continue;
			}
			if (mbox_index_parse(line, line_len, &e) != 0 ||
			    !follows(info, &e)) {
				bad = true;
				break;
			}
			if (each && each(ctx, &e) != 0)
				return -1;
			info->n++;
			info->uidvalidity = e.uidvalidity;
			info->data_end = e.offset + e.length;
			info->file_end = e.file_end;
			info->valid_len = at + (uint64_t)i + 1;
			line_len = 0;
		}
		at += (uint64_t)n;
	}
	return 0;
}

size_t mbox_ids_format(uint32_t uidvalidity, uint32_t uid,
		       const unsigned char ident[32], char *buf)
{
	static const char digits[] = "0123456789abcdef";
	int n = snprintf(buf, MBOX_IDS_LINE_MAX, "%" PRIu32 " %" PRIu32 " ",
			 uidvalidity, uid);
	size_t k;

	if (n <= 0)
		return 0;
	k = (size_t)n;
	for (int i = 0; i < 32; i++) {
		buf[k++] = digits[ident[i] >> 4];
		buf[k++] = digits[ident[i] & 15];
	}
	buf[k++] = '\n';
	return k;
}

static int hexval(char c)
{
	return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10
									  : -1;
}

static int ids_parse(const char *line, size_t len, uint32_t *uidvalidity,
		     uint32_t *uid, unsigned char ident[32])
{
	const char *p = line, *end = line + len;
	uint64_t uv, v;

	if (!number(&p, end, UINT32_MAX, &uv) || uv == 0 || p == end ||
	    *p++ != ' ' || !number(&p, end, UINT32_MAX, &v) || v == 0 ||
	    p == end || *p++ != ' ' || end - p != 64)
		return -1;
	for (int i = 0; i < 32; i++) {
		int hi = hexval(p[2 * i]), lo = hexval(p[2 * i + 1]);
		if (hi < 0 || lo < 0)
			return -1;
		ident[i] = (unsigned char)(hi << 4 | lo);
	}
	*uidvalidity = (uint32_t)uv;
	*uid = (uint32_t)v;
	return 0;
}

int mbox_ids_read(int fd,
		  int (*each)(void *ctx, uint32_t uidvalidity, uint32_t uid,
			      const unsigned char ident[32]),
		  void *ctx, uint64_t *valid_len)
{
	char buf[8192];
	char line[MBOX_IDS_LINE_MAX];
	size_t line_len = 0;
	uint64_t at = 0;

	*valid_len = 0;
	for (;;) {
		ssize_t n = pread(fd, buf, sizeof buf, (off_t)at);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		for (ssize_t i = 0; i < n; i++) {
			unsigned char ident[32];
			uint32_t uv, uid;
			if (buf[i] != '\n') {
				if (line_len == sizeof line)
					return 0;
				line[line_len++] = buf[i];
				continue;
			}
			if (ids_parse(line, line_len, &uv, &uid, ident) != 0)
				return 0;
			if (each(ctx, uv, uid, ident) != 0)
				return -1;
			*valid_len = at + (uint64_t)i + 1;
			line_len = 0;
		}
		at += (uint64_t)n;
	}
}
