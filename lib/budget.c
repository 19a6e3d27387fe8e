/*
 * budget.c — see budget.h.
 */
#include "budget.h"

#include <pthread.h>
#include <stdlib.h>

struct budget {
	pthread_mutex_t lock;
	uint64_t max_messages, max_bytes;
	uint64_t messages, bytes;
	uint64_t deferred;
	bool exhausted;
};

struct budget *budget_new(uint64_t max_messages, uint64_t max_bytes)
{
	struct budget *b = calloc(1, sizeof *b);

	if (!b)
		return NULL;
	pthread_mutex_init(&b->lock, NULL);
	b->max_messages = max_messages;
	b->max_bytes = max_bytes;
	return b;
}

void budget_free(struct budget *b)
{
	if (!b)
		return;
	pthread_mutex_destroy(&b->lock);
	free(b);
}

size_t budget_take(struct budget *b, const uint64_t *sizes, size_t count)
{
	size_t n = 0;

	pthread_mutex_lock(&b->lock);
	while (n < count && !b->exhausted) {
		uint64_t size = sizes ? sizes[n] : 0;
		if ((b->max_messages && b->messages + 1 > b->max_messages) ||
		    (b->max_bytes && (size > b->max_bytes - b->bytes))) {
			b->exhausted = true;
			break;
		}
		b->messages++;
		b->bytes += size;
		n++;
	}
	pthread_mutex_unlock(&b->lock);
	return n;
}

void budget_return(struct budget *b, size_t messages, uint64_t bytes)
{
	pthread_mutex_lock(&b->lock);
	b->messages -= messages <= b->messages ? messages : b->messages;
	b->bytes -= bytes <= b->bytes ? bytes : b->bytes;
	pthread_mutex_unlock(&b->lock);
}

void budget_defer(struct budget *b, uint64_t n)
{
	pthread_mutex_lock(&b->lock);
	b->deferred += n;
	pthread_mutex_unlock(&b->lock);
}

uint64_t budget_deferred(const struct budget *b)
{
	uint64_t n;

	pthread_mutex_lock((pthread_mutex_t *)&b->lock);
	n = b->deferred;
	pthread_mutex_unlock((pthread_mutex_t *)&b->lock);
	return n;
}

bool budget_exhausted(const struct budget *b)
{
	bool e;

	pthread_mutex_lock((pthread_mutex_t *)&b->lock);
	e = b->exhausted;
	pthread_mutex_unlock((pthread_mutex_t *)&b->lock);
	return e;
}

void budget_used(const struct budget *b, uint64_t *messages, uint64_t *bytes)
{
	pthread_mutex_lock((pthread_mutex_t *)&b->lock);
	*messages = b->messages;
	*bytes = b->bytes;
	pthread_mutex_unlock((pthread_mutex_t *)&b->lock);
}
