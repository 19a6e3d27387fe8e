/*
 * transfer_cli.h — what restore and migrate share on the command line:
 * where a target account's restore state lives, and how a transfer's
 * events and summary are printed (the style of output.h: errors and one
 * summary line on stderr, folders with -v, one JSON object with --json).
 */
#ifndef IMAPSNAP_TRANSFER_CLI_H
#define IMAPSNAP_TRANSFER_CLI_H

#include <stdbool.h>

#include "error.h"
#include "imap/session.h"
#include "restore.h"

struct restore_summary;

struct transfer_out {
	int verbosity;  /* 0 quiet, 1 normal, 2 verbose */
	bool json;
	bool dry_run;
	unsigned long failures_shown;
};

/* BASE/<host[:port]>/<user> (BASE: --state-dir, else
 * $XDG_STATE_HOME/imapsnap/restore, else ~/.local/state/imapsnap/restore),
 * each part escaped so that it is one safe path component.  Malloc'd;
 * NULL with err set when no base can be found (ISNAP_EUSAGE). */
char *transfer_state_dir(const char *base, const struct imap_session_opts *s,
			 struct isnap_error *err);

struct restore_events transfer_events(struct transfer_out *o);

/* Print the summary (or the JSON object) of a restore (`rs` non-NULL) or
 * a migrate. */
void transfer_summary(struct transfer_out *o, const char *what,
		      const struct restore_stats *t,
		      const struct restore_summary *rs, enum isnap_status st,
		      int rc, const struct isnap_error *err);

#endif
