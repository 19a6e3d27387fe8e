/*
 * cli.h — what the imapsnap command's files share: exit statuses, the
 * password sources, and the subcommands.
 */
#ifndef IMAPSNAP_CLI_H
#define IMAPSNAP_CLI_H

#include <stdbool.h>

#include "error.h"

/* Exit statuses, documented in README.md and docs/imapsnap.1. */
enum exit_status {
	EXIT_OK = 0,         /* every planned message saved */
	EXIT_PARTIAL = 1,    /* some messages or folders not saved */
	EXIT_USAGE = 2,      /* bad command line */
	EXIT_AUTH = 3,       /* the server refused the credentials */
	EXIT_CONNECT = 4,    /* could not connect, TLS failure, connection lost */
	EXIT_LOCKED = 5,     /* another run holds the destination */
	EXIT_LOCAL = 6,      /* the destination cannot be written */
	EXIT_INTEGRITY = 7,  /* verify: the backup does not match its manifest */
	EXIT_STOPPED = 8,    /* stopped early: budget or provider quota; what
				was saved is kept, the next run goes on */
};

int exit_status_for(enum isnap_status st);

/* SIGTERM, SIGINT and SIGHUP stop the run, keeping what is complete; a
 * second one exits at once (signals.c).  For the commands that move
 * mail. */
void signals_install(void);

/* Where the password comes from, in this order: --password-file,
 * --password-command, $IMAPSNAP_PASSWORD, a prompt on the terminal. */
struct password_source {
	const char *file;
	const char *command;
};

/* Returns a malloc'd password (the caller wipes and frees it), or NULL with
 * a message in err (ISNAP_EUSAGE). */
char *password_get(const struct password_source *src, const char *user,
		   const char *host_url, struct isnap_error *err);
void password_free(char *password);

int cmd_backup(int argc, char **argv);
int cmd_list(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_verify(int argc, char **argv);
int cmd_restore(int argc, char **argv);
int cmd_migrate(int argc, char **argv);
int cmd_auth(int argc, char **argv);

extern const char *progname;

#endif
