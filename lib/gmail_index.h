/*
 * gmail_index.h — which Gmail messages (by X-GM-MSGID) a backup holds
 * already, so that a message that shows in several folders (one per
 * label, and [Gmail]/All Mail) is fetched and stored once.
 *
 * Built from the backup's own manifests (a message line with gm_msgid
 * counts once a commit line confirms it: only durable copies count), then
 * grown during the run by claims: the first folder to plan a message
 * claims its id and fetches it; every later folder skips it.  One index
 * per run, shared by its sessions; thread-safe.
 *
 *   struct gmail_index *gi = gmail_index_new();
 *   gmail_index_load(gi, dest, err);       // once, before the first claim
 *   if (gmail_index_claim(gi, msgid)) ... fetch it ...
 *   else ... a copy is saved or being fetched: skip ...
 *   gmail_index_free(gi);
 *
 * A claimed message whose fetch fails stays claimed for this run: its
 * folder's UIDNEXT stays below it, so the next run plans it again there
 * (and finds it unclaimed, since the manifest has no committed copy).
 */
#ifndef IMAPSNAP_GMAIL_INDEX_H
#define IMAPSNAP_GMAIL_INDEX_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"

struct gmail_index;

struct gmail_index *gmail_index_new(void);
void gmail_index_free(struct gmail_index *gi);

/* Read the ids of the committed messages of the backup at `dest` (no
 * manifest yet: nothing).  Only the first call reads. */
enum isnap_status gmail_index_load(struct gmail_index *gi, const char *dest,
				   struct isnap_error *err);

/* true when `msgid` was not there (it is now), or is 0 (unknown), or
 * memory ran out (a second copy is better than none): fetch it.  false
 * when it was there: skip it. */
bool gmail_index_claim(struct gmail_index *gi, uint64_t msgid);

/* Ids held (for tests and messages). */
uint64_t gmail_index_count(const struct gmail_index *gi);

#endif
