/*
 * fuzz_client.c — the client side of a backup session against a hostile
 * server: the connection (lib/imap/client.c), LIST, EXAMINE and SEARCH
 * (lib/imap/commands.c) and the pipelined fetch (lib/imap/fetch.c), fed
 * whatever a server might send, cut at random points.
 *
 * fuzz-sources: lib/imap/client.c lib/imap/commands.c lib/imap/fetch.c lib/imap/pipeline.c lib/imap/parser.c lib/uidset.c lib/error.c lib/store/flags.c lib/imap/throttle.c lib/imap/gmail.c lib/mutf7.c lib/utf8.c lib/interrupt.c
 *
 * The network is replaced: this file defines imap_session_open/send/recv/
 * close/greeting (lib/imap/session.c is not linked), and recv hands out
 * the fuzz input in chunks; the end of the input is the server closing the
 * connection.  The store is replaced too, by one that checks the store.h
 * contract instead of writing files.
 *
 * The input's first byte seeds the chunk sizes and the fetch options; the
 * rest is the server's byte stream.  Commands go out tagged i1, i2, ...:
 * CAPABILITY (i1), LIST (i2), EXAMINE "INBOX" (i3), UID SEARCH (i4), then
 * UID FETCH commands; a seed that answers them all is in fuzz_client_seeds.
 *
 * Checked, beyond memory safety and leaks: the store sees a well-formed
 * sequence (begin, writes adding up to exactly the announced size, end or
 * abort; commit only between messages); a message is only ever ended for
 * a UID that was asked for, and at most once; what the fetch reports as
 * committed was ended and committed in the store; the counts add up.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/client.h"
#include "imap/commands.h"
#include "imap/fetch.h"
#include "imap/session.h"
#include "store/store.h"
#include "uidset.h"

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_client: %s\n", what);
		abort();
	}
}

/* --- the network ------------------------------------------------------- */

static const uint8_t *in_data;
static size_t in_len, in_pos;
static uint32_t in_seed;

struct imap_session {
	int unused;
};

static uint32_t next(uint32_t *s)
{
	*s = *s * 1103515245u + 12345u;
	return *s >> 8;
}

enum isnap_status imap_session_open(const struct imap_session_opts *opts,
				    struct imap_session **out,
				    struct isnap_error *err)
{
	(void)opts;
	*out = calloc(1, sizeof **out);
	return *out ? ISNAP_OK : isnap_fail(err, ISNAP_ENOMEM, "oom");
}

enum isnap_status imap_session_send(struct imap_session *s, const void *data,
				    size_t len, struct isnap_error *err)
{
	(void)s;
	(void)err;
	check(len > 2 && memcmp((const char *)data + len - 2, "\r\n", 2) == 0,
	      "a command that does not end in CRLF");
	check(len < 16384, "a command line longer than 16 KB");
	return ISNAP_OK;
}

enum isnap_status imap_session_recv(struct imap_session *s, void *buf,
				    size_t len, size_t *got,
				    struct isnap_error *err)
{
	size_t n;

	(void)s;
	*got = 0;
	if (in_pos >= in_len)
		return isnap_fail(err, ISNAP_ECONN,
				  "the server closed the connection");
	n = 1 + next(&in_seed) % 300;
	if (n > len)
		n = len;
	if (n > in_len - in_pos)
		n = in_len - in_pos;
	memcpy(buf, in_data + in_pos, n);
	in_pos += n;
	*got = n;
	return ISNAP_OK;
}

const char *imap_session_greeting(const struct imap_session *s)
{
	(void)s;
	return "* OK fuzz";
}

void imap_session_close(struct imap_session *s)
{
	free(s);
}

/* --- the store ----------------------------------------------------------- */

struct check_store {
	struct store base;
	bool open;          /* a message begun and not ended or aborted */
	uint32_t uid;
	uint64_t size, written;
	struct uidset ended;     /* ended since the last commit */
	struct uidset committed; /* committed in the store */
	struct uidset all_ended;
	unsigned fail_every;     /* make every Nth begin fail (EMSG) */
	unsigned begins;
};

static const struct uidset *asked;

static enum isnap_status cs_begin(struct store *s,
				  const struct store_message *m,
				  struct isnap_error *err)
{
	struct check_store *cs = (struct check_store *)s;

	check(!cs->open, "begin_message while a message is open");
	check(m->uid != 0, "begin_message for UID 0");
	check(uidset_contains(asked, m->uid),
	      "begin_message for a UID nobody asked for");
	if (cs->fail_every && ++cs->begins % cs->fail_every == 0)
		return isnap_fail(err, ISNAP_EMSG, "the store refuses this one");
	cs->open = true;
	cs->uid = m->uid;
	cs->size = m->size;
	cs->written = 0;
	return ISNAP_OK;
}

static enum isnap_status cs_write(struct store *s, const void *data,
				  size_t len, struct isnap_error *err)
{
	struct check_store *cs = (struct check_store *)s;

	(void)data;
	(void)err;
	check(cs->open, "write with no message open");
	check(cs->written + len <= cs->size,
	      "more bytes written than the message's size");
	cs->written += len;
	return ISNAP_OK;
}

static enum isnap_status cs_end(struct store *s, const struct store_message *m,
				struct isnap_error *err)
{
	struct check_store *cs = (struct check_store *)s;

