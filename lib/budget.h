/*
 * budget.h — how much one run may fetch (--max-messages, --max-bytes), so
 * that a cron job stays under a provider's daily cap (Gmail: about 2,500
 * MB a day over IMAP) and the next night goes on where it stopped.
 *
 * Shared by every session of a run; thread-safe.  Messages are taken from
 * the budget before they are asked for (budget_take, with the sizes the
 * server reported, RFC822.SIZE), so a run never asks for more than it may
 * fetch.
 *
 *   struct budget *b = budget_new(max_messages, max_bytes);   // 0: no limit
 *   n = budget_take(b, sizes, count);   // the first n may be fetched
 *   ... fetch them; give back those that did not come (budget_return) ...
 *   if (budget_exhausted(b)) ...        // stop: exit status 8
 *   budget_free(b);
 */
#ifndef IMAPSNAP_BUDGET_H
#define IMAPSNAP_BUDGET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct budget;

/* 0 for no limit on that count.  NULL when out of memory. */
struct budget *budget_new(uint64_t max_messages, uint64_t max_bytes);
void budget_free(struct budget *b);

/* Of `count` messages of these sizes (in order; sizes may be NULL when
 * only messages are limited), how many may be asked for now: the longest
 * prefix that fits what is left.  They are counted as taken.  Once one
 * does not fit, the budget is exhausted: no later call takes any, so that
 * a smaller message further on does not jump ahead of it. */
size_t budget_take(struct budget *b, const uint64_t *sizes, size_t count);

/* Give back messages taken but not fetched (expunged meanwhile, or a
 * failure) with the sizes they were taken with. */
void budget_return(struct budget *b, size_t messages, uint64_t bytes);

/* Whether the budget stopped something: a message did not fit. */
bool budget_exhausted(const struct budget *b);

/* Note `n` messages left for a later run (for the message at the end). */
void budget_defer(struct budget *b, uint64_t n);
uint64_t budget_deferred(const struct budget *b);

/* What was taken so far. */
void budget_used(const struct budget *b, uint64_t *messages,
		 uint64_t *bytes);

#endif
