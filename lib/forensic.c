/*
 * forensic.c — see forensic.h.  One pass over the run file: message
 * lines go straight to the item list and skipped lines to the exception
 * list as they are read (memory does not grow with the messages); the
 * folders' counts are kept for the acquisition log, written last.
 */
#include "forensic.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <jansson.h>

#include "beneath.h"
#include "manifest_read.h"

struct folder_count {
	char *name;
	uint64_t uidvalidity, uidnext, exists, highestmodseq;
	uint64_t saved, skipped;
};

struct record_file {
	int dirfd;        /* the manifest directory (not owned) */
	char *path, *tmp; /* names in it */
	FILE *f;
};

struct reader {
	struct record_file items, exceptions;
	json_t *run, *server, *server_id, *end;
	struct folder_count *folders;
	size_t nfolders, afolders;
	size_t last;            /* the folder last looked up */
	uint64_t messages, skipped, bytes, unconfirmed, bad_lines;
	bool failed;            /* a write failed or out of memory */
	/* The item list's header is written before its first line: a Gmail
	 * run (the server offers X-GM-EXT-1) has a labels column. */
	bool items_started, gmail;
};

char *forensic_record_path(const char *run_path, const char *suffix)
{
	size_t n = strlen(run_path);
	char *out;

	if (n < 6 || strcmp(run_path + n - 6, ".jsonl"))
		return NULL;
	if (!(out = malloc(n - 6 + strlen(suffix) + 1)))
		return NULL;
	memcpy(out, run_path, n - 6);
	strcpy(out + n - 6, suffix);
	return out;
}

/* ---------------------------------------------------------------------- */
/* Output                                                                  */

/* The record's temporary name is created afresh (O_EXCL, beneath.h):
 * whatever someone left under it, a FIFO, a hard link to another file or
 * a symbolic link, is unlinked first, never opened or written through. */
static int record_open(struct record_file *r, int dirfd, const char *run_name,
		       const char *suffix)
{
	int fd;

	r->dirfd = dirfd;
	r->path = forensic_record_path(run_name, suffix);
	if (!r->path || !(r->tmp = malloc(strlen(r->path) + 8))) {
		errno = r->path ? ENOMEM : EINVAL; /* or not a run file */
		return -1;
	}
	sprintf(r->tmp, "%s.tmp", r->path);
	if (unlinkat(dirfd, r->tmp, 0) != 0 && errno != ENOENT)
		return -1;
	fd = beneath_open_file(dirfd, r->tmp, O_WRONLY | O_CREAT | O_EXCL,
			       0600);
	if (fd < 0 || !(r->f = fdopen(fd, "w"))) {
		if (fd >= 0)
			close(fd);
		return -1;
	}
	return 0;
}

/* Synced, then renamed into place: a record is whole or absent. */
static int record_close(struct record_file *r, bool keep)
{
	int rc = 0;

	if (r->f) {
		if (fflush(r->f) != 0 || ferror(r->f) ||
		    fsync(fileno(r->f)) != 0)
			rc = -1;
		if (fclose(r->f) != 0)
			rc = -1;
		r->f = NULL;
		if (keep && !rc &&
		    renameat(r->dirfd, r->tmp, r->dirfd, r->path) != 0)
			rc = -1;
		if (!keep || rc)
			unlinkat(r->dirfd, r->tmp, 0);
	}
	free(r->path);
	free(r->tmp);
	r->path = r->tmp = NULL;
	return rc;
}

/* A TSV field: backslash, tab, CR and LF escaped (\\ \t \r \n), so that
 * every record is one line whatever a server put in a folder's name. */
static void tsv(FILE *f, const char *s)
{
	for (; s && *s; s++) {
		switch (*s) {
		case '\\': fputs("\\\\", f); break;
		case '\t': fputs("\\t", f); break;
		case '\n': fputs("\\n", f); break;
		case '\r': fputs("\\r", f); break;
		default: fputc(*s, f);
		}
	}
}

/* The folder's name as the manifest gives it: UTF-8, else the raw name,
 * else "hex:" and its bytes in hex. */
static const char *folder_name(const json_t *o, char *buf, size_t size)
{
	const char *s = manifest_get_str(o, "folder");

	if (!s)
		s = manifest_get_str(o, "folder_raw");
	if (s)
		return s;
	s = manifest_get_str(o, "folder_hex");
	snprintf(buf, size, "hex:%s", s ? s : "");
	return buf;
}

static void u64_field(FILE *f, const json_t *o, const char *key)
{
	uint64_t v;

	if (manifest_get_u64(o, key, &v))
		fprintf(f, "%" PRIu64, v);
}

