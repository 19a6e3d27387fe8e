/*
 * folder_map.h — folders by logical name: what a folder is, whatever the
 * server calls it, and what a target server calls it (docs/restore.md).
 * RFC 2342 (NAMESPACE), RFC 6154 (special-use folders).
 *
 * A folder's logical path is its name below the server's personal
 * namespace prefix, in UTF-8, with the levels the server's delimiter
 * separates joined by '/': "INBOX.Archive.2019" on Courier (prefix
 * "INBOX.", delimiter ".") and "Archive/2019" on Dovecot (prefix "", "/")
 * are both "Archive/2019".  INBOX is "INBOX" on every server.  A '/'
 * inside one level of a server whose delimiter is another character
 * stays as it is, so on a target it separates levels too.
 *
 * The source side needs only folder_logical_path().  The target side
 * builds a map from the target's LIST (which carries its namespace) and
 * asks it, per folder, where the folder goes:
 *
 *   struct folder_map *m;
 *   folder_map_new(&target_list, &opts, &m, err);
 *   folder_map_target(m, "Archive/2019", NULL, &t, err);
 *        // t.raw "INBOX.Archive.2019", t.utf8 "INBOX.Archive.2019"
 *   folder_map_target(m, "Sent", "\\Sent", &t, err);
 *        // the target's own \Sent folder, "INBOX.Sent Items" say
 *   folder_target_free(&t);
 *   folder_map_free(m);
 *
 * Everything returned is malloc'd and belongs to the caller; the map
 * copies what it needs of the list (the list may be freed after
 * folder_map_new).
 */
#ifndef IMAPSNAP_FOLDER_MAP_H
#define IMAPSNAP_FOLDER_MAP_H

#include <stdbool.h>

#include "error.h"
#include "imap/commands.h"

/* The logical path of the folder `raw` (as the server spells it:
 * modified UTF-7) on a server with delimiter `delim` ('\0': none) and
 * personal namespace prefix `prefix` (raw too; NULL or "" for none).  A
 * name outside the prefix keeps all its levels.  A name that is not
 * valid modified UTF-7 is taken as it is.  Malloc'd; NULL when out of
 * memory. */
char *folder_logical_path(const char *raw, char delim, const char *prefix);

/* The special-use role `attr` names ("\Sent", any case), in RFC 6154's
 * spelling, or NULL when it is not one. */
const char *folder_role(const char *attr);

/* Whether a message of a folder with that role belongs in the target's
 * folder of the same role.  \All and \Flagged are views of other
 * folders, not places (Gmail's "All Mail", a virtual folder): they are
 * recorded but never mapped. */
bool folder_role_maps(const char *role);

struct folder_map_opts {
	/* Put everything below this logical path ('/'-separated UTF-8;
	 * NULL for the top).  Roles are not mapped below it: a restore
	 * into "Restored" keeps Restored/Sent apart from the target's
	 * Sent. */
	const char *into;
	/* Put a role's messages into the target's folder with that role
	 * (when it has one). */
	bool map_roles;
};

struct folder_map;

/* From the target's LIST (imap_list: its namespace, delimiter and
 * special-use folders). */
enum isnap_status folder_map_new(const struct imap_folder_list *target,
				 const struct folder_map_opts *o,
				 struct folder_map **out,
				 struct isnap_error *err);
void folder_map_free(struct folder_map *m);

/* The target's delimiter ('/' when it has none). */
char folder_map_delim(const struct folder_map *m);

struct folder_target {
	char *raw;         /* the name to send (modified UTF-7) */
	char *utf8;        /* the same, decoded, for people */
	bool by_role;      /* the target's folder with the folder's role */
};

/* Where the folder with logical path `path` and special-use `role` (may
 * be NULL) goes on the target.  ISNAP_EFOLDER when the name cannot be
 * written for IMAP (invalid UTF-8), with the reason in err. */
enum isnap_status folder_map_target(const struct folder_map *m,
				    const char *path, const char *role,
				    struct folder_target *out,
				    struct isnap_error *err);
void folder_target_free(struct folder_target *t);

#endif
