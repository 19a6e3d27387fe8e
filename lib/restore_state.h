/*
 * restore_state.h — what restore and migrate have put into one target
 * account, so that a second run appends nothing twice (docs/restore.md).
 *
 * One directory per target account (the caller chooses it: by default
 * ${XDG_STATE_HOME:-~/.local/state}/imapsnap/restore/<host>/<user>/),
 * holding `lock` (flock: one run per target at a time) and
 * `restore.jsonl`, a log of JSON lines:
 *
 *   {"type":"restore-state","version":1}
 *   {"type":"folder","folder":"INBOX","uidvalidity":1700000000,"checked":42}
 *   {"type":"done","folder":"INBOX","key":"<32 hex digits>","uid":41}
 *
 * `folder` lines say, for a target folder (its name as the server spells
 * it), the UIDVALIDITY the state belongs to and `checked`: every target
 * UID below it is accounted for (appended and recorded, or matched, or
 * not ours).  A folder line with another UIDVALIDITY forgets the folder's
 * `done` lines before it.  `done` lines name a source message (its key,
 * restore_state_key) appended to the folder, with the target UID when
 * the server said it (APPENDUID), else 0.
 *
 * The log is only appended to during a run; lines are made durable by
 * restore_state_sync (fdatasync).  A crash may cut the last line short:
 * a last line without its newline is ignored.  Any other malformed line
 * refuses the file.  At open the log is rewritten compacted (temporary
 * file, fsync, rename, fsync of the directory).
 */
#ifndef IMAPSNAP_RESTORE_STATE_H
#define IMAPSNAP_RESTORE_STATE_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

#define RESTORE_KEY_LEN 16

struct restore_state;

struct restore_state_folder {
	char *name;
	uint32_t uidvalidity; /* 0: never seen */
	uint32_t checked;     /* target UIDs below it are accounted for */
	uint32_t gen;         /* bumped when UIDVALIDITY changes */
	uint32_t ix;          /* restore_state's own */
};

/* The key of a source message: the first 16 bytes of the SHA-256 of
 * host, user, folder (as the source server spells it), UIDVALIDITY and
 * UID.  A backup of an account and the account itself give the same keys
 * (the manifest records host, user and the raw folder name). */
void restore_state_key(const char *host, const char *user,
		       const char *folder_raw, uint32_t uidvalidity,
		       uint32_t uid, unsigned char key[RESTORE_KEY_LEN]);

/* Create `dir` if needed, lock it, load and compact its log.  `readonly`
 * (a dry run): neither lock nor write; a missing directory is an empty
 * state.  `dir` itself may be a symbolic link; the files in it are opened
 * without following one, and only if they are regular files (beneath.h):
 * a link or a FIFO there fails the open.  ISNAP_ELOCKED when another run
 * holds it, ISNAP_ELOCAL when it cannot be read or written or is
 * malformed. */
enum isnap_status restore_state_open(const char *dir, bool readonly,
				     struct restore_state **out,
				     struct isnap_error *err);
void restore_state_close(struct restore_state *st);

/* The folder named `name` (created empty when absent and `create`);
 * NULL when absent, or out of memory.  It belongs to the state and stays
 * where it is until restore_state_close. */
struct restore_state_folder *restore_state_folder(struct restore_state *st,
						  const char *name,
						  bool create);

bool restore_state_has(const struct restore_state *st,
		       const struct restore_state_folder *f,
		       const unsigned char key[RESTORE_KEY_LEN]);

/* Record the folder's UIDVALIDITY and `checked` (a new UIDVALIDITY
 * forgets what was done in the folder).  Written, not synced yet. */
enum isnap_status restore_state_set(struct restore_state *st,
				    struct restore_state_folder *f,
				    uint32_t uidvalidity, uint32_t checked,
				    struct isnap_error *err);

/* Record a message as appended.  Written, not synced yet. */
enum isnap_status restore_state_done(struct restore_state *st,
				     struct restore_state_folder *f,
				     const unsigned char key[RESTORE_KEY_LEN],
				     uint32_t uid, struct isnap_error *err);

/* Make everything recorded so far durable. */
enum isnap_status restore_state_sync(struct restore_state *st,
				     struct isnap_error *err);

#endif