/* ---------------------------------------------------------------------- */
/* Reading                                                                 */

static struct folder_count *folder(struct reader *rd, const char *name)
{
	struct folder_count *fc;

	if (rd->last < rd->nfolders && !strcmp(rd->folders[rd->last].name, name))
		return &rd->folders[rd->last];
	for (size_t i = 0; i < rd->nfolders; i++)
		if (!strcmp(rd->folders[i].name, name)) {
			rd->last = i;
			return &rd->folders[i];
		}
	if (rd->nfolders == rd->afolders) {
		size_t a = rd->afolders ? 2 * rd->afolders : 64;
		struct folder_count *v = realloc(rd->folders, a * sizeof *v);
		if (!v)
			return NULL;
		rd->folders = v;
		rd->afolders = a;
	}
	fc = &rd->folders[rd->nfolders];
	memset(fc, 0, sizeof *fc);
	if (!(fc->name = strdup(name)))
		return NULL;
	rd->last = rd->nfolders;
	return &rd->folders[rd->nfolders++];
}

/* The item list's header line, once: with a labels column for Gmail. */
static void items_start(struct reader *rd)
{
	if (rd->items_started)
		return;
	rd->items_started = true;
	fputs(rd->gmail ? "folder\tuidvalidity\tuid\tsha256\tsize\tpath\t"
			  "labels\n"
			: "folder\tuidvalidity\tuid\tsha256\tsize\tpath\n",
	      rd->items.f);
}

/* A Gmail message's labels as a JSON array (["\\Inbox","Work"]): a label
 * may hold any character a separator could be. */
static void labels_field(struct reader *rd, const json_t *o)
{
	const json_t *l = json_object_get(o, "gm_labels");
	char *text;

	if (!json_is_array(l))
		return;
	if (!(text = json_dumps(l, JSON_COMPACT))) {
		rd->failed = true;
		return;
	}
	tsv(rd->items.f, text);
	free(text);
}

static void on_message(struct reader *rd, const json_t *o)
{
	char buf[256];
	const char *name = folder_name(o, buf, sizeof buf);
	struct folder_count *fc = folder(rd, name);
	uint64_t size = 0;

	if (!fc) {
		rd->failed = true;
		return;
	}
	fc->saved++;
	rd->messages++;
	if (manifest_get_u64(o, "received", &size))
		rd->bytes += size;
	rd->gmail |= !rd->items_started && json_object_get(o, "gm_labels");
	items_start(rd);
	tsv(rd->items.f, name);
	fputc('\t', rd->items.f);
	u64_field(rd->items.f, o, "uidvalidity");
	fputc('\t', rd->items.f);
	u64_field(rd->items.f, o, "uid");
	fputc('\t', rd->items.f);
	tsv(rd->items.f, manifest_get_str(o, "sha256"));
	fputc('\t', rd->items.f);
	u64_field(rd->items.f, o, "received");
	fputc('\t', rd->items.f);
	tsv(rd->items.f, manifest_get_str(o, "location"));
	if (rd->gmail) {
		fputc('\t', rd->items.f);
		labels_field(rd, o);
	}
	fputc('\n', rd->items.f);
}

static void on_skipped(struct reader *rd, const json_t *o)
{
	char buf[256];
	const char *name = folder_name(o, buf, sizeof buf);
	struct folder_count *fc = folder(rd, name);
	uint64_t uid = 0;

	if (!fc) {
		rd->failed = true;
		return;
	}
	manifest_get_u64(o, "uid", &uid);
	fc->skipped++;
	rd->skipped++;
	tsv(rd->exceptions.f, name);
	fputc('\t', rd->exceptions.f);
	u64_field(rd->exceptions.f, o, "uidvalidity");
	fputc('\t', rd->exceptions.f);
	u64_field(rd->exceptions.f, o, "uid");
	fputc('\t', rd->exceptions.f);
	tsv(rd->exceptions.f, uid ? "message" : "folder");
	fputc('\t', rd->exceptions.f);
	tsv(rd->exceptions.f, manifest_get_str(o, "reason"));
	fputc('\n', rd->exceptions.f);
}

static void on_folder(struct reader *rd, const json_t *o)
{
	char buf[256];
	struct folder_count *fc = folder(rd, folder_name(o, buf, sizeof buf));

	if (!fc) {
		rd->failed = true;
		return;
	}
	manifest_get_u64(o, "uidvalidity", &fc->uidvalidity);
	manifest_get_u64(o, "uidnext", &fc->uidnext);
	manifest_get_u64(o, "exists", &fc->exists);
	manifest_get_u64(o, "highestmodseq", &fc->highestmodseq);
}

