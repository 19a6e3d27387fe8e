/* transfer_cli.c — see transfer_cli.h. */
#include "transfer_cli.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "cli.h"
#include "output.h"
#include "restore_backup.h"

/* Past this many, failures are counted, not each printed. */
#define FAILURES_SHOWN 50

/* One path component: '/', '%', control bytes and a leading '.'
 * percent-encoded; empty becomes "%". */
static void component(char *out, size_t size, const char *s, size_t len)
{
	size_t n = 0;

	if (!len && size > 1)
		out[n++] = '%';
	for (size_t i = 0; i < len && n + 4 < size; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c == '/' || c == '%' || c < 0x20 || c == 0x7f ||
		    (i == 0 && c == '.'))
			n += (size_t)snprintf(out + n, size - n, "%%%02X", c);
		else
			out[n++] = (char)c;
	}
	out[n] = '\0';
}

/* The server part of a target's key: the same for every spelling of one
 * server that a user is likely to write.  Names are lower-cased (and a
 * final dot dropped); "localhost" and loopback addresses are
 * "localhost"; address literals are in their canonical text; the
 * standard ports (143, 993, or none) are left out, so imap:// and
 * imaps:// to one host share it, while another port (a tunnel, a
 * second server) is kept.  Names are not resolved: DNS answers change
 * between runs, the account does not. */
static void server_key(const char *hp, size_t len, char *out, size_t size)
{
	char host[512], canon[INET6_ADDRSTRLEN];
	const char *port = NULL;
	size_t hlen;
	unsigned char a[16];

	if (len && hp[0] == '[') {
		const char *close = memchr(hp, ']', len);
		hlen = close ? (size_t)(close - hp - 1) : len - 1;
		memcpy(host, hp + 1, hlen < sizeof host ? hlen : 0);
		if (close && close + 1 < hp + len && close[1] == ':')
			port = close + 2;
	} else {
		const char *colon = memchr(hp, ':', len);
		hlen = colon ? (size_t)(colon - hp) : len;
		memcpy(host, hp, hlen < sizeof host ? hlen : 0);
		if (colon)
			port = colon + 1;
	}
	if (hlen >= sizeof host)
		hlen = 0;
	host[hlen] = '\0';
	for (char *p = host; *p; p++)
		*p = (char)tolower((unsigned char)*p);
	if (hlen > 1 && host[hlen - 1] == '.')
		host[--hlen] = '\0';
	if (inet_pton(AF_INET, host, a) == 1) {
		if (a[0] == 127)
			snprintf(host, sizeof host, "localhost");
		else if (inet_ntop(AF_INET, a, canon, sizeof canon))
			snprintf(host, sizeof host, "%s", canon);
	} else if (inet_pton(AF_INET6, host, a) == 1) {
		static const unsigned char loop6[16] = { [15] = 1 };
		static const unsigned char v4map[12] = { [10] = 0xff,
							 [11] = 0xff };
		if (!memcmp(a, loop6, 16) ||
		    (!memcmp(a, v4map, 12) && a[12] == 127))
			snprintf(host, sizeof host, "localhost");
		else if (inet_ntop(AF_INET6, a, canon, sizeof canon))
			snprintf(host, sizeof host, "%s", canon);
	} else if (hlen >= 10 && !strcmp(host + hlen - 10, ".localhost")) {
		snprintf(host, sizeof host, "localhost");
	}
	if (port) {
		size_t plen = (size_t)(hp + len - port);
		if ((plen == 3 && !memcmp(port, "143", 3)) ||
		    (plen == 3 && !memcmp(port, "993", 3)) || plen == 0)
			port = NULL;
	}
	if (port) {
		char both[600];
		snprintf(both, sizeof both, "%s:%.*s", host,
			 (int)(hp + len - port), port);
		component(out, size, both, strlen(both));
	} else {
		component(out, size, host, strlen(host));
	}
}

char *transfer_state_dir(const char *base, const struct imap_session_opts *s,
			 struct isnap_error *err)
{
	const char *url = s->url, *rest, *at, *end, *user = s->user;
	char host[600], who[600], b[4096], *out;
	size_t ulen;

