/*
 * scheduler.c — see scheduler.h.
 */
#include "scheduler.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "interrupt.h"

/* A session's window: commands and bytes of command lines in flight before
 * it starts another unit.  Servers read a few commands ahead and then
 * stop reading until they have answered (Dovecot queues four, then TCP
 * flow control holds the rest); what matters is that the client never
 * blocks sending while the server blocks sending answers nobody reads.
 * The bytes stay far below the smallest socket buffers (the server's
 * receive buffer alone is 128 KiB by default on Linux) for that reason. */
#define WINDOW_COMMANDS 64
#define WINDOW_BYTES (24 * 1024)
#define MAX_UNITS_PER_SESSION 64

struct sched_session {
	struct sched *sched;
	unsigned index;
	pthread_t thread;
	bool thread_started;
	struct imap_client *client;
	struct imap_pipeline pipe;
	bool attached;
	void *data;
	/* The units going on, in the order they started. */
	struct sched_unit *active[MAX_UNITS_PER_SESSION];
	unsigned nactive;
};

struct sched {
	struct sched_opts o;
	pthread_mutex_t lock;
	pthread_cond_t changed;
	struct sched_unit *qhead, *qtail;
	uint64_t qweight;
	unsigned busy; /* units taken and not ended for good */
	struct sched_session *sessions;
	unsigned started; /* sessions[0..started) have begun */
	unsigned opened;  /* of which logged in at least once */
	bool stop;
	enum isnap_status fatal;
	struct isnap_error fatal_err;
	enum isnap_status worst;
};

