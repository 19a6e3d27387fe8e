/*
 * fuzz_state.c — the state file reader (lib/state.c) against any bytes a
 * damaged or hand-edited DEST/.imapsnap/state might hold.
 *
 * fuzz-sources: lib/state.c lib/linefile.c lib/uidset.c lib/error.c lib/beneath.c
 *
 * The input is written to a state file in a scratch directory (under
 * /dev/shm when it exists, so that the writer's fsyncs cost nothing) and
 * loaded.  Whatever loads must survive a round trip: saved and loaded
 * again it is the same state, and saving that gives the very same file
 * (the writer's output is canonical).  A failed load must leave the state
 * empty with a message.
 */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "state.h"

static char dir_in[64], dir_out[64], dir_out2[64];

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_state: %s\n", what);
		abort();
	}
}

static void setup(void)
{
	const char *base = access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp";
	char tmpl[64];

	snprintf(tmpl, sizeof tmpl, "%s/fuzz_state.XXXXXX", base);
	if (!mkdtemp(tmpl))
		abort();
	snprintf(dir_in, sizeof dir_in, "%s", tmpl);
	snprintf(tmpl, sizeof tmpl, "%s/fuzz_state.XXXXXX", base);
	if (!mkdtemp(tmpl))
		abort();
	snprintf(dir_out, sizeof dir_out, "%s", tmpl);
	snprintf(tmpl, sizeof tmpl, "%s/fuzz_state.XXXXXX", base);
	if (!mkdtemp(tmpl))
		abort();
	snprintf(dir_out2, sizeof dir_out2, "%s", tmpl);
}

static void cleanup(void)
{
	char path[128];
	const char *dirs[] = { dir_in, dir_out, dir_out2 };

	for (int i = 0; i < 3; i++) {
		snprintf(path, sizeof path, "%s/state", dirs[i]);
		unlink(path);
		snprintf(path, sizeof path, "%s/state.tmp", dirs[i]);
		unlink(path);
		rmdir(dirs[i]);
	}
}

static void write_file(const char *dir, const uint8_t *data, size_t size)
{
	char path[128];
	FILE *f;

	snprintf(path, sizeof path, "%s/state", dir);
	f = fopen(path, "wb");
	if (!f || fwrite(data, 1, size, f) != size || fclose(f) != 0)
		abort();
}

static char *read_file(const char *dir, size_t *len)
{
	char path[128];
	FILE *f;
	char *buf = NULL;
	size_t cap = 0, n = 0, got;

	snprintf(path, sizeof path, "%s/state", dir);
	f = fopen(path, "rb");
	check(f != NULL, "the state just saved cannot be read");
	do {
		if (n == cap) {
			cap = cap ? 2 * cap : 65536;
			buf = realloc(buf, cap);
			if (!buf)
				abort();
		}
		got = fread(buf + n, 1, cap - n, f);
		n += got;
	} while (got > 0);
	fclose(f);
	*len = n;
	return buf;
}

static int same_set(const struct uidset *a, const struct uidset *b)
{
	if (a->n != b->n)
		return 0;
	for (size_t i = 0; i < a->n; i++)
		if (a->r[i].first != b->r[i].first ||
		    a->r[i].last != b->r[i].last)
			return 0;
	return 1;
}

static void same_state(const struct state *a, const struct state *b)
{
	check(a->n == b->n, "round trip changed the number of folders");
	for (size_t i = 0; i < a->n; i++) {
		const struct state_folder *x = &a->folders[i];
		const struct state_folder *y = &b->folders[i];
		check(strcmp(x->name, y->name) == 0,
		      "round trip changed a folder name");
		check(x->delim == y->delim && x->uidvalidity == y->uidvalidity &&
			      x->uidnext == y->uidnext &&
			      x->highestmodseq == y->highestmodseq,
		      "round trip changed a folder's numbers");
		check(same_set(&x->saved, &y->saved),
		      "round trip changed a saved set");
		check(same_set(&x->expunged, &y->expunged),
		      "round trip changed an expunged set");
		check(x->n_old == y->n_old &&
			      (x->n_old == 0 ||
			       memcmp(x->old_uidvalidity, y->old_uidvalidity,
				      x->n_old * sizeof *x->old_uidvalidity) ==
				       0),
		      "round trip changed the old generations");
	}
}

/* state_load and state_save take the directory opened (the caller opens
 * DEST/.imapsnap without following links); these are fuzz-private
 * directories, opened once and kept open for the process. */
static int dirfd_of(const char *dir)
{
	static const char *names[4];
	static int fds[4];

	for (int i = 0; i < 4; i++) {
		if (names[i] == dir)
			return fds[i];
		if (!names[i]) {
			names[i] = dir;
			fds[i] = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			return fds[i];
		}
	}
	return -1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct state st = STATE_INIT, st2 = STATE_INIT, st3 = STATE_INIT;
	struct isnap_error err = { 0 };
	enum isnap_status rc;

	if (!dir_in[0]) {
		setup();
		atexit(cleanup);
	}
	write_file(dir_in, data, size);
	rc = state_load(dirfd_of(dir_in), dir_in, &st, &err);
	if (rc != ISNAP_OK) {
		check(st.n == 0, "a failed load left folders in the state");
		check(err.msg[0] != '\0', "a failed load gave no message");
		check(rc == ISNAP_EINTEGRITY || rc == ISNAP_ENOMEM ||
			      rc == ISNAP_ELOCAL,
		      "a failed load returned an undocumented status");
		state_free(&st);
		return 0;
	}
	for (size_t i = 0; i < st.n; i++)
		check(st.folders[i].name != NULL, "a folder without a name");

	check(state_save(dirfd_of(dir_out), dir_out, &st, &err) == ISNAP_OK,
	      "save failed");
	check(state_load(dirfd_of(dir_out), dir_out, &st2, &err) == ISNAP_OK,
	      "what was saved does not load");
	same_state(&st, &st2);
	check(state_save(dirfd_of(dir_out2), dir_out2, &st2, &err) ==
		      ISNAP_OK,
	      "save failed");
	check(state_load(dirfd_of(dir_out2), dir_out2, &st3, &err) == ISNAP_OK,
	      "what was saved does not load");
	{
		size_t l1, l2;
		char *f1 = read_file(dir_out, &l1), *f2 = read_file(dir_out2, &l2);
		check(l1 == l2 && memcmp(f1, f2, l1) == 0,
		      "saving a loaded state does not give the same file");
		free(f1);
		free(f2);
	}
	state_free(&st);
	state_free(&st2);
	state_free(&st3);
	return 0;
}
