/* Unit tests for lib/budget.c. */
#include <criterion/criterion.h>

#include "budget.h"

Test(budget, messages_only)
{
	struct budget *b = budget_new(5, 0);
	uint64_t n, bytes;

	cr_assert_not_null(b);
	cr_expect_eq(budget_take(b, NULL, 3), 3);
	cr_expect_not(budget_exhausted(b));
	cr_expect_eq(budget_take(b, NULL, 3), 2);
	cr_expect(budget_exhausted(b));
	cr_expect_eq(budget_take(b, NULL, 1), 0);
	budget_used(b, &n, &bytes);
	cr_expect_eq(n, 5);
	budget_free(b);
}

Test(budget, bytes_in_order_no_jumping_ahead)
{
	struct budget *b = budget_new(0, 1000);
	uint64_t sizes[] = { 400, 500, 200, 10 };

	cr_expect_eq(budget_take(b, sizes, 4), 2);
	cr_expect(budget_exhausted(b));
	/* 100 bytes are left, but the message that did not fit comes
	 * first: nothing smaller is taken past it. */
	cr_expect_eq(budget_take(b, sizes + 3, 1), 0);
	budget_free(b);
}

Test(budget, a_message_bigger_than_the_whole_budget)
{
	struct budget *b = budget_new(0, 100);
	uint64_t sizes[] = { 101 };

	cr_expect_eq(budget_take(b, sizes, 1), 0);
	cr_expect(budget_exhausted(b));
	budget_defer(b, 1);
	cr_expect_eq(budget_deferred(b), 1);
	budget_free(b);
}

Test(budget, returned)
{
	struct budget *b = budget_new(2, 0);
	uint64_t n, bytes;

	cr_expect_eq(budget_take(b, NULL, 2), 2);
	budget_return(b, 1, 0);
	budget_used(b, &n, &bytes);
	cr_expect_eq(n, 1);
	budget_free(b);
}
