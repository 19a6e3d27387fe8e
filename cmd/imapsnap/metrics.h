/*
 * metrics.h — the --metrics file: what the last run of each account did,
 * in the Prometheus text exposition format (version 0.0.4), for
 * node_exporter's textfile collector.  docs/monitoring.md lists every
 * name, with an alert rule.
 *
 *   struct metrics_account m[n];
 *   metrics_account_begin(&m[i], account, dest);  // just before its run
 *   rc = account_backup(..., &sum);
 *   metrics_account_end(&m[i], rc, &sum);         // just after
 *   ...
 *   if (metrics_write(path, m, n, &err)) ... err.msg ...
 *
 * One file holds any number of accounts, told apart by the `account`
 * label.  metrics_write merges: the samples of accounts that are not in
 * `m` are kept as the file had them (so `imapsnap run work` does not wipe
 * what the run of `home` wrote), and an account's last success time is
 * carried over from the file when this run did not succeed.  The file is
 * replaced atomically (a temporary file in the same directory, written,
 * synced and renamed over it), under an flock(2) on PATH.lock, so that two
 * runs sharing a file never lose each other's update and the collector
 * never reads half a file.
 *
 * Everything here belongs to the command: the library prints nothing and
 * knows nothing of monitoring; the numbers are the backup's summary.
 */
#ifndef IMAPSNAP_METRICS_H
#define IMAPSNAP_METRICS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backup.h"
#include "error.h"

/* Bounds on what is read back: the file is imapsnap's own, a few hundred
 * bytes per account. */
#define METRICS_MAX_FILE (16u << 20)
#define METRICS_MAX_LINE 4096

/* The numbers of the backup summary that the file reports: a copy of
 * these, not of the whole summary, which holds paths (kilobytes per
 * account, thousands of accounts in one run). */
struct metrics_counts {
	unsigned folders, folders_failed;
	uint64_t planned, saved, bytes;
	uint64_t failed, vanished; /* the skipped messages, by reason */
};

struct metrics_account {
	const char *account;     /* the `account` label (borrowed) */
	const char *dest;        /* measured for imapsnap_backup_size_bytes */
	double start, end;       /* wall clock, seconds since the epoch */
	double duration;         /* monotonic seconds between the two */
	int exit_status;
	bool interrupted;        /* a signal stopped the run */
	struct metrics_counts counts;
	bool have_size;          /* the destination could be measured */
	uint64_t size_bytes;
	double mono_start;       /* private */
};

void metrics_account_begin(struct metrics_account *m, const char *account,
			   const char *dest);
/* Records the end time and the outcome, and measures the destination. */
void metrics_account_end(struct metrics_account *m, int exit_status,
			 const struct backup_summary *sum);

/* Merge `accts` into the file at `path` as described above.  On failure
 * the file is left as it was and `err` says why (ISNAP_ELOCAL, or
 * ISNAP_ENOMEM). */
enum isnap_status metrics_write(const char *path,
				const struct metrics_account *accts, size_t n,
				struct isnap_error *err);

/* metrics_write, with the error on stderr when it fails.  Returns the
 * exit status the run ends with: `exit_status`, or EXIT_LOCAL when that
 * was 0 and the file could not be written (monitoring that silently
 * stops being fed is a failure to hear about). */
int metrics_write_or_complain(const char *path,
			      const struct metrics_account *accts, size_t n,
			      int exit_status);

/* Whether `path` can be written later: its directory exists.  Checked
 * before any backup starts, so that a typo costs nothing.  ISNAP_EUSAGE. */
enum isnap_status metrics_check_path(const char *path,
				     struct isnap_error *err);

/* Space the destination takes on disk: allocated blocks of every file and
 * directory under it, as du(1) counts them, without following symbolic
 * links or crossing into other filesystems.  false when it cannot be read
 * (it does not exist yet, or permission is denied). */
bool metrics_disk_usage(const char *dest, uint64_t *bytes);

/* --- the text format, for metrics_file.c and the unit tests ------------- */

/* One sample line: name{labels} value.  `labels` is the full label set as
 * written, braces included; `account` is the account label's value,
 * unescaped. */
struct metrics_sample {
	int family;      /* index into metrics_families */
	char *account;
	char *labels;
	char *value;
};

struct metrics_family {
	const char *name;
	const char *help;
};
extern const struct metrics_family metrics_families[];
extern const size_t metrics_n_families;

/* The family called `name`, or -1. */
int metrics_family_find(const char *name, size_t len);

/* The samples an account's run gives.  `last_success` is the time to
 * report (this run's end when it succeeded, else what the file had, else
 * 0 for never).  Appends to *v; 0, or -1 when out of memory. */
int metrics_account_samples(const struct metrics_account *m,
			    double last_success, struct metrics_sample **v,
			    size_t *n);

/* Parse one line of a file this code wrote.  1 and *out filled for a
 * sample of a known family, 0 for a comment, a blank line or an unknown
 * family, -1 for a line that is not the format (or out of memory). */
int metrics_parse_line(const char *line, struct metrics_sample *out);

/* Write `s` into `buf` as a label value: \ " and newline escaped. */
void metrics_escape(const char *s, char *buf, size_t size);

void metrics_sample_free(struct metrics_sample *s);

/* The whole file for these samples: HELP and TYPE for every family, then
 * its samples ordered by account and labels.  Sorts `v`.  malloc'd, NULL
 * when out of memory. */
char *metrics_render(struct metrics_sample *v, size_t n);

#endif
