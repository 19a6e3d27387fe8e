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
 * Every `commit_messages` messages or `commit_bytes` bytes, and at the end,
 * the store commits (group commit) and `committed` is told which UIDs are
 * now durable, so the caller can advance its state.
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

#include <stdint.h>

#include "error.h"
#include "imap/client.h"
#include "store/store.h"
#include "uidset.h"

struct fetch_opts {
	uint32_t batch;           /* UIDs per command; default 500 */
	unsigned depth;           /* commands in flight; default 3 */
	uint32_t commit_messages; /* default 1000 */
	uint64_t commit_bytes;    /* default 64 MiB */
};

struct fetch_stats {
	uint64_t saved;      /* messages ended in the store */
	uint64_t bytes;      /* their bytes */
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
};

/* Fetch every UID in `uids` into the folder the store has open.  Returns
 * ISNAP_OK when the fetch ran to the end (per-message failures are in
 * `stats`), or the fatal status. */
enum isnap_status fetch_messages(struct imap_client *c, struct store *s,
				 const struct uidset *uids,
				 const struct fetch_opts *opts,
				 const struct fetch_callbacks *cb,
				 struct fetch_stats *stats,
				 struct isnap_error *err);

/* Parse an IMAP date-time ("17-Jul-1996 02:44:25 -0700", day possibly
 * space-padded) into seconds since the epoch (UTC) and the zone in
 * minutes.  A leap second (":60") gives the epoch of ":59" of the same
 * minute, never the next day's first second, and sets *leap_second (when
 * not NULL).  Returns false when malformed. */
bool fetch_parse_internaldate(const char *s, size_t len, int64_t *epoch,
			      int *tz_minutes, bool *leap_second);

/* Map a FLAGS list to STORE_FLAG_* bits; other flags and keywords go to
 * `keywords` (space-separated, cut to `size`); \Recent is dropped. */
void fetch_parse_flags(const struct imap_arg *list, unsigned *flags,
		       char *keywords, size_t size);

#endif
