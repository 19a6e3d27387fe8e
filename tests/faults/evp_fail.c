/* evp_fail.c — an LD_PRELOAD shim that makes libcrypto's EVP_DigestUpdate
 * fail, for tests of what imapsnap does when hashing fails
 * (tests/integration/test_honest_hashes.py).
 *
 *   IMAPSNAP_FAULT_EVP_UPDATE=N    the N-th call and every later one
 *                                  fail (return 0); the earlier ones work
 *   IMAPSNAP_FAULT_EVP_MIN_LEN=L   only calls with at least L bytes count
 *                                  and fail (default 0: all of them)
 */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <stdatomic.h>
#include <stdlib.h>

typedef int (*update_fn)(void *ctx, const void *d, size_t n);

int EVP_DigestUpdate(void *ctx, const void *d, size_t n);

int EVP_DigestUpdate(void *ctx, const void *d, size_t n)
{
	static atomic_long calls;
	static update_fn real;
	const char *limit = getenv("IMAPSNAP_FAULT_EVP_UPDATE");
	const char *min = getenv("IMAPSNAP_FAULT_EVP_MIN_LEN");

	if (!real)
		real = (update_fn)dlsym(RTLD_NEXT, "EVP_DigestUpdate");
	if (limit && n >= (size_t)(min ? atol(min) : 0) &&
	    ++calls >= atol(limit))
		return 0;
	return real(ctx, d, n);
}
