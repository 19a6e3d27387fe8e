/*
 * password.c — the password sources.  No option takes the password itself
 * (it would show in ps(1) and shell history); it comes from a file, from a
 * command (a password manager), from the environment, or from a prompt with
 * echo off.
 */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define PASSWORD_MAX 4096

/* Read the first line of `f` into a fresh string, without its line end. */
static char *first_line(FILE *f)
{
	char *buf = calloc(1, PASSWORD_MAX);
	if (!buf)
		return NULL;
	if (!fgets(buf, PASSWORD_MAX, f))
		buf[0] = '\0';
	buf[strcspn(buf, "\r\n")] = '\0';
	return buf;
}

static char *from_file(const char *path, struct isnap_error *err)
{
	FILE *f = fopen(path, "r");
	char *pw;

	if (!f) {
		isnap_fail_errno(err, ISNAP_EUSAGE, "--password-file %s", path);
		return NULL;
	}
	pw = first_line(f);
	fclose(f);
	if (!pw)
		isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	return pw;
}

static char *from_command(const char *cmd, struct isnap_error *err)
{
	FILE *p = popen(cmd, "r");
	char *pw;
	int status;

	if (!p) {
		isnap_fail_errno(err, ISNAP_EUSAGE, "--password-command");
		return NULL;
	}
	pw = first_line(p);
	/* Drain the rest so the command does not die of SIGPIPE. */
	while (fgetc(p) != EOF)
		;
	status = pclose(p);
	if (status != 0) {
		password_free(pw);
		isnap_fail(err, ISNAP_EUSAGE,
			   "--password-command failed (exit status %d)",
			   WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		return NULL;
	}
	return pw;
}

static char *from_terminal(const char *user, const char *url,
			   struct isnap_error *err)
{
	FILE *tty = fopen("/dev/tty", "r+");
	struct termios old, quiet;
	char *pw;

	if (!tty) {
		isnap_fail(err, ISNAP_EUSAGE,
			   "no password: set IMAPSNAP_PASSWORD, or use "
			   "--password-file or --password-command");
		return NULL;
	}
	fprintf(tty, "Password for %s at %s: ", user ? user : "(user)", url);
	fflush(tty);
	tcgetattr(fileno(tty), &old);
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
	pw = first_line(tty);
	tcsetattr(fileno(tty), TCSAFLUSH, &old);
	fputc('\n', tty);
	fclose(tty);
	if (!pw)
		isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	return pw;
}

char *password_get(const struct password_source *src, const char *user,
		   const char *url, struct isnap_error *err)
{
	const char *env = getenv("IMAPSNAP_PASSWORD");

	if (src->file)
		return from_file(src->file, err);
	if (src->command)
		return from_command(src->command, err);
	if (env) {
		char *pw = strdup(env);
		if (!pw)
			isnap_fail(err, ISNAP_ENOMEM, "out of memory");
		return pw;
	}
	if (!isatty(STDIN_FILENO)) {
		isnap_fail(err, ISNAP_EUSAGE,
			   "no password: set IMAPSNAP_PASSWORD, or use "
			   "--password-file or --password-command");
		return NULL;
	}
	return from_terminal(user, url, err);
}

void password_free(char *pw)
{
	if (!pw)
		return;
	explicit_bzero(pw, strlen(pw));
	free(pw);
}
