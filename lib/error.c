/* error.c — see error.h. */
#include "error.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

/* Paths and folder names come from the server and can be thousands of
 * bytes; a message must still fit on a line and keep its reason.  Any run
 * of more than WORD_MAX bytes without a space keeps its head and tail. */
#define WORD_MAX 160
#define WORD_HEAD 100
#define WORD_TAIL 50

static void shorten_long_words(char *msg)
{
	char *r = msg, *w = msg;

	while (*r) {
		size_t n = strcspn(r, " ");
		if (n > WORD_MAX) {
			memmove(w, r, WORD_HEAD);
			memcpy(w + WORD_HEAD, "...", 3);
			memmove(w + WORD_HEAD + 3, r + n - WORD_TAIL, WORD_TAIL);
			w += WORD_HEAD + 3 + WORD_TAIL;
		} else {
			memmove(w, r, n);
			w += n;
		}
		r += n;
		if (*r == ' ')
			*w++ = *r++;
	}
	*w = '\0';
}

const char *isnap_strerror(int errnum)
{
	/* What lib/beneath.c refuses (beneath.h); strerror's words for
	 * these ("Too many levels of symbolic links", "No such device or
	 * address") would send a user looking for the wrong problem. */
	if (errnum == ELOOP)
		return "a symbolic link, which imapsnap does not follow here";
	if (errnum == ENXIO)
		return "a FIFO, socket or device, not a regular file";
	return strerror(errnum);
}

static enum isnap_status vfail(struct isnap_error *err,
			       enum isnap_status status, const char *fmt,
			       va_list ap, int errnum)
{
	if (!err)
		return status;
	err->status = status;
	vsnprintf(err->msg, sizeof err->msg, fmt, ap);
	if (errnum) {
		/* The reason must survive a long path in front of it: cut the
		 * front to make room. */
		const char *why = isnap_strerror(errnum);
		size_t room = sizeof err->msg - strlen(why) - 6;
		size_t n = strlen(err->msg);
		if (n > room) {
			memcpy(err->msg + room - 3, "...", 3);
			n = room;
		}
		snprintf(err->msg + n, sizeof err->msg - n, ": %s", why);
	}
	shorten_long_words(err->msg);
	return status;
}

enum isnap_status isnap_fail(struct isnap_error *err, enum isnap_status status,
			     const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vfail(err, status, fmt, ap, 0);
	va_end(ap);
	return status;
}

enum isnap_status isnap_fail_errno(struct isnap_error *err,
				   enum isnap_status status, const char *fmt,
				   ...)
{
	int errnum = errno;
	va_list ap;
	va_start(ap, fmt);
	vfail(err, status, fmt, ap, errnum);
	va_end(ap);
	errno = errnum;
	return status;
}

enum isnap_status isnap_error_prefix(struct isnap_error *err, const char *fmt,
				     ...)
{
	char buf[ISNAP_ERROR_MAX];
	size_t n, rest;
	va_list ap;

	if (!err)
		return ISNAP_OK;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	n = strlen(buf);
	if (n + 2 < sizeof buf) {
		memcpy(buf + n, ": ", 2);
		n += 2;
	}
	/* Whatever of the old message still fits, cut if need be. */
	rest = strnlen(err->msg, sizeof err->msg);
	if (rest > sizeof buf - 1 - n)
		rest = sizeof buf - 1 - n;
	memcpy(buf + n, err->msg, rest);
	buf[n + rest] = '\0';
	memcpy(err->msg, buf, sizeof buf);
	return err->status;
}

void isnap_error_clear(struct isnap_error *err)
{
	if (!err)
		return;
	err->status = ISNAP_OK;
	err->msg[0] = '\0';
}

const char *isnap_status_name(enum isnap_status status)
{
	switch (status) {
	case ISNAP_OK: return "success";
	case ISNAP_EMSG: return "message not saved";
	case ISNAP_EFOLDER: return "folder failed";
	case ISNAP_EPROTO: return "protocol error";
	case ISNAP_ECONN: return "connection failure";
	case ISNAP_EAUTH: return "authentication failure";
	case ISNAP_ELOCAL: return "local I/O failure";
	case ISNAP_EUSAGE: return "usage error";
	case ISNAP_ENOMEM: return "out of memory";
	case ISNAP_ELOCKED: return "destination locked";
	case ISNAP_EINTEGRITY: return "integrity failure";
	case ISNAP_ESTOPPED: return "stopped early";
	case ISNAP_EINTERRUPTED: return "interrupted";
	}
	return "unknown error";
}
