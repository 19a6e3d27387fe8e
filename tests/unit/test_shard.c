/* Unit tests for --shard (cmd/imapsnap/shard.c): parsing K/N and auto/N,
 * and the hash that puts an account in a shard.  The CLI is not part of
 * libimapsnap.a, so its file is compiled in here. */
#include <criterion/criterion.h>
#include <string.h>

#include "../../cmd/imapsnap/shard.c"

Test(shard, explicit_index)
{
	struct shard s;
	char why[256];

	cr_assert(shard_parse("0/4", NULL, NULL, &s, why, sizeof why));
	cr_assert_eq(s.index, 0);
	cr_assert_eq(s.count, 4);
	cr_assert(shard_parse("3/4", "1", "2", &s, why, sizeof why));
	cr_assert_eq(s.index, 3, "an explicit K wins over the environment");
	cr_assert(shard_parse("0/1", NULL, NULL, &s, why, sizeof why));
	for (size_t i = 0; i < 10; i++) {
		static const char *const bad[] = {
			"4/4", "1/0", "-1/4", "a/4", "1/4x", "1", "/4", "1/",
			"1/100001", " 1/4",
		};
		cr_assert_not(shard_parse(bad[i], NULL, NULL, &s, why,
					  sizeof why), "%s", bad[i]);
		cr_assert_not_null(strstr(why, "--shard"), "%s", why);
	}
}

Test(shard, auto_index_from_the_scheduler)
{
	struct shard s;
	char why[256];

	cr_assert(shard_parse("auto/8", "5", NULL, &s, why, sizeof why));
	cr_assert_eq(s.index, 5);
	cr_assert_str_eq(s.from, "JOB_COMPLETION_INDEX");
	cr_assert(shard_parse("auto/8", NULL, "7", &s, why, sizeof why));
	cr_assert_eq(s.index, 7);
	cr_assert_str_eq(s.from, "SLURM_ARRAY_TASK_ID");
	cr_assert(shard_parse("auto/8", "", "2", &s, why, sizeof why));
	cr_assert_eq(s.index, 2);
	cr_assert_not(shard_parse("auto/8", NULL, NULL, &s, why, sizeof why));
	cr_assert_not_null(strstr(why, "JOB_COMPLETION_INDEX"), "%s", why);
	/* An array of 1-8 instead of 0-7: said, not wrapped around. */
	cr_assert_not(shard_parse("auto/8", NULL, "8", &s, why, sizeof why));
	cr_assert_not_null(strstr(why, "SLURM_ARRAY_TASK_ID=8"), "%s", why);
	cr_assert_not(shard_parse("auto/8", "x", NULL, &s, why, sizeof why));
}

Test(shard, hash_is_sha256_of_the_name)
{
	/* Computed with Python: int(sha256(name).hexdigest()[:16], 16) % N,
	 * as docs/scale-out.md tells users to. */
	cr_assert_eq(shard_of("alice", 4), 3);
	cr_assert_eq(shard_of("bob", 4), 2);
	cr_assert_eq(shard_of("acct-17", 7), 5);
	cr_assert_eq(shard_of("acct-17", 100000), 91414);
	cr_assert_eq(shard_of("x", 100000), 79876);
	cr_assert_eq(shard_of("anything", 1), 0);
}
