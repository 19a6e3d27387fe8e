/* curl_init.c — see curl_init.h. */
#include "curl_init.h"

#include <malloc.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

static void wipe_free(void *p)
{
	if (!p)
		return;
	explicit_bzero(p, malloc_usable_size(p));
	free(p);
}

/* realloc(3), except that a block that moves is wiped where it was. */
static void *wipe_realloc(void *p, size_t n)
{
	size_t old;
	void *q;

	if (!p)
		return malloc(n);
	if (!n) {
		wipe_free(p);
		return NULL;
	}
	old = malloc_usable_size(p);
	if (n <= old)
		return p;
	if (!(q = malloc(n)))
		return NULL;
	memcpy(q, p, old);
	wipe_free(p);
	return q;
}

static void init(void)
{
	curl_global_init_mem(CURL_GLOBAL_DEFAULT, malloc, wipe_free,
			     wipe_realloc, strdup, calloc);
}

void isnap_curl_init(void)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	pthread_once(&once, init);
}
