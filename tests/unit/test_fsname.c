/*
 * test_fsname.c — folder names to safe, reversible path components.
 *
 * The guarantee under test: no output path is absolute, has an empty
 * component, ".", "..", a component starting with '.', or a component
 * longer than FSNAME_MAX_COMPONENT; unescape undoes escape for every
 * component that was not cut; distinct inputs give distinct outputs.
 */
#include <criterion/criterion.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fsname.h"

static char *escape_ok(const char *in, size_t len)
{
	char *out = NULL;
	int rc = fsname_escape_component(in, len, &out);
	cr_assert_eq(rc, 0, "escape failed: %s", strerror(errno));
	cr_assert_not_null(out);
	return out;
}

static char *path_ok(const char *name, char delim)
{
	char *out = NULL;
	int rc = fsname_folder_path(name, delim, &out);
	cr_assert_eq(rc, 0, "folder_path(\"%s\") failed: %s", name,
		     strerror(errno));
	cr_assert_not_null(out);
	return out;
}

static bool is_upper_hex(char c)
{
	return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

/* One component as the store will see it: the safety half of the
 * guarantee. */
static void check_safe_component(const char *c, size_t n)
{
	cr_assert_gt(n, 0, "empty component");
	cr_assert_leq(n, FSNAME_MAX_COMPONENT, "component of %zu bytes", n);
	cr_assert_neq(c[0], '.', "component starts with '.': %.*s", (int)n, c);
	for (size_t i = 0; i < n; i++) {
		unsigned char b = (unsigned char)c[i];
		cr_assert(b >= 0x20 && b != 0x7f && b != '/' && b != '\\',
			  "unsafe byte 0x%02x in component", b);
		if (b != '%')
			continue;
		bool marker = i + 1 < n && c[i + 1] == '~';
		bool hex = i + 2 < n && is_upper_hex(c[i + 1]) &&
			   is_upper_hex(c[i + 2]);
		cr_assert(n == 1 || marker || hex, "bare '%%' in %.*s", (int)n,
			  c);
	}
	cr_assert(!(n == 3 && (strncasecmp(c, "cur", 3) == 0 ||
			       strncasecmp(c, "new", 3) == 0 ||
			       strncasecmp(c, "tmp", 3) == 0)),
		  "Maildir name as component: %.*s", (int)n, c);
}

static void check_safe_path(const char *path)
{
	cr_assert_neq(path[0], '\0', "empty path");
	cr_assert_neq(path[0], '/', "absolute path %s", path);
	const char *start = path;
	for (;;) {
		const char *slash = strchr(start, '/');
		size_t n = slash ? (size_t)(slash - start) : strlen(start);
		check_safe_component(start, n);
		if (!slash)
			break;
		start = slash + 1;
	}
}

struct vector {
	const char *in;
	size_t len; /* 0: strlen(in) */
	const char *out;
};

static const struct vector vectors[] = {
	{"INBOX", 0, "INBOX"},
	{"Entw\xc3\xbcrfe", 0, "Entw\xc3\xbcrfe"},
	{"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e", 0,
	 "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e"},
	{"\xf0\x9f\x98\x80", 0, "\xf0\x9f\x98\x80"},
	{"", 0, "%"},
	{".", 0, "%2E"},
	{"..", 0, "%2E."},
	{"...", 0, "%2E.."},
	{".imapsnap", 0, "%2Eimapsnap"},
	{".uidvalidity-1", 0, "%2Euidvalidity-1"},
	{"a.b", 0, "a.b"},
	{"a.", 0, "a."},
	{"../x", 0, "%2E.%2Fx"},
	{"/etc/x", 0, "%2Fetc%2Fx"},
	{"a/b", 0, "a%2Fb"},
	{"a\\b", 0, "a%5Cb"},
	{"100%", 0, "100%25"},
	{"%", 0, "%25"},
	{"%25", 0, "%2525"},
	{"%~", 0, "%25~"},
	{"~", 0, "~"},
	{"a b&c-d", 0, "a b&c-d"},
	{"cur", 0, "%63ur"},
	{"new", 0, "%6Eew"},
	{"tmp", 0, "%74mp"},
	{"Cur", 0, "%43ur"},
	{"CUR", 0, "%43UR"},
	{"nEw", 0, "%6EEw"},
	{"TMP", 0, "%54MP"},
	{"cure", 0, "cure"},
	{"xcur", 0, "xcur"},
	{"cu", 0, "cu"},
	{"a\tb", 0, "a%09b"},
	{"\x01\x1f", 0, "%01%1F"},
	{"\x7f", 0, "%7F"},
	{"a\0b", 3, "a%00b"},
	{"\0", 1, "%00"},
	{"\xff", 0, "%FF"},
	{"Entw\xfcrfe", 0, "Entw%FCrfe"},          /* Latin-1 */
	{"\xc3", 0, "%C3"},                       /* truncated */
	{"\xc3" "a", 0, "%C3a"},
	{"\xe6\x97", 0, "%E6%97"},
	{"\xc0\xaf", 0, "%C0%AF"},                /* overlong '/' */
	{"\xed\xa0\x80", 0, "%ED%A0%80"},         /* surrogate */
	{"\xf4\x90\x80\x80", 0, "%F4%90%80%80"},  /* > U+10FFFF */
	{"\x80\xc3\xbc", 0, "%80\xc3\xbc"},       /* stray, then valid */
	{"\xc2\x9b", 0, "%C2%9B"},                /* C1 CSI */
	{"\xc2\xa0", 0, "\xc2\xa0"},              /* NBSP is not C1 */
	{".\xc3\xbc", 0, "%2E\xc3\xbc"},
};

Test(fsname, escape_vectors)
{
	for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
		const struct vector *v = &vectors[i];
		size_t len = v->len ? v->len : strlen(v->in);
		char *out = escape_ok(v->in, len);
		cr_expect_str_eq(out, v->out, "vector %zu", i);
		check_safe_component(out, strlen(out));
		free(out);
	}
}