static double now_s(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void warn(struct sched *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
static void warn(struct sched *s, const char *fmt, ...)
{
	char buf[1200];
	va_list ap;

	if (!s->o.warning)
		return;
	va_start(ap, fmt);
	vsnprintf(buf, sizeof buf, fmt, ap);
	va_end(ap);
	s->o.warning(s->o.ctx, buf);
}

static bool is_fatal(enum isnap_status st)
{
	return st != ISNAP_OK && st != ISNAP_EMSG && st != ISNAP_EFOLDER;
}

enum isnap_status sched_new(const struct sched_opts *o, struct sched **out,
			    struct isnap_error *err)
{
	struct sched *s = calloc(1, sizeof *s);

	*out = NULL;
	if (!s)
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	s->o = *o;
	if (s->o.max_sessions < 1)
		s->o.max_sessions = 1;
	if (s->o.max_units < 1)
		s->o.max_units = 1;
	if (s->o.max_units > MAX_UNITS_PER_SESSION)
		s->o.max_units = MAX_UNITS_PER_SESSION;
	s->sessions = calloc(s->o.max_sessions, sizeof *s->sessions);
	if (!s->sessions) {
		free(s);
		return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	}
	for (unsigned i = 0; i < s->o.max_sessions; i++) {
		s->sessions[i].sched = s;
		s->sessions[i].index = i;
	}
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->changed, NULL);
	*out = s;
	return ISNAP_OK;
}

void sched_free(struct sched *s)
{
	if (!s)
		return;
	pthread_mutex_destroy(&s->lock);
	pthread_cond_destroy(&s->changed);
	free(s->sessions);
	free(s);
}

/* --- the queue --------------------------------------------------------- */

static void *session_thread(void *arg);

/* With the lock held: one more session, if the queue is worth it (or
 * `busy_with`, what a session is about to do, while units wait). */
static void maybe_spawn_locked(struct sched *s, uint64_t busy_with)
{
	struct sched_session *ss;

	if (s->stop || isnap_interrupted() || !s->opened ||
	    s->started >= s->o.max_sessions ||
	    !s->qhead || s->qweight + busy_with < s->o.spawn_weight)
		return;
	ss = &s->sessions[s->started];
	if (pthread_create(&ss->thread, NULL, session_thread, ss) == 0) {
		ss->thread_started = true;
		s->started++;
	}
}

void sched_post(struct sched *s, struct sched_unit *u, bool urgent)
{
	pthread_mutex_lock(&s->lock);
	u->running_on = NULL;
	if (!u->retry)
		u->retry = &u->own_retry;
	if (urgent || !s->qhead) {
		u->next = s->qhead;
		s->qhead = u;
		if (!s->qtail)
			s->qtail = u;
	} else {
		u->next = NULL;
		s->qtail->next = u;
		s->qtail = u;
	}
	s->qweight += u->weight;
	maybe_spawn_locked(s, 0);
	pthread_cond_broadcast(&s->changed);
	pthread_mutex_unlock(&s->lock);
}

/* How often a session waiting for work looks whether a signal asked the
 * run to stop (interrupt.h). */
#define INTERRUPT_POLL_S 0.25

/* With the lock held: the run stops, interrupted. */
static void stop_interrupted_locked(struct sched *s)
{
	if (!s->fatal) {
		s->fatal = isnap_interrupt_fail(&s->fatal_err);
	}
	s->stop = true;
	pthread_cond_broadcast(&s->changed);
}

/* The next unit this session may start: not waiting for its time, and
 * (when `idle` is false) not one that needs the connection to itself.
 * Waits when `block` and nothing is ready but units are going on
 * elsewhere (they may queue more). */
static struct sched_unit *take(struct sched *s, bool block)
{
	/* Only an idle session waits, and only it may take an exclusive
	 * unit. */
	bool idle = block;
	struct sched_unit *u = NULL;

	pthread_mutex_lock(&s->lock);
	while (!s->stop) {
		struct sched_unit *prev = NULL;
		double now = now_s(), soonest = 0;

		if (isnap_interrupted()) {
			/* Nobody can wake this wait from a signal handler:
			 * waits are bounded (below) and end here. */
			stop_interrupted_locked(s);
			break;
		}
		for (u = s->qhead; u; prev = u, u = u->next) {
			if (u->exclusive && !idle)
				continue;
			if (u->not_before <= now)
				break;
			if (!soonest || u->not_before < soonest)
				soonest = u->not_before;
		}
		if (u) {
			if (prev)
				prev->next = u->next;
			else
				s->qhead = u->next;
			if (s->qtail == u)
				s->qtail = prev;
			u->next = NULL;
			s->qweight -= u->weight;
			s->busy++;
			break;
		}
		if (!block || (!s->qhead && !s->busy))
			break;
		{
			struct timespec ts;
			double left = soonest ? soonest - now : INTERRUPT_POLL_S;
			if (left > INTERRUPT_POLL_S)
				left = INTERRUPT_POLL_S;
			clock_gettime(CLOCK_REALTIME, &ts);
			ts.tv_sec += (time_t)left;
			ts.tv_nsec += (long)((left - (double)(time_t)left) * 1e9);
			if (ts.tv_nsec >= 1000000000L) {
				ts.tv_sec++;
				ts.tv_nsec -= 1000000000L;
			}
			pthread_cond_timedwait(&s->changed, &s->lock, &ts);
		}
	}
	pthread_mutex_unlock(&s->lock);
	return u;
}

void sched_stop(struct sched *s, enum isnap_status st,
		const struct isnap_error *err)
{
	pthread_mutex_lock(&s->lock);
	if (!s->fatal) {
		s->fatal = st;
		if (err)
			s->fatal_err = *err;
		s->fatal_err.status = st;
	}
	s->stop = true;
	pthread_cond_broadcast(&s->changed);
	pthread_mutex_unlock(&s->lock);
}

bool sched_stopped(struct sched *s)
{
	bool stop;

	pthread_mutex_lock(&s->lock);
	stop = s->stop;
	pthread_mutex_unlock(&s->lock);
	return stop;
}

unsigned sched_sessions_opened(struct sched *s)
{
	unsigned n;

	pthread_mutex_lock(&s->lock);
	n = s->opened;
	pthread_mutex_unlock(&s->lock);
	return n;
}

/* A unit is over for good with outcome `st`. */
static void settle(struct sched *s, struct sched_unit *u, enum isnap_status st,
		   const struct isnap_error *err)
{
	u->running_on = NULL;
	u->ops->free(u);
	if (is_fatal(st)) {
		sched_stop(s, st, err);
	} else if (st) {
		pthread_mutex_lock(&s->lock);
		if (st == ISNAP_EFOLDER || !s->worst)
			s->worst = st;
		pthread_mutex_unlock(&s->lock);
	}
	pthread_mutex_lock(&s->lock);
	s->busy--;
	pthread_cond_broadcast(&s->changed);
	pthread_mutex_unlock(&s->lock);
}

/* A unit goes back into the queue, to start again; still busy until
 * then, so that nobody takes the run for finished meanwhile. */
static void requeue(struct sched *s, struct sched_unit *u)
{
	sched_post(s, u, true);
	pthread_mutex_lock(&s->lock);
	s->busy--;
	pthread_mutex_unlock(&s->lock);
}

/* --- for units ---------------------------------------------------------- */

enum isnap_status sched_send(struct sched_session *ss, struct sched_unit *u,
			     uintptr_t cookie, const char *command,
			     struct isnap_error *err)
{
	return imap_pipeline_send(&ss->pipe, &u->owner, cookie, command, err);
}

void sched_expect(struct sched_session *ss, uint64_t weight)
{
	struct sched *s = ss->sched;

	pthread_mutex_lock(&s->lock);
	maybe_spawn_locked(s, weight);
	pthread_mutex_unlock(&s->lock);
}

struct imap_client *sched_session_client(struct sched_session *ss)
{
	return ss->client;
}

struct imap_pipeline *sched_session_pipe(struct sched_session *ss)
{
	return &ss->pipe;
}

bool sched_unit_is_last(const struct sched_unit *u)
{
	const struct sched_session *ss = u->running_on;

	return ss && ss->nactive && ss->active[ss->nactive - 1] == u;
}

unsigned sched_session_index(const struct sched_session *ss)
{
	return ss->index;
}

void *sched_session_data(const struct sched_session *ss)
{
	return ss->data;
}

void sched_session_set_data(struct sched_session *ss, void *data)
{
	ss->data = data;
}

struct sched *sched_of(const struct sched_session *ss)
{
	return ss->sched;
}

/* --- one session -------------------------------------------------------- */

static enum isnap_status connect_session(struct sched_session *ss,
					 struct isnap_error *err)
{
	struct sched *s = ss->sched;
	enum isnap_status st;

	st = imap_client_open(s->o.session, &ss->client, err);
	if (st)
		return st;
	imap_pipeline_init(&ss->pipe, ss->client);
	if (!ss->attached) {
		st = s->o.attach ? s->o.attach(s->o.ctx, ss, err) : ISNAP_OK;
		if (st) {
			imap_pipeline_release(&ss->pipe);
			imap_client_close(ss->client, true);
			ss->client = NULL;
			return st;
		}
		ss->attached = true;
		pthread_mutex_lock(&s->lock);
		s->opened++;
		maybe_spawn_locked(s, 0);
		pthread_mutex_unlock(&s->lock);
	}
	return ISNAP_OK;
}

static void disconnect(struct sched_session *ss, bool logout)
{
	if (!ss->client)
		return;
	imap_pipeline_release(&ss->pipe);
	imap_client_close(ss->client, logout);
	ss->client = NULL;
}

static void lost(struct sched_session *ss, enum isnap_status st,
		 struct isnap_error *err);

static void start_unit(struct sched_session *ss, struct sched_unit *u)
{
	struct isnap_error err = { 0 };
	enum isnap_status st;

	u->running_on = ss;
	u->sealed = false;
	u->owner.inflight = 0;
	u->owner.failed = ISNAP_OK;
	isnap_error_clear(&u->owner.err);
	ss->active[ss->nactive++] = u;
	st = u->ops->start(u, ss, &err);
	if (st)
		imap_owner_fail(&u->owner, st, &err);
	if (st == ISNAP_ECONN)
		lost(ss, st, &err); /* sending failed: the connection is gone */
}

/* Remove active[0] from the session's list. */
static struct sched_unit *pop_head(struct sched_session *ss)
{
	struct sched_unit *u = ss->active[0];

	memmove(&ss->active[0], &ss->active[1],
		(ss->nactive - 1) * sizeof ss->active[0]);
	ss->nactive--;
	return u;
}

/* End the units at the head whose commands are all answered. */
static bool end_finished(struct sched_session *ss)
{
	struct sched *s = ss->sched;
	bool any = false;

	while (ss->nactive && ss->active[0]->owner.inflight == 0) {
		struct sched_unit *u = pop_head(ss);
		struct isnap_error err = u->owner.err;
		enum isnap_status st = u->owner.failed;

		st = u->ops->end(u, ss, st, &err, false);
		settle(s, u, st, &err);
		any = true;
	}
	return any;
}

static uint64_t active_weight(const struct sched_session *ss)
{
	uint64_t w = 0;

	for (unsigned i = 0; i < ss->nactive; i++)
		w += ss->active[i]->weight;
	return w;
}

/* Start units while the window has room and the last one started is
 * done sending.  With nothing going on, wait for work. */
static void fill(struct sched_session *ss)
{
	struct sched *s = ss->sched;

	while (ss->client && ss->nactive < s->o.max_units) {
		struct sched_unit *u;

		if (ss->nactive) {
			struct sched_unit *tail = ss->active[ss->nactive - 1];
			if (!tail->sealed && !tail->owner.failed)
				return;
			if (imap_pipeline_inflight(&ss->pipe) >=
				    WINDOW_COMMANDS ||
			    imap_pipeline_bytes(&ss->pipe) >= WINDOW_BYTES ||
			    (s->o.window_weight &&
			     active_weight(ss) >= s->o.window_weight))
				return;
		}
		u = take(s, ss->nactive == 0);
		if (!u)
			return;
		start_unit(ss, u);
		if (!ss->client)
			return;
	}
}

/* Reconnect after a lost connection, for `u` (the unit it was lost
 * under), counting attempts in u->retry.  Returns ISNAP_OK with a new
 * connection, or why not (the connection's status, with "gave up"). */
static enum isnap_status reconnect(struct sched_session *ss,
				   struct sched_unit *u,
				   struct isnap_error *err)
{
	struct sched *s = ss->sched;
	struct sched_retry *r = u->retry;
	enum isnap_status st = ISNAP_ECONN;

	for (;;) {
		if (r->attempts >= s->o.retries) {
			char why[ISNAP_ERROR_MAX];
			snprintf(why, sizeof why, "%s", err->msg);
			return isnap_fail(err, ISNAP_ECONN,
					  "%.900s (gave up after %u retries)",
					  why, s->o.retries);
		}
		r->attempts++;
		if (!r->delay_ms)
			r->delay_ms = 250;
		if ((st = isnap_interrupt_sleep(r->delay_ms, err)))
			return st;
		/* 0.25 s, 1 s, 4 s, 16 s, then once a minute: --retries
		 * counts attempts, it should not mean hours of waiting. */
		r->delay_ms = r->delay_ms * 4 > 60000 ? 60000
						      : r->delay_ms * 4;
		st = connect_session(ss, err);
		if (st != ISNAP_ECONN)
			return st;
	}
}

/* The server closed the connection after asking for a wait of `asked`
 * ms, over at `until` (imap_client_throttle_asked): wait that long, not
 * the backoff, and open it again.  ISNAP_ECONN (err untouched) when this
 * is not the case, or no longer: the ordinary reconnection follows. */
static enum isnap_status reconnect_throttled(struct sched_session *ss,
					     struct sched_unit *u, long asked,
					     int64_t until,
					     struct isnap_error *err)
{
	struct sched *s = ss->sched;
	long max = s->o.max_wait_ms > 0 ? s->o.max_wait_ms
					: IMAP_SESSION_MAX_WAIT_MS_DEFAULT;
	struct isnap_error why = *err;
	long left;
	enum isnap_status st;

	if (!asked || u->retry->throttled >= SCHED_THROTTLED_RECONNECTS)
		return ISNAP_ECONN;
	if (asked > max)
		return isnap_fail(err, ISNAP_ESTOPPED,
				  "%.900s; the server asked to wait %ld s, "
				  "more than the %ld s allowed (--max-wait)",
				  why.msg, asked / 1000, max / 1000);
	u->retry->throttled++;
	left = (long)(until - (int64_t)(now_s() * 1000));
	if (left > asked)
		left = asked;
	warn(s, "%s; the server asked to wait %.1f s: reconnecting %s", err->msg,
	     asked / 1000.0, left > 0 ? "after that" : "now (waited already)");
	if (left > 0 && (st = isnap_interrupt_sleep(left, err)))
		return st;
	st = connect_session(ss, err);
	if (st == ISNAP_ECONN)
		*err = why;
	return st;
}

/* Sending failed with commands in flight: the server may have answered
 * some and said why it closed (BYE, after a wait it asks for) before the
 * connection went; read that, for the units and for the reconnection.
 * The answers are dispatched as ever, until the connection's end. */
static void drain(struct sched_session *ss)
{
	struct isnap_error ignored = { 0 };

	while (imap_pipeline_inflight(&ss->pipe) &&
	       !imap_pipeline_pump(&ss->pipe, &ignored))
		;
}

/* The connection was lost (ECONN) or the server broke the protocol
 * (EPROTO) with units going on. */
static void lost(struct sched_session *ss, enum isnap_status st,
		 struct isnap_error *err)
{
	struct sched *s = ss->sched;
	struct sched_unit *blamed = NULL;
	int64_t until = 0;
	long asked;

	if (st == ISNAP_ECONN && ss->client && ss->pipe.send_failed &&
	    imap_pipeline_inflight(&ss->pipe))
		drain(ss);
	asked = ss->client && st == ISNAP_ECONN
			? imap_client_throttle_asked(ss->client, &until)
			: 0;

	imap_pipeline_abandon(&ss->pipe);
	disconnect(ss, false);
	/* Who it happened to: the unit the server broke the protocol under,
	 * or the oldest going on. */
	if (ss->nactive) {
		blamed = ss->active[0];
		if (st == ISNAP_EPROTO)
			for (unsigned i = 0; i < ss->nactive; i++)
				if (ss->active[i]->owner.failed == ISNAP_EPROTO) {
					blamed = ss->active[i];
					break;
				}
	}
	/* The others start again elsewhere, uncounted: it was not theirs. */
	for (unsigned i = ss->nactive; i-- > 0;) {
		struct sched_unit *u = ss->active[i];
		struct isnap_error e2 = *err;
		if (u == blamed)
			continue;
		u->ops->end(u, ss, ISNAP_ECONN, &e2, true);
		requeue(s, u);
	}
	ss->nactive = 0;
	if (blamed && st != ISNAP_ECONN && st != ISNAP_EPROTO) {
		/* Not a connection lost but a reason to stop, given with the
		 * server's goodbye (a quota for today, ISNAP_ESTOPPED): the
		 * unit ends with it, and so does the run. */
		enum isnap_status ust =
			blamed->ops->end(blamed, ss, st, err, false);
		settle(s, blamed, ust, err);
		return;
	}
	if (!blamed) {
		struct isnap_error rerr = { 0 };
		if (!sched_stopped(s) && connect_session(ss, &rerr))
			warn(s, "cannot reconnect: %s", rerr.msg);
		return;
	}
	if (st == ISNAP_EPROTO) {
		struct isnap_error rerr = { 0 };
		enum isnap_status ust =
			blamed->ops->end(blamed, ss, ISNAP_EPROTO, err, false);
		settle(s, blamed, ust, err);
		/* It would break the same way again: the unit failed; the
		 * others go on over one new connection, whatever the
		 * retries say (those are for connections that drop). */
		if (!sched_stopped(s) && connect_session(ss, &rerr))
			warn(s, "cannot reconnect for the other folders: %s",
			     rerr.msg);
		return;
	}
	{
		struct isnap_error e2 = *err;
		blamed->ops->end(blamed, ss, ISNAP_ECONN, &e2, true);
	}
	st = reconnect_throttled(ss, blamed, asked, until, err);
	if (st == ISNAP_ECONN) {
		if (blamed->retry->attempts < s->o.retries)
			warn(s, "%s; reconnecting (retry %u of %u)", err->msg,
			     blamed->retry->attempts + 1, s->o.retries);
		st = reconnect(ss, blamed, err);
	}
	if (st) {
		/* Lost for good: the unit ends with it. */
		enum isnap_status ust;
		blamed->owner.inflight = 0;
		ust = blamed->ops->end(blamed, ss, st, err, false);
		settle(s, blamed, ust, err);
		return;
	}
	requeue(s, blamed);
}

static void session_work(struct sched_session *ss)
{
	struct isnap_error err = { 0 };
	enum isnap_status st;

	for (;;) {
		fill(ss);
		if (!ss->nactive)
			break;
		if (end_finished(ss))
			continue;
		st = imap_pipeline_pump(&ss->pipe, &err);
		if (st) {
			lost(ss, st, &err);
			isnap_error_clear(&err);
			if (!ss->client)
				break;
		}
	}
}

/* Units still queued when the run ends without them. */
static void drop_queue(struct sched *s)
{
	struct sched_unit *u;

	pthread_mutex_lock(&s->lock);
	u = s->qhead;
	s->qhead = s->qtail = NULL;
	s->qweight = 0;
	pthread_mutex_unlock(&s->lock);
	while (u) {
		struct sched_unit *next = u->next;
		u->ops->drop(u);
		u = next;
	}
}

static void detach(struct sched_session *ss, bool run_ok)
{
	struct sched *s = ss->sched;
	struct isnap_error err = { 0 };
	enum isnap_status st;

	disconnect(ss, true);
	if (!ss->attached || !s->o.detach)
		return;
	st = s->o.detach(s->o.ctx, ss, run_ok, &err);
	if (st)
		sched_stop(s, st, &err);
}

static void *session_thread(void *arg)
{
	struct sched_session *ss = arg;
	struct sched *s = ss->sched;
	struct isnap_error err = { 0 };
	enum isnap_status st = connect_session(ss, &err);

	if (st == ISNAP_EINTERRUPTED)
		return NULL;
	if (st) {
		/* The sessions already open go on without this one (a
		 * server may limit connections per account). */
		warn(s, "connection %u of %u: %s; going on with fewer",
		     ss->index + 1, s->o.max_sessions, err.msg);
		return NULL;
	}
	session_work(ss);
	detach(ss, true);
	return NULL;
}

enum isnap_status sched_run(struct sched *s, struct isnap_error *err)
{
	struct sched_session *ss0 = &s->sessions[0];
	enum isnap_status st;

	pthread_mutex_lock(&s->lock);
	s->started = 1;
	pthread_mutex_unlock(&s->lock);
	st = connect_session(ss0, err);
	if (st) {
		sched_stop(s, st, err);
	} else {
		session_work(ss0);
	}
	/* Session 0 may have ended while others still work: they may
	 * queue more, which nobody but them will do. */
	for (unsigned i = 1; i < s->o.max_sessions; i++) {
		struct sched_session *ss = &s->sessions[i];
		if (ss->thread_started) {
			pthread_join(ss->thread, NULL);
			ss->thread_started = false;
		}
	}
	/* Work left that no session did: every session was lost for good. */
	pthread_mutex_lock(&s->lock);
	if (s->qhead && !s->stop) {
		s->stop = true;
		if (!s->fatal && !s->worst)
			s->worst = ISNAP_EFOLDER;
	}
	pthread_mutex_unlock(&s->lock);
	drop_queue(s);
	detach(ss0, !s->fatal);
	if (s->fatal) {
		*err = s->fatal_err;
		return s->fatal;
	}
	return s->worst;
}