	if (!base) {
		const char *xdg = getenv("XDG_STATE_HOME");
		const char *home = getenv("HOME");
		if (xdg && *xdg)
			snprintf(b, sizeof b, "%s/imapsnap/restore", xdg);
		else if (home && *home)
			snprintf(b, sizeof b,
				 "%s/.local/state/imapsnap/restore", home);
		else {
			isnap_fail(err, ISNAP_EUSAGE,
				   "no HOME or XDG_STATE_HOME: give "
				   "--state-dir");
			return NULL;
		}
		base = b;
	}
	rest = strstr(url, "://");
	rest = rest ? rest + 3 : url;
	end = rest + strcspn(rest, "/");
	at = memchr(rest, '@', (size_t)(end - rest));
	if (at && !user) {
		user = rest;
		ulen = (size_t)(at - rest);
	} else {
		ulen = user ? strlen(user) : 0;
	}
	if (at)
		rest = at + 1;
	server_key(rest, (size_t)(end - rest), host, sizeof host);
	component(who, sizeof who, user ? user : "", ulen);
	if (asprintf(&out, "%s/%s/%s", base, host, who) < 0) {
		isnap_fail(err, ISNAP_ENOMEM, "out of memory");
		return NULL;
	}
	return out;
}

int transfer_option(struct transfer_cli *tc, int c, const char *arg)
{
	switch (c) {
	case 'n': tc->out.dry_run = true; return 1;
	case OPT_JSON: tc->out.json = true; return 1;
	case OPT_INTO: tc->into = arg; return 1;
	case OPT_STATE_DIR: tc->state_base = arg; return 1;
	case OPT_NO_SPECIAL_USE: tc->keep_roles = true; return 1;
	case 'q': tc->out.verbosity = 0; return 1;
	case 'v': tc->out.verbosity = 2; return 1;
	}
	return 0;
}

int transfer_setup(const struct transfer_cli *tc, const struct account *sel,
		   const struct imap_session_opts *target, const char *example,
		   struct restore_common_opts *common, char **state_dir)
{
	const char *into = tc->into;
	struct isnap_error err = { 0 };

	if (into && (!*into || into[0] == '/' ||
		     into[strlen(into) - 1] == '/'))
		return account_usage_error(sel, "--into %s: expected a folder "
					   "name such as %s", into, example);
	if (!(*state_dir = transfer_state_dir(tc->state_base, target, &err))) {
		fprintf(stderr, "%s: %s\n", progname, err.msg);
		return exit_status_for(err.status);
	}
	common->state_dir = *state_dir;
	common->into = into;
	common->include = sel->include;
	common->n_include = sel->n_include;
	common->exclude = sel->exclude;
	common->n_exclude = sel->n_exclude;
	common->dry_run = tc->out.dry_run;
	common->keep_roles = tc->keep_roles;
	common->retries = sel->retries;
	return 0;
}

static void on_folder(void *ctx, const char *folder, bool created,
		      uint64_t planned, uint64_t pending)
{
	struct transfer_out *o = ctx;

	/* Folders are planned as the run goes (migrate) or all first
	 * (restore): the line's total grows with each. */
	o->progress.total += pending;
	if (o->verbosity < 2)
		return;
	progress_clear(&o->progress);
	fprintf(stderr, "%s: ", progname);
	out_safe(stderr, folder);
	fprintf(stderr, ": %" PRIu64 " of %" PRIu64 " message%s to %s%s\n",
		pending, planned, planned == 1 ? "" : "s",
		o->dry_run ? "append (dry run)" : "append",
		created ? (o->dry_run ? ", folder to be created"
				      : ", folder created")
			: "");
}