static int on_line(void *ctx, const char *text, size_t len)
{
	struct reader *rd = ctx;
	json_t *o = text ? json_loadb(text, len, 0, NULL) : NULL;
	const char *type = manifest_get_str(o, "type");

	if (!type) {
		rd->bad_lines++;
	} else if (!strcmp(type, "message")) {
		on_message(rd, o);
	} else if (!strcmp(type, "skipped")) {
		on_skipped(rd, o);
	} else if (!strcmp(type, "folder")) {
		on_folder(rd, o);
	} else if (!strcmp(type, "commit_failed")) {
		uint64_t n = 0;
		manifest_get_u64(o, "messages", &n);
		rd->unconfirmed += n;
		fputs("\t\t\tcommit\t", rd->exceptions.f);
		fprintf(rd->exceptions.f, "%" PRIu64 " messages not made "
			"durable: ", n);
		tsv(rd->exceptions.f, manifest_get_str(o, "error"));
		fputc('\n', rd->exceptions.f);
	} else if (!strcmp(type, "run") || !strcmp(type, "server") ||
		   !strcmp(type, "server_id") || !strcmp(type, "end")) {
		json_t **keep = !strcmp(type, "run")      ? &rd->run
				: !strcmp(type, "server") ? &rd->server
				: !strcmp(type, "server_id")
					? &rd->server_id
					: &rd->end;
		json_decref(*keep);
		*keep = json_incref(o);
		if (!strcmp(type, "server") && !rd->items_started) {
			const json_t *caps = json_object_get(o, "capabilities");
			size_t i;
			json_t *v;
			json_array_foreach(caps, i, v)
				if (json_string_value(v) &&
				    !strcasecmp(json_string_value(v),
						"X-GM-EXT-1"))
					rd->gmail = true;
		}
	}
	json_decref(o);
	return rd->failed ? 1 : 0;
}

/* ---------------------------------------------------------------------- */
/* The acquisition log                                                     */

static void line(FILE *f, const char *label, const char *value)
{
	fprintf(f, "%-22s ", label);
	/* One line per value: no control character gets through. */
	for (const char *p = value ? value : "(not recorded)"; *p; p++)
		fputc((unsigned char)*p < 0x20 || *p == 0x7f ? '?' : *p, f);
	fputc('\n', f);
}

/* The server's ID answer: `name "Dovecot" version NIL`, fields in the
 * server's order; what an older manifest, or a server without ID, did
 * not record is said so. */
static void server_id(FILE *f, const json_t *line_o)
{
	const json_t *id = json_object_get(line_o, "id");
	char text[4096];
	size_t n = 0;
	const char *k;
	json_t *v;

	if (!line_o) {
		line(f, "server ID", "not recorded (the server does not "
				     "offer ID, or an older imapsnap ran)");
		return;
	}
	if (!json_is_object(id) || json_object_size(id) == 0) {
		line(f, "server ID", json_is_object(id)
					     ? "NIL (the server tells nothing)"
					     : "not answered");
		return;
	}
	json_object_foreach((json_t *)id, k, v) {
		const char *s = json_string_value(v);
		int w = snprintf(text + n, sizeof text - n,
				 s ? "%s%s \"%s\"" : "%s%s NIL", n ? " " : "",
				 k, s ? s : "");
		if (w < 0 || (size_t)w >= sizeof text - n)
			break;
		n += (size_t)w;
	}
	line(f, "server ID", text);
}

