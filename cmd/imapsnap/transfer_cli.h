/*
 * transfer_cli.h — what restore and migrate share on the command line:
 * their common options, where a target account's restore state lives,
 * and how a transfer's events and summary are printed (the style of
 * output.h: errors and one summary line on stderr, folders with -v, one
 * JSON object with --json).
 *
 *   static const struct option opts[] = { ..., TRANSFER_OPTIONS, { 0 } };
 *   while ((c = getopt_long(..., "nqvh", opts, NULL)) != -1)
 *       if (transfer_option(&tc, c, optarg)) continue;
 *       ... account_option, the command's own options, -h
 *   rc = transfer_setup(&tc, &acct, &target, "Restored", &o.common, &dir);
 */
#ifndef IMAPSNAP_TRANSFER_CLI_H
#define IMAPSNAP_TRANSFER_CLI_H

#include <stdbool.h>

#include "account.h"
#include "error.h"
#include "imap/session.h"
#include "output.h"
#include "restore.h"

struct restore_summary;
struct transfer_out;

/* The protocol trace of one connection (-v). */
struct transfer_trace {
	struct transfer_out *out;
	const char *label;  /* "source", "destination", or NULL */
	bool in_auth;
};

struct transfer_out {
	int verbosity;  /* 0 quiet, 1 normal, 2 verbose */
	bool json;
	bool dry_run;
	unsigned long failures_shown;
	/* On a terminal (and not -q, --json): one live line for the whole
	 * run, messages appended of those planned so far. */
	struct progress progress;
	struct transfer_trace trace[2];
	/* --json: where each source folder went ({from, to, role,
	 * by_role}); NULL until the first. */
	struct json_t *mapping;
};

/* A command's further options start at OPT_TRANSFER_NEXT. */
enum {
	OPT_JSON = OPT_COMMAND_FIRST, OPT_INTO, OPT_STATE_DIR,
	OPT_NO_SPECIAL_USE,
	OPT_TRANSFER_NEXT,
};

/* --include and --exclude are account_option's (OPT_INCLUDE, ...), and
 * -h is the command's: it prints its own usage. */
#define TRANSFER_OPTIONS                                                  \
	{ "include", required_argument, NULL, OPT_INCLUDE },               \
	{ "exclude", required_argument, NULL, OPT_EXCLUDE },               \
	{ "into", required_argument, NULL, OPT_INTO },                     \
	{ "state-dir", required_argument, NULL, OPT_STATE_DIR },           \
	{ "retries", required_argument, NULL, OPT_RETRIES },               \
	{ "no-special-use", no_argument, NULL, OPT_NO_SPECIAL_USE },       \
	{ "dry-run", no_argument, NULL, 'n' },                             \
	{ "json", no_argument, NULL, OPT_JSON },                           \
	{ "quiet", no_argument, NULL, 'q' },                               \
	{ "verbose", no_argument, NULL, 'v' },                             \
	{ "help", no_argument, NULL, 'h' }

struct transfer_cli {
	struct transfer_out out;
	const char *into;        /* --into */
	const char *state_base;  /* --state-dir */
	bool keep_roles;         /* --no-special-use */
};

#define TRANSFER_CLI_INIT { .out = { .verbosity = 1 } }

/* 1 when `c` is -n, -q, -v, --json, --into, --state-dir or
 * --no-special-use (now applied to `tc`), else 0. */
int transfer_option(struct transfer_cli *tc, int c, const char *arg);

/* After the options: check --into (`example` is a folder name for the
 * message), find the state directory of the `target` account, and fill
 * `common` with it, --into, -n and the --include/--exclude of `sel`
 * (which must outlive `common`).  0 with *state_dir malloc'd (the
 * caller frees it, after the run), or an exit status after printing
 * why. */
int transfer_setup(const struct transfer_cli *tc, const struct account *sel,
		   const struct imap_session_opts *target, const char *example,
		   struct restore_common_opts *common, char **state_dir);

/* BASE/<server>/<user> (BASE: --state-dir, else
 * $XDG_STATE_HOME/imapsnap/restore, else ~/.local/state/imapsnap/restore),
 * each part escaped so that it is one safe path component.  <server> is
 * the same for the usual spellings of one server (docs/restore.md):
 * "localhost" for localhost and loopback addresses, the host in lower
 * case, ":port" only for a port other than 143 and 993.  Malloc'd;
 * NULL with err set when no base can be found (ISNAP_EUSAGE). */
char *transfer_state_dir(const char *base, const struct imap_session_opts *s,
			 struct isnap_error *err);

/* The events to hand to restore and migrate; `what` ("restore",
 * "migrate") names the progress line.  Sets up the progress line. */
struct restore_events transfer_events(struct transfer_out *o,
				      const char *what);

/* Have a login the server refuses as throttled told as a warning; with
 * -v, have the session `s` traced as connection `which` (0 or 1), its
 * lines after `label` (NULL: none). */
void transfer_trace(struct transfer_out *o, unsigned which, const char *label,
		    struct imap_session_opts *s);

/* Print the summary (or the JSON object) of a restore (`rs` non-NULL) or
 * a migrate. */
void transfer_summary(struct transfer_out *o, const char *what,
		      const struct restore_stats *t,
		      const struct restore_summary *rs, enum isnap_status st,
		      int rc, const struct isnap_error *err);

#endif
