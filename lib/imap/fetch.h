/*
 * fetch.h — the pipelined, streaming bulk fetch.  RFC 3501 §6.4.5 and
 * §7.4.2 (UID FETCH / FETCH response), RFC 7162 (MODSEQ).
 *
 * The folder must already be EXAMINEd.  The UIDs to fetch are cut into
 * commands of at most `batch` UIDs (a command line stays far below the
 * ~8000-octet limit servers enforce), `depth` commands are kept in flight,
 * and each body literal is streamed from the read buffer straight into the
 * store: memory does not depend on message size.  BODY.PEEK[] never sets
 * \Seen.
 *
 * Every `commit_messages` messages or `commit_bytes` bytes, once messages
 * have waited `commit_ms`, and at the end, the store commits (group
 * commit) and `committed` is told which UIDs are now durable, so the
 * caller can advance its state.
 *
 * A message the server refuses (tagged NO), sends malformed, or that the
 * store rejects is reported through `message_failed` and the fetch goes on;
 * a UID the server no longer has (expunged meanwhile) is counted as
 * vanished.  Connection loss, protocol violations and local write failures
 * (disk full) stop the fetch: what was already complete is still committed
 * before returning the error.
 */
#ifndef IMAPSNAP_IMAP_FETCH_H
#define IMAPSNAP_IMAP_FETCH_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "imap/client.h"
#include "imap/pipeline.h"
#include "store/store.h"
#include "uidset.h"

struct fetch_opts {
	uint32_t batch;           /* UIDs per command; default 500 */
	unsigned depth;           /* commands in flight; default 3 */
	uint32_t commit_messages; /* default 1000 */
	uint64_t commit_bytes;    /* default 64 MiB */
	/* Also commit once the oldest message not committed yet ended this
	 * many milliseconds ago (checked between messages and by
	 * fetch_tick); 0 for the default, FETCH_COMMIT_MS_DEFAULT. */
	unsigned commit_ms;
	/* A server that throttles (imap/throttle.h) is waited for as it
	 * asks, up to max_wait_ms at a time (0: FETCH_MAX_WAIT_MS_DEFAULT)
	 * and throttle_retries times in a row per fetch (0: the default);
	 * beyond that, or on a quota for today, the fetch stops with
	 * ISNAP_ESTOPPED, what arrived committed. */
	long max_wait_ms;
	unsigned throttle_retries;
};

#define FETCH_COMMIT_MS_DEFAULT 5000
#define FETCH_MAX_WAIT_MS_DEFAULT 600000L
#define FETCH_THROTTLE_RETRIES_DEFAULT 5

struct fetch_stats {
	uint64_t saved;      /* messages committed to the store (durable;
				archives: once the volume is finished) */
	uint64_t bytes;      /* their bytes */
	/* Received whole and ended in the store, but never committed (the
	 * disk filled, the run stopped): lost with the run, fetched again
	 * by the next one. */
	uint64_t uncommitted;
	uint64_t uncommitted_bytes;
	uint64_t failed;     /* refused, malformed or not storable */
	uint64_t vanished;   /* asked for, but no longer on the server */
	uint64_t unexpected; /* bodies the server sent unasked (dropped) */
	uint64_t size_mismatch; /* bytes received != RFC822.SIZE */
};

struct fetch_callbacks {
	void *ctx;
	/* `uids` are durable in the store now (see store.h for archives). */
	enum isnap_status (*committed)(void *ctx, const struct uidset *uids,
				       struct isnap_error *err);
	/* One message could not be saved. */
	void (*message_failed)(void *ctx, uint32_t uid, const char *why);
	/* A message was saved (for progress display); may be NULL. */
	void (*message_saved)(void *ctx, uint32_t uid, uint64_t bytes);
	/* The same message's flags, as the store got them (for a record of
	 * them, backup_ledger.h); may be NULL.  A failure stops the fetch. */
	enum isnap_status (*message_flags)(void *ctx, uint32_t uid,
					   unsigned flags,
					   const char *keywords,
					   struct isnap_error *err);
	/* The server throttles: the fetch waits `wait_ms` before asking
	 * again (for the log); may be NULL. */
	void (*throttled)(void *ctx, long wait_ms, const char *why,
			  const char *text);
	/* After a throttling answer, before the fetch asks again: whether
	 * it may send now (NULL: always).  When not (commands of another
	 * owner went out behind the fetch's, for another folder), it does
	 * not wait: what it would ask stays unaccounted for, in `left`, and
	 * fetch_deferred_ms tells how long the server asked to wait. */
	bool (*may_send_again)(void *ctx);
};

/* Fetch every UID in `uids` into the folder the store has open, on its
 * own: send, and read until everything is answered.  Returns ISNAP_OK
 * when the fetch ran to the end (per-message failures are in `stats`),
 * or the fatal status. */
