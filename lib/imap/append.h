/*
 * append.h — pipelined APPEND, streaming each message from a reader.
 * RFC 3501 §6.3.11 (APPEND), RFC 7888 (LITERAL+ / LITERAL-), RFC 4315
 * (UIDPLUS: APPENDUID), RFC 3501 §9 (flag and date-time syntax).
 *
 *   struct appender *ap = appender_new(client, depth, on_done, ctx);
 *   for each message:
 *       appender_add(ap, &msg, read, rctx, token, err);  // may wait
 *   appender_drain(ap, err);                            // all answered
 *   appender_free(ap);
 *
 * With LITERAL+ (or LITERAL- and a message of at most 4096 bytes) the
 * command and its body go out at once, `{n+}`, and up to `depth` commands
 * wait for their answers together.  Without, each body waits for the
 * server's "+" (a synchronizing literal), and earlier commands' answers
 * are read meanwhile.  Either way the body is read from the reader in
 * chunks of 64 KiB: memory does not depend on message size.
 *
 * Every command gets exactly one on_done call, in the order the answers
 * come, with the token given to appender_add.  A NO or BAD answer is a
 * result, not an error of appender_add: the session goes on.  Errors
 * (connection lost, a reader that fails, a protocol violation) leave the
 * session unusable; the commands still waiting get no on_done call, and
 * the caller must treat them as unknown (appended or not).
 */
#ifndef IMAPSNAP_IMAP_APPEND_H
#define IMAPSNAP_IMAP_APPEND_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "imap/client.h"

/* One message to append.  `mailbox` is the target's name as the server
 * spells it (modified UTF-7); `flags` the text inside the parentheses,
 * as append_format_flags builds it ("" for none). */
struct append_msg {
	const char *mailbox;
	const char *flags;
	int64_t internaldate;   /* seconds since the epoch, or INT64_MIN */
	int tz_minutes;         /* the zone to write it in */
	bool leap_second;       /* internaldate is :59 of a leap second's
				   minute, to be written :60 */
	uint64_t size;          /* exactly the bytes the reader delivers */
};

struct append_result {
	void *token;
	bool ok;                /* tagged OK */
	const char *answer;     /* "NO", "BAD" or "OK" */
	const char *text;       /* the server's text, with its [code] */
	bool has_uid;           /* APPENDUID came with the OK */
	uint32_t uidvalidity, uid;
};

/* Fill buf with up to `len` bytes of the message; *got 0 only at its end. */
typedef enum isnap_status (*append_read_fn)(void *ctx, void *buf, size_t len,
					    size_t *got,
					    struct isnap_error *err);
typedef void (*append_done_fn)(void *ctx, const struct append_result *r);

struct appender;

/* `depth`: commands awaiting their answer at most (0: 16). */
struct appender *appender_new(struct imap_client *c, unsigned depth,
			      append_done_fn done, void *ctx);
void appender_free(struct appender *ap);

/* Send one APPEND; waits for answers first when `depth` are in flight. */
enum isnap_status appender_add(struct appender *ap,
			       const struct append_msg *m,
			       append_read_fn read, void *rctx, void *token,
			       struct isnap_error *err);

/* Wait until every command sent has its answer. */
enum isnap_status appender_drain(struct appender *ap, struct isnap_error *err);

/* Commands sent and not answered yet. */
unsigned appender_in_flight(const struct appender *ap);

/* After an error: the token of one command that got no answer (and
 * forget it), or NULL when none is left; to free what tokens hold. */
void *appender_take_waiting(struct appender *ap);

/* Whether `token` belongs to a command still waiting for its answer: after
 * appender_add failed, tells whether the command was queued (its token then
 * comes back from appender_take_waiting) or not (the token is still the
 * caller's). */
bool appender_holds(const struct appender *ap, const void *token);

/* --- the pieces, exposed for the tests ---------------------------------- */

/* "17-Jul-1996 02:44:25 -0700": `epoch` shown in the zone `tz_minutes`
 * east of UTC; out needs 27 bytes.  With `leap_second`, `epoch` is :59 of
 * the minute that had one, and the seconds are written "60".  False for a
 * date that cannot be written (before year 1 or after 9999, a zone beyond
 * ±99:59). */
bool append_format_date(int64_t epoch, int tz_minutes, bool leap_second,
			char out[27]);

/* Whether `flag` can be given to APPEND: a system flag other than
 * \Recent (\Seen \Answered \Flagged \Deleted \Draft), or a keyword that is
 * an IMAP atom (no space, parentheses, braces, quotes, backslash, '%',
 * '*', ']', control or 8-bit bytes). */
bool append_flag_ok(const char *flag);

/* Append `flag` to the space-separated list in buf (size `size`) when
 * append_flag_ok and not there yet (case-insensitively).  Returns false
 * when the flag was left out (not allowed, or no room). */
bool append_flags_add(char *buf, size_t size, const char *flag);

/* The command line before the literal, without tag and CRLF:
 * APPEND "INBOX" (\Seen) "17-Jul-1996 02:44:25 -0700" {310+}
 * `literal_plus` chooses {n+} over {n}.  The mailbox is quoted as
 * imap_client_quote would, but without needing a client: names that
 * need a literal are refused.  Returns the length, or 0 when it does
 * not fit in `size` or the name cannot be quoted. */
size_t append_command(const struct append_msg *m, bool literal_plus,
		      char *buf, size_t size);

/* Parse the resp-text-code arguments of APPENDUID ("38505 3955").
 * RFC 4315 also allows a set for MULTIAPPEND; one UID is all this needs. */
bool append_parse_appenduid(const char *code_args, uint32_t *uidvalidity,
			    uint32_t *uid);

#endif
