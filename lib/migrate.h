/*
 * migrate.h — `imapsnap migrate`: copy an account from one IMAP server to
 * another without a local copy (docs/restore.md).
 *
 * The source is only read: LIST, EXAMINE, UID FETCH with BODY.PEEK[]
 * (pipelined, through fetch.h), so its flags and HIGHESTMODSEQ stay as
 * they were.  Each message is held in a spool (memory up to 1 MiB, then
 * an unlinked temporary file) until it is whole, then appended to the
 * destination through restore.h with its flags and INTERNALDATE; the
 * restore state of the destination keeps a second run, or one after a
 * crash, from appending anything twice.  Messages are known by source
 * URL, user, folder, UIDVALIDITY and UID.
 */
#ifndef IMAPSNAP_MIGRATE_H
#define IMAPSNAP_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "imap/session.h"
#include "restore.h"

struct migrate_opts {
	struct imap_session_opts src, dst;
	/* The destination's state; folders selected on the source. */
	struct restore_common_opts common;
};

struct migrate_summary {
	struct restore_stats t;
	uint64_t src_folders;    /* selected on the source */
	uint64_t vanished;       /* expunged on the source meanwhile */
};

/* ISNAP_OK when every message of the selected folders is in the
 * destination; ISNAP_EMSG when some message or folder was not
 * transferred (counted, and reported through `ev`); else the error that
 * stopped it (the source's connection, the destination's, the state). */
enum isnap_status migrate_run(const struct migrate_opts *o,
			      const struct restore_events *ev,
			      struct migrate_summary *sum,
			      struct isnap_error *err);

#endif
