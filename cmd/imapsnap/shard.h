/*
 * shard.h — `imapsnap run --shard K/N`: which accounts of the config are
 * this worker's, so that N workers started by a scheduler (a Kubernetes
 * Indexed Job, a Slurm array, N cron lines on N machines) cover every
 * account exactly once with no coordination between them.
 *
 * An account is in shard
 *
 *     (first 8 bytes of SHA-256(section name), big-endian) mod N
 *
 * which depends on nothing but the name: not on the order of the file,
 * nor on the machine, nor on the version of imapsnap.  From a shell:
 *     echo $(( 0x$(printf %s NAME | sha256sum | cut -c1-16) % N ))
 * (bash arithmetic is signed 64-bit: use python3 for big values), as
 * docs/scale-out.md shows.
 */
#ifndef IMAPSNAP_SHARD_H
#define IMAPSNAP_SHARD_H

#include <stdbool.h>
#include <stddef.h>

#define SHARD_MAX 100000

struct shard {
	unsigned index; /* K, 0 <= K < N */
	unsigned count; /* N; 0 when not sharded */
	const char *from; /* where K came from: "--shard", or the variable */
};

/* Parse "K/N" or "auto/N".  For "auto", K is $JOB_COMPLETION_INDEX
 * (Kubernetes Indexed Job) when set, else $SLURM_ARRAY_TASK_ID: pass
 * getenv()'s answers.  false with a sentence in `why` when the argument
 * or the variable is not a number in range. */
bool shard_parse(const char *arg, const char *job_completion_index,
		 const char *slurm_array_task_id, struct shard *out,
		 char *why, size_t size);

/* The shard, 0 to count-1, of the account called `name`; -1 when
 * libcrypto fails (out of memory): the caller must not guess, or two
 * workers could take the same account. */
int shard_of(const char *name, unsigned count);

#endif
