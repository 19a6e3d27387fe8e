/*
 * list_cmd.c — `imapsnap list [options] URL`: every folder of an account
 * with its role, message and unseen counts, size and UIDVALIDITY; a table
 * for people, --json for scripts.  Read-only like everything else.
 */
#include <getopt.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "account.h"
#include "folder_map.h"
#include "imap/client.h"
#include "imap/commands.h"
#include "imap/status.h"
#include "mutf7.h"

static const char list_usage[] =
	"usage: imapsnap list [options] URL\n"
	"\n"
	"List every folder of the IMAP account at URL: its name, its role\n"
	"(\\Sent, \\Trash, ...), how many messages it holds and how many are\n"
	"unseen, its size and its UIDVALIDITY.  Nothing on the server changes.\n"
	"\n"
	"  --user, --password-file, --password-command, --oauth2-token-command,\n"
	"  --tls, --cacert, --insecure, --timeout: as for 'imapsnap backup'\n"
	"  --sizes                 when the server does not report folder sizes\n"
	"                          (STATUS=SIZE), add up the messages' sizes\n"
	"                          (slow on large folders)\n"
	"  --json                  print JSON on standard output\n"
	"  -v, --verbose           also print the protocol trace\n"
	"\n"
	"Exit status: 0 listed, 1 some folders could not be asked, 2 usage,\n"
	"3 authentication, 4 connection/TLS.\n";

enum { OPT_JSON = OPT_COMMAND_FIRST, OPT_SIZES };

