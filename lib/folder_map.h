/*
 * folder_map.h — where a folder goes on a target server: its logical
 * path (folder_path.h) below the target's personal namespace, in the
 * target's delimiter, or the target's own folder of the same special-use
 * role (docs/restore.md).  RFC 2342 (NAMESPACE), RFC 6154 (SPECIAL-USE).
 *
 * Build the map from the target's LIST (which carries its namespace),
 * then ask it, per folder, where the folder goes:
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
#include "folder_path.h"
#include "imap/commands.h"

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
