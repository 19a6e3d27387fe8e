/*
 * backup_cmd.c — `imapsnap backup [options] URL DEST`: one account from
 * the command line.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "account.h"
#include "metrics.h"

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
	"  --oauth2-token-command CMD\n"
	"                          log in with XOAUTH2/OAUTHBEARER, the token\n"
	"                          being the first line CMD prints (run again\n"
	"                          for every connection)\n"
	"  --tls none              allow plaintext on imap:// (default: STARTTLS\n"
	"                          is required)\n"
	"  --cacert FILE           trust the CA certificate(s) in FILE\n"
	"  --insecure              do not verify the server's certificate\n"
	"  --timeout SECONDS       give up on a silent server (default 60)\n"
	"  --retries N             reconnect up to N times per folder when the\n"
	"                          connection is lost (default 3)\n"
	"  --connections N         back up folders over N sessions at once\n"
	"                          (1 to 64, default 4; Gmail allows 15)\n"
	"  --commit-interval SECONDS\n"
	"                          commit what arrived at least this often\n"
	"                          (default 5): a kill loses no more\n"
	"\n"
	"  --format FORMAT         maildir (default), mbox, mbox.gz, tar,\n"
	"                          tar.gz, tar.zst, tar.xz, zip; a DEST named\n"
	"                          *.tar.gz, *.zip, ... is one single-file export\n"
	"  --include GLOB          only folders matching GLOB (repeatable)\n"
	"  --exclude GLOB          not folders matching GLOB (repeatable; wins\n"
	"                          over --include); '*' also matches '/'\n"
	"  --since YYYY-MM-DD      only messages received on or after the day\n"
	"  --before YYYY-MM-DD     only messages received before the day\n"
	"  --tsa URL               have the RFC 3161 Time Stamping Authority at\n"
	"                          URL timestamp the run's manifest (<run>.tsr)\n"
	"  --tsa-cacert FILE       the TSA's CA, to check its signature (and an\n"
	"                          https URL) with\n"
	"  -n, --dry-run           connect, list and plan; print what would be\n"
	"                          fetched and write nothing\n"
	"\n"
	"  --json                  print a JSON summary on standard output\n"
	"  --metrics FILE          write the run's outcome to FILE for\n"
	"                          Prometheus (node_exporter's textfile\n"
	"                          collector); the account label is\n"
	"                          user@host[:port]\n"
	"  -q, --quiet             print only errors\n"
	"  -v, --verbose           also print folders and the protocol trace\n"
	"\n"
	"SIGTERM, SIGINT, SIGHUP: stop, keep what arrived, exit 1.\n"
	"Exit status: 0 all saved, 1 some messages or folders not saved,\n"
	"2 usage, 3 authentication, 4 connection/TLS, 5 destination locked,\n"
	"6 destination (or metrics file) not writable.\n";

enum { OPT_JSON = OPT_COMMAND_FIRST, OPT_METRICS };

static const struct option long_opts[] = {
	ACCOUNT_OPTIONS,
	BACKUP_OPTIONS,
	{ "dry-run", no_argument, NULL, 'n' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "metrics", required_argument, NULL, OPT_METRICS },
	{ "quiet", no_argument, NULL, 'q' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

/* The account label of `imapsnap backup`: user@host[:port], the user
 * from --user when given, else from the URL. */
static void metrics_label(const struct account *a, char *buf, size_t size)
{
	const char *rest = strstr(a->session.url, "://");
	const char *at, *end;

	rest = rest ? rest + 3 : a->session.url;
	end = rest + strcspn(rest, "/");
	at = memchr(rest, '@', (size_t)(end - rest));
	if (a->session.user)
		snprintf(buf, size, "%s@%.*s", a->session.user,
			 (int)(end - (at ? at + 1 : rest)), at ? at + 1 : rest);
	else
		snprintf(buf, size, "%.*s", (int)(end - rest), rest);
}

int cmd_backup(int argc, char **argv)
{
	struct account a;
	struct output out;
	struct json_t *json;
	struct backup_summary sum = { 0 };
	struct metrics_account m;
	struct isnap_error err = { 0 };
	const char *metrics = NULL;
	char label[512];
	int c, rc, verbosity = 1;
	bool dry_run = false, as_json = false;

	account_init(&a, "backup");
	optind = 1;
	while ((c = getopt_long(argc, argv, "nqvh", long_opts, NULL)) != -1) {
		switch (account_option(&a, c, optarg)) {
		case 1: continue;
		case -1: return EXIT_USAGE;
		}
		switch (c) {
		case 'n': dry_run = true; break;
		case OPT_JSON: as_json = true; break;
		case OPT_METRICS: metrics = optarg; break;
		case 'q': verbosity = 0; break;
		case 'v': verbosity = 2; break;
		case 'h': fputs(backup_usage, stdout); return EXIT_OK;
		default:
			fputs(backup_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 2)
		return account_usage_error(&a, "expected URL and DEST");
	a.session.url = argv[optind];
	a.dest = argv[optind + 1];
	if ((rc = account_check(&a)))
		return rc;
	if (metrics && metrics_check_path(metrics, &err))
		return account_usage_error(&a, "%s", err.msg);

	/* A dry run is no backup: it must not look like one to monitoring. */
	if (dry_run)
		metrics = NULL;
	metrics_label(&a, label, sizeof label);
	metrics_account_begin(&m, label, a.dest);
	out_init(&out, verbosity, as_json, dry_run, NULL);
	rc = account_backup(&a, &out, &json, &sum);
	out_json_print(json);
	out_free(&out);
	if (metrics) {
		metrics_account_end(&m, rc, &sum);
		rc = metrics_write_or_complain(metrics, &m, 1, rc);
	}
	return rc;
}