enum isnap_status fetch_messages(struct imap_client *c, struct store *s,
				 const struct uidset *uids,
				 const struct fetch_opts *opts,
				 const struct fetch_callbacks *cb,
				 struct fetch_stats *stats,
				 struct isnap_error *err);

/*
 * The same fetch as one participant of a pipeline (imap/pipeline.h),
 * for a caller that keeps other commands in flight on the connection.
 * The caller owns the imap_owner its commands go out for, and passes on
 * to the fetch what that owner receives:
 *
 *   fetch_start(pipe, &owner, client, store, uids, ..., &f, err);
 *   owner's untagged      -> fetch_untagged(f, r, err)
 *   owner's literal_*     -> fetch_literal_begin/_data/_end(f, ...)
 *   owner's tagged        -> if (fetch_cookie(cookie))
 *                                fetch_tagged(f, cookie, r, err)
 *   ...until fetch_finished(f) (or the connection is lost)...
 *   fetch_end(f, st, left, err);      // commits what is complete; frees
 *
 * The store's folder must be open before the first body arrives (bodies
 * arrive after the answers to whatever was sent before the fetch's first
 * command, e.g. EXAMINE).  Cookies with FETCH_COOKIE set are the fetch's.
 */
struct fetch;

#define FETCH_COOKIE ((uintptr_t)1 << (sizeof(uintptr_t) * 8 - 1))

enum isnap_status fetch_start(struct imap_pipeline *pipe,
			      struct imap_owner *owner, struct store *s,
			      const struct uidset *uids,
			      const struct fetch_opts *opts,
			      const struct fetch_callbacks *cb,
			      struct fetch_stats *stats, struct fetch **out,
			      struct isnap_error *err);

static inline bool fetch_cookie(uintptr_t cookie)
{
	return (cookie & FETCH_COOKIE) != 0;
}

enum isnap_status fetch_untagged(struct fetch *f, const struct imap_response *r,
				 struct isnap_error *err);
enum isnap_status fetch_literal_begin(struct fetch *f,
				      const struct imap_response *partial,
				      uint64_t size, bool *stream,
				      struct isnap_error *err);
enum isnap_status fetch_literal_data(struct fetch *f, const char *data,
				     size_t len, struct isnap_error *err);
enum isnap_status fetch_tagged(struct fetch *f, uintptr_t cookie,
			       const struct imap_response *r,
			       struct isnap_error *err);

/* Every command sent, and every one answered. */
bool fetch_all_sent(const struct fetch *f);
bool fetch_finished(const struct fetch *f);

/* UIDs the store already holds (found when its folder was opened): their
 * bodies are read and dropped, and they are neither failed nor vanished.
 * Returns 0 or -1 (out of memory). */
int fetch_skip(struct fetch *f, const struct uidset *held);

/* Commit now if messages ended longer ago than commit_ms and none is
 * being written.  For a caller that waited without data arriving. */
enum isnap_status fetch_tick(struct fetch *f, struct isnap_error *err);

/* How long the server asked to wait before the UIDs the fetch did not
 * ask again (may_send_again); -1 when it asked again for everything. */
long fetch_deferred_ms(const struct fetch *e);

/* Commit what is complete and free `f`.  `st` is the failure that ended
 * the fetch early, if any (then a failed final commit is not reported
 * over it).  When `left` is not NULL, the UIDs the fetch did not account
 * for (neither committed, failed, skipped nor found gone) are added to
 * it, e.g. to fetch them again on a new connection.  Returns `st`, or
 * the final commit's failure. */
enum isnap_status fetch_end(struct fetch *f, enum isnap_status st,
			    struct uidset *left, struct isnap_error *err);

/* Parse an IMAP date-time ("17-Jul-1996 02:44:25 -0700", day possibly
 * space-padded) into seconds since the epoch (UTC) and the zone in
 * minutes.  A leap second (":60") gives the epoch of ":59" of the same
 * minute, never the next day's first second, and sets *leap_second (when
 * not NULL).  Returns false when malformed. */
bool fetch_parse_internaldate(const char *s, size_t len, int64_t *epoch,
			      int *tz_minutes, bool *leap_second);

/* Map a FLAGS list to STORE_FLAG_* bits; other flags and keywords go to
 * `keywords` (space-separated, cut to `size`); \Recent is dropped.  The
 * fetch keeps FETCH_KEYWORDS_MAX bytes of them: whoever compares flags
 * with a message's saved ones cuts them the same way. */
#define FETCH_KEYWORDS_MAX 4096
void fetch_parse_flags(const struct imap_arg *list, unsigned *flags,
		       char *keywords, size_t size);

#endif
