/*
 * metrics.c — the metric families of the --metrics file, the samples one
 * account's run gives, and the text format both ways (see metrics.h;
 * metrics_file.c reads, merges and replaces the file).
 *
 * The format is Prometheus' text exposition format 0.0.4: "# HELP" and
 * "# TYPE" once per family, then one `name{labels} value` line per sample,
 * no timestamps (node_exporter's textfile collector refuses them).
 */
#include <ftw.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include "metrics.h"

/* All gauges: each describes the last run, or the backup as it is now.
 * docs/monitoring.md lists them; keep the two in step. */
const struct metrics_family metrics_families[] = {
	{ "imapsnap_last_run_start_timestamp_seconds",
	  "When the last run of the account started, in seconds since the "
	  "epoch." },
	{ "imapsnap_last_run_end_timestamp_seconds",
	  "When the last run of the account ended, in seconds since the "
	  "epoch." },
	{ "imapsnap_last_run_duration_seconds",
	  "How long the last run of the account took." },
	{ "imapsnap_last_run_exit_status",
	  "Exit status of the last run of the account (0: every planned "
	  "message saved; see imapsnap(1))." },
	{ "imapsnap_last_run_success",
	  "1 when the last run of the account saved every planned message, "
	  "else 0." },
	{ "imapsnap_last_run_interrupted",
	  "1 when a signal (SIGTERM, SIGINT, SIGHUP) stopped the last run of "
	  "the account, which kept what it had received; else 0." },
	{ "imapsnap_last_success_timestamp_seconds",
	  "When a run of the account last saved every planned message, in "
	  "seconds since the epoch (0: never)." },
	{ "imapsnap_last_run_folders",
	  "Folders the last run opened (EXAMINE); one it could not open counts "
	  "only as failed." },
	{ "imapsnap_last_run_folders_failed",
	  "Folders the last run could not back up." },
	{ "imapsnap_last_run_messages_planned",
	  "Messages the last run set out to fetch." },
	{ "imapsnap_last_run_messages_saved",
	  "Messages the last run saved." },
	{ "imapsnap_last_run_saved_bytes",
	  "Bytes of the messages the last run saved." },
	{ "imapsnap_last_run_messages_skipped",
	  "Messages the last run planned but did not save, by reason: failed "
	  "(refused by the server, malformed, or not storable; tried again "
	  "next run), expunged (deleted on the server during the run)." },
	{ "imapsnap_backup_size_bytes",
	  "Disk space the backup takes, as du(1) counts it." },
};
const size_t metrics_n_families =
	sizeof metrics_families / sizeof metrics_families[0];

enum {
	F_START, F_END, F_DURATION, F_EXIT, F_SUCCESS, F_INTERRUPTED,
	F_LAST_SUCCESS,
	F_FOLDERS, F_FOLDERS_FAILED, F_PLANNED, F_SAVED, F_BYTES, F_SKIPPED,
	F_SIZE,
};

int metrics_family_find(const char *name, size_t len)
{
	for (size_t i = 0; i < metrics_n_families; i++)
		if (strlen(metrics_families[i].name) == len &&
		    !memcmp(metrics_families[i].name, name, len))
			return (int)i;
	return -1;
}

/* --- one account's run --------------------------------------------------- */

static double wall_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static double mono_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

void metrics_account_begin(struct metrics_account *m, const char *account,
			   const char *dest)
{
	memset(m, 0, sizeof *m);
	m->account = account;
	m->dest = dest;
	m->start = wall_now();
	m->mono_start = mono_now();
}

void metrics_account_end(struct metrics_account *m, int exit_status,
			 const struct backup_summary *sum)
{
	m->end = wall_now();
	m->duration = mono_now() - m->mono_start;
	m->exit_status = exit_status;
	m->interrupted = sum && sum->interrupted;
	if (sum)
		m->counts = (struct metrics_counts){
			.folders = sum->folders,
			.folders_failed = sum->folders_failed,
			.planned = sum->planned,
			.saved = sum->fetch.saved,
			.bytes = sum->fetch.bytes,
			.failed = sum->fetch.failed,
			.vanished = sum->fetch.vanished,
		};
	m->have_size = metrics_disk_usage(m->dest, &m->size_bytes);
}

