/*
 * output.c — messages, the summary and --json for one backup (see
 * output.h for who sees what).
 */
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "output.h"

/* --json lists at most this many errors; the count is always complete. */
#define JSON_MAX_ERRORS 1000

void out_init(struct output *o, int verbosity, bool json, bool dry_run,
	      const char *prefix)
{
	const char *term = getenv("TERM");

	memset(o, 0, sizeof *o);
	o->prefix = prefix ? prefix : progname;
	o->verbosity = verbosity;
	o->json = json;
	o->dry_run = dry_run;
	o->tty = isatty(STDERR_FILENO) && !(term && !strcmp(term, "dumb"));
	/* -v prints lines of its own; a live line would garble them. */
	progress_init(&o->progress, o->tty && verbosity == 1 && !dry_run);
	o->errors = json_array();
	o->plan = json_array();
}

void out_free(struct output *o)
{
	progress_clear(&o->progress);
	progress_free(&o->progress);
	json_decref(o->errors);
	json_decref(o->plan);
	o->errors = o->plan = NULL;
}

/* --- text that came from the server ------------------------------------ */

/* Decode one UTF-8 sequence; 0 when `s` does not start a valid one
 * (overlong forms, surrogates and values past U+10FFFF included). */
static size_t utf8_next(const unsigned char *s, uint32_t *cp)
{
	size_t n;
	uint32_t c, min;

	if (s[0] < 0x80) {
		*cp = s[0];
		return 1;
	}
	if ((s[0] & 0xE0) == 0xC0)
		n = 2, c = s[0] & 0x1F, min = 0x80;
	else if ((s[0] & 0xF0) == 0xE0)
		n = 3, c = s[0] & 0x0F, min = 0x800;
	else if ((s[0] & 0xF8) == 0xF0)
		n = 4, c = s[0] & 0x07, min = 0x10000;
	else
		return 0;
	for (size_t i = 1; i < n; i++) {
		if ((s[i] & 0xC0) != 0x80)
			return 0;
		c = c << 6 | (s[i] & 0x3F);
	}
	if (c < min || c > 0x10FFFF || (c >= 0xD800 && c <= 0xDFFF))
		return 0;
	*cp = c;
	return n;
}

static bool is_control(uint32_t c)
{
	return c < 0x20 || (c >= 0x7F && c < 0xA0);
}

/* Columns a code point takes: enough of Unicode's East Asian Width and
 * combining classes for folder names, without depending on the locale
 * (cron runs in "C"). */
static size_t cp_width(uint32_t c)
{
	if ((c >= 0x0300 && c <= 0x036F) || (c >= 0x200B && c <= 0x200F) ||
	    (c >= 0xFE00 && c <= 0xFE0F))
		return 0;
	if ((c >= 0x1100 && c <= 0x115F) || (c >= 0x2E80 && c <= 0xA4CF) ||
	    (c >= 0xAC00 && c <= 0xD7A3) || (c >= 0xF900 && c <= 0xFAFF) ||
	    (c >= 0xFE30 && c <= 0xFE4F) || (c >= 0xFF00 && c <= 0xFF60) ||
	    (c >= 0xFFE0 && c <= 0xFFE6) || (c >= 0x1F300 && c <= 0x1FAFF) ||
	    (c >= 0x20000 && c <= 0x3FFFD))
		return 2;
	return 1;
}

/* Walk `s`, calling emit for each piece of safe text. */
static void walk_safe(const char *s,
		      void (*emit)(void *ctx, const char *piece, size_t len,
				   uint32_t cp),
		      void *ctx)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		uint32_t cp;
		size_t n = utf8_next(p, &cp);
		if (n == 0)
			emit(ctx, "\xEF\xBF\xBD", 3, 0xFFFD), n = 1;
		else if (is_control(cp))
			emit(ctx, "?", 1, '?');
		else
			emit(ctx, (const char *)p, n, cp);
		p += n;
	}
}

static void emit_file(void *ctx, const char *piece, size_t len, uint32_t cp)
{
	(void)cp;
	fwrite(piece, 1, len, ctx);
}

void out_safe(FILE *f, const char *s)
{
	walk_safe(s, emit_file, f);
}

struct buf {
	char *s;
	size_t n;
};

static void emit_buf(void *ctx, const char *piece, size_t len, uint32_t cp)
{
	struct buf *b = ctx;
	(void)cp;
	if (b->s)
		memcpy(b->s + b->n, piece, len);
	b->n += len;
}