Test(fsname, escape_respects_len)
{
	/* A character cut by `len` is invalid UTF-8, whatever follows. */
	char *out = escape_ok("\xc3\xbc", 1);
	cr_expect_str_eq(out, "%C3");
	free(out);
	out = escape_ok("a\xf0\x9f\x98\x80", 4);
	cr_expect_str_eq(out, "a%F0%9F%98");
	free(out);
	out = escape_ok("cure", 3);
	cr_expect_str_eq(out, "%63ur");
	free(out);
}

Test(fsname, unescape_vectors)
{
	for (size_t i = 0; i < sizeof vectors / sizeof vectors[0]; i++) {
		const struct vector *v = &vectors[i];
		size_t len = v->len ? v->len : strlen(v->in);
		char *out = NULL;
		size_t outlen = 12345;
		int rc = fsname_unescape_component(v->out, &out, &outlen);
		cr_assert_eq(rc, 0, "unescape(\"%s\"): %s", v->out,
			     strerror(errno));
		cr_expect_eq(outlen, len, "length for \"%s\"", v->out);
		cr_expect(outlen == len && memcmp(out, v->in, len) == 0,
			  "unescape(\"%s\") differs", v->out);
		cr_expect_eq(out[outlen], '\0');
		free(out);
	}
}

Test(fsname, unescape_rejects_what_escape_never_writes)
{
	char cut[250];
	char *c;
	memset(cut, 'x', sizeof cut);
	c = escape_ok(cut, sizeof cut);
	static const char *bad[] = {
		"",       /* the empty name is "%" */
		".",      /* a literal leading dot */
		"..",
		".x",
		"cur",    /* must be %63ur */
		"Tmp",
		"%2e",    /* lower-case hex */
		"%2Fetc%2fx",
		"%41",    /* 'A' needs no escape */
		"%2E%2E", /* only the first dot is escaped */
		"%63%75r",
		"x%2E",   /* a dot that is not leading */
		"%2",     /* truncated escape */
		"a%",
		"%G0",
		"%zz",
		"%%",
		"%~0123456789abcdef", /* a cut name */
		"a/b",    /* a separator */
		"a\\b",
		"a\tb",
		"\x7f",
		"\xff",   /* raw invalid UTF-8: escape writes %FF */
		"\xc2\x9b",
		"%C3%BC", /* valid UTF-8 is kept literal */
	};
	for (size_t i = 0; i <= sizeof bad / sizeof bad[0]; i++) {
		/* Last round: a real cut name, from above. */
		const char *in = i < sizeof bad / sizeof bad[0] ? bad[i] : c;
		char *out = (char *)0x1;
		size_t len = 7;
		errno = 0;
		int rc = fsname_unescape_component(in, &out, &len);
		cr_expect_eq(rc, -1, "unescape accepted \"%s\"", in);
		cr_expect_eq(errno, EINVAL, "errno for \"%s\"", in);
		cr_expect_null(out);
		if (rc == 0)
			free(out);
	}
	/* 201 literal bytes: escape would have cut it. */
	char long_name[FSNAME_MAX_COMPONENT + 2];
	memset(long_name, 'a', FSNAME_MAX_COMPONENT + 1);
	long_name[FSNAME_MAX_COMPONENT + 1] = '\0';
	char *out = NULL;
	size_t len;
	cr_expect_eq(fsname_unescape_component(long_name, &out, &len), -1);
	cr_expect_eq(errno, EINVAL);
	free(c);
}

