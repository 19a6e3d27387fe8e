/* shard.c — see shard.h. */
#include <errno.h>
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "shard.h"

/* A decimal number from 0 to max, nothing else around it. */
static bool number(const char *s, size_t len, unsigned long max,
		   unsigned long *out)
{
	char buf[16], *end;

	if (len == 0 || len >= sizeof buf || strspn(s, "0123456789") < len)
		return false;
	memcpy(buf, s, len);
	buf[len] = '\0';
	errno = 0;
	*out = strtoul(buf, &end, 10);
	return !errno && !*end && *out <= max;
}

bool shard_parse(const char *arg, const char *job_completion_index,
		 const char *slurm_array_task_id, struct shard *out,
		 char *why, size_t size)
{
	const char *slash = strchr(arg, '/');
	unsigned long k, n;

	memset(out, 0, sizeof *out);
	if (!slash || !number(slash + 1, strlen(slash + 1), SHARD_MAX, &n) ||
	    n == 0) {
		snprintf(why, size, "--shard %s: expected K/N or auto/N, N "
			 "from 1 to %d", arg, SHARD_MAX);
		return false;
	}
	if ((size_t)(slash - arg) == 4 && !memcmp(arg, "auto", 4)) {
		const char *var = "JOB_COMPLETION_INDEX";
		const char *v = job_completion_index;
		if (!v || !*v) {
			var = "SLURM_ARRAY_TASK_ID";
			v = slurm_array_task_id;
		}
		if (!v || !*v) {
			snprintf(why, size, "--shard %s: neither "
				 "JOB_COMPLETION_INDEX nor SLURM_ARRAY_TASK_ID "
				 "is set", arg);
			return false;
		}
		if (!number(v, strlen(v), SHARD_MAX, &k) || k >= n) {
			snprintf(why, size, "--shard %s: %s=%s is not a "
				 "shard from 0 to %lu", arg, var, v, n - 1);
			return false;
		}
		out->from = var;
	} else {
		if (!number(arg, (size_t)(slash - arg), SHARD_MAX, &k) ||
		    k >= n) {
			snprintf(why, size, "--shard %s: K must be a number "
				 "from 0 to N-1 (or auto)", arg);
			return false;
		}
		out->from = "--shard";
	}
	out->index = (unsigned)k;
	out->count = (unsigned)n;
	return true;
}

int shard_of(const char *name, unsigned count)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	uint64_t h = 0;

	if (count <= 1)
		return 0;
	if (!EVP_Digest(name, strlen(name), md, &mdlen, EVP_sha256(), NULL) ||
	    mdlen < 8)
		return -1;
	for (int i = 0; i < 8; i++)
		h = h << 8 | md[i];
	return (int)(h % count);
}