/* With -n or -v: which source folder goes where. */
static void on_mapped(void *ctx, const char *from, const char *to,
		      const char *role, bool by_role)
{
	struct transfer_out *o = ctx;

	if (o->json) {
		json_t *m = json_object();
		char *f = out_safe_dup(from), *t = out_safe_dup(to);
		if (!o->mapping)
			o->mapping = json_array();
		json_object_set_new(m, "from", json_string(f ? f : ""));
		json_object_set_new(m, "to", json_string(t ? t : ""));
		json_object_set_new(m, "role",
				    role ? json_string(role) : json_null());
		json_object_set_new(m, "by_role", json_boolean(by_role));
		json_array_append_new(o->mapping, m);
		free(f);
		free(t);
	}
	if (o->verbosity < 1 || (o->verbosity < 2 && !o->dry_run))
		return;
	progress_clear(&o->progress);
	fprintf(stderr, "%s: ", progname);
	out_safe(stderr, from);
	fputs(" -> ", stderr);
	out_safe(stderr, to);
	if (by_role)
		fprintf(stderr, " (the target's %s folder)", role);
	fputc('\n', stderr);
}

static void on_folder_failed(void *ctx, const char *folder, const char *why)
{
	struct transfer_out *o = ctx;

	progress_clear(&o->progress);
	fprintf(stderr, "%s: ", progname);
	out_safe(stderr, folder);
	fputs(": folder failed: ", stderr);
	out_safe(stderr, why);
	fputc('\n', stderr);
}

static void on_failed(void *ctx, const char *folder, const char *what,
		      const char *why)
{
	struct transfer_out *o = ctx;

	if (++o->failures_shown > FAILURES_SHOWN)
		return;
	progress_clear(&o->progress);
	fprintf(stderr, "%s: ", progname);
	out_safe(stderr, what);
	fputs(" not transferred to ", stderr);
	out_safe(stderr, folder);
	fputs(": ", stderr);
	out_safe(stderr, why);
	fputc('\n', stderr);
	if (o->failures_shown == FAILURES_SHOWN)
		fprintf(stderr, "%s: (further failures are counted in the "
			"summary only)\n", progname);
}

static void on_warning(void *ctx, const char *text)
{
	struct transfer_out *o = ctx;

	if (o->verbosity < 1)
		return;
	progress_clear(&o->progress);
	fprintf(stderr, "%s: warning: ", progname);
	out_safe(stderr, text);
	fputc('\n', stderr);
}

static void on_appended(void *ctx, const char *folder, uint64_t bytes)
{
	struct transfer_out *o = ctx;

	(void)folder;
	progress_message(&o->progress, bytes);
}

static void on_trace(void *ctx, char dir, const char *data, size_t len)
{
	struct transfer_trace *t = ctx;

	trace_print(&t->out->progress, t->label, &t->in_auth, dir, data, len);
}

/* A login refused as throttled, waited for (imap/session.h). */
static void on_login_throttled(void *ctx, long wait_ms, const char *why,
			       const char *text)
{
	char line[600];

	snprintf(line, sizeof line, "%s at login (%s); waiting %.1f s before "
		 "logging in again", why, text, wait_ms / 1000.0);
	on_warning(ctx, line);
}

void transfer_trace(struct transfer_out *o, unsigned which, const char *label,
		    struct imap_session_opts *s)
{
	s->throttled = on_login_throttled;
	s->throttle_ctx = o;
	if (o->verbosity < 2 || which > 1)
		return;
	o->trace[which] = (struct transfer_trace){ .out = o, .label = label };
	s->trace = on_trace;
	s->trace_ctx = &o->trace[which];
}

struct restore_events transfer_events(struct transfer_out *o,
				      const char *what)
{
	progress_init(&o->progress, isatty(STDERR_FILENO) &&
					    o->verbosity >= 1 && !o->json &&
					    !o->dry_run);
	/* The line counts from here; its label is the command. */
	progress_folder(&o->progress, what, 0);
	return (struct restore_events){ .ctx = o,
					.folder = on_folder,
					.folder_failed = on_folder_failed,
					.mapped = on_mapped,
					.appended = on_appended,
					.failed = on_failed,
					.warning = on_warning };
}

