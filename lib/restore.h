/*
 * restore.h — the target side of restore and migrate: put messages into
 * an IMAP account, each exactly once, whatever was interrupted before
 * (docs/restore.md).
 *
 * A source (a backup: restore_backup.c; a live account: migrate.c) plans,
 * per target folder, the messages it wants there, each with its key
 * (restore_state.h), size and, when it knows it, SHA-256:
 *
 *   restore_target_open(client, state, &opts, &ev, &t, err);
 *   for each source folder: folder_map_target(restore_target_map(t), ...)
 *       gives its target folder;
 *   for each target folder:
 *       restore_target_folder(t, raw, utf8, pending, n, &f, err);
 *           // creates the folder if needed; marks pending[i].done for
 *           // what the state or the folder itself shows is there already
 *   for each pending message not done (in any order, any folder):
 *       restore_target_append(t, f, &pending[i], &meta, read, rctx, err);
 *   restore_target_drain(t, err);       // every APPEND answered
 *   for each folder: restore_target_folder_end(t, f, err);
 *   restore_target_close(t);
 *
 * `pending` arrays belong to the caller and must stay in place until
 * restore_target_drain returns.
 *
 * Idempotence.  The state records, per target folder, the messages
 * appended and `checked`, the target UIDs below which everything is
 * accounted for.  An APPEND answered OK is recorded at once (and synced
 * in batches).  A crash between the answer and the record leaves a
 * message the state does not know; the next run finds it among the
 * target's UIDs >= checked (all of them when UIDVALIDITY changed or there
 * is no state): their RFC822.SIZE first, then the SHA-256 of the bodies
 * whose size some pending message has, matched against the pending
 * messages' SHA-256 (the source's hash callback computes it on demand
 * when the plan does not know it).  Folders are only EXAMINEd, bodies
 * fetched with BODY.PEEK[].
 */
#ifndef IMAPSNAP_RESTORE_H
#define IMAPSNAP_RESTORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "folder_map.h"
#include "imap/client.h"
#include "restore_state.h"
#include "store/store.h"

struct restore_pending {
	unsigned char key[RESTORE_KEY_LEN];
	uint64_t size;
	bool has_sha;
	unsigned char sha[32];
	/* The msg_norm.h digest of the bytes to send, when
	 * restore_target_folder_wants_norm asked for it before
	 * restore_target_append. */
	bool has_norm;
	unsigned char norm[32];
	void *src;          /* the source's own */
	/* Gmail labels (UTF-8, as the manifest's gm_labels) to set once
	 * the message is in the target, when the target offers X-GM-EXT-1
	 * (restore_target_gmail); the source's, NULL when none.  The
	 * message is recorded as done only once they are set: a run
	 * stopped between its APPEND and its labels finds it by content
	 * the next time, and sets them then. */
	const char *const *labels;
	size_t nlabels;
	/* Set by the target side. */
	bool done;          /* there already (state or found) */
	bool found;         /* of those, found in the folder this run */
	bool labelled;      /* its labels are set (restore_target_folder_end) */
	uint32_t target_uid;
};

struct restore_target_opts {
	unsigned depth;          /* APPENDs in flight (0: 16) */
	bool dry_run;            /* create nothing, append nothing */
	struct folder_map_opts map; /* where source folders go */
	/* Compute pending->sha when the plan did not know it (migrate);
	 * NULL when every pending message has it. */
	enum isnap_status (*hash)(void *ctx, struct restore_pending *p,
				  struct isnap_error *err);
	void *hash_ctx;
	/* Name a pending message for messages ("INBOX UID 7"); may be
	 * NULL. */
	void (*describe)(void *ctx, const struct restore_pending *p,
			 char *buf, size_t size);
};

/* What restore and migrate are told alike (restore_backup.h, migrate.h):
 * the target's state, which source folders go where, and whether
 * anything may change. */
struct restore_common_opts {
	const char *state_dir;   /* the target's state directory */
	const char *into;        /* below this folder ('/'-separated UTF-8),
				    or NULL */
	const char *const *include; /* as restore_selected() applies them */
	size_t n_include;
	const char *const *exclude;
	size_t n_exclude;
	bool dry_run;
	bool keep_roles;         /* no special-use mapping: every folder
				    under its own logical path */
	/* A connection lost after the first login is opened again, up to
	 * this many times in a run, after 0.25 s, 1 s, 4 s, 16 s, then a
	 * minute; the run resumes as a new run would. */
	unsigned retries;
	unsigned depth;          /* APPENDs in flight (0: default) */
};

struct restore_stats {
	uint64_t planned;      /* messages the source wants in the target */
	uint64_t present;      /* of them, there already (state) */
	uint64_t found;        /* of them, found by content (after a crash) */
	uint64_t appended;
	uint64_t bytes;
	uint64_t failed;       /* refused by the server, or unreadable */
	uint64_t keywords_dropped; /* keyword instances the target refused */
	uint64_t folders;
	uint64_t folders_created;
	uint64_t folders_failed;
};

