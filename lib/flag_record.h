/*
 * flag_record.h — the flags each saved message of one folder had when
 * imapsnap last saw them, for servers without CONDSTORE: there, the only
 * way to learn that flags changed is to fetch every message's FLAGS and
 * compare (docs/decisions.md, "Flags without CONDSTORE"; the file is
 * described in docs/state.md, "Flag records").
 *
 * In memory a record is the folder's distinct sets of flags, each kept
 * once, and runs of consecutive UIDs that share a set: a folder where most
 * messages are \Seen costs a few runs, not a word per message, and at
 * worst 12 bytes a message.  The number of sets and the bytes of their
 * keywords are bounded (a server cannot make one folder take more).
 *
 *   fr = flag_record_new(uidvalidity);
 *   id = flag_record_intern(fr, STORE_FLAG_SEEN, "$Work");
 *   flag_record_get(fr, uid)              set of a UID, or FLAG_RECORD_NONE
 *   flag_changes_add(&ch, uid, id) ... flag_changes_sort(&ch);
 *   flag_record_apply(fr, &ch);           many UIDs at once, one pass
 *   flag_record_stage(fr, uid, id);       a message saved, not committed
 *   flag_record_commit(fr, &uids);        those of `uids` now count
 *   flag_record_free(fr);
 *
 * Only UIDs that were applied or committed are part of the record (and
 * of its file); staged ones are not.  Not thread-safe (the ledger holds
 * a folder's record under its lock).  All memory belongs to the record.
 */
#ifndef IMAPSNAP_FLAG_RECORD_H
#define IMAPSNAP_FLAG_RECORD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "uidset.h"

#define FLAG_RECORD_NONE UINT32_MAX

/* Limits per folder: different sets of flags, and the bytes of their
 * keywords (a real folder has a few dozen sets). */
#define FLAG_RECORD_SETS_MAX 65536
#define FLAG_RECORD_TEXT_MAX (8u << 20)

struct flag_record;

/* An empty record of generation `uidvalidity`; NULL when out of memory. */
struct flag_record *flag_record_new(uint32_t uidvalidity);
void flag_record_free(struct flag_record *fr);

uint32_t flag_record_uidvalidity(const struct flag_record *fr);
/* UIDs in the record (not those only staged). */
uint64_t flag_record_count(const struct flag_record *fr);

/* The id of the set of `flags` (STORE_FLAG_* bits) and `keywords`
 * (space-separated, as fetch_parse_flags gives them): order, repeats and
 * the case of keywords do not matter, as in IMAP.  FLAG_RECORD_NONE with
 * errno ENOMEM, or E2BIG beyond the limits above. */
uint32_t flag_record_intern(struct flag_record *fr, unsigned flags,
			    const char *keywords);
/* Set `id`'s flag bits, and in *keywords its keywords (sorted,
 * space-separated; "" for none; owned by the record). */
unsigned flag_record_flags(const struct flag_record *fr, uint32_t id,
			   const char **keywords);

/* The set `uid` has in the record, or FLAG_RECORD_NONE. */
uint32_t flag_record_get(const struct flag_record *fr, uint32_t uid);

/* (UID, set id) pairs to apply in one pass. */
struct flag_change {
	uint32_t uid;
	uint32_t set;
};
struct flag_changes {
	struct flag_change *v;
	size_t n, cap;
};
/* 0 or -1 (ENOMEM). */
int flag_changes_add(struct flag_changes *c, uint32_t uid, uint32_t set);
/* In UID order, only the last pair given for each UID. */
void flag_changes_sort(struct flag_changes *c);
void flag_changes_free(struct flag_changes *c);

/* Give each UID of `c` (sorted) its set.  0 or -1 (ENOMEM; the record is
 * then as it was). */
int flag_record_apply(struct flag_record *fr, const struct flag_changes *c);

/* A message was saved with set `id` and is not durable yet. */
int flag_record_stage(struct flag_record *fr, uint32_t uid, uint32_t id);
/* The staged UIDs that are in `uids` are durable now: part of the record.
 * Returns how many, or -1 (ENOMEM; nothing changed). */
long flag_record_commit(struct flag_record *fr, const struct uidset *uids);

/* For the file (flag_record_file.c) and its checks: the runs, in UID
 * order.  `i` < flag_record_runs(fr). */
size_t flag_record_runs(const struct flag_record *fr);
void flag_record_run(const struct flag_record *fr, size_t i, uint32_t *first,
		     uint32_t *last, uint32_t *set);
size_t flag_record_sets(const struct flag_record *fr);
/* Add a run read from a file: any order; flag_record_seal checks that no
 * UID is in two and puts them in order.  0 or -1 (ENOMEM). */
int flag_record_add_run(struct flag_record *fr, uint32_t first, uint32_t last,
			uint32_t set);
/* 0; -1 with the first UID found twice in *dup (the record is then
 * unusable: free it). */
int flag_record_seal(struct flag_record *fr, uint32_t *dup);

/* --- the file: DEST/.imapsnap/flags/<name> (flag_record_file.c) -------- */

/* The file name of folder `name`'s record: 32 hex digits of the SHA-256
 * of the raw name (any bytes a server sends make a safe name). */
void flag_record_file_name(const char *folder, char out[33]);

/* DEST/.imapsnap/flags, below `state_fd` (DEST/.imapsnap opened), made
 * when `create`.  -1 with errno (ENOENT: none yet). */
int flag_record_open_dir(int state_fd, bool create);

/* Folder `folder`'s record of generation `uidvalidity`, from the
 * directory open at `dfd` (flag_record_open_dir; -1: none), named `dir`
 * in messages.  No file, or one of another folder or generation: an
 * empty record, *found false.  A `.new` file a run left unpublished is
 * removed.  ISNAP_EINTEGRITY when the file is not exactly the format
 * (the message names the line), ISNAP_ELOCAL, ISNAP_ENOMEM; *out is
 * then NULL. */
enum isnap_status flag_record_load(int dfd, const char *dir,
				   const char *folder, uint32_t uidvalidity,
				   struct flag_record **out, bool *found,
				   struct isnap_error *err);

/* The record in the file open at `fd` (taken over and closed), whatever
 * folder and generation it is of: that folder's name into *folder
 * (malloc'd) and the record into *out.  `path` names the file in
 * messages.  Statuses as flag_record_load's. */
enum isnap_status flag_record_read(int fd, const char *path, char **folder,
				   struct flag_record **out,
				   struct isnap_error *err);

/* Replace the record's file whole and durably (linefile.h).  With
 * `pending`, write `<name>.new` instead, for flag_record_publish to put
 * in place once what it names is durable (stores durable at finish). */
enum isnap_status flag_record_save(int dfd, const char *dir,
				   const char *folder,
				   const struct flag_record *fr, bool pending,
				   struct isnap_error *err);
/* `<name>.new` over `<name>` (the caller syncs the directory). */
enum isnap_status flag_record_publish(int dfd, const char *dir,
				      const char *folder,
				      struct isnap_error *err);
/* The record is no longer kept (the folder has CONDSTORE now). */
void flag_record_remove(int dfd, const char *folder);

#endif
