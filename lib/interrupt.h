/*
 * interrupt.h — a run asked to stop (SIGTERM, SIGINT, SIGHUP), as every
 * thread of it can see and wait for.
 *
 * The program's signal handler calls isnap_interrupt(), which only sets a
 * flag and writes one byte into a pipe (both async-signal-safe).  The
 * byte is never read: the pipe stays readable, so every poll(2) that
 * watches isnap_interrupt_fd() beside its socket wakes at once, on every
 * thread, however long its timeout.  Whoever sees isnap_interrupted()
 * stops what it is doing with ISNAP_EINTERRUPTED, and the callers on the
 * way up keep what is complete (docs/reliability.md, "Stopped by a
 * signal").
 *
 *   isnap_interrupt_init();          // once, before installing handlers
 *   ... in the handler: isnap_interrupt(signo);
 *   ... poll { sock, isnap_interrupt_fd() }; if (isnap_interrupted()) ...
 *
 * Without isnap_interrupt_init nothing ever interrupts (the fd is -1).
 */
#ifndef IMAPSNAP_INTERRUPT_H
#define IMAPSNAP_INTERRUPT_H

#include <stdbool.h>

#include "error.h"

/* The pipe.  0, or -1 with errno. */
int isnap_interrupt_init(void);

/* Async-signal-safe: the run is to stop (signo: why, for the message). */
void isnap_interrupt(int signo);

bool isnap_interrupted(void);

/* The read end, readable once interrupted; -1 before init. */
int isnap_interrupt_fd(void);

/* ISNAP_EINTERRUPTED with "interrupted by SIGTERM" (or whichever) in
 * err. */
enum isnap_status isnap_interrupt_fail(struct isnap_error *err);

/* Sleep `ms` unless interrupted first: ISNAP_OK after the whole time,
 * else isnap_interrupt_fail. */
enum isnap_status isnap_interrupt_sleep(long ms, struct isnap_error *err);

#endif
