/*
 * account.c — the options every account takes, their checks, the
 * password, and one backup run with its output (see account.h).
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "account.h"
#include "beneath.h"
#include "config.h"
#include "forensic.h"
#include "manifest_chain.h"
#include "tsa.h"

void account_init(struct account *a, const char *help_command)
{
	memset(a, 0, sizeof *a);
	a->session.timeout_sec = 60;
	a->retries = 3;
	a->help_command = help_command;
}

int account_usage_error(const struct account *a, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "%s: ", progname);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\nRun 'imapsnap help %s' for the options.\n",
		a->help_command ? a->help_command : "");
	return EXIT_USAGE;
}

static int add_glob(struct account *a, const char **v, size_t *n,
		    const char *opt, const char *glob)
{
	if (!*glob)
		return account_usage_error(a, "--%s: empty glob", opt), -1;
	if (*n == ACCOUNT_MAX_GLOBS)
		return account_usage_error(a, "--%s: more than %d globs", opt,
					   ACCOUNT_MAX_GLOBS),
		       -1;
	v[(*n)++] = glob;
	return 1;
}

/* "500", "2500M", "2G": a positive count, with a power-of-1024 suffix
 * when `sizes`. */
static bool parse_count(const char *s, bool sizes, uint64_t *out)
{
	char *end;
	unsigned long long v;
	unsigned shift = 0;

	if (!*s || *s == '-' || *s == '+')
		return false;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || end == s || v == 0)
		return false;
	if (sizes && *end) {
		const char *units = "KMGT", *u = strchr(units, *end);
		if (!u || end[1])
			return false;
		shift = 10 * (unsigned)(u - units + 1);
		end++;
	}
	if (*end || (shift && v > (UINT64_MAX >> shift)))
		return false;
	*out = (uint64_t)v << shift;
	return true;
}

static int date_option(struct account *a, int64_t *out, const char *opt,
		       const char *arg)
{
	if (!config_parse_date(arg, out))
		return account_usage_error(a, "--%s %s: expected a date, "
					   "YYYY-MM-DD", opt, arg),
		       -1;
	return 1;
}

int account_option(struct account *a, int c, const char *arg)
{
	switch (c) {
	case OPT_USER: a->session.user = arg; return 1;
	case OPT_PWFILE: a->pw.file = arg; return 1;
	case OPT_PWCMD: a->pw.command = arg; return 1;
	case OPT_OAUTH2: a->session.oauth2_token_command = arg; return 1;
	case OPT_CACERT: a->session.cacert = arg; return 1;
	case OPT_INSECURE: a->session.insecure = true; return 1;
	case OPT_FORMAT: a->format = arg; return 1;
	case OPT_TLS:
		if (!strcmp(arg, "none"))
			a->session.tls = IMAP_TLS_NONE;
		else if (!strcmp(arg, "starttls") || !strcmp(arg, "required"))
			a->session.tls = IMAP_TLS_REQUIRED;
		else
			return account_usage_error(a, "--tls %s: expected none "
						   "or starttls", arg),
			       -1;
		return 1;
	case OPT_TIMEOUT: {
		char *end;
		long t;
		errno = 0;
		t = strtol(arg, &end, 10);
		if (errno || end == arg || *end || t <= 0 || t > 86400)
			return account_usage_error(a, "--timeout %s: expected "
						   "seconds, 1 to 86400", arg),
			       -1;
		a->session.timeout_sec = t;
		return 1;
	}
	case OPT_RETRIES: {
		char *end;
		long n;
		errno = 0;
		n = strtol(arg, &end, 10);
		if (errno || end == arg || *end || n < 0 || n > 100)
			return account_usage_error(a, "--retries %s: expected a "
						   "number, 0 to 100", arg),
			       -1;
		a->retries = (unsigned)n;
		return 1;
	}
	case OPT_CONNECTIONS: {
		char *end;
		long n;
		errno = 0;
		n = strtol(arg, &end, 10);
		if (errno || end == arg || *end || n < 1 || n > 64)
			return account_usage_error(a, "--connections %s: "
						   "expected a number, 1 to "
						   "64", arg),
			       -1;
		a->connections = (unsigned)n;
		return 1;
	}
	case OPT_TSA:
		if (strncmp(arg, "http://", 7) && strncmp(arg, "https://", 8))
			return account_usage_error(a, "--tsa %s: expected an "
						   "http:// or https:// URL",
						   arg),
			       -1;
		a->tsa_url = arg;
		return 1;
	case OPT_TSA_CACERT:
		a->tsa_cacert = arg;
		return 1;
	case OPT_MAX_MESSAGES:
	case OPT_MAX_BYTES: {
		const char *opt = c == OPT_MAX_BYTES ? "max-bytes" : "max-messages";
		uint64_t v;
		if (!parse_count(arg, c == OPT_MAX_BYTES, &v))
			return account_usage_error(a, "--%s %s: expected a "
						   "number%s", opt, arg,
						   c == OPT_MAX_BYTES
							   ? ", with K, M, G or "
							     "T for powers of "
							     "1024"
							   : ""),
			       -1;
		*(c == OPT_MAX_BYTES ? &a->max_bytes : &a->max_messages) = v;
		return 1;
	}
	case OPT_MAX_WAIT: {
		char *end;
		long n;
		errno = 0;
		n = strtol(arg, &end, 10);
		if (errno || end == arg || *end || n < 1 || n > 86400)
			return account_usage_error(a, "--max-wait %s: expected "
						   "seconds, 1 to 86400", arg),
			       -1;
		a->max_wait_sec = n;
		return 1;
	}
	case OPT_COMMIT_INTERVAL: {
		/* Seconds, with a fraction: what a SIGKILL may lose at most
		 * (docs/reliability.md). */
		char *end;
		double v;
		errno = 0;
		v = strtod(arg, &end);
		if (errno || end == arg || *end || !(v >= 0.1 && v <= 3600))
			return account_usage_error(a, "--commit-interval %s: "
						   "expected seconds, 0.1 to "
						   "3600", arg),
			       -1;
		a->commit_ms = (unsigned)(v * 1000 + 0.5);
		return 1;
	}
	case OPT_INCLUDE:
		return add_glob(a, a->include, &a->n_include, "include", arg);
	case OPT_EXCLUDE:
		return add_glob(a, a->exclude, &a->n_exclude, "exclude", arg);
	case OPT_SINCE: return date_option(a, &a->since, "since", arg);
	case OPT_BEFORE: return date_option(a, &a->before, "before", arg);
	}
	return oauth2_cli_option(&a->oauth2, c, arg);
}

