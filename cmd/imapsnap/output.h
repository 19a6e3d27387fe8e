/*
 * output.h — what imapsnap shows while it works and when it is done.
 *
 * Three audiences:
 *  - a person at a terminal (stderr is a tty): a live progress line,
 *    notices, errors and a summary;
 *  - cron or systemd (stderr is not a tty): only errors and the summary,
 *    so that a clean run says one line and a failure says why;
 *  - a script (--json): one JSON document on stdout at the end.
 * -q leaves errors only (and the summary when something failed); -v adds
 * per-folder lines and the protocol trace, with credentials masked.
 *
 * Everything printed that came from the server (folder names, error text)
 * goes through out_safe(), so a hostile folder name cannot drive the
 * terminal.
 */
#ifndef IMAPSNAP_OUTPUT_H
#define IMAPSNAP_OUTPUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "backup.h"

struct json_t;

/* The live line.  All times are CLOCK_MONOTONIC seconds. */
struct progress {
	bool enabled;
	bool shown;           /* a line is on the terminal now */
	char folder[256];
	uint64_t total, done; /* messages of this folder */
	uint64_t bytes;       /* saved in this folder */
	uint64_t run_done, run_bytes; /* saved in this run */
	double folder_start, run_start, last_draw; /* run_start: 0 until the
						       first folder */
	/* Folders begun and not shown now (the sessions fetch several at
	 * once): shown again when a message of theirs arrives. */
	struct progress_other {
		char *name;
		uint64_t total, done, bytes;
		double start;
	} *others;
	size_t n_others, alloc_others;
};

struct output {
	const char *prefix;   /* "imapsnap", or "imapsnap: ACCOUNT" */
	int verbosity;        /* 0 quiet, 1 normal, 2 verbose */
	bool tty;             /* stderr is a terminal */
	bool json;
	bool dry_run;
	struct progress progress;
	/* For --json: the errors and the dry-run plan of this account. */
	struct json_t *errors;
	struct json_t *plan;
	/* The trace is inside an AUTHENTICATE exchange: mask what we send. */
	bool trace_in_auth;
};

/* Set up `o` for an account (prefix may be NULL for "imapsnap"). */
void out_init(struct output *o, int verbosity, bool json, bool dry_run,
	      const char *prefix);
void out_free(struct output *o);

/* The events to hand to backup_run. */
struct backup_events out_events(struct output *o);

/* The protocol trace, for imap_session_opts.trace (ctx: struct output). */
void out_trace(void *ctx, char direction, const char *data, size_t len);

/* Print "PREFIX: error: TEXT" (progress line cleared first). */
void out_error(struct output *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Print "PREFIX: TEXT", whatever the verbosity. */
void out_print(struct output *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Print "PREFIX: warning: TEXT", also when not on a terminal. */
void out_warning(struct output *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Print "PREFIX: TEXT" when the user is to see notices. */
void out_notice(struct output *o, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The end of one backup: the summary line on stderr (or nothing, by the
 * rules above), the dry-run plan on stdout, and, for --json, an object
 * describing the run (the caller owns it; NULL without --json). */
struct json_t *out_summary(struct output *o, const char *account,
			   const char *dest, const struct backup_summary *sum,
			   enum isnap_status st, int exit_status,
			   const struct isnap_error *err);

/* Write `s` to `f`, with control characters shown as '?' and invalid
 * UTF-8 as U+FFFD, so that server text cannot drive the terminal. */
void out_safe(FILE *f, const char *s);
/* The same into a fresh string (for JSON, which must be valid UTF-8).
 * NULL when out of memory. */
char *out_safe_dup(const char *s);
/* Columns `s` takes on a terminal (East Asian wide characters count 2,
 * combining marks 0), after out_safe's replacements. */
size_t out_width(const char *s);
/* "1.2 MiB" */
void out_human_size(uint64_t bytes, char *buf, size_t size);
/* Print the document on stdout, one line, and free it. */
void out_json_print(struct json_t *doc);

/* progress.c */
void progress_init(struct progress *p, bool enabled);
void progress_folder(struct progress *p, const char *folder, uint64_t total);
void progress_message(struct progress *p, uint64_t bytes);
/* A message of `folder`, which may not be the one shown. */
void progress_message_in(struct progress *p, const char *folder,
			 uint64_t bytes);
void progress_clear(struct progress *p);
void progress_free(struct progress *p);
/* The line for the state `p` at time `now`, cut to `width` columns. */
void progress_format(const struct progress *p, double now, size_t width,
		     char *buf, size_t size);
double progress_now(void);

/* trace.c: the text to show for one line the client sent ('>') or the
 * server sent ('<'), with credentials replaced by "***".  `in_auth`
 * carries state from line to line (an AUTHENTICATE exchange). */
void trace_mask_line(char direction, const char *line, size_t len,
		     bool *in_auth, char *out, size_t size);
/* Print what one side sent ("C ..." or "S ...", after `label` unless it
 * is NULL), masked, with the progress line `p` cleared first. */
void trace_print(struct progress *p, const char *label, bool *in_auth,
		 char direction, const char *data, size_t len);

#endif
