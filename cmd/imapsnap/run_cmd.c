/*
 * run_cmd.c — `imapsnap run [--config FILE] [ACCOUNT...]`: back up every
 * account of the config file (docs/imapsnap.conf.5), one after the other,
 * as cron or a systemd timer would.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "account.h"
#include "config.h"

static const char run_usage[] =
	"usage: imapsnap run [options] [ACCOUNT...]\n"
	"\n"
	"Back up every account in the config file, or only the ACCOUNTs named,\n"
	"one after the other.  See imapsnap.conf(5) for the file.\n"
	"\n"
	"  -c, --config FILE       the config file (default\n"
	"                          $XDG_CONFIG_HOME/imapsnap/config, else\n"
	"                          ~/.config/imapsnap/config)\n"
	"  -n, --dry-run           connect, list and plan; print what would be\n"
	"                          fetched and write nothing\n"
	"  --json                  print a JSON summary on standard output\n"
	"  -q, --quiet             print only errors\n"
	"  -v, --verbose           also print folders and the protocol trace\n"
	"\n"
	"Exit status: 0 every account saved; otherwise that of the first\n"
	"account that could not run (2 config, 3 authentication,\n"
	"4 connection/TLS, 5 destination locked, 6 destination not\n"
	"writable), else 1 when some messages or folders were not saved.\n";

enum { OPT_JSON = OPT_COMMAND_FIRST };

static const struct option long_opts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "dry-run", no_argument, NULL, 'n' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "quiet", no_argument, NULL, 'q' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

static int to_account(const struct config_account *ca, struct account *a)
{
	account_init(a, "run");
	if (ca->n_include > ACCOUNT_MAX_GLOBS ||
	    ca->n_exclude > ACCOUNT_MAX_GLOBS)
		return account_usage_error(a, "[%s]: more than %d include or "
					   "exclude globs", ca->name,
					   ACCOUNT_MAX_GLOBS);
	a->name = ca->name;
	a->session.url = ca->url;
	a->session.user = ca->user;
	a->session.oauth2_token_command = ca->oauth2_token_command;
	oauth2_cli_from_config(&a->oauth2, ca);
	a->session.tls = ca->tls;
	a->session.cacert = ca->cacert;
	a->session.insecure = ca->insecure;
	if (ca->timeout_sec)
		a->session.timeout_sec = ca->timeout_sec;
	a->password = ca->password;
	a->pw.command = ca->password_command;
	a->pw.file = ca->password_file;
	a->password_env = ca->password_env;
	a->dest = ca->destination;
	a->format = ca->format;
	for (size_t i = 0; i < ca->n_include; i++)
		a->include[a->n_include++] = ca->include[i];
	for (size_t i = 0; i < ca->n_exclude; i++)
		a->exclude[a->n_exclude++] = ca->exclude[i];
	a->since = ca->since;
	a->before = ca->before;
	if (ca->has_retries)
		a->retries = ca->retries;
	a->connections = ca->connections;
	return account_check(a);
}

/* Which accounts to run: all, or those named (each once, in the order
 * given). */
static int pick(const struct config *cfg, int argc, char **argv,
		const struct config_account **out, size_t *n)
{
	*n = 0;
	if (argc == 0) {
		for (size_t i = 0; i < cfg->n; i++)
			out[(*n)++] = &cfg->v[i];
		return 0;
	}
	for (int i = 0; i < argc; i++) {
		const struct config_account *ca = config_find(cfg, argv[i]);
		bool dup = false;
		if (!ca) {
			fprintf(stderr, "%s: run: no account [%s] in the config "
				"file (it has:", progname, argv[i]);
			for (size_t j = 0; j < cfg->n; j++)
				fprintf(stderr, " %s", cfg->v[j].name);
			fprintf(stderr, ")\n");
			return EXIT_USAGE;
		}
		for (size_t j = 0; j < *n; j++)
			dup = dup || out[j] == ca;
		if (!dup)
			out[(*n)++] = ca;
	}
	return 0;
}

int cmd_run(int argc, char **argv)
{
	char default_path[4096], prefix[128];
	const char *path = NULL;
	const struct config_account **todo = NULL;
	struct account *accts = NULL;
	struct config cfg;
	struct isnap_error err = { 0 };
	json_t *doc = NULL, *list = NULL;
	size_t n = 0, failed = 0;
	int c, rc = EXIT_OK, verbosity = 1;
	bool dry_run = false, as_json = false, partial = false;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:nqvh", long_opts, NULL)) != -1) {
		switch (c) {
		case 'c': path = optarg; break;
		case 'n': dry_run = true; break;
		case OPT_JSON: as_json = true; break;
		case 'q': verbosity = 0; break;
		case 'v': verbosity = 2; break;
		case 'h': fputs(run_usage, stdout); return EXIT_OK;
		default:
			fputs(run_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (!path) {
		if (!config_default_path(getenv("XDG_CONFIG_HOME"),
					 getenv("HOME"), default_path,
					 sizeof default_path)) {
			fprintf(stderr, "%s: run: no config file: give "
				"--config FILE, or set HOME\n", progname);
			return EXIT_USAGE;
		}
		path = default_path;
	}
	if (config_load(path, getenv("HOME"), getuid(), &cfg, &err)) {
		fprintf(stderr, "%s: ", progname);
		out_safe(stderr, err.msg);
		fputc('\n', stderr);
		return EXIT_USAGE;
	}
	todo = calloc(cfg.n, sizeof *todo);
	accts = calloc(cfg.n, sizeof *accts);
	if (!todo || !accts) {
		fprintf(stderr, "%s: out of memory\n", progname);
		rc = EXIT_PARTIAL;
		goto out;
	}
	if ((rc = pick(&cfg, argc - optind, argv + optind, todo, &n)))
		goto out;
	/* Every account is checked before any runs: a typo in the last one
	 * must not show up only after hours of backing up the first. */
	for (size_t i = 0; i < n; i++)
		if ((rc = to_account(todo[i], &accts[i])))
			goto out;

	if (as_json) {
		doc = json_object();
		list = json_array();
		json_object_set_new(doc, "config", json_string(path));
		json_object_set_new(doc, "accounts", list);
	}
	for (size_t i = 0; i < n; i++) {
		struct output out;
		json_t *j;
		int arc;
		snprintf(prefix, sizeof prefix, "%s: %s", progname,
			 accts[i].name);
		out_init(&out, verbosity, as_json, dry_run, prefix);
		arc = account_backup(&accts[i], &out, &j);
		out_free(&out);
		if (j)
			json_array_append_new(list, j);
		if (arc == EXIT_PARTIAL)
			partial = true;
		else if (arc && !rc)
			rc = arc;
		failed += arc != EXIT_OK;
	}
	if (!rc && partial)
		rc = EXIT_PARTIAL;
	if (n > 1 && !as_json && (verbosity >= 1 || rc))
		fprintf(stderr, "%s: %zu of %zu accounts %s\n", progname,
			n - failed, n, dry_run ? "planned" : "backed up");
	if (doc) {
		json_object_set_new(doc, "exit", json_integer(rc));
		out_json_print(doc);
	}
out:
	free(todo);
	free(accts);
	config_free(&cfg);
	return rc;
}