/* nftw has no context pointer; the walk is the only one running. */
static uint64_t du_total;

static int du_visit(const char *path, const struct stat *st, int type,
		    struct FTW *ftw)
{
	(void)path;
	(void)ftw;
	if (type != FTW_NS)
		du_total += (uint64_t)st->st_blocks * 512;
	return 0;
}

bool metrics_disk_usage(const char *dest, uint64_t *bytes)
{
	struct stat st;

	*bytes = 0;
	if (!dest || lstat(dest, &st))
		return false;
	du_total = 0;
	if (nftw(dest, du_visit, 32, FTW_PHYS | FTW_MOUNT))
		return false;
	*bytes = du_total;
	return true;
}

void metrics_escape(const char *s, char *buf, size_t size)
{
	size_t o = 0;

	if (!size)
		return;
	for (; *s && o + 3 < size; s++) {
		if (*s == '\\' || *s == '"')
			buf[o++] = '\\', buf[o++] = *s;
		else if (*s == '\n')
			buf[o++] = '\\', buf[o++] = 'n';
		else
			buf[o++] = *s;
	}
	buf[o] = '\0';
}

static int add(struct metrics_sample **v, size_t *n, int family,
	       const char *account, const char *extra, const char *fmt, ...)
	__attribute__((format(printf, 6, 7)));
static int add(struct metrics_sample **v, size_t *n, int family,
	       const char *account, const char *extra, const char *fmt, ...)
{
	char esc[1024], labels[1200], value[64];
	struct metrics_sample *nv, *s;
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(value, sizeof value, fmt, ap);
	va_end(ap);
	metrics_escape(account, esc, sizeof esc);
	snprintf(labels, sizeof labels, "{account=\"%s\"%s%s}", esc,
		 extra ? "," : "", extra ? extra : "");
	nv = realloc(*v, (*n + 1) * sizeof *nv);
	if (!nv)
		return -1;
	*v = nv;
	s = &nv[*n];
	s->family = family;
	s->account = strdup(account);
	s->labels = strdup(labels);
	s->value = strdup(value);
	if (!s->account || !s->labels || !s->value) {
		metrics_sample_free(s);
		return -1;
	}
	(*n)++;
	return 0;
}

int metrics_account_samples(const struct metrics_account *m,
			    double last_success, struct metrics_sample **v,
			    size_t *n)
{
	const struct metrics_counts *s = &m->counts;
	const char *a = m->account;
	int rc = 0;

	rc |= add(v, n, F_START, a, NULL, "%.3f", m->start);
	rc |= add(v, n, F_END, a, NULL, "%.3f", m->end);
	rc |= add(v, n, F_DURATION, a, NULL, "%.3f", m->duration);
	rc |= add(v, n, F_EXIT, a, NULL, "%d", m->exit_status);
	rc |= add(v, n, F_SUCCESS, a, NULL, "%d", m->exit_status == 0);
	rc |= add(v, n, F_INTERRUPTED, a, NULL, "%d", m->interrupted);
	rc |= add(v, n, F_LAST_SUCCESS, a, NULL, "%.3f", last_success);
	rc |= add(v, n, F_FOLDERS, a, NULL, "%u", s->folders);
	rc |= add(v, n, F_FOLDERS_FAILED, a, NULL, "%u", s->folders_failed);
	rc |= add(v, n, F_PLANNED, a, NULL, "%llu",
		  (unsigned long long)s->planned);
	rc |= add(v, n, F_SAVED, a, NULL, "%llu",
		  (unsigned long long)s->saved);
	rc |= add(v, n, F_BYTES, a, NULL, "%llu",
		  (unsigned long long)s->bytes);
	rc |= add(v, n, F_SKIPPED, a, "reason=\"failed\"", "%llu",
		  (unsigned long long)s->failed);
	rc |= add(v, n, F_SKIPPED, a, "reason=\"expunged\"", "%llu",
		  (unsigned long long)s->vanished);
	if (m->have_size)
		rc |= add(v, n, F_SIZE, a, NULL, "%llu",
			  (unsigned long long)m->size_bytes);
	return rc ? -1 : 0;
}

