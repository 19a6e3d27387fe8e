/*
 * fuzz_append.c — building APPEND commands (lib/imap/append.c) from what
 * a backup's manifest may hold (folder names, flags, dates, sizes), and
 * the pipelined appender against a hostile server.
 *
 * fuzz-sources: lib/imap/append.c lib/imap/client.c lib/imap/commands.c lib/imap/fetch.c lib/imap/pipeline.c lib/imap/parser.c lib/uidset.c lib/error.c lib/store/flags.c lib/imap/throttle.c lib/imap/gmail.c lib/mutf7.c lib/utf8.c lib/interrupt.c
 *
 * The input: one byte that seeds the choices, 8 bytes of INTERNALDATE
 * (seconds, little-endian, signed), 2 of its zone (minutes, signed), then
 * text up to the first NUL: a mailbox name on the first line, a flag on
 * each line after it.  What follows the NUL is what the server sends
 * (its CAPABILITY answer first, to the command tagged i1; the APPENDs
 * are i2, i3, i4).  The network is replaced as in fuzz_client.c.
 * Checked beyond "no crash, no leak, no undefined behaviour":
 *  - append_format_date writes a date exactly when it lies in years 1 to
 *    9999 with a zone within +-99:59, and fetch's INTERNALDATE parser
 *    reads back the same instant, zone and leap second;
 *  - append_flags_add keeps a space-separated list of distinct
 *    (case-insensitively) flags that append_flag_ok accepts;
 *  - append_command gives one line (no CR, LF or NUL) of the length it
 *    returns, whose quoted mailbox reads back as the name, or refuses a
 *    name with a control or 8-bit byte;
 *  - append_parse_appenduid accepts exactly two non-zero 32-bit decimal
 *    numbers separated by one space;
 *  - the appender gives each command at most one on_done, only for
 *    tokens it was given, and after an error the tokens still waiting
 *    are exactly the others; every command line it sends is followed by
 *    exactly its literal's bytes and CRLF.
 */
#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "imap/append.h"
#include "imap/client.h"
#include "imap/fetch.h"
#include "imap/session.h"

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_append: %s\n", what);
		abort();
	}
}

/* --- the network ------------------------------------------------------- */

static const uint8_t *in_data;
static size_t in_len, in_pos;
static uint32_t in_seed;

/* What was sent: a literal's bytes still expected, then its CRLF.  A
 * synchronizing literal that the server refused (a tagged NO instead of
 * "+") gets no bytes: the next command line comes instead.  Bodies are
 * all 'x' (read_msg), so a line is told from them by its tag. */
static uint64_t body_left;
static bool crlf_due, body_begun, sync_literal;

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

static void sent_line(const char *p, size_t len)
{
	const char *brace;
	char *end;

	check(len >= 2 && !memcmp(p + len - 2, "\r\n", 2),
	      "a command that does not end in CRLF");
	check(memchr(p, '\n', len - 1) == NULL &&
		      memchr(p, '\r', len - 2) == NULL &&
		      memchr(p, '\0', len) == NULL,
	      "a line end or NUL inside a command");
	if (len < 8 || strncmp(p, "i", 1) || !memmem(p, len, " APPEND ", 8))
		return;
	brace = memrchr(p, '{', len);
	check(brace != NULL, "an APPEND without its literal");
	body_left = strtoull(brace + 1, &end, 10);
	check(*end == '}' || (*end == '+' && end[1] == '}'),
	      "an APPEND literal not {n} or {n+}");
	sync_literal = *end == '}';
	crlf_due = true;
	body_begun = false;
}