char *out_safe_dup(const char *s)
{
	struct buf b = { 0 };

	/* Each byte becomes at most 3 (U+FFFD). */
	b.s = malloc(3 * strlen(s) + 1);
	if (!b.s)
		return NULL;
	walk_safe(s, emit_buf, &b);
	b.s[b.n] = '\0';
	return b.s;
}

static void emit_width(void *ctx, const char *piece, size_t len, uint32_t cp)
{
	(void)piece;
	(void)len;
	*(size_t *)ctx += cp_width(cp);
}

size_t out_width(const char *s)
{
	size_t w = 0;
	walk_safe(s, emit_width, &w);
	return w;
}

void out_human_size(uint64_t bytes, char *buf, size_t size)
{
	static const char *const unit[] = { "KiB", "MiB", "GiB", "TiB", "PiB" };
	double v = (double)bytes;
	size_t u = 0;

	if (bytes < 1024) {
		snprintf(buf, size, "%llu B", (unsigned long long)bytes);
		return;
	}
	v /= 1024;
	while (v >= 1024 && u + 1 < sizeof unit / sizeof unit[0]) {
		v /= 1024;
		u++;
	}
	snprintf(buf, size, v < 10 ? "%.1f %s" : "%.0f %s", v, unit[u]);
}

/* jansson wants valid UTF-8; server text may not be. */
static json_t *jstr(const char *s)
{
	char *safe;
	json_t *j;

	if (!s)
		return json_null();
	safe = out_safe_dup(s);
	j = safe ? json_string(safe) : NULL;
	free(safe);
	return j ? j : json_null();
}

void out_json_print(json_t *doc)
{
	if (!doc)
		return;
	json_dumpf(doc, stdout, JSON_COMPACT | JSON_ENSURE_ASCII);
	fputc('\n', stdout);
	fflush(stdout);
	json_decref(doc);
}

/* --- messages ---------------------------------------------------------- */

static void vprint(struct output *o, const char *kind, const char *fmt,
		   va_list ap)
{
	char text[2048];

	vsnprintf(text, sizeof text, fmt, ap);
	progress_clear(&o->progress);
	fprintf(stderr, "%s: %s", o->prefix, kind);
	out_safe(stderr, text);
	fputc('\n', stderr);
	if (*kind && json_array_size(o->errors) < JSON_MAX_ERRORS)
		json_array_append_new(o->errors, jstr(text));
}

void out_error(struct output *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprint(o, "error: ", fmt, ap);
	va_end(ap);
}

void out_print(struct output *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprint(o, "", fmt, ap);
	va_end(ap);
}

void out_warning(struct output *o, const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	vprint(o, "warning: ", fmt, ap);
	va_end(ap);
}

void out_notice(struct output *o, const char *fmt, ...)
{
	va_list ap;

	if (o->verbosity < 2 && !(o->verbosity == 1 && o->tty))
		return;
	va_start(ap, fmt);
	vprint(o, "", fmt, ap);
	va_end(ap);
}

/* --- backup events ----------------------------------------------------- */

static void on_folder_begin(void *ctx, const char *folder, uint64_t n,
			    uint64_t saved)
{
	struct output *o = ctx;

	if (o->verbosity >= 2)
		out_notice(o, "%s: %llu new, %llu saved before", folder,
			   (unsigned long long)n, (unsigned long long)saved);
	progress_folder(&o->progress, folder, n);
}

static void on_folder_end(void *ctx, const char *folder,
			  const struct fetch_stats *s)
{
	struct output *o = ctx;

	if (o->verbosity >= 2 && s->saved)
		out_notice(o, "%s: %llu messages, %llu bytes saved", folder,
			   (unsigned long long)s->saved,
			   (unsigned long long)s->bytes);
}

static void on_folder_failed(void *ctx, const char *folder,
			     const struct isnap_error *err)
{
	(void)folder; /* the message already names it */
	out_error(ctx, "%s", err->msg);
}

static void on_message_failed(void *ctx, const char *folder, uint32_t uid,
			      const char *why)
{
	out_error(ctx, "%s: UID %u: %s", folder, uid, why);
}

static void on_message_saved(void *ctx, const char *folder, uint32_t uid,
			     uint64_t bytes)
{
	struct output *o = ctx;
	(void)uid;
	progress_message_in(&o->progress, folder, bytes);
}

