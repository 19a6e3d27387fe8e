/*
 * verify_cmd.c — `imapsnap verify [--json] [--expect SHA256] DEST`: check
 * a backup against its manifests (lib/verify.h, docs/manifest.md) and say
 * what does not match, by folder and UID.
 */
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "cli.h"
#include "verify.h"

static const char verify_usage[] =
	"usage: imapsnap verify [--json] [--expect SHA256] [--tsa-cacert FILE]\n"
	"                       [-q] DEST\n"
	"\n"
	"Read back every message of the backup at DEST (a directory, or a\n"
	"single-file export such as backup.tar.gz), recompute its SHA-256 and\n"
	"compare it with the manifests the backup runs wrote.  Report each\n"
	"message that is missing, altered or unexpected, and any manifest\n"
	"edited since its run.  Nothing in DEST is changed.\n"
	"\n"
	"  --json            print a JSON report on standard output\n"
	"  --expect SHA256   also require that the manifest chain holds the\n"
	"                    run whose SHA-256 a backup printed (catches a\n"
	"                    rewrite of all manifests at once)\n"
	"  --tsa-cacert FILE also check the signature of each run's RFC 3161\n"
	"                    timestamp against this CA (see imapsnap backup)\n"
	"  -q, --quiet       print only what does not match\n"
	"\n"
	"Exit status: 0 everything matches; 7 something is missing, altered,\n"
	"unexpected or unreadable, or the manifests were edited; 2 usage;\n"
	"6 DEST cannot be read or is no imapsnap backup.\n";

static const struct option long_opts[] = {
	{ "json", no_argument, NULL, 'j' },
	{ "expect", required_argument, NULL, 'e' },
	{ "tsa-cacert", required_argument, NULL, 't' },
	{ "quiet", no_argument, NULL, 'q' },
	{ "help", no_argument, NULL, 'h' },
	{ NULL, 0, NULL, 0 },
};

struct report {
	bool json, quiet;
	json_t *findings; /* --json */
	bool oom;
};

/* Names come from a server and paths from a disk: keep control bytes off
 * the terminal. */
static void put_clean(const char *s)
{
	for (; *s; s++)
		putchar((unsigned char)*s < 0x20 || *s == 0x7f ? '?' : *s);
}

static void print_finding(const struct verify_finding *f)
{
	printf("%s: ", verify_kind_name(f->kind));
	if (f->folder || f->uid) {
		put_clean(f->folder ? f->folder : "?");
		if (f->uid)
			printf(" UID %" PRIu32, f->uid);
		if (f->uidvalidity)
			printf(" (UIDVALIDITY %" PRIu32 ")", f->uidvalidity);
		if (f->location) {
			fputs(" at ", stdout);
			put_clean(f->location);
		}
	} else if (f->location) {
		put_clean(f->location);
	} else if (f->run) {
		put_clean(f->run);
	} else {
		fputs("backup", stdout);
	}
	fputs(": ", stdout);
	put_clean(f->detail);
	if (f->run && (f->folder || f->location)) {
		fputs(" [", stdout);
		put_clean(f->run);
		putchar(']');
	}
	putchar('\n');
}

/* A string that may not be UTF-8 (a file name found on disk) goes in as
 * "<key>_hex" then, as in the manifest. */
static int set_text(json_t *o, const char *key, const char *s)
{
	json_t *v;
	size_t n;
	char *h, k[32];

	if (!s)
		return 0;
	if ((v = json_string(s)))
		return json_object_set_new(o, key, v);
	n = strlen(s);
	if (!(h = malloc(2 * n + 1)))
		return -1;
	for (size_t i = 0; i < n; i++)
		sprintf(h + 2 * i, "%02x", (unsigned char)s[i]);
	snprintf(k, sizeof k, "%s_hex", key);
	v = json_string(h);
	free(h);
	return json_object_set_new(o, k, v);
}

static json_t *finding_json(const struct verify_finding *f)
{
	const char *name = verify_kind_name(f->kind);
	json_t *o = json_object();
	char kind[16];
	size_t i;
	int bad = !o;

	for (i = 0; name[i] && i + 1 < sizeof kind; i++)
		kind[i] = (char)(name[i] | 0x20); /* "MISSING" -> "missing" */
	kind[i] = '\0';
	if (o) {
		bad |= json_object_set_new(o, "kind", json_string(kind));
		bad |= set_text(o, "folder", f->folder);
		if (f->uidvalidity)
			bad |= json_object_set_new(o, "uidvalidity",
						   json_integer(f->uidvalidity));
		if (f->uid)
			bad |= json_object_set_new(o, "uid",
						   json_integer(f->uid));
		bad |= set_text(o, "location", f->location);
		bad |= set_text(o, "run", f->run);
		bad |= set_text(o, "detail", f->detail);
	}
	if (bad) {
		json_decref(o);
		return NULL;
	}
	return o;
}

static void on_finding(void *ctx, const struct verify_finding *f)
{
	struct report *r = ctx;
	json_t *o;

	if (!r->json) {
		if (!r->quiet || verify_kind_fails(f->kind))
			print_finding(f);
		return;
	}
	o = finding_json(f);
	if (!o || json_array_append_new(r->findings, o))
		r->oom = true;
}