void metrics_sample_free(struct metrics_sample *s)
{
	free(s->account);
	free(s->labels);
	free(s->value);
	s->account = s->labels = s->value = NULL;
}

/* --- reading a line back ------------------------------------------------- */

static bool name_char(char c, bool first)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' ||
	       c == ':' || (!first && c >= '0' && c <= '9');
}

/* Parse the label set at `p` ('{' … '}'); the account label's value,
 * unescaped, into *account.  Returns the position after '}', or NULL. */
static const char *parse_labels(const char *p, char **account)
{
	char *val = malloc(strlen(p) + 1);

	*account = NULL;
	if (!val)
		return NULL;
	p++; /* '{' */
	while (*p != '}') {
		const char *name = p;
		size_t nlen, o = 0;

		while (name_char(*p, p == name))
			p++;
		nlen = (size_t)(p - name);
		if (!nlen || *p++ != '=' || *p++ != '"')
			goto bad;
		for (; *p != '"'; p++) {
			if (!*p || *p == '\n')
				goto bad;
			if (*p == '\\') {
				p++;
				if (*p == 'n')
					val[o++] = '\n';
				else if (*p == '\\' || *p == '"')
					val[o++] = *p;
				else
					goto bad;
			} else {
				val[o++] = *p;
			}
		}
		val[o] = '\0';
		p++; /* '"' */
		if (nlen == 7 && !memcmp(name, "account", 7)) {
			if (*account)
				goto bad;
			if (!(*account = strdup(val)))
				goto bad;
		}
		if (*p == ',')
			p++;
		else if (*p != '}')
			goto bad;
	}
	free(val);
	return p + 1;
bad:
	free(val);
	free(*account);
	*account = NULL;
	return NULL;
}

int metrics_parse_line(const char *line, struct metrics_sample *out)
{
	const char *p = line, *name = line, *labels, *end, *value;
	char *account = NULL, *num_end;
	int family;

	memset(out, 0, sizeof *out);
	if (!*p || *p == '#' || *p == '\n')
		return 0;
	while (name_char(*p, p == name))
		p++;
	if (p == name || *p != '{')
		return -1;
	family = metrics_family_find(name, (size_t)(p - name));
	labels = p;
	if (!(end = parse_labels(p, &account)))
		return -1;
	if (*end != ' ') {
		free(account);
		return -1;
	}
	value = end + 1;
	strtod(value, &num_end);
	if (num_end == value || (*num_end && *num_end != '\n')) {
		free(account);
		return -1;
	}
	if (family < 0 || !account) {
		free(account);
		return 0;
	}
	out->family = family;
	out->account = account;
	out->labels = strndup(labels, (size_t)(end - labels));
	out->value = strndup(value, (size_t)(num_end - value));
	if (!out->labels || !out->value) {
		metrics_sample_free(out);
		return -1;
	}
	return 1;
}

/* --- the whole file ------------------------------------------------------ */

static int sample_cmp(const void *a, const void *b)
{
	const struct metrics_sample *x = a, *y = b;
	int c;

	if (x->family != y->family)
		return x->family < y->family ? -1 : 1;
	if ((c = strcmp(x->account, y->account)))
		return c;
	return strcmp(x->labels, y->labels);
}

char *metrics_render(struct metrics_sample *v, size_t n)
{
	char *buf = NULL;
	size_t len = 0, i = 0;
	FILE *f = open_memstream(&buf, &len);

	if (!f)
		return NULL;
	qsort(v, n, sizeof *v, sample_cmp);
	for (size_t fam = 0; fam < metrics_n_families; fam++) {
		const struct metrics_family *mf = &metrics_families[fam];
		fprintf(f, "# HELP %s %s\n# TYPE %s gauge\n", mf->name,
			mf->help, mf->name);
		for (; i < n && v[i].family == (int)fam; i++)
			fprintf(f, "%s%s %s\n", mf->name, v[i].labels,
				v[i].value);
	}
	if (fclose(f)) {
		free(buf);
		return NULL;
	}
	return buf;
}