Test(fsname, empty_is_percent_and_back)
{
	char *out = NULL;
	size_t len = 99;
	cr_assert_eq(fsname_unescape_component("%", &out, &len), 0);
	cr_expect_eq(len, 0);
	cr_expect_str_eq(out, "");
	free(out);
}

/* The first 16 hex digits of SHA-256(in), computed here independently. */
static void sha_prefix(const char *in, size_t len, char hex[17])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen;
	cr_assert(EVP_Digest(in, len, md, &mdlen, EVP_sha256(), NULL));
	for (int i = 0; i < 8; i++)
		sprintf(hex + 2 * i, "%02x", md[i]);
}

/* Check a cut component: total length, the kept prefix (which must be a
 * prefix of the uncut escaped form, ending on a unit boundary no later
 * than it can), the marker and the hash. */
static void check_cut(const char *in, size_t len, const char *out,
		      size_t expect_prefix)
{
	size_t n = strlen(out);
	char hex[17];
	sha_prefix(in, len, hex);
	cr_assert_eq(n, expect_prefix + 18, "cut name of %zu bytes: %s", n,
		     out);
	cr_assert_leq(n, FSNAME_MAX_COMPONENT);
	cr_expect_eq(out[expect_prefix], '%');
	cr_expect_eq(out[expect_prefix + 1], '~');
	cr_expect_str_eq(out + expect_prefix + 2, hex);
	check_safe_component(out, n);
	char *back = (char *)0x1;
	size_t blen;
	cr_expect_eq(fsname_unescape_component(out, &back, &blen), -1);
	cr_expect_eq(errno, EINVAL);
	cr_expect_null(back);
}

