/*
 * backup_events.h — the caller's struct backup_events, called from every
 * session's thread one at a time, and the protocol trace with them.
 *
 *   struct backup_events_mux m;
 *   backup_events_init(&m, user_events);   // user_events may be NULL
 *   m.ev.folder_begin(m.ev.ctx, ...);      // any thread; NULL fields
 *                                          // stay NULL
 *   backup_notice(&m.ev, "%s: ...", ...);
 *   backup_events_trace(&m, &session_opts); // trace calls serialised too
 *   backup_events_release(&m);
 */
#ifndef IMAPSNAP_BACKUP_EVENTS_H
#define IMAPSNAP_BACKUP_EVENTS_H

#include <pthread.h>

#include "backup.h"
#include "imap/session.h"

struct backup_events_mux {
	struct backup_events ev; /* what to call: the user's, serialised */
	const struct backup_events *user;
	pthread_mutex_t lock;
	imap_trace_fn trace;     /* the user's trace and its ctx */
	void *trace_ctx;
};

void backup_events_init(struct backup_events_mux *m,
			const struct backup_events *user);
void backup_events_release(struct backup_events_mux *m);

/* Make `so`'s trace callback (if any) go through the same lock. */
void backup_events_trace(struct backup_events_mux *m,
			 struct imap_session_opts *so);

void backup_notice(const struct backup_events *ev, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void backup_warning(const struct backup_events *ev, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
