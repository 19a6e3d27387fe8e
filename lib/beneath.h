/*
 * beneath.h — opening what lies below a directory descriptor without ever
 * following a symbolic link, and without opening a FIFO, socket or device.
 *
 * imapsnap often runs as root from cron, into directories other users can
 * write.  A symbolic link planted at DEST/INBOX, DEST/INBOX/cur,
 * DEST/.imapsnap or DEST/.imapsnap/lock must not send what imapsnap writes
 * somewhere else, and a FIFO in place of a state or manifest file must not
 * make it wait forever.  So every path below a destination goes through
 * these functions: each component is opened with O_NOFOLLOW (O_DIRECTORY
 * for directories), files also with O_NONBLOCK and checked with fstat to
 * be regular files.  The destination itself is opened as the user gave it
 * (beneath_open_top), so it may be a symbolic link.
 *
 * Paths are relative ("a/b/c"); "" (or ".") is the directory itself.  An
 * absolute path, or a ".." component, is refused with EINVAL: nothing
 * reached through these functions is ever outside the directory given.
 *
 * Every function returns a new descriptor (O_CLOEXEC) that the caller
 * owns, or -1 with errno.  Besides the usual values:
 *
 *   ELOOP    a component is a symbolic link (never followed)
 *   ENOTDIR  a component that must be a directory is a regular file
 *   ENXIO    a component is a FIFO, socket or device (never opened)
 *   EISDIR   a file was asked for and a directory is there
 *
 * error.c words ELOOP and ENXIO as what they mean here.
 */
#ifndef IMAPSNAP_BENEATH_H
#define IMAPSNAP_BENEATH_H

#include <stdbool.h>
#include <stddef.h>
#include <sys/types.h>

/* The destination itself: `path` as given, symbolic links followed,
 * created (mkdir -p, mode 0700) first when `create`.  The O_DIRECTORY
 * descriptor everything else is opened below. */
int beneath_open_top(const char *path, bool create);

/* A single-file destination (an archive export) for reading: `path` as
 * given, symbolic links followed, but only a regular file is opened (a
 * FIFO never blocks: O_NONBLOCK, then fstat). */
int beneath_open_top_file(const char *path);

/* The directory at/rel, each component opened without following it.
 * With `create`, missing components are made (mode 0700), each durable
 * on return (its parent is fsynced). */
int beneath_open_dir(int at, const char *rel, bool create);

/* The directory that holds the last component of at/rel (created as
 * beneath_open_dir does), and in *base that component, pointing into
 * `rel`: for renameat, unlinkat and fstatat, which must then be given
 * (fd, *base).  Fails with EINVAL when rel has no last component. */
int beneath_open_parent(int at, const char *rel, bool create,
			const char **base);

/* The regular file at/rel, opened with `flags` (O_RDONLY, O_RDWR,
 * O_CREAT, O_EXCL, O_TRUNC, O_APPEND…; O_NOFOLLOW and O_CLOEXEC are
 * added) and `mode`.  Something other than a regular file there is
 * refused before it is opened where possible, and after (fstat) in any
 * case, so that a FIFO never blocks and O_TRUNC never reaches anything
 * but a regular file.  The parent directories must exist.  The result is
 * in blocking mode. */
int beneath_open_file(int at, const char *rel, int flags, mode_t mode);

/* After a failure with ELOOP, ENXIO, ENOTDIR or EISDIR: how much of
 * `rel` names the component at fault ("INBOX" of "INBOX/cur/x" when
 * INBOX is a symbolic link), for the error message; strlen(rel) when it
 * cannot be told.  Looks, follows nothing, changes nothing. */
size_t beneath_culprit(int at, const char *rel);

#endif
