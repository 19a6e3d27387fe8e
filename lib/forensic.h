/*
 * forensic.h — the examiner's records of one backup run, written beside
 * its manifest (docs/manifest.md, "The forensic record"):
 *
 *   <run>.acquisition.txt   what was acquired, from where, when, and what
 *                           the server said it held, folder by folder
 *   <run>.exceptions.tsv    every message or folder not saved, and why
 *   <run>.items.tsv         every message saved: folder, UIDVALIDITY, UID,
 *                           SHA-256, size, path (a spreadsheet opens it)
 *
 * where <run> is the run file's name without ".jsonl".  All three are
 * derived from the run's manifest, which is chained and which verify
 * checks: they say nothing the manifest does not, in forms people read.
 * Each is written to a temporary file, synced and renamed into place,
 * below the manifest directory's descriptor without following a link
 * (beneath.h): whatever was left under a temporary name (a FIFO, a hard
 * link, a symbolic link) is unlinked, never opened.
 */
#ifndef IMAPSNAP_FORENSIC_H
#define IMAPSNAP_FORENSIC_H

#include "error.h"

/* What the manifest does not hold.  All fields may be NULL. */
struct forensic_info {
	const char *time_zone;   /* the acquiring machine's ("CET, +0100") */
	const char *run_sha256;  /* the run file's SHA-256 as chained */
	const char *timestamp;   /* the RFC 3161 token's file, if any */
};

/* Read the run file `run_name` in the directory open at `dirfd`
 * (DEST/.imapsnap/manifest) and write the three records beside it.
 * ISNAP_ELOCAL when the run file cannot be read (a link or a FIFO is not
 * opened) or a record cannot be written, ISNAP_ENOMEM. */
enum isnap_status forensic_write(int dirfd, const char *run_name,
				 const struct forensic_info *info,
				 struct isnap_error *err);

/* "<dir>/<run>" + suffix for a record of the run file at `run_path`
 * (".acquisition.txt", ".tsr", ...; a name alone gives a name), malloc'd;
 * NULL when out of memory or `run_path` does not end in ".jsonl". */
char *forensic_record_path(const char *run_path, const char *suffix);

#endif
