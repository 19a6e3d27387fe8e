/*
 * fuzz_fsname.c — folder names to paths (lib/fsname.c): reversible, and
 * never a way out of the destination.
 *
 * fuzz-sources: lib/fsname.c lib/utf8.c
 * fuzz-packages: libcrypto
 *
 * The input's first byte is the hierarchy delimiter (0 for NIL), the rest
 * the folder name or component.  Checked, as fsname.h promises:
 *  - an escaped component is never empty, ".", "..", never starts with
 *    '.', holds no '/' or NUL or control character, is not cur/new/tmp in
 *    any case, and is at most FSNAME_MAX_COMPONENT bytes;
 *  - unescape(escape(c)) == c unless the component was cut ("%~" + hash);
 *  - escape(unescape(s)) == s for every s that unescapes (one spelling);
 *  - a folder path is relative, its components are all escaped ones, and
 *    splitting the name at the delimiter and escaping each part gives it.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "fsname.h"

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_fsname: %s\n", what);
		abort();
	}
}

static void check_component(const char *c, size_t n)
{
	check(n > 0, "empty component");
	check(n <= FSNAME_MAX_COMPONENT, "component longer than the maximum");
	check(c[0] != '.', "component starts with '.' (\".\", \"..\", or "
			   "imapsnap's own names)");
	for (size_t i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)c[i];
		check(ch != '/' && ch != '\0', "'/' or NUL in a component");
		check(ch >= 0x20 && ch != 0x7f, "control character in a "
						"component");
	}
	check(!(n == 3 && (!strncasecmp(c, "cur", 3) ||
			   !strncasecmp(c, "new", 3) ||
			   !strncasecmp(c, "tmp", 3))),
	      "component is a Maildir subdirectory name");
}

static int is_cut(const char *c)
{
	return strstr(c, "%~") != NULL;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *esc = NULL, *back = NULL, *again = NULL, *path = NULL;
	size_t blen;
	char delim;

	if (size < 1)
		return 0;
	delim = (char)data[0];
	const char *name = (const char *)data + 1;
	size_t len = size - 1;

	/* One component, any bytes. */
	check(fsname_escape_component(name, len, &esc) == 0,
	      "escape failed");
	check_component(esc, strlen(esc));
	if (!is_cut(esc)) {
		check(fsname_unescape_component(esc, &back, &blen) == 0,
		      "an escaped component does not unescape");
		check(blen == len && memcmp(back, name, len) == 0,
		      "unescape(escape(c)) != c");
		free(back);
		back = NULL;
	}
	free(esc);

	/* Any string as an escaped component: one spelling only. */
	char *s = strndup(name, len);
	if (!s)
		return 0;
	if (fsname_unescape_component(s, &back, &blen) == 0) {
		check(fsname_escape_component(back, blen, &again) == 0,
		      "escape failed");
		check(strcmp(again, s) == 0,
		      "escape(unescape(s)) != s: two spellings of one name");
		free(again);
		free(back);
	}

	/* A whole folder name (a C string: up to the first NUL). */
	if (fsname_folder_path(s, delim, &path) == 0) {
		size_t plen = strlen(path);
		check(plen > 0 && path[0] != '/', "path empty or absolute");
		/* Walk the components and the name's parts side by side. */
		const char *p = path, *n = s;
		for (;;) {
			const char *slash = strchr(p, '/');
			size_t clen = slash ? (size_t)(slash - p) : strlen(p);
			const char *d = delim ? strchr(n, delim) : NULL;
			size_t nlen = d ? (size_t)(d - n) : strlen(n);
			char *want;
			check_component(p, clen);
			check(fsname_escape_component(n, nlen, &want) == 0,
			      "escape failed");
			check(strlen(want) == clen && !memcmp(want, p, clen),
			      "path component != escape(name part)");
			free(want);
			check((slash == NULL) == (d == NULL),
			      "path and name have different numbers of parts");
			if (!slash)
				break;
			p = slash + 1;
			n = d + 1;
		}
		free(path);
	}
	free(s);
	return 0;
}
