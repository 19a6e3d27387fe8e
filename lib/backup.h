/*
 * backup.h — one backup run of one account into one destination.
 *
 *   connect → LIST → for each folder: EXAMINE → plan the UIDs not saved yet
 *   (state, plus whatever the store already holds) → pipelined fetch into
 *   the store → group commit → state.
 *
 * Read-only by construction: EXAMINE, never SELECT; BODY.PEEK[], never
 * BODY[].  The library prints nothing; what happens is reported through
 * struct backup_events, and the outcome through the return status and
 * struct backup_summary.
 */
#ifndef IMAPSNAP_BACKUP_H
#define IMAPSNAP_BACKUP_H

#include <stdint.h>

#include "error.h"
#include "imap/fetch.h"
#include "imap/session.h"

#define BACKUP_CONNECTIONS_DEFAULT 4
#define BACKUP_CONNECTIONS_MAX 64

struct backup_opts {
	struct imap_session_opts session;
	const char *dest;
	const char *format;      /* "maildir" when NULL */
	struct fetch_opts fetch; /* zeros: defaults */

	/* Selection.  Folders whose decoded name matches no include glob
	 * (when any is given) or any exclude glob are left alone; exclude
	 * wins.  Globs are fnmatch(3) patterns where '*' also matches the
	 * hierarchy delimiter. */
	const char *const *include;
	size_t n_include;
	const char *const *exclude;
	size_t n_exclude;
	/* Only messages whose INTERNALDATE falls on or after the day of
	 * `since` and before the day of `before` (seconds since the epoch;
	 * 0 for no limit), as IMAP SEARCH SINCE/BEFORE compare dates. */
	int64_t since, before;

	/* A connection lost after login (reset, EOF, BYE, timeout) is
	 * reopened up to `retries` times per folder, after 0.25 s, 1 s, 4 s,
	 * 16 s, then every 60 s; the folder is then examined again and continues after what was
	 * committed.  A failure to connect at all is not retried. */
	unsigned retries;

	/* Sessions (authenticated connections) at most, each with its own
	 * pipelined fetch; 0 means BACKUP_CONNECTIONS_DEFAULT.  Folders are
	 * handed out to them in turn; a session beyond the first opens only
	 * once a session found messages to fetch and folders remain.  The
	 * backup and its state are the same whatever the number.  Archives
	 * and dry runs use one. */
	unsigned connections;

	/* Connect, list, examine and plan, and report the plan through
	 * folder_planned; write nothing at all. */
	bool dry_run;

	/* A budget per run (0: none): at most this many messages, and
	 * messages of at most this many bytes (by RFC822.SIZE), are
	 * fetched; what does not fit is left for the next run, which goes
	 * on from there, and the run ends with ISNAP_ESTOPPED. */
	uint64_t max_messages, max_bytes;
};

/* All optional. */
struct backup_events {
	void *ctx;
	void (*folder_begin)(void *ctx, const char *folder, uint64_t messages,
			     uint64_t already_saved);
	void (*folder_end)(void *ctx, const char *folder,
			   const struct fetch_stats *stats);
	void (*folder_failed)(void *ctx, const char *folder,
			      const struct isnap_error *err);
	void (*message_failed)(void *ctx, const char *folder, uint32_t uid,
			       const char *why);
	void (*message_saved)(void *ctx, const char *folder, uint32_t uid,
			      uint64_t bytes);
	/* Dry run: what would be fetched from this folder. */
	void (*folder_planned)(void *ctx, const char *folder,
			       uint64_t messages, uint64_t bytes);
	/* Something that went wrong without costing a message by itself —
	 * the server broke the protocol, the connection was lost and is
	 * being reopened — and that the user must hear of even from cron. */
	void (*warning)(void *ctx, const char *text);
	/* Something the user should know that is not a failure. */
	void (*notice)(void *ctx, const char *text);
};

struct backup_summary {
	unsigned folders;        /* folders examined */
	unsigned folders_failed;
	uint64_t planned;        /* messages to fetch */
	struct fetch_stats fetch;/* totals over all folders */
	uint64_t flags_changed;  /* saved messages whose flags changed */
	uint64_t expunged;       /* saved messages newly gone from the server */
	uint64_t healed;         /* saved messages missing from the store,
				    planned again (in `planned` too) */
	double seconds;
	/* A signal stopped the run (ISNAP_EINTERRUPTED): what was complete
	 * is committed, the next run goes on. */
	bool interrupted;
	/* SHA-256 (hex) of this run's manifest, chained to the previous
	 * run's (docs/manifest.md); "" when none was written. */
	char manifest_sha256[65];
	/* That run file's path (DEST/.imapsnap/manifest/<run>.jsonl), for
	 * the records written beside it (forensic.h); "" when none
	 * (single-file exports keep their manifest inside the archive). */
	char manifest_file[4200];
};

/* Run the backup.  Returns ISNAP_OK when every planned message was saved;
 * ISNAP_EMSG or ISNAP_EFOLDER when some were not (the rest is saved and
 * recorded); otherwise the status of the failure that stopped the run
 * (ISNAP_EAUTH, ISNAP_ECONN, ISNAP_EPROTO, ISNAP_ELOCAL, ISNAP_ELOCKED,
 * ISNAP_EUSAGE), with everything committed before it kept. */
enum isnap_status backup_run(const struct backup_opts *opts,
			     const struct backup_events *ev,
			     struct backup_summary *sum,
			     struct isnap_error *err);

#endif
