/*
 * fsname.h — map IMAP folder names to paths below the destination, safely
 * and reversibly.  The rule is documented in docs/layout.md.
 *
 * A folder name (UTF-8, or the raw server bytes when they are not valid
 * modified UTF-7) is split at the server's hierarchy delimiter; each
 * component becomes one directory name.  A component is escaped when it
 * could escape the destination or collide with something imapsnap keeps
 * there: "", ".", "..", a leading '.', '/', '\\', '%', control characters,
 * DEL, bytes that are not valid UTF-8, and the Maildir names "cur", "new"
 * and "tmp" (in any case, for case-insensitive filesystems).  Escaping is
 * percent-encoding (%XX, upper-case hex), so an escaped component never
 * starts with '.' and never contains '/'; that leaves names with a leading
 * '.' free for imapsnap's own use (.imapsnap, .uidvalidity-N).  A
 * component whose escaped form is longer than FSNAME_MAX_COMPONENT bytes
 * is cut at a character boundary and ends in "%~" plus 16 hex digits of
 * its SHA-256, which keeps it unique; such a component is reversible only
 * through the name recorded in the state.
 */
#ifndef IMAPSNAP_FSNAME_H
#define IMAPSNAP_FSNAME_H

#include <stddef.h>

/* Longest escaped component, in bytes; below NAME_MAX (255) so that a
 * store can add a suffix such as ".mbox" or ".uidvalidity-4294967295". */
#define FSNAME_MAX_COMPONENT 200

/* Escape one component (`len` bytes, may contain any byte) into *out
 * (malloc'd, NUL-terminated).  The result is never empty and at most
 * FSNAME_MAX_COMPONENT bytes; the empty component becomes "%".  Returns 0,
 * or -1 with errno ENOMEM (or EIO in the unlikely case that libcrypto
 * cannot compute the SHA-256 of an over-long name); *out is NULL then. */
int fsname_escape_component(const char *comp, size_t len, char **out);

/* Reverse fsname_escape_component.  Returns 0, or -1 with errno EINVAL when
 * `comp` is not something escape could have produced (including cut "%~"
 * names, lower-case hex and needless escapes), or ENOMEM.  *out is
 * malloc'd and NUL-terminated; *len receives the length (the result may
 * hold NUL only if the original did). */
int fsname_unescape_component(const char *comp, char **out, size_t *len);

/* The relative path ("Archive/2019", "Entw\xc3\xbcrfe") of folder `name`
 * whose hierarchy delimiter is `delim` ('\0' when the server says NIL: the
 * whole name is one component).  Empty trailing components are kept (a
 * name ending in the delimiter is legal IMAP), and so are empty leading or
 * inner ones: "/etc/x" with '/' is "%/etc/x".  Components are joined with
 * '/'; the path is never absolute and no component is empty, "." or "..".
 * *relpath is malloc'd.  Returns 0 or -1 (ENOMEM, or EIO as above). */
int fsname_folder_path(const char *name, char delim, char **relpath);

#endif
