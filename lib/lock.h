/*
 * lock.h — one run per destination.  An flock(2) on DEST/.imapsnap/lock,
 * which also holds the holder's pid for the error message.  The lock dies
 * with the process, so a crashed run never leaves a stale lock behind.
 *
 * The lock file is opened without following a symbolic link and only if
 * it is a regular file with no other name (beneath.h): a link planted
 * there must not make imapsnap truncate or write some other file.
 */
#ifndef IMAPSNAP_LOCK_H
#define IMAPSNAP_LOCK_H

#include "error.h"

/* Take the lock in the directory open at `dirfd` (named `dir` in
 * messages); *fd receives the descriptor to pass to lock_release.
 * ISNAP_ELOCKED when another process holds it, ISNAP_ELOCAL when the lock
 * file cannot be opened or is not a plain file. */
enum isnap_status lock_acquire(int dirfd, const char *dir, int *fd,
			       struct isnap_error *err);
void lock_release(int fd);

#endif
