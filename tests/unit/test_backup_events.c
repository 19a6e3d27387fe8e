/*
 * test_backup_events.c — the caller's events and protocol trace, called
 * from every session's thread, reach the caller one at a time
 * (lib/backup_events.c).  The command line's trace callback writes the
 * progress line and the flag that masks credentials during AUTHENTICATE,
 * the same state the events write: two threads must never be inside at
 * once.
 */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdatomic.h>
#include <time.h>

#include "backup_events.h"

#define CALLS 2000

static atomic_int inside, overlaps, calls;

static void enter(void)
{
	struct timespec ts = { 0, 2000 };

	if (atomic_fetch_add(&inside, 1) != 0)
		atomic_fetch_add(&overlaps, 1);
	nanosleep(&ts, NULL); /* long enough for another thread to come */
	atomic_fetch_sub(&inside, 1);
	atomic_fetch_add(&calls, 1);
}

static void user_trace(void *ctx, char dir, const char *data, size_t len)
{
	(void)ctx;
	(void)dir;
	(void)data;
	(void)len;
	enter();
}

static void user_saved(void *ctx, const char *folder, uint32_t uid,
		       uint64_t bytes)
{
	(void)ctx;
	(void)folder;
	(void)uid;
	(void)bytes;
	enter();
}

struct worker {
	struct imap_session_opts *so;
	struct backup_events_mux *m;
	bool events;
};

static void *work(void *arg)
{
	struct worker *w = arg;

	for (int i = 0; i < CALLS; i++) {
		if (w->events)
			w->m->ev.message_saved(w->m->ev.ctx, "INBOX", 1, 10);
		else
			w->so->trace(w->so->trace_ctx, '<', "* OK\r\n", 6);
	}
	return NULL;
}

Test(backup_events, trace_and_events_one_at_a_time)
{
	const struct backup_events user = { .message_saved = user_saved };
	struct imap_session_opts so = { .trace = user_trace };
	struct backup_events_mux m;
	struct worker w[3] = {
		{ &so, &m, false }, { &so, &m, false }, { &so, &m, true },
	};
	pthread_t t[3];

	backup_events_init(&m, &user);
	backup_events_trace(&m, &so);
	cr_assert_neq((void *)so.trace, (void *)user_trace,
		      "the trace was not wrapped");
	for (int i = 0; i < 3; i++)
		cr_assert_eq(pthread_create(&t[i], NULL, work, &w[i]), 0);
	for (int i = 0; i < 3; i++)
		pthread_join(t[i], NULL);
	backup_events_release(&m);
	cr_assert_eq(atomic_load(&calls), 3 * CALLS);
	cr_assert_eq(atomic_load(&overlaps), 0,
		     "%d calls found another thread inside",
		     atomic_load(&overlaps));
}

Test(backup_events, no_trace_stays_none)
{
	struct imap_session_opts so = { 0 };
	struct backup_events_mux m;

	backup_events_init(&m, NULL);
	backup_events_trace(&m, &so);
	cr_assert_null((void *)so.trace);
	backup_events_release(&m);
}
