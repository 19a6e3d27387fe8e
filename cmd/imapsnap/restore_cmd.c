/*
 * restore_cmd.c — `imapsnap restore [options] BACKUP URL`: put a backup
 * back into an IMAP account (docs/restore.md).  What it shares with
 * migrate is in transfer_cli.c.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "account.h"
#include "restore_backup.h"
#include "transfer_cli.h"

static const char restore_usage[] =
	"usage: imapsnap restore [options] BACKUP URL\n"
	"\n"
	"Put the messages of BACKUP (a backup directory in any format, or a\n"
	"single-file export) into the IMAP account at URL, with their flags\n"
	"and dates, creating folders as needed.  Messages restored before\n"
	"(by this or an interrupted run) are not appended again.\n"
	"\n"
	"  URL                     imap://[user@]host[:port] (STARTTLS) or\n"
	"                          imaps://[user@]host[:port] (implicit TLS)\n"
	"  --user USER             the login name (instead of user@ in URL)\n"
	"  --password-file FILE    read the password from FILE's first line\n"
	"  --password-command CMD  run CMD and use the first line it prints\n"
	"                          (else $IMAPSNAP_PASSWORD, else a prompt)\n"
	"  --oauth2-token-command CMD\n"
	"                          log in with XOAUTH2/OAUTHBEARER\n"
	"  --tls none              allow plaintext on imap://\n"
	"  --cacert FILE           trust the CA certificate(s) in FILE\n"
	"  --insecure              do not verify the server's certificate\n"
	"  --timeout SECONDS       give up on a silent server (default 60)\n"
	"  --retries N             reconnect after a lost connection, N times\n"
	"                          in a run (default 3)\n"
	"\n"
	"  --include GLOB          only folders matching GLOB (repeatable)\n"
	"  --exclude GLOB          not folders matching GLOB (repeatable)\n"
	"  --into FOLDER           restore below FOLDER ('/' separates levels),\n"
	"                          e.g. --into Restored\n"
	"  --no-special-use        keep every folder's own name: do not put Sent,\n"
	"                          Trash, ... into the target's folders of\n"
	"                          those roles\n"
	"  --state-dir DIR         where restores remember what they appended\n"
	"                          (default $XDG_STATE_HOME/imapsnap/restore,\n"
	"                          or ~/.local/state/imapsnap/restore)\n"
	"  -n, --dry-run           plan and print where each folder goes; append\n"
	"                          nothing (a folder the target lacks is created\n"
	"                          and deleted at once, to ask whether it may be)\n"
	"\n"
	"  --json                  print a JSON summary on standard output\n"
	"  -q, --quiet             print only errors\n"
	"  -v, --verbose           also print each folder and the protocol\n"
	"                          trace (credentials masked)\n"
	"\n"
	"Exit status: 0 everything restored, 1 some messages or folders not\n"
	"restored, 2 usage, 3 authentication, 4 connection/TLS, 5 another\n"
	"restore into the same account is running, 6 the backup or the state\n"
	"cannot be read or written.\n";

static const struct option long_opts[] = {
	ACCOUNT_OPTIONS,
	TRANSFER_OPTIONS,
	{ NULL, 0, NULL, 0 },
};

int cmd_restore(int argc, char **argv)
{
	struct account a;
	struct restore_opts ro = { 0 };
	struct restore_summary sum;
	struct transfer_cli tc = TRANSFER_CLI_INIT;
	struct transfer_out *out = &tc.out;
	struct restore_events ev;
	struct isnap_error err = { 0 };
	char *state_dir = NULL, *password = NULL;
	enum isnap_status st;
	int c, rc;

	account_init(&a, "restore");
	optind = 1;
	while ((c = getopt_long(argc, argv, "nqvh", long_opts, NULL)) != -1) {
		switch (account_option(&a, c, optarg)) {
		case 1: continue;
		case -1: return EXIT_USAGE;
		}
		if (transfer_option(&tc, c, optarg))
			continue;
		switch (c) {
		case 'h': fputs(restore_usage, stdout); return EXIT_OK;
		default:
			fputs(restore_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 2)
		return account_usage_error(&a, "expected BACKUP and URL");
	ro.backup = argv[optind];
	a.session.url = argv[optind + 1];
	if ((rc = account_check(&a)) ||
	    (rc = transfer_setup(&tc, &a, &a.session, "Restored or "
				 "Old/Restored", &ro.common, &state_dir)))
		return rc;
	transfer_trace(out, 0, NULL, &a.session);
	ro.session = a.session;
	ev = transfer_events(out, "restore");

	st = account_password(&a, &password, &err);
	if (!st) {
		ro.session.password = password;
		st = restore_run(&ro, &ev, &sum, &err);
		password_free(password);
	} else {
		memset(&sum, 0, sizeof sum);
	}
	rc = exit_status_for(st);
	/* A dry run fails where the real run would: a folder the target
	 * refuses, a name that cannot be sent. */
	if (!rc && (sum.t.failed || sum.t.folders_failed ||
		    (!out->dry_run && sum.missing)))
		rc = EXIT_PARTIAL;
	transfer_summary(out, "restore", &sum.t, &sum, st, rc, &err);
	free(state_dir);
	return rc;
}
