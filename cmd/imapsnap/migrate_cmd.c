/*
 * migrate_cmd.c — `imapsnap migrate [options] SRC_URL DST_URL`: copy an
 * account to another server (docs/restore.md).  Each side has its own
 * login options (--src-..., --dst-...); the connection options (--tls,
 * --cacert, --insecure, --timeout) apply to both.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "migrate.h"
#include "transfer_cli.h"

static const char migrate_usage[] =
	"usage: imapsnap migrate [options] SRC_URL DST_URL\n"
	"\n"
	"Copy every folder of the IMAP account at SRC_URL into the account at\n"
	"DST_URL, with flags and dates, without a local copy.  The source is\n"
	"only read.  Messages copied before (by this or an interrupted run)\n"
	"are not copied again.\n"
	"\n"
	"  SRC_URL, DST_URL        imap://[user@]host[:port] (STARTTLS) or\n"
	"                          imaps://[user@]host[:port] (implicit TLS)\n"
	"  --src-user USER, --dst-user USER\n"
	"  --src-password-file FILE, --dst-password-file FILE\n"
	"  --src-password-command CMD, --dst-password-command CMD\n"
	"  --src-oauth2-token-command CMD, --dst-oauth2-token-command CMD\n"
	"  --src-oauth2 PROVIDER, --dst-oauth2 PROVIDER\n"
	"                          OAuth2 with the token 'imapsnap auth' stored\n"
	"                          (google, microsoft, custom); the token file\n"
	"                          with --src-oauth2-token-file FILE,\n"
	"                          --dst-oauth2-token-file FILE\n"
	"                          how each side logs in; else the password is\n"
	"                          $IMAPSNAP_SRC_PASSWORD / $IMAPSNAP_DST_PASSWORD,\n"
	"                          else a prompt\n"
	"  --tls none              allow plaintext on imap:// (both sides)\n"
	"  --cacert FILE           trust the CA certificate(s) in FILE\n"
	"  --oauth2-cacert FILE    ... and for the OAuth2 token endpoints\n"
	"  --insecure              do not verify the servers' certificates\n"
	"  --timeout SECONDS       give up on a silent server (default 60)\n"
	"  --retries N             reconnect after a lost connection (either\n"
	"                          side), N times in a run (default 3)\n"
	"\n"
	"  --include GLOB          only folders matching GLOB (repeatable)\n"
	"  --exclude GLOB          not folders matching GLOB (repeatable)\n"
	"  --into FOLDER           copy below FOLDER on the destination\n"
	"  --no-special-use        keep every folder's own name: do not put Sent,\n"
	"                          Trash, ... into the destination's folders of\n"
	"                          those roles\n"
	"  --state-dir DIR         where copies into an account are remembered\n"
	"                          (default $XDG_STATE_HOME/imapsnap/restore,\n"
	"                          or ~/.local/state/imapsnap/restore)\n"
	"  -n, --dry-run           plan and print where each folder goes; copy\n"
	"                          nothing (a folder the destination lacks is\n"
	"                          created and deleted at once, to ask whether\n"
	"                          it may be)\n"
	"\n"
	"  --json                  print a JSON summary on standard output\n"
	"  -q, --quiet             print only errors\n"
	"  -v, --verbose           also print each folder and the protocol\n"
	"                          trace (credentials masked)\n"
	"\n"
	"Exit status: 0 everything copied, 1 some messages or folders not\n"
	"copied, 2 usage, 3 authentication, 4 connection/TLS, 5 another copy\n"
	"into the same account is running, 6 the state cannot be written.\n";

enum {
	OPT_SRC_USER = OPT_TRANSFER_NEXT, OPT_SRC_PWFILE, OPT_SRC_PWCMD,
	OPT_SRC_OAUTH2,
	OPT_DST_USER, OPT_DST_PWFILE, OPT_DST_PWCMD, OPT_DST_OAUTH2,
	OPT_SRC_OAUTH2_PROVIDER, OPT_SRC_OAUTH2_TOKEN_FILE,
	OPT_DST_OAUTH2_PROVIDER, OPT_DST_OAUTH2_TOKEN_FILE,
};

static const struct option long_opts[] = {
	{ "src-user", required_argument, NULL, OPT_SRC_USER },
	{ "src-password-file", required_argument, NULL, OPT_SRC_PWFILE },
	{ "src-password-command", required_argument, NULL, OPT_SRC_PWCMD },
	{ "src-oauth2-token-command", required_argument, NULL, OPT_SRC_OAUTH2 },
	{ "dst-user", required_argument, NULL, OPT_DST_USER },
	{ "dst-password-file", required_argument, NULL, OPT_DST_PWFILE },
	{ "dst-password-command", required_argument, NULL, OPT_DST_PWCMD },
	{ "dst-oauth2-token-command", required_argument, NULL, OPT_DST_OAUTH2 },
	{ "src-oauth2", required_argument, NULL, OPT_SRC_OAUTH2_PROVIDER },
	{ "src-oauth2-token-file", required_argument, NULL,
	  OPT_SRC_OAUTH2_TOKEN_FILE },
	{ "dst-oauth2", required_argument, NULL, OPT_DST_OAUTH2_PROVIDER },
	{ "dst-oauth2-token-file", required_argument, NULL,
	  OPT_DST_OAUTH2_TOKEN_FILE },
	{ "oauth2-cacert", required_argument, NULL, OPT_OAUTH2_CACERT },
	{ "tls", required_argument, NULL, OPT_TLS },
	{ "cacert", required_argument, NULL, OPT_CACERT },
	{ "insecure", no_argument, NULL, OPT_INSECURE },
	{ "timeout", required_argument, NULL, OPT_TIMEOUT },
	TRANSFER_OPTIONS,
	{ NULL, 0, NULL, 0 },
};

/* The side's own environment variable stands in for IMAPSNAP_PASSWORD
 * when no other source is given. */
