/* lock.c — see lock.h. */
#include "lock.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "beneath.h"

enum isnap_status lock_acquire(int dirfd, const char *dir, int *fd,
			       struct isnap_error *err)
{
	char pid[32] = "";
	struct stat sb;
	int f;

	*fd = -1;
	f = beneath_open_file(dirfd, "lock", O_RDWR | O_CREAT, 0600);
	if (f < 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "%s/lock", dir);
	/* A hard link would make the pid written below land in another
	 * file; imapsnap never makes one. */
	if (fstat(f, &sb) != 0) {
		isnap_fail_errno(err, ISNAP_ELOCAL, "%s/lock", dir);
		close(f);
		return ISNAP_ELOCAL;
	}
	if (sb.st_nlink != 1) {
		close(f);
		return isnap_fail(err, ISNAP_ELOCAL,
				  "%s/lock has other names (hard links); "
				  "refusing to write it",
				  dir);
	}
	if (flock(f, LOCK_EX | LOCK_NB) < 0) {
		if (errno != EWOULDBLOCK) {
			isnap_fail_errno(err, ISNAP_ELOCAL, "%s/lock", dir);
			close(f);
			return ISNAP_ELOCAL;
		}
		ssize_t n = pread(f, pid, sizeof pid - 1, 0);
		pid[n > 0 ? n : 0] = '\0';
		pid[strcspn(pid, "\n")] = '\0';
		close(f);
		return isnap_fail(err, ISNAP_ELOCKED,
				  "another imapsnap run (pid %s) is using this "
				  "destination",
				  pid[0] ? pid : "unknown");
	}
	int n = snprintf(pid, sizeof pid, "%ld\n", (long)getpid());
	if (ftruncate(f, 0) == 0 && pwrite(f, pid, (size_t)n, 0) < 0) {
		/* The pid is only for the message; the lock is what counts. */
	}
	*fd = f;
	return ISNAP_OK;
}

void lock_release(int fd)
{
	if (fd >= 0)
		close(fd);
}