Test(fsname, long_names_are_cut_with_hash)
{
	char buf[400];
	char *out;

	/* Exactly the limit: kept as is. */
	memset(buf, 'a', FSNAME_MAX_COMPONENT);
	out = escape_ok(buf, FSNAME_MAX_COMPONENT);
	cr_expect_eq(strlen(out), FSNAME_MAX_COMPONENT);
	cr_expect(memcmp(out, buf, FSNAME_MAX_COMPONENT) == 0);
	free(out);

	/* One over, and 300 bytes: 182 kept + "%~" + 16. */
	memset(buf, 'a', 300);
	out = escape_ok(buf, FSNAME_MAX_COMPONENT + 1);
	check_cut(buf, FSNAME_MAX_COMPONENT + 1, out, 182);
	cr_expect(memcmp(out, buf, 182) == 0);
	free(out);
	out = escape_ok(buf, 300);
	check_cut(buf, 300, out, 182);
	free(out);

	/* Escapes are never split: 70 '/' escape to 210 bytes, and only 60
	 * whole "%2F" fit in 182. */
	memset(buf, '/', 70);
	out = escape_ok(buf, 70);
	check_cut(buf, 70, out, 180);
	for (int i = 0; i < 60; i++)
		cr_expect(memcmp(out + 3 * i, "%2F", 3) == 0);
	free(out);

	/* Nor are characters: 67 x U+65E5 (3 bytes each) is 201 bytes. */
	for (int i = 0; i < 67; i++)
		memcpy(buf + 3 * i, "\xe6\x97\xa5", 3);
	out = escape_ok(buf, 201);
	check_cut(buf, 201, out, 180);
	cr_expect(memcmp(out, buf, 180) == 0);
	free(out);

	/* 4-byte characters: 51 x U+1F600 is 204 bytes; 45 fit. */
	for (int i = 0; i < 51; i++)
		memcpy(buf + 4 * i, "\xf0\x9f\x98\x80", 4);
	out = escape_ok(buf, 204);
	check_cut(buf, 204, out, 180);
	free(out);

	/* A leading dot and a long tail: the escape is kept. */
	memset(buf, 'b', 300);
	buf[0] = '.';
	out = escape_ok(buf, 300);
	check_cut(buf, 300, out, 182);
	cr_expect(memcmp(out, "%2Ebbb", 6) == 0);
	free(out);
}

Test(fsname, long_names_sharing_a_prefix_differ)
{
	char a[300], b[300];
	memset(a, 'x', sizeof a);
	memcpy(b, a, sizeof b);
	b[299] = 'y';
	char *ea = escape_ok(a, sizeof a), *eb = escape_ok(b, sizeof b);
	cr_expect_str_neq(ea, eb);
	free(ea);
	free(eb);
	/* And a cut name differs from the same prefix left uncut. */
	char *ec = escape_ok(a, 182);
	ea = escape_ok(a, sizeof a);
	cr_expect_str_neq(ea, ec);
	free(ea);
	free(ec);
}

struct path_vector {
	const char *name;
	char delim;
	const char *path;
};

static const struct path_vector path_vectors[] = {
	{"INBOX", '/', "INBOX"},
	{"Archive/2019", '/', "Archive/2019"},
	{"\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e/Sub", '/',
	 "\xe6\x97\xa5\xe6\x9c\xac\xe8\xaa\x9e/Sub"},
	{"../x", '/', "%2E./x"},
	{"../x", '\0', "%2E.%2Fx"},
	{"../x", '.', "%/%/%2Fx"},
	{"/etc/x", '/', "%/etc/x"},
	{"/etc/x", '\0', "%2Fetc%2Fx"},
	{"a/../../b", '/', "a/%2E./%2E./b"},
	{"..", '/', "%2E."},
	{".", '/', "%2E"},
	{".", '.', "%/%"},
	{"", '/', "%"},
	{"", '\0', "%"},
	{"/", '/', "%/%"},
	{"a/", '/', "a/%"},
	{"a//b", '/', "a/%/b"},
	{"a.b", '.', "a/b"},
	{"a.b", '/', "a.b"},
	{"a/b", '.', "a%2Fb"},
	{"a\\b", '/', "a%5Cb"},
	{"a\\b", '\\', "a/b"},
	{"INBOX/cur", '/', "INBOX/%63ur"},
	{"INBOX.Tmp.new", '.', "INBOX/%54mp/%6Eew"},
	{"INBOX/.imapsnap", '/', "INBOX/%2Eimapsnap"},
	{"Entw\xc3\xbcrfe", '/', "Entw\xc3\xbcrfe"},
	{"a\x01/b", '/', "a%01/b"},
};