enum isnap_status imap_session_send(struct imap_session *s, const void *data,
				    size_t len, struct isnap_error *err)
{
	const char *p = data;

	(void)s;
	(void)err;
	if (crlf_due && !body_begun && sync_literal && len && p[0] == 'i') {
		crlf_due = false; /* refused: no body */
		body_left = 0;
	}
	if (crlf_due) {
		body_begun = true;
		if (body_left) {
			check(len <= body_left, "more body than the literal");
			body_left -= len;
			return ISNAP_OK;
		}
		check(len == 2 && !memcmp(p, "\r\n", 2),
		      "no CRLF right after a literal");
		crlf_due = false;
		return ISNAP_OK;
	}
	sent_line(p, len);
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
	n = 1 + next(&in_seed) % 200;
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

/* --- the pieces -------------------------------------------------------- */

#define YEAR1 (-62135596800LL)      /* 0001-01-01T00:00:00Z */
#define YEAR10000 (253402300800LL)  /* 10000-01-01T00:00:00Z */

static void check_date(int64_t epoch, int tz, bool leap)
{
	char out[27];
	bool ok = append_format_date(epoch, tz, leap, out);
	bool fits = tz >= -(99 * 60 + 59) && tz <= 99 * 60 + 59 &&
		    epoch >= YEAR1 - 100 * 3600 &&
		    epoch < YEAR10000 + 100 * 3600;
	int64_t local = fits ? epoch + (int64_t)tz * 60 : 0;
	int64_t t;
	int z;
	bool l;

	fits = fits && local >= YEAR1 && local < YEAR10000;
	check(ok == fits, ok ? "a date written beyond years 1 to 9999"
			     : "a date refused that can be written");
	if (!ok)
		return;
	check(strlen(out) == 26, "a date not 26 characters long");
	check(fetch_parse_internaldate(out, strlen(out), &t, &z, &l),
	      "a date written that INTERNALDATE's parser refuses");
	check(z == tz, "the zone does not read back");
	check(l == (leap && (local % 60 + 60) % 60 == 59),
	      "the leap second does not read back");
	check(t == epoch, "the instant does not read back");
}

static void check_flags(const char *buf)
{
	char copy[256], *save = NULL, *tok;
	const char *seen[128];
	size_t n = 0;

	check(strlen(buf) < sizeof copy, "the flag list overran its buffer");
	snprintf(copy, sizeof copy, "%s", buf);
	check(!*buf || (buf[0] != ' ' && buf[strlen(buf) - 1] != ' ' &&
			!strstr(buf, "  ")),
	      "the flag list is not separated by single spaces");
	for (tok = strtok_r(copy, " ", &save); tok;
	     tok = strtok_r(NULL, " ", &save)) {
		check(append_flag_ok(tok), "a flag APPEND may not carry");
		for (size_t i = 0; i < n; i++)
			check(strcasecmp(seen[i], tok) != 0, "a flag twice");
		if (n < 128)
			seen[n++] = tok;
	}
}

static void check_command(const struct append_msg *m, bool plus)
{
	char buf[512];
	size_t n = append_command(m, plus, buf, sizeof buf);
	bool printable = true;
	const char *p;
	char name[512];
	size_t k = 0;
	char tail[64];

	for (p = m->mailbox; *p; p++)
		printable = printable && (unsigned char)*p >= 0x20 &&
			    (unsigned char)*p < 0x7f;
	if (!printable) {
		check(n == 0, "a mailbox name with a control or 8-bit byte "
			      "was written");
		return;
	}
	if (n == 0) {
		check(strlen(m->mailbox) * 2 + strlen(m->flags) + 80 >
			      sizeof buf,
		      "a command refused that fits");
		return;
	}
	check(strlen(buf) == n, "the length returned is not the line's");
	check(!strpbrk(buf, "\r\n"), "a line end in the command");
	check(!strncmp(buf, "APPEND \"", 8), "not APPEND \"");
	for (p = buf + 8; *p != '"'; p++) {
		check(*p != '\0', "the mailbox's quotes do not close");
		if (*p == '\\') {
			p++;
			check(*p == '"' || *p == '\\',
			      "a quoted-pair of another character");
		}
		name[k++] = *p;
	}
	name[k] = '\0';
	check(!strcmp(name, m->mailbox), "the quoted mailbox reads back "
					 "as another name");
	check(!strncmp(p + 1, " (", 2) &&
		      !strncmp(p + 3, m->flags, strlen(m->flags)) &&
		      p[3 + strlen(m->flags)] == ')',
	      "the flag list is not the one given");
	snprintf(tail, sizeof tail, " {%" PRIu64 "%s}", m->size,
		 plus ? "+" : "");
	check(n >= strlen(tail) && !strcmp(buf + n - strlen(tail), tail),
	      "the command does not end in its literal");
}

static void check_appenduid(const char *s)
{
	uint32_t uv = 0, uid = 0;
	bool ok = append_parse_appenduid(s, &uv, &uid);
	unsigned long long a, b;
	int used = -1;
	bool want = sscanf(s, "%llu %llu%n", &a, &b, &used) == 2 &&
		    used == (int)strlen(s) && s[0] >= '1' && s[0] <= '9' &&
		    strchr(s, ' ') && strchr(s, ' ')[1] >= '1' &&
		    strchr(s, ' ')[1] <= '9' &&
		    strspn(s, "0123456789") == (size_t)(strchr(s, ' ') - s) &&
		    strspn(strchr(s, ' ') + 1, "0123456789") ==
			    strlen(strchr(s, ' ') + 1) &&
		    a <= UINT32_MAX && b <= UINT32_MAX;

	check(ok == want, ok ? "APPENDUID accepted what is no UID pair"
			     : "APPENDUID refused a UID pair");
	check(!ok || (uv == a && uid == b), "APPENDUID read other numbers");
}

/* --- the appender -------------------------------------------------------- */

#define NMSG 3

struct run {
	bool done[NMSG];
	unsigned ndone;
};

static void on_done(void *ctx, const struct append_result *r)
{
	struct run *run = ctx;
	intptr_t t = (intptr_t)r->token;

	check(t >= 1 && t <= NMSG, "on_done for a token never given");
	check(!run->done[t - 1], "on_done twice for one command");
	run->done[t - 1] = true;
	run->ndone++;
	check(r->answer && r->text, "a result without answer or text");
	check(r->ok == !strcmp(r->answer, "OK"), "ok is not the answer");
	check(!r->has_uid || r->ok, "APPENDUID on an answer that is not OK");
	check(!r->has_uid || (r->uid && r->uidvalidity),
	      "APPENDUID with a zero");
}

struct reader {
	uint64_t left;
};

static enum isnap_status read_msg(void *ctx, void *buf, size_t len,
				  size_t *got, struct isnap_error *err)
{
	struct reader *rd = ctx;
	size_t n = len < rd->left ? len : (size_t)rd->left;

	(void)err;
	memset(buf, 'x', n);
	rd->left -= n;
	*got = n;
	return ISNAP_OK;
}

static void run_appender(const char *mailbox, const char *flags,
			 int64_t date, int tz, unsigned seed)
{
	struct imap_session_opts so = { .url = "imap://fuzz" };
	struct imap_client *c = NULL;
	struct isnap_error err = { 0 };
	struct run run = { { false }, 0 };
	struct appender *ap;
	enum isnap_status st;
	unsigned added = 0, waiting = 0;
	void *t;

	body_left = 0;
	crlf_due = body_begun = false;
	if (imap_client_open(&so, &c, &err) != ISNAP_OK)
		return;
	ap = appender_new(c, 1 + seed % 3, on_done, &run);
	if (!ap)
		abort();
	st = ISNAP_OK;
	for (unsigned i = 0; i < NMSG && !st; i++) {
		struct append_msg m = {
			.mailbox = mailbox, .flags = flags,
			.internaldate = (seed >> 2) & 1 ? date : INT64_MIN,
			.tz_minutes = tz,
			.size = i == 1 ? 5000 : (seed >> 3) % 8,
		};
		struct reader rd = { m.size };
		st = appender_add(ap, &m, read_msg, &rd,
				  (void *)(intptr_t)(i + 1), &err);
		if (st == ISNAP_EUSAGE)
			break; /* a name that cannot be quoted: not sent */
		added++;
	}
	if (!st)
		st = appender_drain(ap, &err);
	if (!st) {
		check(appender_in_flight(ap) == 0, "drained, and still waiting");
		check(run.ndone == added, "drained, and a command unanswered");
	}
	check(st == ISNAP_OK || err.msg[0] != '\0', "an error without text");
	while ((t = appender_take_waiting(ap))) {
		intptr_t k = (intptr_t)t;
		check(k >= 1 && k <= NMSG && !run.done[k - 1],
		      "a token waiting that was answered, or never given");
		run.done[k - 1] = true;
		waiting++;
	}
	check(run.ndone + waiting <= added,
	      "more commands answered and waiting than were sent");
	appender_free(ap);
	imap_client_close(c, false);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char text[1024], flags[256] = "", *save = NULL, *line;
	const char *mailbox = "";
	const uint8_t *nul;
	int64_t date;
	int16_t tz;
	unsigned seed;
	size_t tlen;
	bool first = true;

	if (size < 11)
		return 0;
	seed = data[0];
	memcpy(&date, data + 1, 8);
	memcpy(&tz, data + 9, 2);
	data += 11, size -= 11;
	nul = memchr(data, '\0', size);
	tlen = nul ? (size_t)(nul - data) : size;
	if (tlen >= sizeof text)
		tlen = sizeof text - 1;
	memcpy(text, data, tlen);
	text[tlen] = '\0';

	check_date(date, tz, seed & 1);
	check_date(date % (YEAR10000 * 2), tz % 6000, seed & 1);
	check_appenduid(text);

	for (line = strtok_r(text, "\n", &save); line;
	     line = strtok_r(NULL, "\n", &save)) {
		if (first) {
			mailbox = line;
			first = false;
			continue;
		}
		append_flags_add(flags, (seed & 2) ? 24 : sizeof flags, line);
		check_flags(flags);
	}
	{
		struct append_msg m = { .mailbox = mailbox, .flags = flags,
					.internaldate = date,
					.tz_minutes = tz % 6000,
					.leap_second = seed & 1,
					.size = (uint64_t)date };
		check_command(&m, seed & 1);
		check_command(&m, !(seed & 1));
	}

	if (nul) {
		in_seed = seed * 2654435761u + 7;
		in_data = nul + 1;
		in_len = size - (size_t)(nul + 1 - data);
		in_pos = 0;
		run_appender(mailbox, flags, date % (YEAR10000 * 2),
			     tz % 6000, seed);
	}
	return 0;
}