static void on_folder_planned(void *ctx, const char *folder,
			      uint64_t messages, uint64_t bytes)
{
	struct output *o = ctx;
	json_t *row = json_object();

	json_object_set_new(row, "folder", jstr(folder));
	json_object_set_new(row, "messages", json_integer((json_int_t)messages));
	json_object_set_new(row, "bytes", json_integer((json_int_t)bytes));
	json_array_append_new(o->plan, row);
}

static void on_notice(void *ctx, const char *text)
{
	out_notice(ctx, "%s", text);
}

/* Shown even when not on a terminal (cron mails it): a lost connection or
 * a server breaking the protocol is worth knowing about. */
static void on_warning(void *ctx, const char *text)
{
	struct output *o = ctx;

	if (o->verbosity == 0)
		return;
	out_warning(o, "%s", text);
}

struct backup_events out_events(struct output *o)
{
	return (struct backup_events){
		.ctx = o,
		.folder_begin = on_folder_begin,
		.folder_end = on_folder_end,
		.folder_failed = on_folder_failed,
		.message_failed = on_message_failed,
		.message_saved = on_message_saved,
		.folder_planned = on_folder_planned,
		.notice = on_notice,
		.warning = on_warning,
	};
}

/* --- the end ----------------------------------------------------------- */

static const char *exit_name(int code)
{
	switch (code) {
	case EXIT_OK: return "ok";
	case EXIT_PARTIAL: return "partial";
	case EXIT_USAGE: return "usage";
	case EXIT_AUTH: return "auth";
	case EXIT_CONNECT: return "connection";
	case EXIT_LOCKED: return "locked";
	case EXIT_LOCAL: return "destination";
	case EXIT_INTEGRITY: return "integrity";
	}
	return "failed";
}

/* The dry run's plan as a table on stdout. */
static void print_plan(const struct output *o)
{
	size_t i, w = 6, rows = json_array_size(o->plan);
	unsigned long long msgs = 0, bytes = 0;
	json_t *row;
	char size[32];

	json_array_foreach(o->plan, i, row) {
		size_t fw = out_width(json_string_value(
			json_object_get(row, "folder")));
		if (fw > w)
			w = fw;
	}
	printf("%-*s %10s %12s %10s\n", (int)w, "FOLDER", "MESSAGES", "BYTES",
	       "SIZE");
	json_array_foreach(o->plan, i, row) {
		const char *name = json_string_value(
			json_object_get(row, "folder"));
		json_int_t m = json_integer_value(
			json_object_get(row, "messages"));
		json_int_t b = json_integer_value(
			json_object_get(row, "bytes"));
		out_human_size((uint64_t)b, size, sizeof size);
		out_safe(stdout, name);
		printf("%*s %10lld %12lld %10s\n",
		       (int)(w - out_width(name)), "", (long long)m,
		       (long long)b, size);
		msgs += (unsigned long long)m;
		bytes += (unsigned long long)b;
	}
	out_human_size(bytes, size, sizeof size);
	printf("%-*s %10llu %12llu %10s\n", (int)w,
	       rows == 1 ? "(1 folder)" : "(total)", msgs, bytes, size);
	fflush(stdout);
}

static void print_summary(struct output *o, const struct backup_summary *sum)
{
	fprintf(stderr, "%s: ", o->prefix);
	if (o->dry_run) {
		fprintf(stderr,
			"dry run: would fetch %llu messages in %u folders "
			"(nothing written) in %.2f s",
			(unsigned long long)sum->planned, sum->folders,
			sum->seconds);
	} else {
		fprintf(stderr, "%u folders, %llu messages, %llu bytes in %.2f s",
			sum->folders, (unsigned long long)sum->fetch.saved,
			(unsigned long long)sum->fetch.bytes, sum->seconds);
		/* Counted above are the messages committed; these came in
		 * whole but were never made durable. */
		if (sum->fetch.uncommitted)
			fprintf(stderr,
				", %llu received (%llu bytes) but not "
				"committed",
				(unsigned long long)sum->fetch.uncommitted,
				(unsigned long long)
					sum->fetch.uncommitted_bytes);
		if (sum->fetch.failed)
			fprintf(stderr, ", %llu failed",
				(unsigned long long)sum->fetch.failed);
		if (sum->fetch.vanished)
			fprintf(stderr, ", %llu expunged meanwhile",
				(unsigned long long)sum->fetch.vanished);
		if (sum->fetch.unexpected)
			fprintf(stderr, ", %llu unexpected bodies dropped",
				(unsigned long long)sum->fetch.unexpected);
		if (sum->fetch.size_mismatch)
			fprintf(stderr, ", %llu not of the size announced",
				(unsigned long long)sum->fetch.size_mismatch);
		if (sum->flags_changed)
			fprintf(stderr, ", %llu with new flags",
				(unsigned long long)sum->flags_changed);
		if (sum->expunged)
			fprintf(stderr, ", %llu gone from the server",
				(unsigned long long)sum->expunged);
		if (sum->healed)
			fprintf(stderr, ", %llu missing from the backup and "
				"fetched again",
				(unsigned long long)sum->healed);
	}
	if (sum->folders_failed)
		fprintf(stderr, ", %u folders failed", sum->folders_failed);
	if (sum->interrupted)
		fprintf(stderr, ", interrupted");
	if (sum->manifest_sha256[0])
		fprintf(stderr, ", manifest sha256 %s", sum->manifest_sha256);
	fputc('\n', stderr);
}