/* The records beside the run's manifest (forensic.h), and with --tsa its
 * RFC 3161 timestamp (tsa.h).  0, or the exit status of what failed,
 * after saying so: the user asked for a timestamp, and an examiner
 * expects the records. */
static int write_records(const struct account *a, struct output *o,
			 const struct backup_summary *sum)
{
	struct isnap_error err = { 0 };
	struct forensic_info info = { .run_sha256 = sum->manifest_sha256 };
	unsigned char sha[32];
	char zone[64] = "", *tsr = NULL;
	const char *slash = strrchr(sum->manifest_file, '/');
	const char *run = slash ? slash + 1 : sum->manifest_file;
	time_t now = time(NULL);
	struct tm tm;
	int rc = 0, top, mdir;

	/* The records go beside the run file, DEST/.imapsnap/manifest,
	 * reached without following a link (beneath.h) as the run file
	 * was. */
	top = beneath_open_top(a->dest, false);
	mdir = top < 0 ? -1
		       : beneath_open_dir(top, ".imapsnap/" MANIFEST_DIR,
					  false);
	if (mdir < 0) {
		out_error(o, "the records of %s: %s", sum->manifest_file,
			  strerror(errno));
		if (top >= 0)
			close(top);
		return EXIT_LOCAL;
	}
	close(top);
	if (localtime_r(&now, &tm))
		strftime(zone, sizeof zone, "%Z, UTC%z", &tm);
	info.time_zone = zone;
	if (a->tsa_url) {
		for (int i = 0; i < 32; i++)
			sscanf(sum->manifest_sha256 + 2 * i, "%2hhx", &sha[i]);
		tsr = forensic_record_path(run, ".tsr");
		if (!tsr) {
			out_error(o, "out of memory");
			close(mdir);
			return EXIT_LOCAL;
		}
		if (tsa_request(a->tsa_url, a->tsa_cacert, sha, mdir, tsr,
				&err)) {
			out_error(o, "timestamp of %s: %s", sum->manifest_file,
				  err.msg);
			rc = exit_status_for(err.status);
			free(tsr);
			tsr = NULL;
		} else {
			info.timestamp = tsr;
		}
	}
	isnap_error_clear(&err);
	if (forensic_write(mdir, run, &info, &err)) {
		out_error(o, "the records of %s: %s", sum->manifest_file,
			  err.msg);
		if (!rc)
			rc = exit_status_for(err.status);
	}
	free(tsr);
	close(mdir);
	return rc;
}

/* Refuse URLs that carry a password or a path: the first would leak
 * through ps(1), the second means something imapsnap does not do. */
static int check_url(const struct account *a, const char *url)
{
	const char *rest, *slash, *at;

	if (!strncmp(url, "imap://", 7))
		rest = url + 7;
	else if (!strncmp(url, "imaps://", 8))
		rest = url + 8;
	else
		return account_usage_error(a, "%s: the URL must start with "
					   "imap:// or imaps://", url);
	slash = strchr(rest, '/');
	at = strchr(rest, '@');
	if (at && (!slash || at < slash) &&
	    memchr(rest, ':', (size_t)(at - rest)))
		return account_usage_error(
			a, "the URL must not contain a password; use "
			   "--password-file, --password-command or "
			   "IMAPSNAP_PASSWORD");
	if (slash && slash[1])
		return account_usage_error(a, "%s: give the server only (no "
					   "folder path)", url);
	if (!*rest || rest == at)
		return account_usage_error(a, "%s: no host in the URL", url);
	return 0;
}

