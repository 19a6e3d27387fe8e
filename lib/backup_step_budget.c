/*
 * backup_step_budget.c — planning step: the run's budget (--max-messages,
 * --max-bytes; budget.h).  Of what the steps before left to fetch, the
 * lowest UIDs that fit in what is left of the budget stay; the rest is
 * left for the next run: the folder's UIDNEXT stays at the first UID left
 * out, so the next run finds those again.  With --max-bytes the sizes are
 * asked for in the same burst as the listing (UID FETCH <UIDNEXT>:* (UID
 * RFC822.SIZE)); a message whose size the server did not say counts 0.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backup_step.h"

struct budget_step {
	struct uid_values sizes; /* UID, RFC822.SIZE */
};

static bool budget_wanted(struct folder_plan *fp, void *mine)
{
	(void)mine;
	return fp->c->budget && !fp->unchanged && fp->server.exists;
}

static enum isnap_status budget_send(struct folder_plan *fp, void *mine,
				     struct isnap_error *err)
{
	char cmd[96];

	(void)mine;
	if (!fp->c->o->max_bytes)
		return ISNAP_OK;
	snprintf(cmd, sizeof cmd, "UID FETCH %u:* (UID RFC822.SIZE)",
		 fp->state.uidnext ? fp->state.uidnext : 1u);
	return plan_send(fp, cmd, NULL, err);
}

static enum isnap_status budget_untagged(struct folder_plan *fp, void *mine,
					 const struct imap_response *r,
					 struct isnap_error *err)
{
	struct budget_step *bs = mine;

	(void)fp;
	(void)err;
	uid_values_take(&bs->sizes, r, "RFC822.SIZE");
	return ISNAP_OK;
}

static int by_uid(const void *a, const void *b)
{
	uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
	return x < y ? -1 : x > y;
}

static uint64_t size_of(const struct uid_values *sizes, uint32_t uid)
{
	size_t lo = 0, hi = sizes->n;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		if (sizes->v[mid].uid < uid)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo < sizes->n && sizes->v[lo].uid == uid ? sizes->v[lo].value
							 : 0;
}

static enum isnap_status budget_conclude(struct folder_plan *fp, void *mine,
					 struct isnap_error *err)
{
	struct budget_step *bs = mine;
	uint64_t count = uidset_count(&fp->todo), *sizes;
	uint32_t *uids;
	size_t k = 0, n;

	if (bs->sizes.oom)
		return backup_oom(err);
	if (!count)
		return ISNAP_OK;
	if (bs->sizes.n > 1)
		qsort(bs->sizes.v, bs->sizes.n, sizeof *bs->sizes.v, by_uid);
	uids = malloc(count * sizeof *uids);
	sizes = malloc(count * sizeof *sizes);
	if (!uids || !sizes) {
		free(uids);
		free(sizes);
		return backup_oom(err);
	}
	for (size_t i = 0; i < fp->todo.n; i++)
		for (uint32_t u = fp->todo.r[i].first;; u++) {
			uids[k] = u;
			sizes[k++] = size_of(&bs->sizes, u);
			if (u == fp->todo.r[i].last)
				break;
		}
	n = budget_take(fp->c->budget, sizes, k);
	if (n < k) {
		budget_defer(fp->c->budget, k - n);
		fp->uidnext_cap = uids[n];
		if (uidset_remove_range(&fp->todo, uids[n], uids[k - 1])) {
			free(uids);
			free(sizes);
			return backup_oom(err);
		}
		plan_notice(fp, "%s: the run's budget is spent: %zu of %zu "
			    "messages are left for the next run", fp->utf8,
			    k - n, k);
	}
	free(uids);
	free(sizes);
	return ISNAP_OK;
}

static void budget_release(void *mine)
{
	struct budget_step *bs = mine;

	uid_values_free(&bs->sizes);
}

const struct plan_step backup_step_budget = {
	.name = "budget",
	.size = sizeof(struct budget_step),
	.wanted = budget_wanted,
	.send = budget_send,
	.untagged = budget_untagged,
	.conclude = budget_conclude,
	.release = budget_release,
};