/* What happens, for printing; every member may be NULL. */
struct restore_events {
	void *ctx;
	/* A target folder is planned: `pending` of `planned` still to do. */
	void (*folder)(void *ctx, const char *folder, bool created,
		       uint64_t planned, uint64_t pending);
	void (*folder_failed)(void *ctx, const char *folder, const char *why);
	/* A source folder (logical path) goes to the target folder `to`,
	 * by its special-use `role` when by_role. */
	void (*mapped)(void *ctx, const char *from, const char *to,
		       const char *role, bool by_role);
	void (*appended)(void *ctx, const char *folder, uint64_t bytes);
	/* A message was not put into the target. */
	void (*failed)(void *ctx, const char *folder, const char *what,
		       const char *why);
	void (*warning)(void *ctx, const char *text);
};

struct restore_target;
struct restore_target_folder;

enum isnap_status restore_target_open(struct imap_client *c,
				      struct restore_state *state,
				      const struct restore_target_opts *o,
				      const struct restore_events *ev,
				      struct restore_stats *stats,
				      struct restore_target **out,
				      struct isnap_error *err);
void restore_target_close(struct restore_target *t);

/* Where source folders go on this target (its namespace, delimiter and
 * special-use folders, with the options given at open); the target's. */
const struct folder_map *restore_target_map(const struct restore_target *t);

/* Whether the target is Gmail (it offers X-GM-EXT-1), and then the name
 * of its folder with special-use `role` ("\\All": [Gmail]/All Mail), as
 * the server spells it, or NULL when it has none. */
bool restore_target_gmail(const struct restore_target *t);
const char *restore_target_role_folder(const struct restore_target *t,
				       const char *role);

/* Prepare the target folder `raw` (folder_map_target's; `utf8` names it
 * for people).  A folder that cannot be created or checked (NO or BAD)
 * is ISNAP_EFOLDER (reported, counted; its messages are not done).  A
 * dry run creates nothing it keeps: a folder missing on the target is
 * created and deleted again at once, to learn whether the server takes
 * its name. */
enum isnap_status restore_target_folder(struct restore_target *t,
					const char *raw, const char *utf8,
					struct restore_pending *pending,
					size_t n,
					struct restore_target_folder **out,
					struct isnap_error *err);

/* Whether messages for `f` should come with their msg_norm.h digest
 * (pending->norm): the folder holds messages, appended by an
 * interrupted run, that the server stored rewritten (a final CRLF added,
 * 8-bit header bytes replaced) and that only that digest can recognise.
 * restore_target_append then records such a message as found instead of
 * appending it again. */
bool restore_target_folder_wants_norm(const struct restore_target_folder *f);

/* APPEND one message with the flags and INTERNALDATE of `m` (uid, size
 * and modseq are not used) and the bytes `read` gives (exactly p->size).
 * A refusal is counted and reported, not returned; errors are those of
 * the session (connection, protocol) or reading. */
enum isnap_status restore_target_append(struct restore_target *t,
					struct restore_target_folder *f,
					struct restore_pending *p,
					const struct store_message *m,
					enum isnap_status (*read)(
						void *ctx, void *buf,
						size_t len, size_t *got,
						struct isnap_error *err),
					void *rctx, struct isnap_error *err);

/* Count a message that could not be sent at all (the source failed). */
void restore_target_failed(struct restore_target *t,
			   struct restore_target_folder *f, const char *what,
			   const char *why);

enum isnap_status restore_target_drain(struct restore_target *t,
				       struct isnap_error *err);

/* After drain: set the labels of the messages appended to (or found in)
 * the folder that carry some (SELECT, UID STORE +X-GM-LABELS, UNSELECT;
 * without APPENDUID their UIDs are found by content first) and record
 * them; then record the folder as checked up to its UIDNEXT now, but not
 * past a message whose labels could not be set (counted as failed): the
 * next run finds it by content and tries again. */
enum isnap_status restore_target_folder_end(struct restore_target *t,
					    struct restore_target_folder *f,
					    struct isnap_error *err);

const char *restore_target_folder_name(const struct restore_target_folder *f);

/* Whether the folder exists (or would, in a dry run) and was checked. */
bool restore_target_folder_usable(const struct restore_target_folder *f);

/* After an attempt lost its connection: what it appended, kept in
 * `before` for restore_stats_carry. */
void restore_stats_keep(struct restore_stats *before,
			const struct restore_stats *t);

/* For a run that reconnected: `before` (what earlier attempts appended)
 * added to the last attempt's `total`, whose present and found counted
 * those messages once more. */
void restore_stats_carry(struct restore_stats *total,
			 const struct restore_stats *before);

/* Sleep *delay_ms, then make it four times longer (at most a minute). */
void restore_sleep_backoff(long *delay_ms);

#endif
