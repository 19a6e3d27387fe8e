/*
 * state.h — what imapsnap remembers between runs, in DEST/.imapsnap/state.
 *
 * The file is small, line-oriented, human-readable text, documented in
 * docs/state.md.  It is keyed by the server's folder name (the raw
 * modified-UTF-7 bytes, which are what EXAMINE needs) and records per folder
 * the current UIDVALIDITY, the UIDNEXT up to which the folder has been
 * scanned, the set of UIDs saved, and the UIDVALIDITYs of generations kept
 * aside.  It is only ever replaced atomically (temporary file, fsync,
 * rename, fsync of the directory), and only after the messages it covers
 * are durable, so after a crash it may lag behind the store but never runs
 * ahead of it.
 *
 * All memory belongs to the struct state; state_free releases it.
 */
#ifndef IMAPSNAP_STATE_H
#define IMAPSNAP_STATE_H

#include <stdint.h>

#include "error.h"
#include "uidset.h"

struct state_folder {
	char *name;           /* raw server name, as in LIST (never NULL) */
	char delim;           /* hierarchy delimiter, '\0' for NIL */
	uint32_t uidvalidity; /* 0: never examined */
	uint32_t uidnext;     /* every UID below this that existed when the
				 folder was last scanned is saved, or was
				 expunged; 0/1: nothing scanned yet */
	uint64_t highestmodseq; /* 0 when unknown */
	struct uidset saved;  /* UIDs saved under `uidvalidity` */
	struct uidset expunged; /* saved UIDs the server no longer has; their
				   copies are kept */
	uint32_t *old_uidvalidity; /* generations kept aside, oldest first */
	size_t n_old;
};

struct state {
	struct state_folder *folders;
	size_t n, alloc;
};

#define STATE_INIT { NULL, 0, 0 }

/* Read DIR/state into `st` (which must be empty), where `dfd` is DIR,
 * opened by the caller (for DEST/.imapsnap: without following a symbolic
 * link, beneath.h), and `dir` how to name it in messages.  dfd -1 (no
 * DIR) or a missing file is an empty state, not an error.  The file is
 * opened without following a symbolic link and only if it is a regular
 * file (a FIFO there never blocks).  Returns ISNAP_OK, ISNAP_ELOCAL
 * (unreadable, a symbolic link, a FIFO...), ISNAP_EINTEGRITY (malformed,
 * truncated, unknown keyword or newer format version: the message gives
 * the line number) or ISNAP_ENOMEM; on failure `st` is left empty. */
enum isnap_status state_load(int dfd, const char *dir, struct state *st,
			     struct isnap_error *err);

/* Write `st` to DIR/state atomically and durably (DIR/state.tmp, fsync,
 * rename, fsync DIR), with `dfd` and `dir` as for state_load.  Needs no
 * memory.  Returns ISNAP_OK or ISNAP_ELOCAL (DIR/state is then as it
 * was). */
enum isnap_status state_save(int dfd, const char *dir, const struct state *st,
			     struct isnap_error *err);

/* The folder called `name`, or NULL; with create, a new empty entry is
 * added (returns NULL only when out of memory).  Pointers stay valid until
 * the next call that creates. */
struct state_folder *state_folder(struct state *st, const char *name,
				  int create);

/* Keep the current generation aside: append uidvalidity to old_uidvalidity
 * (unless it is 0: a folder never examined has no generation to keep) and
 * reset uidvalidity, uidnext, highestmodseq and saved.  Returns 0 or -1
 * (ENOMEM; `f` is then unchanged). */
int state_folder_retire(struct state_folder *f);

void state_free(struct state *st);

#endif
