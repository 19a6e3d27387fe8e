/*
 * commands.h — the few synchronous commands a backup needs before it
 * fetches: LIST, EXAMINE and UID SEARCH.  RFC 3501 §6.3.1 (SELECT/EXAMINE),
 * §6.3.8 (LIST), §6.4.4 (SEARCH); RFC 7162 (CONDSTORE: HIGHESTMODSEQ);
 * RFC 4731 (ESEARCH: UID sets as ranges); RFC 6154 (special-use flags);
 * RFC 2342 (NAMESPACE); RFC 5258 (LIST-EXTENDED, its RETURN options).
 */
#ifndef IMAPSNAP_IMAP_COMMANDS_H
#define IMAPSNAP_IMAP_COMMANDS_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "imap/client.h"
#include "uidset.h"

struct imap_folder {
	char *name;        /* as the server sent it (modified UTF-7) */
	char delim;        /* '\0' when the server says NIL */
	bool noselect;     /* \Noselect or \NonExistent: not to be opened */
	char *special_use; /* "\Sent", "\Trash", ... or NULL */
	/* Why this folder cannot be backed up (a name with NUL, a delimiter
	 * longer than one character), or NULL.  One bad LIST entry from a
	 * hostile server must not cost the other folders. */
	const char *invalid;
};

/* The personal namespace (RFC 2342): where the account's own folders
 * live.  Cyrus and Courier keep them below "INBOX." with "." as
 * delimiter, Dovecot (usually) at the top with "/". */
struct imap_namespace {
	bool known;        /* the server answered NAMESPACE */
	bool inferred;     /* not known: guessed from the LIST (below) */
	char *prefix;      /* as the server spells it (modified UTF-7);
			      never NULL once imap_list succeeded */
	char delim;        /* '\0' when the server says NIL */
};

/* The server's answer to ID (RFC 2971): field/value pairs as it sent
 * them (a value NIL is NULL).  imapsnap sends `ID NIL`: it does not
 * identify itself (docs/manifest.md). */
struct imap_server_id {
	bool asked;        /* the server offers ID, and it was sent */
	bool answered;     /* an untagged ID came back (NIL: n == 0) */
	char **field, **value;
	size_t n;
};

struct imap_folder_list {
	struct imap_folder *v;
	size_t n, alloc;
	struct imap_namespace ns;
	struct imap_server_id id;
};

/* ID NIL (when offered; RFC 2971), NAMESPACE (when offered) and
 * LIST "" "*", pipelined: one round trip.  The ID answer goes to
 * `out->id`; an ID refused or malformed is only not recorded.
 * With SPECIAL-USE the LIST asks RETURN (SPECIAL-USE) (RFC 6154).
 * Folders come in the server's order; "INBOX" in any case is normalised
 * to "INBOX".  Names the server repeats are listed once.
 *
 * `out->ns` is the first personal namespace the server gave.  Without
 * one (no NAMESPACE, refused, or no personal namespace) it is inferred
 * from the LIST: "INBOX" and the delimiter when every other folder lies
 * below INBOX (Courier and Cyrus's default without NAMESPACE), else ""
 * with the delimiter of INBOX or of the first folder that has one. */
enum isnap_status imap_list(struct imap_client *c, struct imap_folder_list *out,
			    struct isnap_error *err);
void imap_folder_list_free(struct imap_folder_list *l);

struct imap_mailbox_info {
	uint32_t uidvalidity;  /* 0 if the server did not say */
	uint32_t uidnext;      /* 0 if the server did not say */
	uint32_t exists;
	uint64_t highestmodseq; /* 0 without CONDSTORE */
};

/* EXAMINE (read-only: never SELECT, so \Recent and flags stay as they
 * are), with (CONDSTORE) when the server offers it so that HIGHESTMODSEQ
 * is reported.  NO from the server is ISNAP_EFOLDER. */
enum isnap_status imap_examine(struct imap_client *c, const char *name,
			       struct imap_mailbox_info *out,
			       struct isnap_error *err);

/* The UIDs >= `from` in the examined folder, added to `out`: UID SEARCH
 * with ESEARCH ranges when offered, else UID FETCH from:* (UID), whose
 * answer is one small response per message rather than one line that
 * grows with the folder. */
