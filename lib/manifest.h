/*
 * manifest.h — the forensic record of a backup run: every message saved,
 * with the SHA-256 of exactly the bytes received and where it lives in the
 * backup, written as JSON Lines and chained run to run.  The format, the
 * crash rules and the chain are in docs/manifest.md; `imapsnap verify`
 * (verify.h) reads it back.
 *
 * The manifest watches the store: manifest_wrap returns a store that
 * forwards every call to the real one and records as it goes.  The caller
 * adds what the store cannot see (the server, the run's totals).
 *
 * Lifecycle, as backup.c drives it:
 *
 *   store_open(format, dest, &inner, err)
 *   [lock DEST/.imapsnap]
 *   manifest_open(state_fd, state_dir, &info, &m, err) // -1: single file
 *   manifest_wrap(m, inner, &store, err)       // store now owns inner
 *   manifest_server(m, greeting, capabilities) // once logged in
 *   for each folder:
 *       manifest_examined(m, &folder)          // after each EXAMINE
 *       ... store->ops as usual ...
 *       manifest_skipped(m, NULL, uid, why)    // a message not saved
 *   manifest_skipped(m, &folder, 0, why)       // a folder not backed up
 *   manifest_end(m, &summary)                  // the totals, before finish
 *   store->ops->finish(store, err)             // writes, syncs, chains
 *   manifest_sha256(m)                         // to print
 *   store_free(store); manifest_free(m)        // in either order
 *
 * Only manifest_open, manifest_wrap and finish are needed for a complete
 * record; the other calls add to it.  The void calls never fail visibly:
 * a failure to record (out of memory, disk full) sticks, and the wrapped
 * store's next commit, close_folder or finish returns it — before the
 * real store commits, so that no message ever becomes durable without its
 * line in the manifest.  Once that happened the wrapped store commits
 * nothing more; the run must stop.
 *
 * Durability: the wrapped store's commit() writes and fsyncs the lines of
 * the messages ended since the last commit, then commits the real store,
 * then records (and fsyncs) that it did.  So a message is durable only
 * after its line is; a line whose commit was never confirmed belongs to a
 * run that was interrupted, and verify knows the message may be absent.
 * When only that record cannot be written (the disk filled), the commit
 * still returns ISNAP_OK, since the messages are durable; the failure
 * sticks and the next call returns it.
 *
 * Threads: a run that fetches over several connections gives each its
 * own store instance, wrapped with manifest_wrap_another, and uses each
 * wrapped store from one thread at a time.  Lines a store records (and
 * those of manifest_store_examined / manifest_store_skipped) reach the run
 * file together with its commit, as one block: a `commit` line confirms
 * exactly the message lines since the `commit` line before it.  The calls
 * that take the manifest itself go with the first store and belong to
 * the thread that uses it; finish the other stores before the first.
 *
 * All memory passed in is borrowed for the duration of the call.
 */
#ifndef IMAPSNAP_MANIFEST_H
#define IMAPSNAP_MANIFEST_H

#include <stdint.h>

#include "error.h"
#include "store/store.h"

struct manifest;

/* For the run's first line; every field may be NULL. */
struct manifest_run_info {
	const char *tool_version; /* "0.1.0" */
	const char *format;       /* the store's format; NULL: the store's */
	const char *dest;         /* as the user gave it */
	const char *host;         /* the server's URL, without credentials */
	const char *user;
};

/* The run's totals, for the last line.  listed = saved + failed +
 * vanished when every message is accounted for; the manifest records
 * whether it is. */
struct manifest_summary {
	uint64_t listed;        /* messages the run set out to fetch */
	uint64_t saved;         /* committed */
	uint64_t uncommitted;   /* received, never committed (lost) */
	uint64_t failed;        /* refused, malformed or not storable */
	uint64_t vanished;      /* expunged on the server meanwhile */
	uint64_t unexpected;    /* bodies the server sent unasked */
	uint64_t size_mismatch; /* received bytes != RFC822.SIZE */
	unsigned folders;
	unsigned folders_failed;
	enum isnap_status status; /* the run's outcome before finish */
};