static void print_summary(const char *dest, const struct verify_result *res,
			  enum isnap_status st)
{
	printf("%u run%s, chain %s", res->runs, res->runs == 1 ? "" : "s",
	       res->chain_errors ? "BROKEN" : "intact");
	if (res->head_sha256[0]) {
		fputs("; latest run ", stdout);
		put_clean(res->head_run);
		printf(" SHA-256 %s", res->head_sha256);
	}
	putchar('\n');
	printf("%" PRIu64 " messages recorded, %" PRIu64 " checked (%" PRIu64
	       " bytes), %" PRIu64 " match",
	       res->recorded, res->checked, res->bytes, res->matched);
	if (st)
		printf("; %" PRIu64 " missing, %" PRIu64 " altered, %" PRIu64
		       " unexpected, %" PRIu64 " unreadable",
		       res->missing, res->altered, res->unexpected,
		       res->unreadable);
	putchar('\n');
	if (res->labelled)
		printf("Gmail: %" PRIu64 " messages with labels, %" PRIu64
		       " label changes applied\n",
		       res->labelled, res->label_changes);
	fputs(st ? "FAILED: " : "OK: ", stdout);
	put_clean(dest);
	puts(st ? " does not match its manifests"
		: " matches its manifests");
}

static int print_json(const char *dest, const struct verify_result *res,
		      enum isnap_status st, const struct isnap_error *err,
		      json_t *findings)
{
	json_t *o = json_pack(
		"{s:b s:s s:I s:I s:b s:{s:I s:I s:I s:I s:I s:I s:I s:I} "
		"s:I s:I s:I s:I s:{s:I s:I}}",
		"ok", st == ISNAP_OK, "status",
		st == ISNAP_OK		 ? "ok"
		: st == ISNAP_EINTEGRITY ? "mismatch"
					 : "error",
		"runs", (json_int_t)res->runs, "runs_interrupted",
		(json_int_t)res->runs_interrupted, "chain_ok",
		res->chain_errors == 0, "messages", "recorded",
		(json_int_t)res->recorded, "checked", (json_int_t)res->checked,
		"matched", (json_int_t)res->matched, "moved",
		(json_int_t)res->moved, "missing", (json_int_t)res->missing,
		"altered", (json_int_t)res->altered, "unexpected",
		(json_int_t)res->unexpected, "unreadable",
		(json_int_t)res->unreadable, "bytes", (json_int_t)res->bytes,
		"manifest_errors", (json_int_t)res->manifest_errors, "notes",
		(json_int_t)res->notes, "timestamps",
		(json_int_t)res->timestamps, "gmail", "labelled",
		(json_int_t)res->labelled, "label_changes",
		(json_int_t)res->label_changes);
	int bad = !o;

	if (o) {
		bad |= set_text(o, "dest", dest);
		bad |= json_object_set_new(
			o, "head",
			res->head_sha256[0]
				? json_pack("{s:s s:s}", "run", res->head_run,
					    "sha256", res->head_sha256)
				: json_null());
		if (st && st != ISNAP_EINTEGRITY)
			bad |= set_text(o, "error", err->msg);
		bad |= json_object_set(o, "findings", findings);
	}
	if (bad || json_dumpf(o, stdout, JSON_INDENT(2)) != 0) {
		json_decref(o);
		return -1;
	}
	putchar('\n');
	json_decref(o);
	return 0;
}

int cmd_verify(int argc, char **argv)
{
	struct report r = { 0 };
	struct verify_opts vo = { 0 };
	struct verify_callbacks cb = { .ctx = &r, .finding = on_finding };
	struct verify_result res;
	struct isnap_error err = { 0 };
	enum isnap_status st;
	const char *dest;
	int c;

	optind = 1;
	while ((c = getopt_long(argc, argv, "qh", long_opts, NULL)) != -1) {
		switch (c) {
		case 'j': r.json = true; break;
		case 'e': vo.expect_sha256 = optarg; break;
		case 't': vo.tsa_cafile = optarg; break;
		case 'q': r.quiet = true; break;
		case 'h': fputs(verify_usage, stdout); return EXIT_OK;
		default: fputs(verify_usage, stderr); return EXIT_USAGE;
		}
	}
	if (argc - optind != 1) {
		fprintf(stderr, "%s: verify: expected DEST\n\n%s", progname,
			verify_usage);
		return EXIT_USAGE;
	}
	dest = argv[optind];
	if (r.json && !(r.findings = json_array())) {
		fprintf(stderr, "%s: verify: out of memory\n", progname);
		return exit_status_for(ISNAP_ENOMEM);
	}
	st = verify_run(dest, &vo, &cb, &res, &err);
	if (!st && r.oom)
		st = isnap_fail(&err, ISNAP_ENOMEM, "out of memory");
	if (st == ISNAP_EUSAGE) {
		fprintf(stderr, "%s: verify: %s\n", progname, err.msg);
		json_decref(r.findings);
		return EXIT_USAGE;
	}
	if (r.json && print_json(dest, &res, st, &err, r.findings) != 0 &&
	    (!st || st == ISNAP_EINTEGRITY))
		st = isnap_fail(&err, ISNAP_ENOMEM,
				"out of memory (the report is incomplete)");
	json_decref(r.findings);
	if (st && st != ISNAP_EINTEGRITY)
		fprintf(stderr, "%s: verify: %s\n", progname, err.msg);
	else if (!r.json && (!r.quiet || st))
		print_summary(dest, &res, st);
	fflush(stdout);
	return exit_status_for(st);
}
