/*
 * fuzz_flag_record.c — the flag record reader (lib/flag_record_file.c)
 * against any bytes a damaged or hand-edited DEST/.imapsnap/flags/<name>
 * might hold.
 *
 * fuzz-sources: lib/flag_record.c lib/flag_record_file.c lib/linefile.c lib/uidset.c lib/error.c lib/beneath.c lib/store/flags.c
 * fuzz-packages: libcrypto
 *
 * The input is read as a record.  Whatever reads must survive a round
 * trip: saved and read again it is the same record (folder, generation,
 * and every run's UIDs and flags), and saving that gives the very same
 * file (the writer's output is canonical).  A failed read must leave
 * nothing behind and say why.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "flag_record.h"

static char dir_in[64], dir_out[64], dir_out2[64];
static int fd_out = -1, fd_out2 = -1;

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_flag_record: %s\n", what);
		abort();
	}
}

static void make_dir(char *out)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";

	snprintf(out, 64, "%s/fuzz_flag_record.XXXXXX", base);
	if (!mkdtemp(out))
		abort();
}

static void remove_all(const char *dir)
{
	char cmd[128];

	snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "fuzz_flag_record: could not remove %s\n", dir);
}

static void cleanup(void)
{
	remove_all(dir_in);
	remove_all(dir_out);
	remove_all(dir_out2);
}

static int open_input(const uint8_t *data, size_t size)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof path, "%s/in", dir_in);
	f = fopen(path, "wb");
	if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();
	return open(path, O_RDONLY | O_CLOEXEC);
}

static int open_saved(int dfd, const char *folder)
{
	char name[33];

	flag_record_file_name(folder, name);
	return openat(dfd, name, O_RDONLY | O_CLOEXEC);
}

static char *slurp(int dfd, const char *folder, size_t *len)
{
	int fd = open_saved(dfd, folder);
	char *buf = NULL;
	size_t cap = 0, n = 0;
	ssize_t got;

	check(fd >= 0, "the record just saved cannot be opened");
	do {
		if (n == cap) {
			cap = cap ? 2 * cap : 65536;
			if (!(buf = realloc(buf, cap)))
				abort();
		}
		got = read(fd, buf + n, cap - n);
		check(got >= 0, "the record just saved cannot be read");
		n += (size_t)got;
	} while (got > 0);
	close(fd);
	*len = n;
	return buf;
}

static void same(const struct flag_record *a, const struct flag_record *b)
{
	check(flag_record_uidvalidity(a) == flag_record_uidvalidity(b),
	      "round trip changed the uidvalidity");
	check(flag_record_runs(a) == flag_record_runs(b),
	      "round trip changed the runs");
	for (size_t i = 0; i < flag_record_runs(a); i++) {
		uint32_t f1, l1, s1, f2, l2, s2;
		const char *k1, *k2;
		flag_record_run(a, i, &f1, &l1, &s1);
		flag_record_run(b, i, &f2, &l2, &s2);
		check(f1 == f2 && l1 == l2, "round trip moved a run");
		check(f1 <= l1, "a run ends before it begins");
		check(flag_record_flags(a, s1, &k1) ==
			      flag_record_flags(b, s2, &k2) &&
			      !strcmp(k1, k2),
		      "round trip changed a run's flags");
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct flag_record *fr = NULL, *fr2 = NULL, *fr3 = NULL;
	struct isnap_error err = { 0 };
	char *folder = NULL, *folder2 = NULL, *folder3 = NULL;
	enum isnap_status rc;

	if (!dir_in[0]) {
		make_dir(dir_in);
		make_dir(dir_out);
		make_dir(dir_out2);
		fd_out = open(dir_out, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		fd_out2 = open(dir_out2, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		check(fd_out >= 0 && fd_out2 >= 0, "scratch directories");
		atexit(cleanup);
	}
	rc = flag_record_read(open_input(data, size), "in", &folder, &fr,
			      &err);
	if (rc != ISNAP_OK) {
		check(!fr && !folder, "a failed read left a record");
		check(err.msg[0] != '\0', "a failed read gave no message");
		check(rc == ISNAP_EINTEGRITY || rc == ISNAP_ENOMEM ||
			      rc == ISNAP_ELOCAL,
		      "a failed read returned an undocumented status");
		return 0;
	}
	check(fr && folder, "a read gave no record");
	check(flag_record_uidvalidity(fr) != 0, "uidvalidity 0 was read");
	check(flag_record_save(fd_out, dir_out, folder, fr, false, &err) ==
		      ISNAP_OK,
	      "save failed");
	check(flag_record_read(open_saved(fd_out, folder), "out", &folder2,
			       &fr2, &err) == ISNAP_OK,
	      "what was saved does not read");
	check(!strcmp(folder, folder2), "round trip changed the folder");
	same(fr, fr2);
	check(flag_record_save(fd_out2, dir_out2, folder2, fr2, false, &err) ==
		      ISNAP_OK,
	      "save failed");
	check(flag_record_read(open_saved(fd_out2, folder2), "out2", &folder3,
			       &fr3, &err) == ISNAP_OK,
	      "what was saved does not read");
	{
		size_t l1, l2;
		char *f1 = slurp(fd_out, folder, &l1);
		char *f2 = slurp(fd_out2, folder2, &l2);
		check(l1 == l2 && memcmp(f1, f2, l1) == 0,
		      "saving a record read back does not give the same file");
		free(f1);
		free(f2);
	}
	flag_record_remove(fd_out, folder);
	flag_record_remove(fd_out2, folder2);
	flag_record_free(fr);
	flag_record_free(fr2);
	flag_record_free(fr3);
	free(folder);
	free(folder2);
	free(folder3);
	return 0;
}
