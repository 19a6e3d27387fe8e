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
#include "interrupt.h"
#include "config.h"
#include "metrics.h"
#include "shard.h"

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
	"  --shard K/N             only the accounts in shard K of N (0 to\n"
	"                          N-1, by a hash of the account's name), so\n"
	"                          that N workers cover each account once\n"
	"  --shard auto/N          K from $JOB_COMPLETION_INDEX (Kubernetes\n"
	"                          Indexed Job) or $SLURM_ARRAY_TASK_ID\n"
	"  --metrics FILE          write each account's outcome to FILE for\n"
	"                          Prometheus (node_exporter's textfile\n"
	"                          collector), one `account` label each\n"
	"                          (default: the config's metrics_file)\n"
	"  --json                  print a JSON summary on standard output\n"
	"  -q, --quiet             print only errors\n"
	"  -v, --verbose           also print folders and the protocol trace\n"
	"\n"
	"Exit status: 0 every account saved; otherwise that of the first\n"
	"account that could not run (2 config, 3 authentication,\n"
	"4 connection/TLS, 5 destination locked, 6 destination or metrics\n"
	"file not writable), else 1 when some messages or folders were not\n"
	"saved.\n";

enum { OPT_JSON = OPT_COMMAND_FIRST, OPT_METRICS, OPT_SHARD };

static const struct option long_opts[] = {
	{ "config", required_argument, NULL, 'c' },
	{ "dry-run", no_argument, NULL, 'n' },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "metrics", required_argument, NULL, OPT_METRICS },
	{ "shard", required_argument, NULL, OPT_SHARD },
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
	if ((ca->max_messages &&
	     account_option(a, OPT_MAX_MESSAGES, ca->max_messages) < 0) ||
	    (ca->max_bytes && account_option(a, OPT_MAX_BYTES, ca->max_bytes) < 0) ||
	    (ca->max_wait && account_option(a, OPT_MAX_WAIT, ca->max_wait) < 0) ||
	    (ca->commit_interval &&
	     account_option(a, OPT_COMMIT_INTERVAL, ca->commit_interval) < 0))
		return EXIT_USAGE;
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

/* Keep those of the n accounts (todo[i], made into accts[i]) that are in
 * shard `sh`, in order. */
static int keep_shard(const struct shard *sh,
		      const struct config_account **todo,
		      struct account *accts, size_t *n)
{
	size_t kept = 0;

	for (size_t i = 0; i < *n; i++) {
		int k = shard_of(todo[i]->name, sh->count);
		if (k < 0) {
			fprintf(stderr, "%s: run: --shard: cannot hash the "
				"account names (out of memory)\n", progname);
			return EXIT_PARTIAL;
		}
		if ((unsigned)k != sh->index)
			continue;
		if (kept != i)
			accts[kept] = accts[i];
		todo[kept++] = todo[i];
	}
	*n = kept;
	return 0;
}

/* The metrics file of each account (NULL: none), checked before anything
 * runs: a typo must not cost a night of backups. */
static int metrics_paths(const char *cli, const struct config_account **todo,
			 size_t n, const char **paths)
{
	struct isnap_error err = { 0 };

	for (size_t i = 0; i < n; i++) {
		paths[i] = cli ? cli : todo[i]->metrics_file;
		if (paths[i] && metrics_check_path(paths[i], &err)) {
			fprintf(stderr, "%s: run: [%s]: ", progname,
				todo[i]->name);
			out_safe(stderr, err.msg);
			fputc('\n', stderr);
			return EXIT_USAGE;
		}
	}
	return 0;
}

/* Each metrics file once, with the accounts that report to it. */
static int write_metrics(const char **paths, const struct metrics_account *m,
			 size_t n, int rc)
{
	struct metrics_account *group = calloc(n ? n : 1, sizeof *group);

	if (!group) {
		fprintf(stderr, "%s: out of memory\n", progname);
		return rc ? rc : EXIT_LOCAL;
	}
	for (size_t i = 0; i < n; i++) {
		size_t k = 0;
		bool first = paths[i] != NULL;
		for (size_t j = 0; j < i && first; j++)
			first = !paths[j] || strcmp(paths[j], paths[i]);
		if (!first)
			continue;
		for (size_t j = i; j < n; j++)
			if (paths[j] && !strcmp(paths[j], paths[i]))
				group[k++] = m[j];
		rc = metrics_write_or_complain(paths[i], group, k, rc);
	}
	free(group);
	return rc;
}

struct run_opts {
	const char *path;     /* the config file */
	const char *metrics;  /* --metrics */
	struct shard shard;
	int verbosity;
	bool dry_run, as_json;
};

static int parse_run_opts(int argc, char **argv, struct run_opts *ro)
{
	char why[256];
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "c:nqvh", long_opts, NULL)) != -1) {
		switch (c) {
		case 'c': ro->path = optarg; break;
		case 'n': ro->dry_run = true; break;
		case OPT_JSON: ro->as_json = true; break;
		case OPT_METRICS: ro->metrics = optarg; break;
		case OPT_SHARD:
			if (!shard_parse(optarg, getenv("JOB_COMPLETION_INDEX"),
					 getenv("SLURM_ARRAY_TASK_ID"),
					 &ro->shard, why, sizeof why)) {
				fprintf(stderr, "%s: run: %s\n", progname, why);
				return EXIT_USAGE;
			}
			break;
		case 'q': ro->verbosity = 0; break;
		case 'v': ro->verbosity = 2; break;
		case 'h': fputs(run_usage, stdout); return -1;
		default:
			fputs(run_usage, stderr);
			return EXIT_USAGE;
		}
	}
	return 0;
}

