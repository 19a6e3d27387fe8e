/*
 * backup_events.c — see backup_events.h.
 */
#include "backup_events.h"

#include <stdarg.h>
#include <stdio.h>

void backup_notice(const struct backup_events *ev, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (!ev || !ev->notice)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	ev->notice(ev->ctx, buf);
}

void backup_warning(const struct backup_events *ev, const char *fmt, ...)
{
	char buf[1024];
	va_list ap;

	if (!ev || !ev->warning)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	ev->warning(ev->ctx, buf);
}

#define EV_BEGIN(ctx)                                    \
	struct backup_events_mux *m = ctx;               \
	const struct backup_events *u = m->user;         \
	pthread_mutex_lock(&m->lock)
#define EV_END() pthread_mutex_unlock(&m->lock)

static void ev_folder_begin(void *ctx, const char *folder, uint64_t messages,
			    uint64_t already_saved)
{
	EV_BEGIN(ctx);
	u->folder_begin(u->ctx, folder, messages, already_saved);
	EV_END();
}

static void ev_folder_end(void *ctx, const char *folder,
			  const struct fetch_stats *stats)
{
	EV_BEGIN(ctx);
	u->folder_end(u->ctx, folder, stats);
	EV_END();
}

static void ev_folder_failed(void *ctx, const char *folder,
			     const struct isnap_error *err)
{
	EV_BEGIN(ctx);
	u->folder_failed(u->ctx, folder, err);
	EV_END();
}

static void ev_message_failed(void *ctx, const char *folder, uint32_t uid,
			      const char *why)
{
	EV_BEGIN(ctx);
	u->message_failed(u->ctx, folder, uid, why);
	EV_END();
}

static void ev_message_saved(void *ctx, const char *folder, uint32_t uid,
			     uint64_t bytes)
{
	EV_BEGIN(ctx);
	u->message_saved(u->ctx, folder, uid, bytes);
	EV_END();
}

static void ev_folder_planned(void *ctx, const char *folder,
			      uint64_t messages, uint64_t bytes)
{
	EV_BEGIN(ctx);
	u->folder_planned(u->ctx, folder, messages, bytes);
	EV_END();
}

static void ev_warning(void *ctx, const char *text)
{
	EV_BEGIN(ctx);
	u->warning(u->ctx, text);
	EV_END();
}

static void ev_notice(void *ctx, const char *text)
{
	EV_BEGIN(ctx);
	u->notice(u->ctx, text);
	EV_END();
}

void backup_events_init(struct backup_events_mux *m,
			const struct backup_events *u)
{
	m->user = u;
	m->trace = NULL;
	m->trace_ctx = NULL;
	pthread_mutex_init(&m->lock, NULL);
	m->ev = (struct backup_events){ .ctx = m };
	if (!u)
		return;
	m->ev.folder_begin = u->folder_begin ? ev_folder_begin : NULL;
	m->ev.folder_end = u->folder_end ? ev_folder_end : NULL;
	m->ev.folder_failed = u->folder_failed ? ev_folder_failed : NULL;
	m->ev.message_failed = u->message_failed ? ev_message_failed : NULL;
	m->ev.message_saved = u->message_saved ? ev_message_saved : NULL;
	m->ev.folder_planned = u->folder_planned ? ev_folder_planned : NULL;
	m->ev.warning = u->warning ? ev_warning : NULL;
	m->ev.notice = u->notice ? ev_notice : NULL;
}

void backup_events_release(struct backup_events_mux *m)
{
	pthread_mutex_destroy(&m->lock);
}

/* Sessions trace from their own threads; the caller's trace shares its
 * output (the progress line) with the events. */
static void serial_trace(void *ctx, char direction, const char *data,
			 size_t len)
{
	struct backup_events_mux *m = ctx;

	pthread_mutex_lock(&m->lock);
	m->trace(m->trace_ctx, direction, data, len);
	pthread_mutex_unlock(&m->lock);
}

void backup_events_trace(struct backup_events_mux *m,
			 struct imap_session_opts *so)
{
	if (!so->trace)
		return;
	m->trace = so->trace;
	m->trace_ctx = so->trace_ctx;
	so->trace = serial_trace;
	so->trace_ctx = m;
}
