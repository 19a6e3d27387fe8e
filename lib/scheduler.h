/*
 * scheduler.h — a queue of units of work and up to N sessions executing them.
 *
 * A session is one authenticated IMAP connection with its own thread and
 * its own pipeline (imap/pipeline.h).  A unit is anything that sends
 * commands on a session and reads their answers: what it does is in its
 * ops; the scheduler knows nothing of folders or stores.  It decides only
 * which session runs which unit, when to open another session, and what
 * happens when a connection is lost.
 *
 * Pipelining.  A session keeps several units going at once: while the
 * units it runs have all sent their last command ("sealed"), it starts
 * the next one from the queue, up to a window of commands and bytes in
 * flight, so that one unit's round trips overlap another's transfer.  The
 * pipeline hands every answer to the unit that asked (its imap_owner); a
 * unit ends when its last command is answered, in the order they started.
 *
 * Sessions.  The first opens when the run starts, on the caller's thread.
 * Another opens (on a thread of its own) when work worth a login waits in
 * the queue — units whose weights add up to `spawn_weight`, or any unit
 * while one session is about to be busy with that much (sched_expect) —
 * until there are `max_sessions`.  A session that cannot log in is a warning (servers
 * limit connections per account); the run goes on with fewer, unless it
 * was the first.
 *
 * Connections lost.  When the connection of a session is lost (ISNAP_ECONN)
 * under a unit, the unit is asked to end with `retrying` set and runs again
 * on the same session after a reconnection, up to `retries` times (counted
 * in the unit's struct sched_retry, which units may share) with backoff
 * (0.25 s, 1 s, 4 s, 16 s, then 60 s); failed reconnections count too.  The
 * other units the session had going are queued again without counting.
 * When the server breaks the protocol (ISNAP_EPROTO), the unit it broke
 * under fails, and the session reconnects once for the rest.
 *
 * Errors.  A unit's end returns its outcome for the run: ISNAP_OK,
 * ISNAP_EMSG, ISNAP_EFOLDER (the run goes on, and reports the worst), or
 * any other status, which stops the run: no unit is started any more, the
 * units going on end, and those still queued are dropped.
 *
 * Threads.  ops are called on the thread of the session running the unit;
 * sched_post may be called from any of them.
 */
#ifndef IMAPSNAP_SCHEDULER_H
#define IMAPSNAP_SCHEDULER_H

#include <stdbool.h>
#include <stdint.h>

#include "error.h"
#include "imap/client.h"
#include "imap/pipeline.h"
#include "imap/session.h"

struct sched;
struct sched_session;
struct sched_unit;

/* Reconnection attempts shared by some units (e.g. those of one folder). */
struct sched_retry {
	unsigned attempts;
	long delay_ms;
	/* Reconnections after a wait the server asked for (a throttling
	 * answer naming it, then BYE): not attempts, but bounded too. */
	unsigned throttled;
};

struct sched_unit_ops {
	/* Send the first commands on `s` (sched_send).  A failure fails the
	 * unit; end follows once what it sent is answered. */
	enum isnap_status (*start)(struct sched_unit *u,
				   struct sched_session *s,
				   struct isnap_error *err);
	/* Every command answered, or the connection lost (`st`): see
	 * above.  `st` is ISNAP_OK, the unit's own failure (its callbacks,
	 * or start), or the connection's.  With `retrying` the unit will
	 * start again on a new connection: it keeps only what is left to
	 * do, and the return value is ignored. */
	enum isnap_status (*end)(struct sched_unit *u, struct sched_session *s,
				 enum isnap_status st, struct isnap_error *err,
				 bool retrying);
	/* Never to run (the run stopped): account for it, and free it. */
	void (*drop)(struct sched_unit *u);
	/* After end without `retrying`: free it. */
	void (*free)(struct sched_unit *u);
};

struct sched_unit {
	const struct sched_unit_ops *ops;
	struct imap_owner owner;  /* its answers; the unit sets owner.ops */
	/* Messages it expects to move: for deciding on more sessions. */
	uint64_t weight;
	/* Attempts after lost connections; NULL: the unit's own. */
	struct sched_retry *retry;
	/* Set by the unit: it will send no more commands. */
	bool sealed;
	/* Start only on a session with nothing else in flight: start may
	 * then use sched_session_client synchronously (imap_client_simple
	 * and the like), as long as it leaves nothing in flight. */
	bool exclusive;
	/* Not to start before this CLOCK_MONOTONIC time (seconds; 0: any
	 * time).  A unit that must wait (a server that asked to slow down)
	 * sets it before sched_post. */
	double not_before;