enum isnap_status imap_uid_search_from(struct imap_client *c, uint32_t from,
				       struct uidset *out,
				       struct isnap_error *err);

/* Like imap_uid_search_from, with SEARCH criteria appended (e.g.
 * "SINCE 1-Feb-2024 BEFORE 1-Mar-2024"; NULL or "" for none). */
enum isnap_status imap_uid_search(struct imap_client *c, uint32_t from,
				  const char *criteria, struct uidset *out,
				  struct isnap_error *err);

/* Flags changed since `modseq` (RFC 7162 CHANGEDSINCE) for the UIDs below
 * `below`: `changed` is called once per message with its UID, FLAGS list
 * and MODSEQ.  Needs CONDSTORE. */
enum isnap_status imap_uid_changed_flags(
	struct imap_client *c, uint32_t below, uint64_t modseq,
	enum isnap_status (*changed)(void *ctx, uint32_t uid,
				     const struct imap_arg *flags,
				     uint64_t modseq, struct isnap_error *err),
	void *ctx, struct isnap_error *err);

/* The sum of RFC822.SIZE over `uids` (UID FETCH … (RFC822.SIZE), cut into
 * commands of bounded length). */
enum isnap_status imap_uid_total_size(struct imap_client *c,
				      const struct uidset *uids,
				      uint64_t *total, struct isnap_error *err);

/* --- the same commands one at a time, for a caller that pipelines them
 * (imap/pipeline.h) and reads the answers itself ----------------------- */

/* "EXAMINE <name>", with " (CONDSTORE)" when offered, into buf.  Returns
 * the length, or 0 when the name cannot be sent to this server. */
size_t imap_examine_command(const struct imap_client *c, const char *name,
			    char *buf, size_t size);
/* What one untagged response to EXAMINE tells (EXISTS, UIDVALIDITY,
 * UIDNEXT, HIGHESTMODSEQ); other responses are ignored. */
void imap_examine_response(struct imap_mailbox_info *mi,
			   const struct imap_response *r);

/* The command imap_uid_search sends for UIDs >= `from` with `criteria`
 * (NULL or "" for none): UID SEARCH (RETURN (ALL) with ESEARCH), or, with
 * neither ESEARCH nor criteria, UID FETCH from:* (UID). */
void imap_uid_search_command(const struct imap_client *c, uint32_t from,
			     const char *criteria, char *buf, size_t size);

/* Which answers imap_uid_search_response takes. */
enum imap_uid_answers {
	IMAP_UIDS_SEARCH = 1 << 0,  /* * SEARCH 1 2 3 */
	IMAP_UIDS_ESEARCH = 1 << 1, /* * ESEARCH (TAG "t") UID ALL 1:3 */
	IMAP_UIDS_FETCH = 1 << 2,   /* * 1 FETCH (UID 1 ...) */
};

/* Add to `out` the UIDs one untagged response lists, if it is of a kind
 * in `kinds`; an ESEARCH answer whose TAG correlator is not `tag` (when
 * `tag` is not NULL) is not ours and is ignored.  UIDs below `from` are
 * left out ("n:*" always matches the highest UID).  ISNAP_EPROTO for an
 * invalid UID. */
enum isnap_status imap_uid_search_response(struct uidset *out, uint32_t from,
					   unsigned kinds, const char *tag,
					   const struct imap_response *r,
					   struct isnap_error *err);

/* "UID FETCH 1:<below - 1> (UID FLAGS) (CHANGEDSINCE <modseq>)" into
 * buf; returns 0 when there is nothing below `below`. */
size_t imap_changed_flags_command(uint32_t below, uint64_t modseq, char *buf,
				  size_t size);
/* One untagged response to it: `changed` for a FETCH with UID and FLAGS
 * (MODSEQ 0 when absent). */
enum isnap_status imap_changed_flags_response(
	const struct imap_response *r,
	enum isnap_status (*changed)(void *ctx, uint32_t uid,
				     const struct imap_arg *flags,
				     uint64_t modseq, struct isnap_error *err),
	void *ctx, struct isnap_error *err);

/* The RFC822.SIZE a FETCH response holds, added to *total. */
void imap_size_response(uint64_t *total, const struct imap_response *r);

#endif
