/*
 * main.c — imapsnap: batch IMAP export and backup.  Dispatches subcommands;
 * each lives in its own file.
 */
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>

#include "cli.h"
#include "version.h"


const char *progname = "imapsnap";

static const char usage_text[] =
	"usage: imapsnap COMMAND [options] ...\n"
	"\n"
	"commands:\n"
	"  backup URL DEST   back up every folder of an IMAP account into DEST\n"
	"  list URL          list the folders with their counts and sizes\n"
	"  run [ACCOUNT...]  back up the accounts of the config file\n"
	"  verify DEST       check a backup against its manifests\n"
	"  restore BACKUP URL  put a backup back into an IMAP account\n"
	"  migrate SRC_URL DST_URL  copy an account to another server\n"
	"  auth ACCOUNT|URL  authorise imapsnap at an OAuth2 provider, once\n"
	"  help [COMMAND]    show help\n"
	"\n"
	"options:\n"
	"  --help, --version\n"
	"\n"
	"Run 'imapsnap help COMMAND' for a command's options.\n";

int exit_status_for(enum isnap_status st)
{
	switch (st) {
	case ISNAP_OK: return EXIT_OK;
	case ISNAP_EUSAGE: return EXIT_USAGE;
	case ISNAP_EAUTH: return EXIT_AUTH;
	case ISNAP_ECONN: return EXIT_CONNECT;
	case ISNAP_ELOCKED: return EXIT_LOCKED;
	case ISNAP_ELOCAL: return EXIT_LOCAL;
	case ISNAP_EINTEGRITY: return EXIT_INTEGRITY;
	case ISNAP_ESTOPPED: return EXIT_STOPPED;
	default: return EXIT_PARTIAL;
	}
}

/* A core dump of imapsnap would hold the password, OAuth2 tokens and the
 * mail in flight, readable by whoever reads cores (often more people than
 * read the password file): none is written, whatever `ulimit -c` says.
 * PR_SET_DUMPABLE 0 does it for this process (and keeps other processes
 * of the same user from attaching a debugger); RLIMIT_CORE 0 for the
 * password and token commands it runs, which hold the secret too (their
 * hard limit is left, so that one may raise it on purpose). */
static void no_core_dumps(void)
{
	struct rlimit rl;

	if (getrlimit(RLIMIT_CORE, &rl) == 0) {
		rl.rlim_cur = 0;
		setrlimit(RLIMIT_CORE, &rl);
	}
	prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
}

int main(int argc, char **argv)
{
	no_core_dumps();
	if (argc < 2) {
		fputs(usage_text, stderr);
		return EXIT_USAGE;
	}
	if (!strcmp(argv[1], "--version")) {
		printf("imapsnap %s\n", IMAPSNAP_VERSION);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
		fputs(usage_text, stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "help")) {
		char *args[] = { argc > 2 ? argv[2] : "", "--help", NULL };
		if (argc > 2 && !strcmp(argv[2], "backup"))
			return cmd_backup(2, args);
		if (argc > 2 && !strcmp(argv[2], "list"))
			return cmd_list(2, args);
		if (argc > 2 && !strcmp(argv[2], "run"))
			return cmd_run(2, args);
		if (argc > 2 && !strcmp(argv[2], "verify"))
			return cmd_verify(2, args);
		if (argc > 2 && !strcmp(argv[2], "restore"))
			return cmd_restore(2, args);
		if (argc > 2 && !strcmp(argv[2], "migrate"))
			return cmd_migrate(2, args);
		if (argc > 2 && !strcmp(argv[2], "auth"))
			return cmd_auth(2, args);
		if (argc > 2 && strcmp(argv[2], "help")) {
			fprintf(stderr, "%s: no command '%s'\n\n%s", progname,
				argv[2], usage_text);
			return EXIT_USAGE;
		}
		fputs(usage_text, stdout);
		return EXIT_OK;
	}
	if (!strcmp(argv[1], "backup")) {
		signals_install();
		return cmd_backup(argc - 1, argv + 1);
	}
	if (!strcmp(argv[1], "list"))
		return cmd_list(argc - 1, argv + 1);
	if (!strcmp(argv[1], "run")) {
		signals_install();
		return cmd_run(argc - 1, argv + 1);
	}
	if (!strcmp(argv[1], "verify"))
		return cmd_verify(argc - 1, argv + 1);
	if (!strcmp(argv[1], "restore")) {
		signals_install();
		return cmd_restore(argc - 1, argv + 1);
	}
	if (!strcmp(argv[1], "migrate")) {
		signals_install();
		return cmd_migrate(argc - 1, argv + 1);
	}
	if (!strcmp(argv[1], "auth"))
		return cmd_auth(argc - 1, argv + 1);
	fprintf(stderr, "%s: unknown command '%s'\n\n%s", progname, argv[1],
		usage_text);
	return EXIT_USAGE;
}
