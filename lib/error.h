/*
 * error.h — status codes and the error text that travels with them.
 *
 * lib/ never prints.  A function that can fail returns an enum isnap_status
 * (ISNAP_OK is 0, so callers write `if (rc) return rc;`) and, on failure,
 * leaves a human-readable sentence in the struct isnap_error its caller
 * passed in.  The codes are graded by how much broke, so that the CLI can
 * map them to exit statuses without parsing text:
 *
 *   ISNAP_EMSG      one message could not be saved; the folder goes on
 *   ISNAP_EFOLDER   one folder could not be backed up; the account goes on
 *   ISNAP_EPROTO    the server broke the protocol; the session is unusable
 *   ISNAP_ECONN     connection or TLS failure; the session is gone
 *   ISNAP_EAUTH     the server refused the credentials
 *   ISNAP_ELOCAL    the destination cannot be written (disk full, EACCES…)
 *   ISNAP_EUSAGE    the caller asked for something impossible
 *   ISNAP_ENOMEM    out of memory
 *   ISNAP_ELOCKED   another run holds the destination
 *   ISNAP_EINTEGRITY a verified file does not match what was recorded
 *   ISNAP_ESTOPPED  the run stopped early on purpose: its budget
 *                   (--max-messages, --max-bytes) or the provider's quota
 *                   for today; what was saved is kept, the next run goes on
 *   ISNAP_EINTERRUPTED a signal asked the run to stop (interrupt.h); what
 *                   was complete is kept, the next run goes on
 */
#ifndef IMAPSNAP_ERROR_H
#define IMAPSNAP_ERROR_H

#include <stdarg.h>

enum isnap_status {
	ISNAP_OK = 0,
	ISNAP_EMSG,
	ISNAP_EFOLDER,
	ISNAP_EPROTO,
	ISNAP_ECONN,
	ISNAP_EAUTH,
	ISNAP_ELOCAL,
	ISNAP_EUSAGE,
	ISNAP_ENOMEM,
	ISNAP_ELOCKED,
	ISNAP_EINTEGRITY,
	ISNAP_ESTOPPED,
	ISNAP_EINTERRUPTED,
};

#define ISNAP_ERROR_MAX 1024

struct isnap_error {
	enum isnap_status status;
	char msg[ISNAP_ERROR_MAX];
};

/* Record `status` and a printf-style message in `err` (which may be NULL);
 * returns `status` so that callers can write `return isnap_fail(...)`. */
enum isnap_status isnap_fail(struct isnap_error *err, enum isnap_status status,
			     const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Like isnap_fail, and appends ": strerror(errno)" (errno as on entry). */
enum isnap_status isnap_fail_errno(struct isnap_error *err,
				   enum isnap_status status, const char *fmt,
				   ...) __attribute__((format(printf, 3, 4)));

/* strerror(errnum), except that ELOOP and ENXIO say what they mean for
 * paths below a destination (beneath.h): a symbolic link that was not
 * followed, a FIFO, socket or device that was not opened.  The reason
 * isnap_fail_errno appends. */
const char *isnap_strerror(int errnum);

/* Prefix the message already in `err` with more context ("INBOX: ...").
 * Returns err->status. */
enum isnap_status isnap_error_prefix(struct isnap_error *err, const char *fmt,
				     ...) __attribute__((format(printf, 2, 3)));

/* Empty `err` (status ISNAP_OK, message ""). */
void isnap_error_clear(struct isnap_error *err);

/* A short English name for a status ("connection failure"). */
const char *isnap_status_name(enum isnap_status status);

#endif
