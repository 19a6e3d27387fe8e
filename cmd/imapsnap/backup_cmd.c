/*
 * backup_cmd.c — `imapsnap backup [options] URL DEST`: the command line,
 * the password, and what the user sees (errors, notices, the summary).
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backup.h"
#include "cli.h"

static const char backup_usage[] =
	"usage: imapsnap backup [options] URL DEST\n"
	"\n"
	"Back up every folder of the IMAP account at URL into DEST, fetching\n"
	"only what earlier runs have not saved.  Nothing on the server changes.\n"
	"\n"
	"  URL                     imap://[user@]host[:port] (STARTTLS) or\n"
	"                          imaps://[user@]host[:port] (implicit TLS)\n"
	"  --user USER             the login name (instead of user@ in URL)\n"
	"  --password-file FILE    read the password from FILE's first line\n"
	"  --password-command CMD  run CMD and use the first line it prints\n"
	"                          (else $IMAPSNAP_PASSWORD, else a prompt)\n"
	"  --tls none              allow plaintext on imap:// (default: STARTTLS\n"
	"                          is required)\n"
	"  --cacert FILE           trust the CA certificate(s) in FILE\n"
	"  --insecure              do not verify the server's certificate\n"
	"  --format FORMAT         maildir (default)\n"
	"  --timeout SECONDS       give up on a silent server (default 60)\n"
	"  --retries N             reconnect up to N times per folder when the\n"
	"                          connection is lost (default 3)\n"
	"  -q, --quiet             print only errors\n"
	"  -v, --verbose           also print folders and the protocol trace\n"
	"\n"
	"Exit status: 0 all saved, 1 some messages or folders not saved,\n"
	"2 usage, 3 authentication, 4 connection/TLS, 5 destination locked,\n"
	"6 destination not writable.\n";

enum { OPT_USER = 256, OPT_PWFILE, OPT_PWCMD, OPT_TLS, OPT_CACERT,
       OPT_INSECURE, OPT_FORMAT, OPT_TIMEOUT, OPT_RETRIES };

static const struct option long_opts[] = {
	{ "user", required_argument, NULL, OPT_USER },
	{ "password-file", required_argument, NULL, OPT_PWFILE },
	{ "password-command", required_argument, NULL, OPT_PWCMD },
	{ "tls", required_argument, NULL, OPT_TLS },
	{ "cacert", required_argument, NULL, OPT_CACERT },
	{ "insecure", no_argument, NULL, OPT_INSECURE },
	{ "format", required_argument, NULL, OPT_FORMAT },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	{ "retries", required_argument, NULL, OPT_RETRIES },
	{ "quiet", no_argument, NULL, 'q' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct output {
	int verbosity; /* 0 quiet, 1 normal, 2 verbose */
};

static void on_folder_begin(void *ctx, const char *folder, uint64_t n,
			    uint64_t saved)
{
	struct output *o = ctx;
	if (o->verbosity >= 2)
		fprintf(stderr, "%s: %s: %llu new, %llu saved before\n",
			progname, folder, (unsigned long long)n,
			(unsigned long long)saved);
}

static void on_folder_failed(void *ctx, const char *folder,
			     const struct isnap_error *err)
{
	(void)ctx;
	(void)folder; /* the message already names it */
	fprintf(stderr, "%s: error: %s\n", progname, err->msg);
}

static void on_message_failed(void *ctx, const char *folder, uint32_t uid,
			      const char *why)
{
	(void)ctx;
	fprintf(stderr, "%s: error: %s: UID %u: %s\n", progname, folder, uid,
		why);
}

static void on_notice(void *ctx, const char *text)
{
	struct output *o = ctx;
	if (o->verbosity >= 1)
		fprintf(stderr, "%s: %s\n", progname, text);
}

/* --verbose: the protocol as it passes, one line per chunk, bodies cut
 * short.  Login happens inside libcurl, so no credential passes here. */
static void trace(void *ctx, char dir, const char *data, size_t len)
{
	(void)ctx;
	size_t show = len < 160 ? len : 160;
	fprintf(stderr, "%c ", dir == '>' ? 'C' : 'S');
	for (size_t i = 0; i < show; i++) {
		unsigned char c = (unsigned char)data[i];
		if (c == '\n' && i + 1 < show)
			fputs("\n  ", stderr);
		else if (c == '\r' || c == '\n')
			;
		else
			fputc(c >= 0x20 && c < 0x7f ? c : '.', stderr);
	}
	fprintf(stderr, len > show ? " [... %zu bytes]\n" : "\n", len);
}

static int usage_error(const char *fmt, const char *arg)
{
	fprintf(stderr, "%s: ", progname);
	fprintf(stderr, fmt, arg);
	fprintf(stderr, "\nRun 'imapsnap help backup' for the options.\n");
	return EXIT_USAGE;
}

/* Refuse URLs that carry a password or a path: the first would leak
 * through ps(1), the second means something imapsnap does not do. */
