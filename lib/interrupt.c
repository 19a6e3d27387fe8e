/*
 * interrupt.c — see interrupt.h.
 */
#include "interrupt.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t interrupted_by;
static int wake[2] = { -1, -1 };

int isnap_interrupt_init(void)
{
	if (wake[0] >= 0)
		return 0;
	return pipe2(wake, O_CLOEXEC | O_NONBLOCK);
}

void isnap_interrupt(int signo)
{
	int saved = errno;

	interrupted_by = signo > 0 ? signo : SIGTERM;
	if (wake[1] >= 0) {
		char b = 1;
		/* A full pipe is readable already. */
		if (write(wake[1], &b, 1) < 0)
			(void)0;
	}
	errno = saved;
}

bool isnap_interrupted(void)
{
	return interrupted_by != 0;
}

int isnap_interrupt_fd(void)
{
	return wake[0];
}

static const char *signal_name(int signo)
{
	switch (signo) {
	case SIGTERM: return "SIGTERM";
	case SIGINT: return "SIGINT";
	case SIGHUP: return "SIGHUP";
	default: return "a signal";
	}
}

enum isnap_status isnap_interrupt_fail(struct isnap_error *err)
{
	return isnap_fail(err, ISNAP_EINTERRUPTED, "interrupted by %s",
			  signal_name(interrupted_by));
}

static long ms_since(const struct timespec *t)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (now.tv_sec - t->tv_sec) * 1000L +
	       (now.tv_nsec - t->tv_nsec) / 1000000L;
}

enum isnap_status isnap_interrupt_sleep(long ms, struct isnap_error *err)
{
	struct timespec since;

	clock_gettime(CLOCK_MONOTONIC, &since);
	for (;;) {
		long left = ms - ms_since(&since);
		struct pollfd pfd = { .fd = wake[0], .events = POLLIN };

		if (isnap_interrupted())
			return isnap_interrupt_fail(err);
		if (left <= 0)
			return ISNAP_OK;
		/* With fd -1 poll only waits. */
		poll(&pfd, 1, left > 1000000 ? 1000000 : (int)left);
	}
}
