/* Unit tests for lib/imap/throttle.c, on answers real servers send. */
#include <criterion/criterion.h>
#include <string.h>

#include "imap/throttle.h"

static struct imap_throttle line(const char *s)
{
	return imap_throttle_parse_line(s, strlen(s));
}

Test(throttle, microsoft_backoff_in_milliseconds)
{
	struct imap_throttle t = line("1069 NO Request is throttled. Suggested "
				      "Backoff Time: 299609 milliseconds");
	cr_expect_eq(t.kind, IMAP_THROTTLE_RETRY);
	cr_expect_eq(t.wait_ms, 299609);
	t = line("i9 BAD Request is throttled. Suggested Backoff Time: 89117 "
		 "milliseconds");
	cr_expect_eq(t.kind, IMAP_THROTTLE_RETRY);
	cr_expect_eq(t.wait_ms, 89117);
	t = line("i9 NO Request is throttled. Suggested Backoff Time: 250 ms");
	cr_expect_eq(t.wait_ms, 250);
}

Test(throttle, absurd_waits_are_capped)
{
	struct imap_throttle t = line("i1 NO Suggested Backoff Time: "
				      "99999999999999999999999 milliseconds");
	cr_expect_eq(t.kind, IMAP_THROTTLE_RETRY);
	cr_expect_eq(t.wait_ms, IMAP_THROTTLE_WAIT_MAX_MS);
	t = line("i1 NO Suggested Backoff Time: 5 s");
	cr_expect_eq(t.wait_ms, 5000);
}

Test(throttle, gmail_download_cap_is_stop)
{
	cr_expect_eq(line("i7 NO [OVERQUOTA] Account exceeded command or "
			  "bandwidth limits. (Failure)").kind,
		     IMAP_THROTTLE_STOP);
	cr_expect_eq(line("* BYE Account exceeded command or bandwidth "
			  "limits.").kind,
		     IMAP_THROTTLE_STOP);
	cr_expect_eq(line("* BYE [UNAVAILABLE] Account exceeded command or "
			  "bandwidth limits.").kind,
		     IMAP_THROTTLE_STOP);
}

Test(throttle, rfc5530_codes)
{
	struct imap_throttle t = line("i3 NO [UNAVAILABLE] Temporary failure");
	cr_expect_eq(t.kind, IMAP_THROTTLE_RETRY);
	cr_expect_eq(t.wait_ms, IMAP_THROTTLE_WAIT_UNAVAILABLE_MS);
	cr_expect_eq(line("i3 NO [LIMIT] Too many connections").wait_ms,
		     IMAP_THROTTLE_WAIT_LIMIT_MS);
	cr_expect_eq(line("i3 NO [INUSE] Mailbox is locked").wait_ms,
		     IMAP_THROTTLE_WAIT_INUSE_MS);
	cr_expect_eq(line("i3 no [inuse] lower case").kind,
		     IMAP_THROTTLE_RETRY);
	cr_expect_eq(line("* BYE [UNAVAILABLE] try later").kind,
		     IMAP_THROTTLE_RETRY);
}

Test(throttle, yahoo)
{
	struct imap_throttle t = line("i12 NO [SERVERBUG] UID FETCH Server "
				      "error - Please try again later");
	cr_expect_eq(t.kind, IMAP_THROTTLE_RETRY);
	cr_expect_eq(t.wait_ms, IMAP_THROTTLE_WAIT_TRY_LATER_MS);
}

Test(throttle, ordinary_answers_are_not_throttling)
{
	static const char *const plain[] = {
		"i1 OK [THROTTLED] Success",
		"i1 OK [UNAVAILABLE] done anyway",
		"i2 NO [NONEXISTENT] Unknown Mailbox",
		"i2 NO [LIMITED] not the LIMIT code",
		"i2 BAD Error in IMAP command: Unknown command",
		"* BYE Logging out",
		"* 3 FETCH (UID 4 FLAGS ())",
		"* NO",
		"",
		"NO",
		"i1 NOPE [UNAVAILABLE]",
		"i1 NO Suggested Backoff Time: soon",
	};
	for (size_t i = 0; i < sizeof plain / sizeof *plain; i++)
		cr_expect_eq(line(plain[i]).kind, IMAP_THROTTLE_NONE, "%s",
			     plain[i]);
}