Test(fsname, folder_paths)
{
	for (size_t i = 0; i < sizeof path_vectors / sizeof path_vectors[0];
	     i++) {
		const struct path_vector *v = &path_vectors[i];
		char *p = path_ok(v->name, v->delim);
		cr_expect_str_eq(p, v->path, "path of \"%s\" with '%c'",
				 v->name, v->delim ? v->delim : '0');
		check_safe_path(p);
		free(p);
	}
}

Test(fsname, deep_long_path)
{
	/* Every component is cut separately, and the path stays safe. */
	char name[1000];
	memset(name, 'z', sizeof name - 1);
	name[sizeof name - 1] = '\0';
	name[300] = '/';
	name[301] = '/';
	name[700] = '/';
	char *p = path_ok(name, '/');
	check_safe_path(p);
	cr_expect_eq(strlen(p), 200 + 1 + 1 + 1 + 200 + 1 + 200);
	free(p);
}

/* --- randomized: round trip, safety, injectivity --- */

#define NRANDOM 20000
#define MAXRAND 320

struct sample {
	unsigned char in[MAXRAND];
	size_t len;
	char *out;
};

/* A random byte string biased toward the dangerous: dots, separators,
 * '%', controls, NUL, invalid and valid UTF-8, "cur"-like names, and
 * occasionally long enough to be cut. */
static size_t random_bytes(unsigned char *buf)
{
	static const char *pieces[] = {
		".", "..", "/", "\\", "%", "%2E", "%~", "~", "\0", "\t", "\x7f",
		"c", "u", "r", "N", "E", "W", "t", "m", "p", "a", "Z", "0", " ",
		"\xc3\xbc", "\xe6\x97\xa5", "\xf0\x9f\x98\x80", "\xc2\x9b",
		"\xc3", "\x80", "\xff", "\xed\xa0\x80", "\xc0\xaf",
	};
	static const char *whole[] = {"cur", "new", "tmp", "CuR", "nEW", "TMP"};
	int shape = rand() % 10;
	if (shape == 0) {
		const char *w = whole[rand() % 6];
		memcpy(buf, w, 3);
		return 3;
	}
	size_t target = shape == 1 ? 150 + (size_t)(rand() % 150)
				   : (size_t)(rand() % 12);
	size_t len = 0;
	while (len < target) {
		if (rand() % 4 == 0) {
			buf[len++] = (unsigned char)(rand() % 256);
			continue;
		}
		int npieces = (int)(sizeof pieces / sizeof pieces[0]);
		const char *p = pieces[rand() % npieces];
		size_t n = *p ? strlen(p) : 1; /* "\0" is one NUL byte */
		if (len + n > MAXRAND)
			break;
		memcpy(buf + len, p, n);
		len += n;
	}
	return len;
}

static int cmp_input(const void *a, const void *b)
{
	const struct sample *x = a, *y = b;
	size_t n = x->len < y->len ? x->len : y->len;
	int c = memcmp(x->in, y->in, n);
	if (c)
		return c;
	return (x->len > y->len) - (x->len < y->len);
}

static int cmp_output(const void *a, const void *b)
{
	const struct sample *x = a, *y = b;
	return strcmp(x->out, y->out);
}

