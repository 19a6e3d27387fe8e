/*
 * restore_backup.h — `imapsnap restore`: put a backup, in any format
 * imapsnap writes, back into an IMAP account (docs/restore.md).
 *
 * The manifests say what the backup holds (folder, UIDVALIDITY, UID,
 * INTERNALDATE, flags, SHA-256 of the bytes the server sent); store_scan
 * reads the messages back; each is rebuilt into the server's bytes (mbox:
 * quoting undone, LF back to CRLF), checked against its SHA-256, and
 * appended through restore.h, which keeps it from being appended twice.
 * Only the latest UIDVALIDITY generation of each folder is restored.
 */
#ifndef IMAPSNAP_RESTORE_BACKUP_H
#define IMAPSNAP_RESTORE_BACKUP_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"
#include "imap/session.h"
#include "restore.h"

struct restore_opts {
	const char *backup;      /* a backup directory or single-file export */
	struct imap_session_opts session; /* the target account */
	struct restore_common_opts common;
};

struct restore_summary {
	struct restore_stats t;
	uint64_t records;        /* messages the manifests hold */
	uint64_t old_generation; /* of them, of a retired UIDVALIDITY */
	uint64_t excluded;       /* of them, in folders not selected */
	uint64_t mismatched;     /* read back with another SHA-256 */
	uint64_t missing;        /* recorded, not found in the backup */
	uint64_t unrecorded;     /* found, recorded nowhere (not restored) */
	uint64_t manifest_errors;/* lines not understood (skipped) */
};

/* Returns ISNAP_OK when every planned message is in the target (or, in
 * a dry run, when planning worked); per-message problems are counted in
 * `sum` and reported through `ev`, and make the result ISNAP_EMSG. */
enum isnap_status restore_run(const struct restore_opts *o,
			      const struct restore_events *ev,
			      struct restore_summary *sum,
			      struct isnap_error *err);

/* Whether the folder with logical path `path` (folder_path.h) is selected
 * by o's --include/--exclude (fnmatch, '*' matching '/' too; exclude
 * wins). */
bool restore_selected(const struct restore_common_opts *o,
		      const char *path);

#endif