static void side_env(struct account *a, const char *var)
{
	const char *v = getenv(var);

	if (v && *v && !a->pw.file && !a->pw.command &&
	    !a->session.oauth2_token_command && !oauth2_cli_enabled(&a->oauth2))
		a->password_env = var;
}

int cmd_migrate(int argc, char **argv)
{
	struct account src, dst;
	struct migrate_opts mo = { 0 };
	struct migrate_summary sum;
	struct transfer_cli tc = TRANSFER_CLI_INIT;
	struct transfer_out *out = &tc.out;
	struct restore_events ev;
	struct isnap_error err = { 0 };
	char *state_dir = NULL, *spw = NULL, *dpw = NULL;
	enum isnap_status st;
	int c, rc;

	account_init(&src, "migrate");
	account_init(&dst, "migrate");
	optind = 1;
	while ((c = getopt_long(argc, argv, "nqvh", long_opts, NULL)) != -1) {
		int r = 0;
		if (transfer_option(&tc, c, optarg))
			continue;
		switch (c) {
		case OPT_SRC_USER: r = account_option(&src, OPT_USER, optarg); break;
		case OPT_SRC_PWFILE: r = account_option(&src, OPT_PWFILE, optarg); break;
		case OPT_SRC_PWCMD: r = account_option(&src, OPT_PWCMD, optarg); break;
		case OPT_SRC_OAUTH2: r = account_option(&src, OPT_OAUTH2, optarg); break;
		case OPT_DST_USER: r = account_option(&dst, OPT_USER, optarg); break;
		case OPT_DST_PWFILE: r = account_option(&dst, OPT_PWFILE, optarg); break;
		case OPT_DST_PWCMD: r = account_option(&dst, OPT_PWCMD, optarg); break;
		case OPT_DST_OAUTH2: r = account_option(&dst, OPT_OAUTH2, optarg); break;
		case OPT_SRC_OAUTH2_PROVIDER:
			r = account_option(&src, OPT_OAUTH2_PROVIDER, optarg);
			break;
		case OPT_SRC_OAUTH2_TOKEN_FILE:
			r = account_option(&src, OPT_OAUTH2_TOKEN_FILE, optarg);
			break;
		case OPT_DST_OAUTH2_PROVIDER:
			r = account_option(&dst, OPT_OAUTH2_PROVIDER, optarg);
			break;
		case OPT_DST_OAUTH2_TOKEN_FILE:
			r = account_option(&dst, OPT_OAUTH2_TOKEN_FILE, optarg);
			break;
		case OPT_TLS: case OPT_CACERT: case OPT_INSECURE:
		case OPT_TIMEOUT: case OPT_OAUTH2_CACERT:
			r = account_option(&src, c, optarg);
			if (r == 1)
				r = account_option(&dst, c, optarg);
			break;
		case OPT_INCLUDE: case OPT_EXCLUDE: case OPT_RETRIES:
			r = account_option(&src, c, optarg);
			break;
		case 'h': fputs(migrate_usage, stdout); return EXIT_OK;
		default:
			fputs(migrate_usage, stderr);
			return EXIT_USAGE;
		}
		if (r != 1)
			return EXIT_USAGE;
	}
	if (argc - optind != 2)
		return account_usage_error(&src, "expected SRC_URL and DST_URL");
	src.session.url = argv[optind];
	dst.session.url = argv[optind + 1];
	side_env(&src, "IMAPSNAP_SRC_PASSWORD");
	side_env(&dst, "IMAPSNAP_DST_PASSWORD");
	if ((rc = account_check(&src)) || (rc = account_check(&dst)) ||
	    (rc = transfer_setup(&tc, &src, &dst.session, "Migrated",
				 &mo.common, &state_dir)))
		return rc;
	transfer_trace(out, 0, "source", &src.session);
	transfer_trace(out, 1, "destination", &dst.session);
	mo.src = src.session;
	mo.dst = dst.session;
	ev = transfer_events(out, "migrate");

	memset(&sum, 0, sizeof sum);
	st = account_password(&src, &spw, &err);
	if (!st)
		st = account_password(&dst, &dpw, &err);
	if (!st) {
		mo.src.password = spw;
		mo.dst.password = dpw;
		st = migrate_run(&mo, &ev, &sum, &err);
	}
	password_free(spw);
	password_free(dpw);
	rc = exit_status_for(st);
	if (!rc && (sum.t.failed || sum.t.folders_failed))
		rc = EXIT_PARTIAL;
	transfer_summary(out, "migrate", &sum.t, NULL, st, rc, &err);
	free(state_dir);
	return rc;
}