/* Name of the manifest inside an archive volume or single-file export;
 * in a directory, the run files are in DEST/.imapsnap/manifest/
 * (manifest_chain.h). */
#define MANIFEST_META_NAME ".imapsnap/manifest.jsonl"

/* Start the record of a run.  With `state_fd` (DEST/.imapsnap, opened by
 * the caller without following a symbolic link, and locked; `state_dir`
 * names it in messages), the run file is state_dir/manifest/<UTC
 * time>.jsonl; runs that were interrupted before they could chain
 * themselves are chained first.  Nothing below state_dir is followed if
 * it is a symbolic link or opened if it is a FIFO (beneath.h).  With
 * state_fd -1 (single-file exports) the record is kept in an unlinked
 * temporary file until finish puts it into the archive.  Writes the first
 * line durably.  Returns ISNAP_OK, ISNAP_ELOCAL or ISNAP_ENOMEM. */
enum isnap_status manifest_open(int state_fd, const char *state_dir,
				const struct manifest_run_info *info,
				struct manifest **out, struct isnap_error *err);

/* A store that forwards to `inner` and records into `m`.  It takes
 * `inner` over: store_free of the result frees both.  One store per
 * manifest.  Returns ISNAP_OK, ISNAP_EUSAGE (already wrapped) or
 * ISNAP_ENOMEM (`inner` is then still the caller's). */
enum isnap_status manifest_wrap(struct manifest *m, struct store *inner,
				struct store **out, struct isnap_error *err);

/* One more store recording into `m`, for another thread (above); `m`
 * must have a first store, and not one durable only at finish (an
 * archive is one stream).  It takes `inner` over as manifest_wrap does;
 * its finish only finishes `inner`.  Returns ISNAP_OK, ISNAP_EUSAGE or
 * ISNAP_ENOMEM (`inner` is then still the caller's). */
enum isnap_status manifest_wrap_another(struct manifest *m,
					struct store *inner,
					struct store **out,
					struct isnap_error *err);

/* manifest_examined and manifest_skipped for the thread of the wrapped
 * store `s`: the line goes with that store's lines, and `f` NULL means
 * the folder `s` has open. */
void manifest_store_examined(struct store *s, const struct store_folder *f);
void manifest_store_skipped(struct store *s, const struct store_folder *f,
			    uint32_t uid, const char *why);

/* The server's answer to ID (RFC 2971): `answered` false when it sent
 * none (no ID capability, refused); else n field/value pairs (a value
 * NULL is NIL; n 0 is ID NIL).  A `server_id` line. */
void manifest_server_id(struct manifest *m, bool answered,
			char *const *field, char *const *value, size_t n);

/* The server's greeting line and its capabilities (space-separated). */
void manifest_server(struct manifest *m, const char *greeting,
		     const char *capabilities);

/* What EXAMINE reported for `f` (uidvalidity, uidnext, exists,
 * highestmodseq).  Call it for every folder examined, also those with
 * nothing new (the store never sees them).  Without it, open_folder
 * records the same line. */
void manifest_examined(struct manifest *m, const struct store_folder *f);

/* A message (uid != 0) or a whole folder (uid 0) not saved, and why.
 * `f` NULL means the folder the store has open. */
void manifest_skipped(struct manifest *m, const struct store_folder *f,
		      uint32_t uid, const char *why);

/* The run's totals; the wrapped store's finish writes them as the last
 * line.  Call it before finish. */
void manifest_end(struct manifest *m, const struct manifest_summary *sum);

/* After finish: the SHA-256 (64 hex digits) of the run file as chained
 * (single-file exports: of the manifest inside the archive), which the
 * user keeps to prove later that no manifest was edited.  NULL before. */
const char *manifest_sha256(const struct manifest *m);

/* The run file's path, or NULL for a single-file export. */
const char *manifest_path(const struct manifest *m);

/* Lines in the record so far: messages and skipped ones. */
uint64_t manifest_recorded(const struct manifest *m);
uint64_t manifest_skipped_count(const struct manifest *m);

/* Close the run file and free `m`.  A run not finished stays as it is
 * (the next run chains it). */
void manifest_free(struct manifest *m);

#endif
