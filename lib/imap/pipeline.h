/*
 * pipeline.h — several commands in flight on one connection, each sent on
 * behalf of an owner that gets its answers.  RFC 3501 §5.5 (multiple
 * commands in progress) and §7 (responses).
 *
 * A server answers in order where order matters: the untagged responses
 * of a command come before its tagged completion, and a command that
 * changes the selected mailbox (EXAMINE) is not executed before the
 * commands sent ahead of it have completed.  So every untagged response
 * and every literal goes to the owner of the OLDEST command still in
 * flight, and a tagged response to the owner whose command it completes.
 * An owner that sends commands for one mailbox (EXAMINE, then what runs
 * in it) therefore sees exactly that mailbox's responses, even when
 * commands of other owners, for other mailboxes, are queued behind it.
 * The server may interleave the responses of one owner's commands (Dovecot
 * does, for UID FETCH): an owner tells them apart itself.
 *
 * An owner whose callback fails (any status but ISNAP_ECONN and
 * ISNAP_EPROTO, which mean the connection cannot go on) is FAILED: its
 * status and message stay in the owner, and everything still to come for
 * its commands, literals included, is read and thrown away.  The
 * connection stays usable for the other owners.
 *
 * Use (all on one thread):
 *
 *   struct imap_pipeline p;
 *   imap_pipeline_init(&p, client);
 *   imap_pipeline_send(&p, &owner, 1, "EXAMINE INBOX", err);
 *   while (owner.inflight)
 *       if (imap_pipeline_pump(&p, err)) ...;   // connection lost
 *   imap_pipeline_release(&p);
 *
 * The client must not be used with imap_client_simple() while commands
 * are in flight here.
 */
#ifndef IMAPSNAP_IMAP_PIPELINE_H
#define IMAPSNAP_IMAP_PIPELINE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "error.h"
#include "imap/client.h"

struct imap_owner;

struct imap_owner_ops {
	/* An untagged response while the oldest command in flight is ours. */
	enum isnap_status (*untagged)(struct imap_owner *o,
				      const struct imap_response *r,
				      struct isnap_error *err);
	/* A literal while the oldest command is ours, as in
	 * struct imap_handler; NULL literal_begin: collect it inline. */
	enum isnap_status (*literal_begin)(struct imap_owner *o,
					   const struct imap_response *partial,
					   uint64_t size, bool *stream,
					   struct isnap_error *err);
	enum isnap_status (*literal_data)(struct imap_owner *o,
					  const char *data, size_t len,
					  struct isnap_error *err);
	enum isnap_status (*literal_end)(struct imap_owner *o,
					 struct isnap_error *err);
	/* The tagged answer of the command sent with `cookie`. */
	enum isnap_status (*tagged)(struct imap_owner *o, uintptr_t cookie,
				    const struct imap_response *r,
				    struct isnap_error *err);
};

/* Embed one in whatever sends commands.  Zero it, set ops. */
struct imap_owner {
	const struct imap_owner_ops *ops;
	/* Kept by the pipeline: */
	unsigned inflight;          /* commands sent and not answered */
	enum isnap_status failed;   /* ISNAP_OK, or why it failed */
	struct isnap_error err;     /* the failure's text */
};

struct imap_pipeline {
	struct imap_client *client;
	struct imap_pending *q; /* in the order sent */
	size_t head, n, alloc;
	size_t bytes;           /* of the command lines in flight */
	bool streaming_void;    /* a literal nobody wants is passing */
	bool answered;          /* a tagged answer arrived in this pump */
	/* A command could not be sent (the connection is gone; what the
	 * server sent before may still be read). */
	bool send_failed;
};

void imap_pipeline_init(struct imap_pipeline *p, struct imap_client *c);
void imap_pipeline_release(struct imap_pipeline *p);

/* Send `command` (one line, without tag or CRLF) for `o`; its tagged
 * answer reaches o->ops->tagged with `cookie`.  ISNAP_OK, ISNAP_ECONN
 * or ISNAP_ENOMEM. */
enum isnap_status imap_pipeline_send(struct imap_pipeline *p,
				     struct imap_owner *o, uintptr_t cookie,
				     const char *command,
				     struct isnap_error *err);

/* The tag of the command sent last (e.g. to recognise an ESEARCH answer
 * by its TAG correlator, RFC 4731). */
const char *imap_pipeline_last_tag(const struct imap_pipeline *p);

/* Commands in flight, and the bytes of their lines. */
size_t imap_pipeline_inflight(const struct imap_pipeline *p);
size_t imap_pipeline_bytes(const struct imap_pipeline *p);

/* Read and dispatch until at least one tagged answer has arrived (or,
 * with nothing in flight, return at once).  ISNAP_OK, or ISNAP_ECONN /
 * ISNAP_EPROTO / ISNAP_ENOMEM: the connection is unusable, and the owners
 * of the commands still in flight will get no answer. */
enum isnap_status imap_pipeline_pump(struct imap_pipeline *p,
				     struct isnap_error *err);

/* Forget every command in flight (after the connection was lost): each
 * owner's inflight drops to 0.  Use before imap_pipeline_release or
 * before reusing the pipeline on a new client. */
void imap_pipeline_abandon(struct imap_pipeline *p);

/* Mark `o` failed with `st` and `err`'s text, as if a callback had
 * returned it: what is still to come for its commands is thrown away. */
void imap_owner_fail(struct imap_owner *o, enum isnap_status st,
		     const struct isnap_error *err);

#endif