int account_check(struct account *a)
{
	bool oauth2 = oauth2_cli_enabled(&a->oauth2);
	int sources = !!a->pw.file + !!a->pw.command + !!a->password_env +
		      !!a->password + !!a->session.oauth2_token_command +
		      oauth2;
	struct isnap_error err = { 0 };
	int rc = check_url(a, a->session.url);

	if (rc)
		return rc;
	if (sources > 1)
		return account_usage_error(
			a, "give one of --password-file, --password-command, "
			   "--oauth2-token-command and --oauth2");
	if (oauth2 && oauth2_cli_check(&a->oauth2, &err))
		return account_usage_error(a, "%s", err.msg);
	if (oauth2) {
		if (a->name)
			snprintf(a->auth_hint, sizeof a->auth_hint,
				 "imapsnap auth %s", a->name);
		else
			snprintf(a->auth_hint, sizeof a->auth_hint,
				 "imapsnap auth --oauth2 %s%s%s%s %s",
				 a->oauth2.provider,
				 a->oauth2.token_file ? " --oauth2-token-file "
						      : "",
				 a->oauth2.token_file ? a->oauth2.token_file
						      : "",
				 a->session.user ? " --user ..." : "",
				 a->session.url);
		if (oauth2_cli_source(&a->oauth2, &a->session, a->auth_hint,
				      &err))
			return account_usage_error(a, "%s", err.msg);
	}
	if (a->since && a->before && a->since >= a->before)
		return account_usage_error(a, "--since must be a day before "
					   "--before");
	if (a->session.insecure)
		fprintf(stderr, "%s%s%s: warning: insecure: the server's "
			"certificate is not verified; anyone on the path can "
			"read the password and the mail\n", progname,
			a->name ? ": " : "", a->name ? a->name : "");
	return 0;
}

enum isnap_status account_password(const struct account *a, char **password,
				   struct isnap_error *err)
{
	*password = NULL;
	/* A token, not a password: the server gets nothing else. */
	if (a->session.oauth2_token_command || a->session.token_fn)
		return ISNAP_OK;
	if (a->password_env) {
		const char *v = getenv(a->password_env);
		if (!v || !*v)
			return isnap_fail(err, ISNAP_EUSAGE,
					  "password_env: the environment "
					  "variable %s is not set",
					  a->password_env);
	}
	if (a->password || a->password_env) {
		const char *v = a->password ? a->password
					    : getenv(a->password_env);
		if (!(*password = strdup(v)))
			return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
		return ISNAP_OK;
	}
	*password = password_get(&a->pw, a->session.user, a->session.url,
				 err);
	return *password ? ISNAP_OK : err->status;
}

/* A login refused as throttled, waited for (imap/session.h). */
static void login_throttled(void *ctx, long wait_ms, const char *why,
			    const char *text)
{
	out_warning(ctx, "%s at login (%s); waiting %.1f s before logging "
		    "in again", why, text, wait_ms / 1000.0);
}

int account_backup(struct account *a, struct output *o, struct json_t **json,
		   struct backup_summary *sum_out)
{
	struct backup_opts bo = { 0 };
	struct backup_summary sum = { 0 };
	struct isnap_error err = { 0 };
	struct backup_events ev = out_events(o);
	enum isnap_status st;
	char *password;
	int rc;

	*json = NULL;
	bo.session = a->session;
	if (o->verbosity >= 2) {
		bo.session.trace = out_trace;
		bo.session.trace_ctx = o;
	}
	bo.dest = a->dest;
	bo.format = a->format;
	bo.include = a->include;
	bo.n_include = a->n_include;
	bo.exclude = a->exclude;
	bo.n_exclude = a->n_exclude;
	bo.since = a->since;
	bo.before = a->before;
	bo.retries = a->retries;
	bo.connections = a->connections;
	bo.max_messages = a->max_messages;
	bo.max_bytes = a->max_bytes;
	bo.fetch.max_wait_ms = a->max_wait_sec * 1000L;
	bo.fetch.commit_ms = a->commit_ms;
	bo.session.throttle_max_wait_ms = a->max_wait_sec * 1000L;
	bo.session.throttled = login_throttled;
	bo.session.throttle_ctx = o;
	bo.dry_run = o->dry_run;

	st = account_password(a, &password, &err);
	if (!st) {
		bo.session.password = password;
		st = backup_run(&bo, &ev, &sum, &err);
		password_free(password);
	}
	rc = exit_status_for(st);
	if (!bo.dry_run && a->tsa_url && !sum.manifest_file[0] &&
	    sum.manifest_sha256[0])
		out_warning(o, "--tsa: a single-file export keeps its manifest "
			    "inside the archive; no timestamp was asked for");
	if (!bo.dry_run && sum.manifest_file[0]) {
		int rrc = write_records(a, o, &sum);
		if (!rc)
			rc = rrc;
	}
	/* Belt and braces: a message planned but not saved is a failure
	 * whatever the status says. */
	if (!rc && !bo.dry_run && sum.fetch.failed)
		rc = EXIT_PARTIAL;
	*json = out_summary(o, a->name, a->dest, &sum, st, rc, &err);
	if (sum_out)
		*sum_out = sum;
	return rc;
}