int cmd_run(int argc, char **argv)
{
	char default_path[4096], prefix[128], shard_text[64] = "";
	struct run_opts ro = { .verbosity = 1 };
	const struct config_account **todo = NULL;
	const char **mpaths = NULL;
	struct account *accts = NULL;
	struct metrics_account *mets = NULL;
	struct config cfg;
	struct isnap_error err = { 0 };
	json_t *doc = NULL, *list = NULL;
	size_t n = 0, failed = 0, skipped = 0;
	int rc = EXIT_OK;
	bool partial = false;

	if ((rc = parse_run_opts(argc, argv, &ro)))
		return rc < 0 ? EXIT_OK : rc;
	if (!ro.path) {
		if (!config_default_path(getenv("XDG_CONFIG_HOME"),
					 getenv("HOME"), default_path,
					 sizeof default_path)) {
			fprintf(stderr, "%s: run: no config file: give "
				"--config FILE, or set HOME\n", progname);
			return EXIT_USAGE;
		}
		ro.path = default_path;
	}
	if (config_load(ro.path, getenv("HOME"), getuid(), &cfg, &err)) {
		fprintf(stderr, "%s: ", progname);
		out_safe(stderr, err.msg);
		fputc('\n', stderr);
		return EXIT_USAGE;
	}
	todo = calloc(cfg.n ? cfg.n : 1, sizeof *todo);
	accts = calloc(cfg.n ? cfg.n : 1, sizeof *accts);
	mets = calloc(cfg.n ? cfg.n : 1, sizeof *mets);
	mpaths = calloc(cfg.n ? cfg.n : 1, sizeof *mpaths);
	if (!todo || !accts || !mets || !mpaths) {
		fprintf(stderr, "%s: out of memory\n", progname);
		rc = EXIT_PARTIAL;
		goto out;
	}
	if ((rc = pick(&cfg, argc - optind, argv + optind, todo, &n)))
		goto out;
	/* Every account is checked before any runs: a typo in the last one
	 * must not show up only after hours of backing up the first.  With
	 * --shard, the accounts of the other shards too: a broken config
	 * fails every worker at once, not one in N. */
	for (size_t i = 0; i < n; i++)
		if ((rc = to_account(todo[i], &accts[i])))
			goto out;
	if (ro.shard.count) {
		if ((rc = keep_shard(&ro.shard, todo, accts, &n)))
			goto out;
		snprintf(shard_text, sizeof shard_text, "shard %u/%u: ",
			 ro.shard.index, ro.shard.count);
	}
	if ((rc = metrics_paths(ro.metrics, todo, n, mpaths)))
		goto out;
	if (ro.dry_run) /* a dry run is no backup; monitoring must not
			   see one */
		memset(mpaths, 0, n * sizeof *mpaths);

	if (ro.as_json) {
		doc = json_object();
		list = json_array();
		json_object_set_new(doc, "config", json_string(ro.path));
		if (ro.shard.count) {
			json_t *sh = json_object();
			json_object_set_new(sh, "index",
					    json_integer(ro.shard.index));
			json_object_set_new(sh, "count",
					    json_integer(ro.shard.count));
			json_object_set_new(sh, "from",
					    json_string(ro.shard.from));
			json_object_set_new(doc, "shard", sh);
		}
		json_object_set_new(doc, "accounts", list);
	}
	for (size_t i = 0; i < n; i++) {
		struct backup_summary sum = { 0 };
		struct output out;
		json_t *j;
		int arc;
		snprintf(prefix, sizeof prefix, "%s: %s", progname,
			 accts[i].name);
		metrics_account_begin(&mets[i], accts[i].name, accts[i].dest);
		out_init(&out, ro.verbosity, ro.as_json, ro.dry_run, prefix);
		arc = account_backup(&accts[i], &out, &j, &sum);
		out_free(&out);
		if (mpaths[i])
			metrics_account_end(&mets[i], arc, &sum);
		if (j)
			json_array_append_new(list, j);
		if (arc == EXIT_PARTIAL)
			partial = true;
		else if (arc && !rc)
			rc = arc;
		failed += arc != EXIT_OK;
		if (isnap_interrupted() && i + 1 < n) {
			/* Stopped by a signal: the account it was on kept what
			 * it had; the others are not started (and keep their
			 * metrics as the file has them). */
			if (!ro.as_json)
				fprintf(stderr, "%s: %sinterrupted: %zu "
					"account%s not started\n", progname,
					shard_text, n - i - 1,
					n - i - 1 == 1 ? "" : "s");
			failed += n - i - 1;
			partial = true;
			skipped = n - i - 1;
			break;
		}
	}
	if (!rc && partial)
		rc = EXIT_PARTIAL;
	rc = write_metrics(mpaths, mets, n - skipped, rc);
	if (n == 0 && ro.shard.count && ro.verbosity >= 1 && !ro.as_json)
		fprintf(stderr, "%s: %sno account of the config is in this "
			"shard\n", progname, shard_text);
	else if ((n > 1 || ro.shard.count) && !ro.as_json &&
		 (ro.verbosity >= 1 || rc))
		fprintf(stderr, "%s: %s%zu of %zu accounts %s\n", progname,
			shard_text, n - failed, n,
			ro.dry_run ? "planned" : "backed up");
	if (doc) {
		json_object_set_new(doc, "interrupted",
				    json_boolean(isnap_interrupted()));
		json_object_set_new(doc, "exit", json_integer(rc));
		out_json_print(doc);
	}
out:
	free(todo);
	free(accts);
	free(mets);
	free(mpaths);
	config_free(&cfg);
	return rc;
}