json_t *out_summary(struct output *o, const char *account, const char *dest,
		    const struct backup_summary *sum, enum isnap_status st,
		    int exit_status, const struct isnap_error *err)
{
	json_t *j;

	progress_clear(&o->progress);
	if (st == ISNAP_EINTERRUPTED) {
		/* Not an error of the backup: what it had is kept. */
		out_print(o, "%s%s", err->msg,
			  sum->folders ? "; what had arrived complete is "
					 "saved, and the next run goes on"
				       : "");
	} else if (st && st != ISNAP_EMSG && st != ISNAP_EFOLDER) {
		if (st == ISNAP_ELOCKED)
			out_error(o, "%s: %s", dest, err->msg);
		else
			out_error(o, "%s", err->msg);
	}
	if (o->dry_run && !o->json && (!st || st == ISNAP_EMSG ||
				       st == ISNAP_EFOLDER))
		print_plan(o);
	if (!o->json && (o->verbosity >= 1 || exit_status != EXIT_OK))
		print_summary(o, sum);
	if (!o->json)
		return NULL;

	j = json_object();
	json_object_set_new(j, "account", jstr(account));
	json_object_set_new(j, "destination", jstr(dest));
	json_object_set_new(j, "status", json_string(exit_name(exit_status)));
	json_object_set_new(j, "exit", json_integer(exit_status));
	json_object_set_new(j, "error",
			    st && st != ISNAP_EMSG && st != ISNAP_EFOLDER
				    ? jstr(err->msg)
				    : json_null());
	json_object_set_new(j, "dry_run", json_boolean(o->dry_run));
	json_object_set_new(j, "interrupted", json_boolean(sum->interrupted));
	json_object_set_new(j, "folders", json_integer(sum->folders));
	json_object_set_new(j, "folders_failed",
			    json_integer(sum->folders_failed));
	json_object_set_new(j, "planned",
			    json_integer((json_int_t)sum->planned));
	json_object_set_new(j, "messages",
			    json_integer((json_int_t)sum->fetch.saved));
	json_object_set_new(j, "bytes",
			    json_integer((json_int_t)sum->fetch.bytes));
	json_object_set_new(j, "uncommitted",
			    json_integer((json_int_t)sum->fetch.uncommitted));
	json_object_set_new(j, "uncommitted_bytes",
			    json_integer(
				    (json_int_t)sum->fetch.uncommitted_bytes));
	json_object_set_new(j, "failed",
			    json_integer((json_int_t)sum->fetch.failed));
	json_object_set_new(j, "vanished",
			    json_integer((json_int_t)sum->fetch.vanished));
	json_object_set_new(j, "unexpected",
			    json_integer((json_int_t)sum->fetch.unexpected));
	json_object_set_new(j, "size_mismatch",
			    json_integer((json_int_t)sum->fetch.size_mismatch));
	json_object_set_new(j, "flags_changed",
			    json_integer((json_int_t)sum->flags_changed));
	json_object_set_new(j, "expunged",
			    json_integer((json_int_t)sum->expunged));
	json_object_set_new(j, "healed",
			    json_integer((json_int_t)sum->healed));
	json_object_set_new(j, "seconds", json_real(sum->seconds));
	json_object_set_new(j, "manifest_sha256",
			    sum->manifest_sha256[0]
				    ? json_string(sum->manifest_sha256)
				    : json_null());
	json_object_set_new(j, "errors", json_copy(o->errors));
	if (o->dry_run)
		json_object_set_new(j, "plan", json_copy(o->plan));
	return j;
}