	(void)err;
	check(cs->open, "end_message with no message open");
	check(m->uid == cs->uid, "end_message for another UID than begun");
	check(cs->written == cs->size,
	      "end_message before all the announced bytes were written");
	check(!uidset_contains(&cs->all_ended, cs->uid),
	      "a UID ended twice: a message would be saved twice");
	cs->open = false;
	if (uidset_add(&cs->ended, cs->uid) ||
	    uidset_add(&cs->all_ended, cs->uid))
		abort();
	return ISNAP_OK;
}

static void cs_abort(struct store *s)
{
	((struct check_store *)s)->open = false;
}

static enum isnap_status cs_commit(struct store *s, struct isnap_error *err)
{
	struct check_store *cs = (struct check_store *)s;

	(void)err;
	check(!cs->open, "commit while a message is open");
	if (uidset_add_set(&cs->committed, &cs->ended))
		abort();
	uidset_clear(&cs->ended);
	return ISNAP_OK;
}

static const struct store_ops check_ops = {
	.format = "check",
	.begin_message = cs_begin,
	.write = cs_write,
	.end_message = cs_end,
	.abort_message = cs_abort,
	.commit = cs_commit,
};

/* --- the fetch's callbacks ------------------------------------------------ */

struct run {
	struct check_store *store;
	struct uidset reported; /* what `committed` told */
	uint64_t failed, saved;
};

static enum isnap_status on_committed(void *ctx, const struct uidset *uids,
				      struct isnap_error *err)
{
	struct run *r = ctx;

	(void)err;
	for (size_t i = 0; i < uids->n; i++)
		for (uint64_t u = uids->r[i].first; u <= uids->r[i].last; u++)
			check(uidset_contains(&r->store->committed,
					      (uint32_t)u),
			      "reported committed, but not committed in the "
			      "store");
	if (uidset_add_set(&r->reported, uids))
		abort();
	return ISNAP_OK;
}

static void on_failed(void *ctx, uint32_t uid, const char *why)
{
	struct run *r = ctx;

	check(why != NULL, "a failure without a reason");
	check(uid != 0, "a failure for UID 0");
	r->failed++;
}

static void on_saved(void *ctx, uint32_t uid, uint64_t bytes)
{
	struct run *r = ctx;

	(void)uid;
	(void)bytes;
	r->saved++;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct imap_session_opts so = { .url = "imap://fuzz" };
	struct imap_client *c = NULL;
	struct isnap_error err = { 0 };
	struct imap_folder_list folders = { 0 };
	struct imap_mailbox_info mi;
	struct uidset todo = UIDSET_INIT;
	struct check_store cs = { .base.ops = &check_ops };
	struct run r = { .store = &cs };
	struct fetch_stats stats = { 0 };
	enum isnap_status st;

	if (size < 1)
		return 0;
	in_seed = data[0] * 2654435761u + 7;
	in_data = data + 1;
	in_len = size - 1;
	in_pos = 0;
	cs.fail_every = data[0] % 5 == 0 ? 3 : 0;

	st = imap_client_open(&so, &c, &err);
	if (st)
		goto out;
	(void)imap_client_capabilities(c);
	st = imap_list(c, &folders, &err);
	if (st)
		goto out;
	for (size_t i = 0; i < folders.n; i++)
		check(folders.v[i].name != NULL, "a folder without a name");
	st = imap_examine(c, "INBOX", &mi, &err);
	if (st)
		goto out;
	st = imap_uid_search(c, 1, NULL, &todo, &err);
	if (st)
		goto out;
	for (size_t i = 0; i < todo.n; i++)
		check(todo.r[i].first > 0, "UID 0 in a SEARCH result");
	/* Keep the fetch finite whatever SEARCH said. */
	if (uidset_count(&todo) > 2000) {
		uint32_t after = 0;
		struct uidset some = UIDSET_INIT;
		if (uidset_next_batch(&todo, &after, 2000, &some) < 0)
			abort();
		uidset_free(&todo);
		todo = some;
	}
	if (uidset_add_range(&todo, 1, 5))
		abort();
	asked = &todo;
	{
		struct fetch_opts fo = {
			/* A throttling answer must not put the fuzzer to
			 * sleep: waits of more than 1 ms stop the fetch. */
			.max_wait_ms = 1,
			.batch = 1 + data[0] % 4,
			.depth = 1 + (data[0] >> 2) % 4,
			.commit_messages = 1 + (data[0] >> 4) % 3,
		};
		struct fetch_callbacks cb = {
			.ctx = &r,
			.committed = on_committed,
			.message_failed = on_failed,
			.message_saved = on_saved,
		};
		st = fetch_messages(c, &cs.base, &todo, &fo, &cb, &stats, &err);
	}
	check(!cs.open, "a message left open after the fetch");
	check(stats.saved == r.saved, "saved count differs from the reports");
	check(stats.failed == r.failed, "failed count differs from reports");
	check(stats.saved == uidset_count(&cs.all_ended),
	      "saved count differs from the store's");
	if (st == ISNAP_OK)
		check(uidset_count(&r.reported) == uidset_count(&cs.all_ended),
		      "a fetch that succeeded left messages uncommitted");
out:
	if (st)
		check(err.msg[0] != '\0', "a failure without a message");
	imap_client_close(c, st == ISNAP_OK);
	imap_folder_list_free(&folders);
	uidset_free(&todo);
	uidset_free(&cs.ended);
	uidset_free(&cs.committed);
	uidset_free(&cs.all_ended);
	uidset_free(&r.reported);
	return 0;
}
