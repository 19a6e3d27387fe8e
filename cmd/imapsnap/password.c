/*
 * password.c — the password sources.  No option takes the password itself
 * (it would show in ps(1) and shell history); it comes from a file, from a
 * command (a password manager), from the environment, or from a prompt with
 * echo off.
 */
#include "cli.h"

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#include "interrupt.h"

#define PASSWORD_MAX 4096

/* Read the first line of `f` into a fresh string, without its line end.
 * Each caller gives `f` a buffer of its own right after opening it
 * (setvbuf), and wipes it after fclose: stdio's own would be freed with
 * the password still in it. */
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

/* A password file that others can read: worth saying, not refusing (it
 * may be meant to be shared with a group, or be a pipe). */
static void warn_if_readable(FILE *f, const char *path)
{
	struct stat st;

	if (fstat(fileno(f), &st) == 0 && S_ISREG(st.st_mode) &&
	    (st.st_mode & (S_IRGRP | S_IROTH)))
		fprintf(stderr,
			"%s: warning: the password file %s is readable by "
			"%s; run chmod 600 %s\n",
			progname, path,
			(st.st_mode & S_IRGRP) && (st.st_mode & S_IROTH)
				? "its group and others"
			: (st.st_mode & S_IRGRP) ? "its group"
						 : "others",
			path);
}

static char *from_file(const char *path, struct isnap_error *err)
{
	char iobuf[PASSWORD_MAX];
	FILE *f = fopen(path, "re");
	char *pw;

	if (!f) {
		isnap_fail_errno(err, ISNAP_EUSAGE, "--password-file %s", path);
		return NULL;
	}
	setvbuf(f, iobuf, _IOFBF, sizeof iobuf);
	warn_if_readable(f, path);
	pw = first_line(f);
	fclose(f);
	explicit_bzero(iobuf, sizeof iobuf);
	if (!pw)
		isnap_fail(err, ISNAP_ENOMEM, "out of memory");
	return pw;
}

static char *from_command(const char *cmd, struct isnap_error *err)
{
	char iobuf[PASSWORD_MAX];
	FILE *p = popen(cmd, "r");
	char *pw;
	int status;

	if (!p) {
		isnap_fail_errno(err, ISNAP_EUSAGE, "--password-command");
		return NULL;
	}
	setvbuf(p, iobuf, _IOFBF, sizeof iobuf);
	pw = first_line(p);
	/* Drain the rest so the command does not die of SIGPIPE. */
	while (fgetc(p) != EOF)
		;
	status = pclose(p);
	explicit_bzero(iobuf, sizeof iobuf);
	if (status != 0) {
		password_free(pw);
		isnap_fail(err, ISNAP_EUSAGE,
			   "--password-command failed (exit status %d)",
			   WIFEXITED(status) ? WEXITSTATUS(status) : -1);
		return NULL;
	}
	return pw;
}

/* Wait for the line typed at `tty`; false when a signal came first (a
 * Ctrl-C at the prompt ends it, and the terminal gets its echo back). */
static bool typed(FILE *tty)
{
	struct pollfd p[2] = {
		{ .fd = fileno(tty), .events = POLLIN },
		{ .fd = isnap_interrupt_fd(), .events = POLLIN },
	};

	while (!isnap_interrupted())
		if (poll(p, 2, -1) > 0 && (p[0].revents & (POLLIN | POLLHUP)))
			return !isnap_interrupted();
	return false;
}

static char *from_terminal(const char *user, const char *url,
			   struct isnap_error *err)
{
	char iobuf[PASSWORD_MAX];
	FILE *tty = fopen("/dev/tty", "r+");
	struct termios old, quiet;
	bool interrupted;
	char *pw;

	if (!tty) {
		isnap_fail(err, ISNAP_EUSAGE,
			   "no password: set IMAPSNAP_PASSWORD, or use "
			   "--password-file or --password-command");
		return NULL;
	}
	/* Line buffered, as a terminal is, but in a buffer we wipe. */
	setvbuf(tty, iobuf, _IOLBF, sizeof iobuf);
	fprintf(tty, "Password for %s at %s: ", user ? user : "(user)", url);
	fflush(tty);
	tcgetattr(fileno(tty), &old);
	quiet = old;
	quiet.c_lflag &= ~(tcflag_t)ECHO;
	tcsetattr(fileno(tty), TCSAFLUSH, &quiet);
	interrupted = !typed(tty);
	pw = interrupted ? NULL : first_line(tty);
	tcsetattr(fileno(tty), TCSAFLUSH, &old);
	fputc('\n', tty);
	fclose(tty);
	explicit_bzero(iobuf, sizeof iobuf);
	if (interrupted)
		isnap_interrupt_fail(err);
	else if (!pw)
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