static int check_url(const char *url)
{
	const char *rest, *slash, *at;

	if (!strncmp(url, "imap://", 7))
		rest = url + 7;
	else if (!strncmp(url, "imaps://", 8))
		rest = url + 8;
	else
		return usage_error("%s: the URL must start with imap:// or "
				   "imaps://",
				   url);
	slash = strchr(rest, '/');
	at = strchr(rest, '@');
	if (at && (!slash || at < slash) && memchr(rest, ':', (size_t)(at - rest)))
		return usage_error("%s", "the URL must not contain a password; "
				   "use --password-file, --password-command "
				   "or IMAPSNAP_PASSWORD");
	if (slash && slash[1])
		return usage_error("%s: give the server only (no folder path)",
				   url);
	if (!*rest || rest == at)
		return usage_error("%s: no host in the URL", url);
	return 0;
}

int cmd_backup(int argc, char **argv)
{
	struct backup_opts bo = { 0 };
	struct password_source pws = { 0 };
	struct output out = { .verbosity = 1 };
	struct backup_summary sum;
	struct isnap_error err = { 0 };
	char *password;
	int c, rc;

	bo.session.timeout_sec = 60;
	bo.retries = 3;
	optind = 1;
	while ((c = getopt_long(argc, argv, "qvh", long_opts, NULL)) != -1) {
		switch (c) {
		case OPT_USER: bo.session.user = optarg; break;
		case OPT_PWFILE: pws.file = optarg; break;
		case OPT_PWCMD: pws.command = optarg; break;
		case OPT_TLS:
			if (!strcmp(optarg, "none"))
				bo.session.tls = IMAP_TLS_NONE;
			else if (!strcmp(optarg, "starttls") ||
				 !strcmp(optarg, "required"))
				bo.session.tls = IMAP_TLS_REQUIRED;
			else
				return usage_error("--tls %s: expected none "
						   "or starttls",
						   optarg);
			break;
		case OPT_CACERT: bo.session.cacert = optarg; break;
		case OPT_INSECURE: bo.session.insecure = true; break;
		case OPT_FORMAT: bo.format = optarg; break;
		case OPT_TIMEOUT: {
			char *end;
			long t = strtol(optarg, &end, 10);
			if (*end || t <= 0 || t > 86400)
				return usage_error("--timeout %s: expected "
						   "seconds, 1 to 86400",
						   optarg);
			bo.session.timeout_sec = t;
			break;
		}
		case OPT_RETRIES: {
			char *end;
			long n = strtol(optarg, &end, 10);
			if (*end || n < 0 || n > 100)
				return usage_error("--retries %s: expected a "
						   "number, 0 to 100",
						   optarg);
			bo.retries = (unsigned)n;
			break;
		}
		case 'q': out.verbosity = 0; break;
		case 'v': out.verbosity = 2; break;
		case 'h': fputs(backup_usage, stdout); return EXIT_OK;
		default:
			fputs(backup_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 2)
		return usage_error("%s", "expected URL and DEST");
	if (pws.file && pws.command)
		return usage_error("%s", "give --password-file or "
				   "--password-command, not both");
	bo.session.url = argv[optind];
	bo.dest = argv[optind + 1];
	if ((rc = check_url(bo.session.url)))
		return rc;
	if (bo.session.insecure)
		fprintf(stderr, "%s: warning: --insecure: the server's "
			"certificate is not verified; anyone on the path can "
			"read the password and the mail\n", progname);
	if (out.verbosity >= 2) {
		bo.session.trace = trace;
		bo.session.trace_ctx = &out;
	}

	password = password_get(&pws, bo.session.user, bo.session.url, &err);
	if (!password) {
		fprintf(stderr, "%s: %s\n", progname, err.msg);
		return exit_status_for(err.status);
	}
	bo.session.password = password;

	struct backup_events ev = {
		.ctx = &out,
		.folder_begin = on_folder_begin,
		.folder_failed = on_folder_failed,
		.message_failed = on_message_failed,
		.notice = on_notice,
	};
	enum isnap_status st = backup_run(&bo, &ev, &sum, &err);
	password_free(password);

	if (st && st != ISNAP_EMSG && st != ISNAP_EFOLDER)
		fprintf(stderr, "%s: error: %s\n", progname, err.msg);
	if (out.verbosity >= 1 || st) {
		fprintf(stderr,
			"%s: %u folders, %llu messages, %llu bytes in %.2f s",
			progname, sum.folders,
			(unsigned long long)sum.fetch.saved,
			(unsigned long long)sum.fetch.bytes, sum.seconds);
		if (sum.fetch.failed)
			fprintf(stderr, ", %llu failed",
				(unsigned long long)sum.fetch.failed);
		if (sum.folders_failed)
			fprintf(stderr, ", %u folders failed",
				sum.folders_failed);
		if (sum.fetch.vanished)
			fprintf(stderr, ", %llu expunged meanwhile",
				(unsigned long long)sum.fetch.vanished);
		fputc('\n', stderr);
	}
	return exit_status_for(st);
}