Test(fsname, random_round_trip_and_injectivity)
{
	static struct sample s[NRANDOM];
	int cut = 0, plain = 0;
	srand(4242);
	for (int i = 0; i < NRANDOM; i++) {
		s[i].len = random_bytes(s[i].in);
		s[i].out = escape_ok((char *)s[i].in, s[i].len);
		size_t n = strlen(s[i].out);
		check_safe_component(s[i].out, n);

		char *back = NULL;
		size_t blen = 0;
		if (strstr(s[i].out, "%~")) {
			cut++;
			cr_assert_eq(fsname_unescape_component(s[i].out, &back,
							       &blen),
				     -1);
			continue;
		}
		plain++;
		cr_assert_eq(fsname_unescape_component(s[i].out, &back,
						       &blen),
			     0, "cannot unescape \"%s\"", s[i].out);
		cr_assert_eq(blen, s[i].len);
		cr_assert(memcmp(back, s[i].in, blen) == 0,
			  "round trip differs for \"%s\"", s[i].out);
		free(back);
	}
	cr_expect_gt(cut, 100, "generator produced too few long names");
	cr_expect_gt(plain, 1000);

	/* Distinct inputs, distinct outputs: drop duplicate inputs, then
	 * no two outputs may be equal. */
	qsort(s, NRANDOM, sizeof s[0], cmp_input);
	size_t m = 0;
	for (size_t i = 0; i < NRANDOM; i++) {
		if (m && cmp_input(&s[m - 1], &s[i]) == 0) {
			free(s[i].out);
			continue;
		}
		s[m++] = s[i];
	}
	cr_expect_gt(m, NRANDOM / 2);
	qsort(s, m, sizeof s[0], cmp_output);
	for (size_t i = 1; i < m; i++)
		cr_assert_str_neq(s[i - 1].out, s[i].out,
				  "two names escape to \"%s\"", s[i].out);
	for (size_t i = 0; i < m; i++)
		free(s[i].out);
}

Test(fsname, random_unescape_is_strict)
{
	/* Whatever unescape accepts, escape must give back unchanged. */
	static const char alphabet[] = "%%%%2E5FCA0~.acurnewtmp/\\\xc3\xbc";
	char buf[16];
	int accepted = 0;
	srand(99);
	for (int iter = 0; iter < 200000; iter++) {
		size_t len = (size_t)(rand() % (int)(sizeof buf - 1));
		for (size_t i = 0; i < len; i++)
			buf[i] = alphabet[rand() % (int)(sizeof alphabet - 1)];
		buf[len] = '\0';
		char *out = NULL;
		size_t olen;
		if (fsname_unescape_component(buf, &out, &olen) != 0) {
			cr_assert_eq(errno, EINVAL);
			cr_assert_null(out);
			continue;
		}
		accepted++;
		char *again = escape_ok(out, olen);
		cr_assert_str_eq(again, buf);
		free(again);
		free(out);
	}
	cr_expect_gt(accepted, 1000);
}

/* Split `path` at '/', unescape each component and join with `delim`. */
static char *reverse_path(const char *path, char delim, size_t *outlen)
{
	char *res = malloc(strlen(path) + 1);
	size_t n = 0;
	const char *start = path;
	for (;;) {
		const char *slash = strchr(start, '/');
		size_t clen = slash ? (size_t)(slash - start) : strlen(start);
		char *comp = strndup(start, clen), *raw;
		size_t rlen;
		cr_assert_eq(fsname_unescape_component(comp, &raw, &rlen), 0,
			     "component \"%s\"", comp);
		memcpy(res + n, raw, rlen);
		n += rlen;
		free(raw);
		free(comp);
		if (!slash)
			break;
		if (delim)
			res[n++] = delim;
		start = slash + 1;
	}
	res[n] = '\0';
	*outlen = n;
	return res;
}

Test(fsname, random_folder_paths)
{
	static const char delims[] = {'/', '.', '\0', '\\'};
	srand(31337);
	for (int iter = 0; iter < 5000; iter++) {
		unsigned char raw[MAXRAND + 1];
		size_t len = random_bytes(raw);
		/* A C string: NUL cannot occur in a folder name. */
		for (size_t i = 0; i < len; i++)
			if (raw[i] == 0)
				raw[i] = 'n';
		raw[len] = '\0';
		char delim = delims[rand() % 4];
		char *p = path_ok((char *)raw, delim);
		check_safe_path(p);
		if (!strstr(p, "%~")) {
			size_t blen;
			char *back = reverse_path(p, delim, &blen);
			cr_assert(blen == len && memcmp(back, raw, len) == 0,
				  "path \"%s\" does not reverse", p);
			free(back);
		}
		free(p);
	}
}

Test(fsname, failure_leaves_out_null)
{
	char *out = (char *)0x1;
	size_t len;
	cr_expect_eq(fsname_unescape_component("%zz", &out, &len), -1);
	cr_expect_null(out);
}