	/* The scheduler's. */
	struct sched_retry own_retry;
	struct sched_unit *next;
	struct sched_session *running_on;
};

struct sched_opts {
	const struct imap_session_opts *session;
	unsigned max_sessions;    /* >= 1 */
	uint64_t spawn_weight;    /* queued weight that opens another */
	unsigned retries;         /* reconnections per struct sched_retry */
	/* A connection the server closed after asking for a wait
	 * (imap_client_throttle_asked) is opened again once that wait is
	 * over, instead of after the backoff, and without counting in
	 * `retries`: up to SCHED_THROTTLED_RECONNECTS times per struct
	 * sched_retry, for waits up to max_wait_ms (0: the session's
	 * default); a longer one stops the run (ISNAP_ESTOPPED). */
	long max_wait_ms;
	/* Units one session keeps going at once (1: one after another). */
	unsigned max_units;
	/* A session starts no further unit while the weights of those it
	 * runs add up to this much (0: no bound): work waits in the queue
	 * for the sessions opening meanwhile rather than piling up in one. */
	uint64_t window_weight;
	void *ctx;
	/* A session is logged in for the first time (index 0 is the first
	 * session): set it up (e.g. its store, sched_session_set_data).
	 * A failure ends the session (and, for the first, the run). */
	enum isnap_status (*attach)(void *ctx, struct sched_session *s,
				    struct isnap_error *err);
	/* The session is over: tear down what attach made (not for a
	 * session whose attach failed).  A failure stops the run. */
	enum isnap_status (*detach)(void *ctx, struct sched_session *s,
				    bool run_ok, struct isnap_error *err);
	/* Something to tell the user (may be NULL). */
	void (*warning)(void *ctx, const char *text);
};

#define SCHED_THROTTLED_RECONNECTS 5

/* A scheduler with `o` (copied; what it points to must outlive it). */
enum isnap_status sched_new(const struct sched_opts *o, struct sched **out,
			    struct isnap_error *err);
void sched_free(struct sched *s);

/* Queue `u` (at the front with `urgent`); may open another session.
 * Any thread. */
void sched_post(struct sched *s, struct sched_unit *u, bool urgent);

/* Run until no unit is queued or going on, or the run stops: the first
 * session on this thread, the others on their own.  Returns the first
 * stopping status (with its text in err), else the worst of ISNAP_EMSG
 * and ISNAP_EFOLDER the units ended with, else ISNAP_OK. */
enum isnap_status sched_run(struct sched *s, struct isnap_error *err);

/* Stop the run with `st` (units going on end, nothing more starts).
 * The first stop's status is the one reported.  Any thread. */
void sched_stop(struct sched *s, enum isnap_status st,
		const struct isnap_error *err);
bool sched_stopped(struct sched *s);

/* Sessions logged in so far (for the record). */
unsigned sched_sessions_opened(struct sched *s);

/* --- for units, on their session's thread ----------------------------- */

/* Send `command` for `u` on its session; the answer comes to
 * u->owner.ops->tagged with `cookie`. */
enum isnap_status sched_send(struct sched_session *s, struct sched_unit *u,
			     uintptr_t cookie, const char *command,
			     struct isnap_error *err);

/* The unit running on `s` is about to move `weight` messages: if units
 * are waiting meanwhile, this may open another session for them. */
void sched_expect(struct sched_session *s, uint64_t weight);

/* No unit started on u's session after u: nothing was sent there since
 * u's own commands.  A sealed unit may then send again (and is unsealed
 * until it is done sending): what it selected is still selected. */
bool sched_unit_is_last(const struct sched_unit *u);

struct imap_client *sched_session_client(struct sched_session *s);
struct imap_pipeline *sched_session_pipe(struct sched_session *s);
unsigned sched_session_index(const struct sched_session *s);
void *sched_session_data(const struct sched_session *s);
void sched_session_set_data(struct sched_session *s, void *data);
struct sched *sched_of(const struct sched_session *s);

#endif
