/* migrate_cmd.c — `imapsnap migrate SRC_URL DST_URL` (not yet). */
#include <stdio.h>

#include "cli.h"

int cmd_migrate(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	fprintf(stderr, "%s: migrate: not available yet\n", progname);
	return EXIT_USAGE;
}
