/*
 * lock.h — one run per destination.  An flock(2) on DEST/.imapsnap/lock,
 * which also holds the holder's pid for the error message.  The lock dies
 * with the process, so a crashed run never leaves a stale lock behind.
 */
#ifndef IMAPSNAP_LOCK_H
#define IMAPSNAP_LOCK_H

#include "error.h"

/* Take the lock in directory `dir`; *fd receives the descriptor to pass to
 * lock_release.  ISNAP_ELOCKED when another process holds it. */
enum isnap_status lock_acquire(const char *dir, int *fd,
			       struct isnap_error *err);
void lock_release(int fd);

#endif
