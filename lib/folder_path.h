/*
 * folder_path.h — a folder's logical path and special-use role, the
 * names a folder has whatever server holds it (docs/restore.md).
 * RFC 2342 (NAMESPACE), RFC 6154 (special-use folders).  No I/O.
 *
 * A folder's logical path is its name below the server's personal
 * namespace prefix, in UTF-8, with the levels the server's delimiter
 * separates joined by '/': "INBOX.Archive.2019" on Courier (prefix
 * "INBOX.", delimiter ".") and "Archive/2019" on Dovecot (prefix "", "/")
 * are both "Archive/2019".  INBOX is "INBOX" on every server.  A '/'
 * inside one level of a server whose delimiter is another character
 * stays as it is, so on a target it separates levels too.
 *
 * folder_map.h puts a logical path onto a target server.
 */
#ifndef IMAPSNAP_FOLDER_PATH_H
#define IMAPSNAP_FOLDER_PATH_H

#include <stdbool.h>

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

#endif