static void write_acquisition(struct reader *rd, FILE *f, const char *run,
			      const struct forensic_info *info)
{
	const json_t *caps = json_object_get(rd->server, "capabilities");
	char text[8192] = "";
	size_t n = 0, i;
	json_t *v;

	fputs("imapsnap acquisition log\n\n", f);
	line(f, "tool", manifest_get_str(rd->run, "tool"));
	line(f, "version", manifest_get_str(rd->run, "version"));
	line(f, "manifest", run);
	line(f, "manifest sha256", info ? info->run_sha256 : NULL);
	if (info && info->timestamp)
		line(f, "RFC 3161 timestamp", info->timestamp);
	line(f, "destination", manifest_get_str(rd->run, "dest"));
	line(f, "format", manifest_get_str(rd->run, "format"));
	line(f, "server", manifest_get_str(rd->run, "host"));
	line(f, "user", manifest_get_str(rd->run, "user"));
	line(f, "time zone", info ? info->time_zone : NULL);
	line(f, "started (UTC)", manifest_get_str(rd->run, "started"));
	line(f, "ended (UTC)", manifest_get_str(rd->end, "ended"));
	line(f, "greeting", manifest_get_str(rd->server, "greeting"));
	server_id(f, rd->server_id);
	json_array_foreach(caps, i, v) {
		const char *c = json_string_value(v);
		if (c && n + strlen(c) + 2 < sizeof text)
			n += (size_t)snprintf(text + n, sizeof text - n, "%s%s",
					      n ? " " : "", c);
	}
	line(f, "capabilities", caps ? text : NULL);
	fputs("\n", f);
	if (rd->end) {
		uint64_t v64;
		static const char *const keys[] = {
			"listed", "saved", "uncommitted", "failed",
			"vanished", "unexpected", "size_mismatch", "folders",
			"folders_failed",
		};
		for (i = 0; i < sizeof keys / sizeof *keys; i++) {
			snprintf(text, sizeof text, "%s",
				 manifest_get_u64(rd->end, keys[i], &v64)
					 ? "" : "(not recorded)");
			if (!text[0])
				snprintf(text, sizeof text, "%" PRIu64, v64);
			line(f, keys[i], text);
		}
		v = json_object_get(rd->end, "accounted");
		line(f, "accounted", json_is_true(v) ? "yes" : "NO");
	} else {
		line(f, "end", "the run did not end (interrupted)");
	}
	snprintf(text, sizeof text, "%" PRIu64 " messages, %" PRIu64
		 " bytes; %" PRIu64 " not saved; %" PRIu64
		 " unconfirmed by a commit",
		 rd->messages, rd->bytes, rd->skipped, rd->unconfirmed);
	line(f, "recorded", text);
	fputs("\nPer folder, what the server reported when it was examined "
	      "and what this run saved:\n\n", f);
	fprintf(f, "%-12s %-10s %-10s %-16s %-8s %-8s %s\n", "UIDVALIDITY",
		"EXISTS", "UIDNEXT", "HIGHESTMODSEQ", "saved", "skipped",
		"folder");
	for (i = 0; i < rd->nfolders; i++) {
		const struct folder_count *c = &rd->folders[i];
		fprintf(f, "%-12" PRIu64 " %-10" PRIu64 " %-10" PRIu64
			" %-16" PRIu64 " %-8" PRIu64 " %-8" PRIu64 " ",
			c->uidvalidity, c->exists, c->uidnext,
			c->highestmodseq, c->saved, c->skipped);
		tsv(f, c->name);
		fputc('\n', f);
	}
	fputs("\n(A folder that had nothing new saves nothing: its messages "
	      "are in earlier runs' records.)\n", f);
}

enum isnap_status forensic_write(int dirfd, const char *run_name,
				 const struct forensic_info *info,
				 struct isnap_error *err)
{
	struct reader rd = { 0 };
	struct manifest_lines ml = { 0 };
	struct record_file acq = { 0 };
	enum isnap_status rc = ISNAP_OK;
	char buf[65536];
	int fd;

	fd = beneath_open_file(dirfd, run_name, O_RDONLY, 0);
	if (fd < 0)
		return isnap_fail_errno(err, ISNAP_ELOCAL, "%s", run_name);
	if (record_open(&rd.items, dirfd, run_name, ".items.tsv") ||
	    record_open(&rd.exceptions, dirfd, run_name, ".exceptions.tsv") ||
	    record_open(&acq, dirfd, run_name, ".acquisition.txt")) {
		rc = isnap_fail_errno(err, ISNAP_ELOCAL,
				      "creating the records of %s", run_name);
		goto out;
	}
	fputs("folder\tuidvalidity\tuid\twhat\treason\n", rd.exceptions.f);
	for (;;) {
		ssize_t n = read(fd, buf, sizeof buf);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			rc = isnap_fail_errno(err, ISNAP_ELOCAL, "reading %s",
					      run_name);
			goto out;
		}
		if (n == 0)
			break;
		if (manifest_lines_feed(&ml, buf, (size_t)n, on_line, &rd) ||
		    rd.failed) {
			rc = isnap_fail(err, ISNAP_ENOMEM, "out of memory");
			goto out;
		}
	}
	items_start(&rd);
	write_acquisition(&rd, acq.f, run_name, info);
out:
	close(fd);
	if ((record_close(&rd.items, !rc) | record_close(&rd.exceptions, !rc) |
	     record_close(&acq, !rc)) && !rc)
		rc = isnap_fail_errno(err, ISNAP_ELOCAL,
				      "writing the records of %s", run_name);
	manifest_lines_free(&ml);
	for (size_t i = 0; i < rd.nfolders; i++)
		free(rd.folders[i].name);
	free(rd.folders);
	json_decref(rd.run);
	json_decref(rd.server);
	json_decref(rd.server_id);
	json_decref(rd.end);
	return rc;
}
