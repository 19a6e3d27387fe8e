/* Error messages: long server-chosen paths must not push the reason out. */
#include <criterion/criterion.h>
#include <errno.h>
#include <string.h>

#include "error.h"

Test(error, reason_survives_a_path_longer_than_the_buffer)
{
	struct isnap_error err = { 0 };
	char path[6000];

	memset(path, 'd', sizeof path - 1);
	path[sizeof path - 1] = '\0';
	errno = ENAMETOOLONG;
	cr_assert_eq(isnap_fail_errno(&err, ISNAP_EFOLDER, "creating %s", path),
		     ISNAP_EFOLDER);
	cr_assert_eq(err.status, ISNAP_EFOLDER);
	cr_assert(strstr(err.msg, strerror(ENAMETOOLONG)), "%s", err.msg);
	cr_assert(strncmp(err.msg, "creating ddd", 12) == 0, "%s", err.msg);
	cr_assert_lt(strlen(err.msg), 300, "%zu bytes", strlen(err.msg));
	cr_assert_eq(errno, ENAMETOOLONG, "errno must be kept for the caller");
}

Test(error, short_messages_are_left_alone)
{
	struct isnap_error err = { 0 };

	isnap_fail(&err, ISNAP_EMSG, "UID %u: %s", 7u, "a b c");
	cr_assert_str_eq(err.msg, "UID 7: a b c");
	isnap_error_prefix(&err, "%s", "INBOX");
	cr_assert_str_eq(err.msg, "INBOX: UID 7: a b c");
	cr_assert_eq(err.status, ISNAP_EMSG);
}

Test(error, long_words_keep_head_and_tail)
{
	struct isnap_error err = { 0 };
	char word[400];

	memset(word, 'x', sizeof word - 1);
	word[0] = 'A';
	word[sizeof word - 2] = 'Z';
	word[sizeof word - 1] = '\0';
	isnap_fail(&err, ISNAP_EFOLDER, "open %s failed", word);
	cr_assert(strncmp(err.msg, "open Axx", 8) == 0, "%s", err.msg);
	cr_assert(strstr(err.msg, "...xx"), "%s", err.msg);
	cr_assert(strstr(err.msg, "xZ failed"), "%s", err.msg);
	cr_assert_lt(strlen(err.msg), 200);
}