static const struct option long_opts[] = {
	ACCOUNT_OPTIONS,
	{ "sizes", no_argument, NULL, OPT_SIZES },
	{ "json", no_argument, NULL, OPT_JSON },
	{ "quiet", no_argument, NULL, 'q' },
	{ "verbose", no_argument, NULL, 'v' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct row {
	const struct imap_folder *f;
	const struct imap_status *s;
	char *name; /* decoded, or the raw name when it does not decode */
};

/* INBOX first, then by name, so that a folder sits under its parent. */
static int by_name(const void *a, const void *b)
{
	const struct row *x = a, *y = b;
	bool xi = !strcmp(x->f->name, "INBOX"), yi = !strcmp(y->f->name, "INBOX");

	if (xi != yi)
		return xi ? -1 : 1;
	return strcmp(x->name, y->name);
}

static void num(char *buf, size_t size, bool known, uint64_t v)
{
	if (known)
		snprintf(buf, size, "%llu", (unsigned long long)v);
	else
		snprintf(buf, size, "-");
}

static void print_table(const struct row *rows, size_t n)
{
	size_t w = strlen("FOLDER"), folders = 0;
	uint64_t msgs = 0, unseen = 0, size = 0;
	bool all_sizes = true;
	char m[24], u[24], sz[24], uv[24], label[40];

	for (size_t i = 0; i < n; i++) {
		if (out_width(rows[i].name) > w)
			w = out_width(rows[i].name);
		folders += !rows[i].f->noselect;
	}
	snprintf(label, sizeof label, "(%zu folder%s)", folders,
		 folders == 1 ? "" : "s");
	if (strlen(label) > w)
		w = strlen(label);
	printf("%-*s  %-9s %9s %8s %10s %12s\n", (int)w, "FOLDER", "ROLE",
	       "MESSAGES", "UNSEEN", "SIZE", "UIDVALIDITY");
	for (size_t i = 0; i < n; i++) {
		const struct imap_status *s = rows[i].s;
		const char *role = rows[i].f->special_use;
		out_safe(stdout, rows[i].name);
		printf("%*s  ", (int)(w - out_width(rows[i].name)), "");
		if (rows[i].f->noselect) {
			printf("%-9s (no messages: not selectable)\n",
			       role ? role : "");
			continue;
		}
		num(m, sizeof m, s->known, s->messages);
		num(u, sizeof u, s->known, s->unseen);
		if (s->known && s->has_size)
			out_human_size(s->size, sz, sizeof sz);
		else
			snprintf(sz, sizeof sz, "-");
		num(uv, sizeof uv, s->known && s->uidvalidity, s->uidvalidity);
		printf("%-9s %9s %8s %10s %12s\n", role ? role : "", m, u, sz,
		       uv);
		msgs += s->messages;
		unseen += s->unseen;
		size += s->size;
		all_sizes = all_sizes && s->known && s->has_size;
	}
	if (all_sizes)
		out_human_size(size, sz, sizeof sz);
	else
		snprintf(sz, sizeof sz, "-");
	printf("%-*s  %-9s %9llu %8llu %10s\n", (int)w, label, "",
	       (unsigned long long)msgs, (unsigned long long)unseen, sz);
}

static json_t *json_num(bool known, uint64_t v)
{
	return known ? json_integer((json_int_t)v) : json_null();
}

static json_t *json_text(const char *s)
{
	char *safe = s ? out_safe_dup(s) : NULL;
	json_t *j = safe ? json_string(safe) : NULL;
	free(safe);
	return j ? j : json_null();
}

static void print_json(const char *url, const struct imap_folder_list *l,
		       const struct row *rows, size_t n,
		       enum imap_status_method method)
{
	json_t *doc = json_object(), *list = json_array();
	json_t *ns = json_object();
	char nsdelim[2] = { l->ns.delim, '\0' };

	for (size_t i = 0; i < n; i++) {
		const struct imap_folder *f = rows[i].f;
		const struct imap_status *s = rows[i].s;
		char delim[2] = { f->delim, '\0' };
		json_t *o = json_object();
		bool k = s->known;
		json_object_set_new(o, "name", json_text(rows[i].name));
		char *path = folder_logical_path(f->name, f->delim,
						 l->ns.prefix);
		json_object_set_new(o, "raw", json_text(f->name));
		json_object_set_new(o, "path", json_text(path));
		free(path);
		json_object_set_new(o, "delimiter",
				    f->delim ? json_text(delim) : json_null());
		json_object_set_new(o, "role", json_text(f->special_use));
		json_object_set_new(o, "selectable", json_boolean(!f->noselect));
		json_object_set_new(o, "messages", json_num(k, s->messages));
		json_object_set_new(o, "unseen", json_num(k, s->unseen));
		json_object_set_new(o, "size",
				    json_num(k && s->has_size, s->size));
		json_object_set_new(o, "uidvalidity",
				    json_num(k && s->uidvalidity,
					     s->uidvalidity));
		json_object_set_new(o, "error", json_text(s->error));
		json_array_append_new(list, o);
	}
	json_object_set_new(ns, "prefix", json_text(l->ns.prefix));
	json_object_set_new(ns, "delimiter",
			    l->ns.delim ? json_text(nsdelim) : json_null());
	json_object_set_new(ns, "from",
			    json_string(l->ns.known ? "NAMESPACE" : "LIST"));
	json_object_set_new(doc, "url", json_text(url));
	json_object_set_new(doc, "namespace", ns);
	json_object_set_new(doc, "status_by",
			    json_string(method == IMAP_STATUS_BY_LIST_STATUS
						? "LIST-STATUS"
						: "STATUS"));
	json_object_set_new(doc, "folders", list);
	out_json_print(doc);
}

static int list_account(struct account *a, struct output *o, bool sizes)
{
	struct imap_session_opts so = a->session;
	struct imap_folder_list folders = { 0 };
	struct imap_status *status = NULL;
	struct imap_client *c = NULL;
	struct isnap_error err = { 0 };
	enum imap_status_method method = IMAP_STATUS_BY_STATUS;
	enum isnap_status st;
	struct row *rows = NULL;
	char *password;
	int rc = EXIT_OK;

	st = account_password(a, &password, &err);
	if (st) {
		out_error(o, "%s", err.msg);
		return exit_status_for(st);
	}
	so.password = password;
	if (o->verbosity >= 2) {
		so.trace = out_trace;
		so.trace_ctx = o;
	}
	st = imap_client_open(&so, &c, &err);
	password_free(password);
	if (!st)
		st = imap_list(c, &folders, &err);
	if (!st && !(status = calloc(folders.n ? folders.n : 1,
				     sizeof *status)))
		st = isnap_fail(&err, ISNAP_ENOMEM, "out of memory");
	if (!st)
		st = imap_status_all(c, &folders, status,
				     sizes ? IMAP_STATUS_COUNT_SIZES : 0,
				     &method, &err);
	imap_client_close(c, !st);
	if (st) {
		out_error(o, "%s", err.msg);
		rc = exit_status_for(st);
		goto out;
	}

	if (!(rows = calloc(folders.n ? folders.n : 1, sizeof *rows))) {
		out_error(o, "out of memory");
		rc = EXIT_PARTIAL;
		goto out;
	}
	for (size_t i = 0; i < folders.n; i++) {
		const char *raw = folders.v[i].name;
		rows[i].f = &folders.v[i];
		rows[i].s = &status[i];
		if (mutf7_decode(raw, strlen(raw), &rows[i].name) < 0 &&
		    !(rows[i].name = strdup(raw))) {
			out_error(o, "out of memory");
			rc = EXIT_PARTIAL;
			goto out;
		}
		if (status[i].error) {
			out_error(o, "%s: %s", rows[i].name, status[i].error);
			rc = EXIT_PARTIAL;
		}
	}
	qsort(rows, folders.n, sizeof *rows, by_name);
	if (o->json) {
		print_json(a->session.url, &folders, rows, folders.n, method);
	} else {
		print_table(rows, folders.n);
		for (size_t i = 0; i < folders.n; i++)
			if (!sizes && status[i].known && !status[i].has_size) {
				out_notice(o, "the server does not report "
					   "folder sizes; --sizes adds up "
					   "the messages' sizes instead");
				break;
			}
	}
out:
	for (size_t i = 0; rows && i < folders.n; i++)
		free(rows[i].name);
	free(rows);
	imap_status_free(status, folders.n);
	imap_folder_list_free(&folders);
	return rc;
}

int cmd_list(int argc, char **argv)
{
	struct account a;
	struct output out;
	int c, rc, verbosity = 1;
	bool as_json = false, sizes = false;

	account_init(&a, "list");
	optind = 1;
	while ((c = getopt_long(argc, argv, "qvh", long_opts, NULL)) != -1) {
		switch (account_option(&a, c, optarg)) {
		case 1: continue;
		case -1: return EXIT_USAGE;
		}
		switch (c) {
		case OPT_JSON: as_json = true; break;
		case OPT_SIZES: sizes = true; break;
		case 'q': verbosity = 0; break;
		case 'v': verbosity = 2; break;
		case 'h': fputs(list_usage, stdout); return EXIT_OK;
		default:
			fputs(list_usage, stderr);
			return EXIT_USAGE;
		}
	}
	if (argc - optind != 1)
		return account_usage_error(&a, "expected URL");
	a.session.url = argv[optind];
	if ((rc = account_check(&a)))
		return rc;
	out_init(&out, verbosity, as_json, false, NULL);
	rc = list_account(&a, &out, sizes);
	out_free(&out);
	return rc;
}
