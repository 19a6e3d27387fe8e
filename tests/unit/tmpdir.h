/*
 * tmpdir.h — a fresh directory for each test of a store: `base` is made
 * by mkdtemp and removed with everything in it afterwards; `dest` is
 * base/dest, the destination under test, so that anything a store wrote
 * outside it lands in base/ where the test can see it.
 *
 *   #include "tmpdir.h"
 *   TestSuite(mbox, .init = tmpdir_setup, .fini = tmpdir_teardown);
 */
#ifndef IMAPSNAP_TEST_TMPDIR_H
#define IMAPSNAP_TEST_TMPDIR_H

#include <criterion/criterion.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static char base[64], dest[96];

static void tmpdir_setup(void)
{
	strcpy(base, "/tmp/imapsnap-test.XXXXXX");
	cr_assert_not_null(mkdtemp(base));
	snprintf(dest, sizeof dest, "%s/dest", base);
}

static int tmpdir_rm_one(const char *path, const struct stat *sb, int flag,
			 struct FTW *ftw)
{
	(void)sb;
	(void)ftw;
	return flag == FTW_DP ? rmdir(path) : unlink(path);
}

static void tmpdir_teardown(void)
{
	nftw(base, tmpdir_rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

#endif
