/*
 * client.h — an IMAP client connection: a session (session.h), a response
 * parser (parser.h), a read buffer, command tags and the server's
 * capabilities.  RFC 3501.
 *
 * Two ways to talk:
 *
 *  - imap_client_simple(): send one command and wait for its tagged answer;
 *    untagged responses go to a callback, literals are collected (bounded).
 *    For LIST, EXAMINE, SEARCH, CAPABILITY, LOGOUT.
 *
 *  - imap_client_send() + imap_client_pump(): pipelining.  Send several
 *    commands, then pump responses into a struct imap_handler until it says
 *    it is done; the handler may stream literals itself (message bodies).
 *
 * Tags are "i1", "i2", … (libcurl used A001… during login).
 */
#ifndef IMAPSNAP_IMAP_CLIENT_H
#define IMAPSNAP_IMAP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "imap/parser.h"
#include "imap/session.h"

struct imap_client;

/* What pump() calls.  `response` sees every complete response.  At a literal,
 * `literal_begin` decides: set *stream to true to receive its bytes through
 * `literal_data` (then `literal_end`), or leave it false to have the parser
 * collect it into the response.  NULL callbacks mean "inline everything".
 * Any callback returning non-ISNAP_OK stops the pump with that status. */
struct imap_handler {
	void *ctx;
	enum isnap_status (*response)(void *ctx, const struct imap_response *r,
				      struct isnap_error *err);
	enum isnap_status (*literal_begin)(void *ctx,
					   const struct imap_response *partial,
					   uint64_t size, bool *stream,
					   struct isnap_error *err);
	enum isnap_status (*literal_data)(void *ctx, const char *data,
					  size_t len, struct isnap_error *err);
	enum isnap_status (*literal_end)(void *ctx, struct isnap_error *err);
};

/* Connect, log in, and learn the capabilities. */
enum isnap_status imap_client_open(const struct imap_session_opts *opts,
				   struct imap_client **out,
				   struct isnap_error *err);

/* Send LOGOUT (best effort, when `logout`) and free everything. */
void imap_client_close(struct imap_client *c, bool logout);

/* The capabilities, space-separated and upper-cased, and the server's
 * greeting line, for the record (manifest). */
const char *imap_client_capabilities(const struct imap_client *c);
const char *imap_client_greeting(const struct imap_client *c);

/* Case-insensitive: imap_client_has_cap(c, "ESEARCH"). */
bool imap_client_has_cap(const struct imap_client *c, const char *cap);

/* The last answer (NO, BAD or BYE) that asked for a wait of its own
 * ("Suggested Backoff Time: N ms", imap/throttle.h): how long, in ms,
 * and *until, the CLOCK_MONOTONIC time in ms when it is over; 0 when no
 * answer named one.  Microsoft sends BAD with the wait, then BYE: a
 * reconnection then waits until *until rather than a backoff of its
 * own. */
long imap_client_throttle_asked(const struct imap_client *c,
				int64_t *until);

/* Send "<tag> <command>\r\n" and put the tag in tag[16].  `command` must
 * not contain CR or LF. */
enum isnap_status imap_client_send(struct imap_client *c, const char *command,
				   char tag[16], struct isnap_error *err);

/* Send `len` raw bytes on the connection: the bytes of a literal after
 * its command line (APPEND).  ISNAP_OK or ISNAP_ECONN. */
enum isnap_status imap_client_write(struct imap_client *c, const void *data,
				    size_t len, struct isnap_error *err);

/* Read and dispatch responses until *done becomes true (the handler sets
 * it).  A BYE is reported as ISNAP_ECONN with the server's text. */
enum isnap_status imap_client_pump(struct imap_client *c,
				   const struct imap_handler *h, bool *done,
				   struct isnap_error *err);

/* Send `command`, pass each untagged response to `untagged` (may be NULL),
 * and wait for the tagged answer.  OK is ISNAP_OK; NO is ISNAP_EFOLDER and
 * BAD is ISNAP_EPROTO, both with the server's text in err. */
enum isnap_status imap_client_simple(
	struct imap_client *c, const char *command,
	enum isnap_status (*untagged)(void *ctx, const struct imap_response *r,
				      struct isnap_error *err),
	void *ctx, struct isnap_error *err);

/* Like imap_client_simple, for a command about one folder (STATUS,
 * CREATE, EXAMINE): BAD is ISNAP_EFOLDER too.  Some servers say BAD where
 * they mean NO (a folder that does not exist), and a tagged answer, BAD
 * or not, leaves the session as it was. */
enum isnap_status imap_client_simple_folder(
	struct imap_client *c, const char *command,
	enum isnap_status (*untagged)(void *ctx, const struct imap_response *r,
				      struct isnap_error *err),
	void *ctx, struct isnap_error *err);

/* Append `name` to `buf` (size `size`) as an IMAP astring: a quoted string,
 * or a non-synchronizing literal when it has bytes a quoted string cannot
 * hold and the server has LITERAL+/LITERAL-.  Returns the length written,
 * or 0 when it does not fit or cannot be sent at all. */
size_t imap_client_quote(const struct imap_client *c, const char *name,
			 char *buf, size_t size);

#endif