static void json_summary(const char *what, const struct restore_stats *t,
			 const struct restore_summary *rs,
			 enum isnap_status st, int rc,
			 const struct isnap_error *err, bool dry_run,
			 json_t *mapping)
{
	json_t *o = json_object();
	char *text;

	json_object_set_new(o, "command", json_string(what));
	json_object_set_new(o, "ok", json_boolean(rc == 0));
	json_object_set_new(o, "exit", json_integer(rc));
	json_object_set_new(o, "dry_run", json_boolean(dry_run));
	json_object_set_new(o, "interrupted",
			    json_boolean(st == ISNAP_EINTERRUPTED));
#define NUM(k, v) json_object_set_new(o, k, json_integer((json_int_t)(v)))
	NUM("planned", t->planned);
	NUM("present", t->present);
	NUM("found", t->found);
	NUM("appended", t->appended);
	NUM("bytes", t->bytes);
	NUM("failed", t->failed);
	NUM("keywords_dropped", t->keywords_dropped);
	NUM("folders", t->folders);
	NUM("folders_created", t->folders_created);
	NUM("folders_failed", t->folders_failed);
	if (rs) {
		NUM("records", rs->records);
		NUM("old_generation", rs->old_generation);
		NUM("excluded", rs->excluded);
		NUM("mismatched", rs->mismatched);
		NUM("missing", rs->missing);
		NUM("unrecorded", rs->unrecorded);
		NUM("manifest_errors", rs->manifest_errors);
	}
#undef NUM
	json_object_set_new(o, "mapping", mapping ? json_incref(mapping)
						  : json_array());
	if (st && err->msg[0]) {
		char *safe = out_safe_dup(err->msg);
		json_object_set_new(o, "error", json_string(safe ? safe : ""));
		free(safe);
	}
	text = json_dumps(o, JSON_INDENT(2));
	if (text)
		puts(text);
	free(text);
	json_decref(o);
}

void transfer_summary(struct transfer_out *o, const char *what,
		      const struct restore_stats *t,
		      const struct restore_summary *rs, enum isnap_status st,
		      int rc, const struct isnap_error *err)
{
	char size[32];

	progress_clear(&o->progress);
	if (st && st != ISNAP_EMSG) {
		fprintf(stderr, "%s: %s: ", progname, what);
		out_safe(stderr, err->msg);
		fputc('\n', stderr);
	}
	if (o->json)
		json_summary(what, t, rs, st, rc, err, o->dry_run, o->mapping);
	json_decref(o->mapping);
	o->mapping = NULL;
	if (o->verbosity < 1 && !rc)
		return;
	out_human_size(t->bytes, size, sizeof size);
	fprintf(stderr, "%s: %s%s: %" PRIu64 " message%s %s (%s) in %" PRIu64
		" folder%s",
		progname, what, o->dry_run ? " (dry run)" : "", t->appended,
		t->appended == 1 ? "" : "s",
		o->dry_run ? "to append" : "appended", size, t->folders,
		t->folders == 1 ? "" : "s");
	if (t->folders_created)
		fprintf(stderr, " (%" PRIu64 " created)", t->folders_created);
	fprintf(stderr, ", %" PRIu64 " already there", t->present + t->found);
	if (t->found)
		fprintf(stderr, " (%" PRIu64 " found after an interrupted run)",
			t->found);
	if (t->failed)
		fprintf(stderr, ", %" PRIu64 " failed", t->failed);
	if (t->folders_failed)
		fprintf(stderr, ", %" PRIu64 " folder%s failed",
			t->folders_failed, t->folders_failed == 1 ? "" : "s");
	if (t->keywords_dropped)
		fprintf(stderr, ", %" PRIu64 " keyword%s the server cannot "
			"keep left out",
			t->keywords_dropped,
			t->keywords_dropped == 1 ? "" : "s");
	if (rs && rs->missing)
		fprintf(stderr, ", %" PRIu64 " missing from the backup",
			rs->missing);
	if (rs && rs->mismatched)
		fprintf(stderr, ", %" PRIu64 " not matching the manifest",
			rs->mismatched);
	if (rs && rs->old_generation)
		fprintf(stderr, ", %" PRIu64 " of older UIDVALIDITY "
			"generations skipped",
			rs->old_generation);
	if (rs && rs->unrecorded)
		fprintf(stderr, ", %" PRIu64 " in no manifest skipped",
			rs->unrecorded);
	if (st == ISNAP_EINTERRUPTED)
		fprintf(stderr, ", interrupted (the next run goes on)");
	fputc('\n', stderr);
}
