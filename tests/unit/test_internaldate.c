/* INTERNALDATE parsing (RFC 3501 date-time) used for file mtimes. */
#include <criterion/criterion.h>
#include <string.h>

#include "imap/fetch.h"

static bool parse(const char *s, int64_t *t, int *tz)
{
	return fetch_parse_internaldate(s, strlen(s), t, tz, NULL);
}

/* RFC 5322 3.3 and RFC 3339 5.7 allow a leap second, :60.  POSIX time
 * cannot hold it: it is :59 of the same minute, flagged, never the first
 * second of the next day. */
Test(internaldate, leap_second_stays_on_its_day)
{
	int64_t t;
	int tz;
	bool leap = false;

	cr_assert(fetch_parse_internaldate("30-Jun-2015 23:59:60 +0000", 26,
					   &t, &tz, &leap));
	cr_assert(leap);
	cr_assert_eq(t, 1435708799); /* 2015-06-30 23:59:59 UTC */
	cr_assert(fetch_parse_internaldate("01-Jul-2015 01:59:60 +0200", 26,
					   &t, &tz, &leap));
	cr_assert(leap);
	cr_assert_eq(t, 1435708799);
	cr_assert(fetch_parse_internaldate("30-Jun-2015 23:59:59 +0000", 26,
					   &t, &tz, &leap));
	cr_assert_not(leap);
	cr_assert_eq(t, 1435708799);
}

Test(internaldate, rfc_example_with_negative_zone)
{
	int64_t t;
	int tz;
	cr_assert(parse("17-Jul-1996 02:44:25 -0700", &t, &tz));
	/* 1996-07-17 09:44:25 UTC */
	cr_assert_eq(t, 837596665);
	cr_assert_eq(tz, -420);
}

Test(internaldate, space_padded_day_and_positive_zone)
{
	int64_t t;
	int tz;
	cr_assert(parse(" 1-Jan-2024 00:30:00 +0130", &t, &tz));
	/* 2023-12-31 23:00:00 UTC */
	cr_assert_eq(t, 1704063600);
	cr_assert_eq(tz, 90);
}

Test(internaldate, month_names_case_insensitive)
{
	int64_t a, b;
	int tz;
	cr_assert(parse("05-FEB-2020 10:00:00 +0000", &a, &tz));
	cr_assert(parse("05-feb-2020 10:00:00 +0000", &b, &tz));
	cr_assert_eq(a, b);
	cr_assert_eq(a, 1580896800);
}

Test(internaldate, rejects_malformed)
{
	static const char *const bad[] = {
		"",
		"17-Jul-1996 02:44:25",         /* no zone */
		"17-Jul-1996 02:44:25 0700",    /* zone without sign */
		"17-Jux-1996 02:44:25 -0700",   /* month */
		"32-Jul-1996 02:44:25 -0700",   /* day */
		"17-Jul-1996 24:44:25 -0700",   /* hour */
		"17-Jul-1996 02:60:25 -0700",   /* minute */
		"17-Jul-1996 02:44:25 -07a0",   /* zone digits */
		"17-Jul-96 02:44:25 -0700",     /* two-digit year */
		"17-Jul-1996T02:44:25 -0700",
		"17-Jul-1996 02:44:25 -0700 ",  /* trailing space */
	};
	for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
		int64_t t;
		int tz;
		cr_assert_not(parse(bad[i], &t, &tz), "accepted \"%s\"", bad[i]);
	}
}
