/*
 * verify.h — check a backup against its manifests (docs/manifest.md):
 * every message recorded is there with the same bytes, nothing is there
 * that no manifest recorded, and no manifest was edited since its run.
 *
 *   struct verify_result res;
 *   st = verify_run(dest, &opts, &callbacks, &res, &err);
 *
 * verify_run reads the manifests (DEST/.imapsnap/manifest/, or the one
 * inside a single-file export), checks the chain, then reads back every
 * message of each format the runs used (store_scan), hashing each one as
 * it streams past.  It reports each problem through `finding` as it finds
 * it and counts them in `res`.  Memory grows with the number of messages
 * recorded, never with their size.  It only reads: nothing in DEST is
 * created, changed or locked, so do not run it while a backup of the same
 * DEST is running (that run's file is not chained yet, and it says so).
 */
#ifndef IMAPSNAP_VERIFY_H
#define IMAPSNAP_VERIFY_H

#include <stdint.h>

#include "error.h"

enum verify_kind {
	VERIFY_MISSING,    /* recorded as saved, not in the backup */
	VERIFY_ALTERED,    /* in the backup, but size or SHA-256 differs */
	VERIFY_UNEXPECTED, /* in the backup, recorded in no manifest */
	VERIFY_UNREADABLE, /* part of the backup could not be read */
	VERIFY_CHAIN,      /* a manifest was edited, removed or added */
	VERIFY_MANIFEST,   /* a manifest line is malformed */
	VERIFY_NOTE,       /* worth saying, not a failure (see detail) */
};

/* One finding; every pointer is borrowed for the duration of the call. */
struct verify_finding {
	enum verify_kind kind;
	const char *folder;   /* UTF-8 name, NULL when not known */
	uint32_t uidvalidity; /* 0 when not known */
	uint32_t uid;         /* 0 when not known */
	const char *location; /* in the backup (store.h), NULL when none */
	const char *run;      /* manifest file concerned, NULL when none */
	const char *detail;   /* one sentence, without the kind */
};

struct verify_callbacks {
	void *ctx;
	void (*finding)(void *ctx, const struct verify_finding *f); /* or NULL */
};

struct verify_opts {
	/* A run's SHA-256 the user kept from a backup's output (64 hex
	 * digits), or NULL.  Given, the chain must hold that run unchanged:
	 * this is what catches a rewrite of the whole chain. */
	const char *expect_sha256;
	/* The CA of the TSA that timestamped runs (backup --tsa), or NULL:
	 * a run's RFC 3161 token (<run>.tsr) is always checked against the
	 * run file's SHA-256; with this, its signature too. */
	const char *tsa_cafile;
};

struct verify_result {
	unsigned runs;             /* manifests read */
	unsigned runs_interrupted; /* of them, runs that did not end */
	char head_run[64];         /* the latest run's file ("" if none) */
	char head_sha256[65];      /* its SHA-256 ("" if none) */
	uint64_t recorded;         /* messages the manifests hold */
	uint64_t checked;          /* recorded ones found and compared */
	uint64_t matched;          /* of them, identical */
	uint64_t moved;            /* of those, found where a retired
				      generation was kept aside */
	uint64_t bytes;            /* bytes read back and hashed */
	uint64_t missing, altered, unexpected, unreadable;
	uint64_t chain_errors, manifest_errors;
	uint64_t notes;
	uint64_t labelled;         /* recorded messages with Gmail labels */
	uint64_t label_changes;    /* flags lines whose labels applied to a
				      recorded message */
	unsigned timestamps;       /* runs whose RFC 3161 token matched */
};

/* True when `kind` makes the backup fail verification. */
int verify_kind_fails(enum verify_kind kind);

/* A short upper-case word for `kind` ("MISSING"). */
const char *verify_kind_name(enum verify_kind kind);

/* Verify the backup at `dest` (a directory, or a single-file export).
 * Returns ISNAP_OK when everything matches; ISNAP_EINTEGRITY when anything
 * is missing, altered, unexpected, unreadable, or the chain or a manifest
 * is broken; ISNAP_ELOCAL when `dest` cannot be read or holds no imapsnap
 * backup at all (err says which); ISNAP_EUSAGE for a malformed
 * expect_sha256; ISNAP_ENOMEM.  `res` is filled in every case. */
enum isnap_status verify_run(const char *dest, const struct verify_opts *opts,
			     const struct verify_callbacks *cb,
			     struct verify_result *res,
			     struct isnap_error *err);

#endif
