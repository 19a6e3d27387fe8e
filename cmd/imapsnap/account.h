/*
 * account.h — one IMAP account as the subcommands see it, whether it came
 * from the command line (backup, list) or from the config file (run):
 * where it is, how to log in, where its backup goes and what to select.
 *
 * The options that say so are the same for backup and list; their table
 * and parser are here so that both spell them alike:
 *
 *   static const struct option opts[] = { ACCOUNT_OPTIONS, ..., { 0 } };
 *   while ((c = getopt_long(...)) != -1)
 *       switch (account_option(&acct, c, optarg)) {
 *       case 1: continue;            // handled
 *       case -1: return EXIT_USAGE;  // message printed
 *       }  ... then the command's own options
 */
#ifndef IMAPSNAP_ACCOUNT_H
#define IMAPSNAP_ACCOUNT_H

#include <getopt.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backup.h"
#include "cli.h"
#include "oauth2_cli.h"
#include "output.h"

#define ACCOUNT_MAX_GLOBS 256

struct account {
	const char *name;             /* config section; NULL from the CLI */
	struct imap_session_opts session;
	struct password_source pw;    /* --password-file / -command */
	const char *password_env;     /* config: a variable's name */
	const char *password;         /* config: inline */
	const char *dest;
	const char *format;
	const char *include[ACCOUNT_MAX_GLOBS];
	size_t n_include;
	const char *exclude[ACCOUNT_MAX_GLOBS];
	size_t n_exclude;
	int64_t since, before;
	unsigned retries;             /* reconnections per folder */
	unsigned connections;         /* sessions at once; 0: default */
	const char *tsa_url;          /* --tsa: RFC 3161 timestamp of the run */
	const char *tsa_cacert;       /* --tsa-cacert: the TSA's CA */
	uint64_t max_messages, max_bytes; /* per run; 0: no limit */
	long max_wait_sec;            /* longest throttling wait; 0: default */
	unsigned commit_ms;           /* commit by time; 0: default */
	const char *help_command;     /* for "Run 'imapsnap help X'" */
	struct oauth2_cli oauth2;     /* built-in OAuth2 (--oauth2) */
	char auth_hint[512];          /* "imapsnap auth ..." for messages */
};

enum {
	OPT_USER = 256, OPT_PWFILE, OPT_PWCMD, OPT_OAUTH2, OPT_TLS, OPT_CACERT,
	OPT_INSECURE, OPT_TIMEOUT, OPT_FORMAT, OPT_INCLUDE, OPT_EXCLUDE,
	OPT_SINCE, OPT_BEFORE, OPT_RETRIES, OPT_CONNECTIONS, OPT_TSA,
	OPT_TSA_CACERT, OPT_MAX_MESSAGES, OPT_MAX_BYTES, OPT_MAX_WAIT,
	OPT_COMMIT_INTERVAL,
	OPT_COMMAND_FIRST = 300, /* the commands' own options from here */
};

/* How to reach and log in to the server. */
#define ACCOUNT_OPTIONS                                                   \
	{ "user", required_argument, NULL, OPT_USER },                     \
	{ "password-file", required_argument, NULL, OPT_PWFILE },          \
	{ "password-command", required_argument, NULL, OPT_PWCMD },        \
	{ "oauth2-token-command", required_argument, NULL, OPT_OAUTH2 },   \
	{ "tls", required_argument, NULL, OPT_TLS },                       \
	{ "cacert", required_argument, NULL, OPT_CACERT },                 \
	{ "insecure", no_argument, NULL, OPT_INSECURE },                   \
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },               \
	OAUTH2_OPTIONS
/* What to back up, and how hard to try. */
#define BACKUP_OPTIONS                                                    \
	{ "format", required_argument, NULL, OPT_FORMAT },                 \
	{ "include", required_argument, NULL, OPT_INCLUDE },               \
	{ "exclude", required_argument, NULL, OPT_EXCLUDE },               \
	{ "since", required_argument, NULL, OPT_SINCE },                   \
	{ "before", required_argument, NULL, OPT_BEFORE },                 \
	{ "retries", required_argument, NULL, OPT_RETRIES },               \
	{ "connections", required_argument, NULL, OPT_CONNECTIONS },       \
	{ "tsa", required_argument, NULL, OPT_TSA },                       \
	{ "tsa-cacert", required_argument, NULL, OPT_TSA_CACERT },         \
	{ "max-messages", required_argument, NULL, OPT_MAX_MESSAGES },     \
	{ "max-bytes", required_argument, NULL, OPT_MAX_BYTES },           \
	{ "max-wait", required_argument, NULL, OPT_MAX_WAIT },             \
	{ "commit-interval", required_argument, NULL, OPT_COMMIT_INTERVAL }

/* Defaults; `help_command` names the command for usage messages. */
void account_init(struct account *a, const char *help_command);

/* 1 when `c` was one of the options above (applied to `a`), 0 when it is
 * not, -1 after printing why its argument is wrong. */
int account_option(struct account *a, int c, const char *arg);

/* Checks that need every option: the URL's form, one credential source,
 * since before before.  0, or EXIT_USAGE after printing why. */
int account_check(struct account *a);

/* The password, when one is needed (*password stays NULL with an OAuth2
 * token command or built-in OAuth2).  Free it with password_free. */
enum isnap_status account_password(const struct account *a, char **password,
				   struct isnap_error *err);

/* Print "imapsnap: MESSAGE\nRun 'imapsnap help CMD' for the options." */
int account_usage_error(const struct account *a, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Back up `a` with output `o` (dry run as o->dry_run says).  Returns the
 * exit status; *json receives the --json object (NULL without --json),
 * and *sum, when not NULL, the run's summary (for --metrics). */
int account_backup(struct account *a, struct output *o,
		   struct json_t **json, struct backup_summary *sum);

#endif
