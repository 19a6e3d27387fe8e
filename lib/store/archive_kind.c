/*
 * archive_kind.c — see archive_kind.h.
 *
 * Tar volumes are POSIX pax, restricted: a plain ustar header for each
 * entry, and a pax extended header only where ustar falls short — a date
 * before 1970 (an INTERNALDATE of 1960 stays 1960; GNU tar's format would
 * write 1970), a name past 100 bytes or not ASCII, a size past 8 GiB.
 * Headers are written in the C.UTF-8 locale (archive_kind_utf8_begin),
 * so names, always UTF-8 since fsname escapes anything else, convert
 * cleanly and are never marked hdrcharset=BINARY; GNU tar, bsdtar and
 * Python's tarfile read them without a warning.  Zip names are flagged
 * UTF-8 (general purpose bit 11), which is what unzip, Python and Windows
 * expect.
 */
#include "store/archive_kind.h"
#include "store/archive_lib.h"

#include <stddef.h>
#include <string.h>
#include <strings.h>

static const struct archive_kind kinds[] = {
	{ "tar", ".tar", false },       { "tar.gz", ".tar.gz", false },
	{ "tar.zst", ".tar.zst", false }, { "tar.xz", ".tar.xz", false },
	{ "zip", ".zip", true },
};

#define N_KINDS (sizeof kinds / sizeof *kinds)

const struct archive_kind *archive_kind_by_format(const char *format)
{
	for (size_t i = 0; i < N_KINDS; i++)
		if (strcmp(format, kinds[i].format) == 0)
			return &kinds[i];
	return NULL;
}

static bool has_suffix(const char *name, const char *suffix)
{
	size_t ln = strlen(name), ls = strlen(suffix);

	return ln > ls && strcasecmp(name + ln - ls, suffix) == 0 &&
	       name[ln - ls - 1] != '/';
}

const struct archive_kind *archive_kind_by_suffix(const char *name)
{
	if (has_suffix(name, ".tgz"))
		return &kinds[1];
	/* Longest first: "x.tar.gz" is no plain ".gz" nor ".tar". */
	for (size_t i = N_KINDS; i-- > 0;)
		if (strcmp(kinds[i].ext, ".tar") && has_suffix(name, kinds[i].ext))
			return &kinds[i];
	return has_suffix(name, ".tar") ? &kinds[0] : NULL;
}

struct archive *archive_kind_writer(const struct archive_kind *k,
				    const char **why)
{
	struct archive *a;
	locale_t saved;
	int rc;

	if (!archive_lib_load(why))
		return NULL;
	*why = "out of memory";
	a = archive_write_new();
	if (!a)
		return NULL;
	/* The name conversion is set up here: in the locale of the
	 * headers to come. */
	saved = archive_kind_utf8_begin();
	if (k->zip) {
		rc = archive_write_set_format_zip(a);
		if (rc == ARCHIVE_OK)
			rc = archive_write_set_options(a, "hdrcharset=UTF-8");
	} else {
		rc = archive_write_set_format_pax_restricted(a);
		if (rc == ARCHIVE_OK && !strcmp(k->format, "tar.gz"))
			rc = archive_write_add_filter_gzip(a);
		else if (rc == ARCHIVE_OK && !strcmp(k->format, "tar.zst"))
			rc = archive_write_add_filter_zstd(a);
		else if (rc == ARCHIVE_OK && !strcmp(k->format, "tar.xz"))
			rc = archive_write_add_filter_xz(a);
	}
	archive_kind_utf8_end(saved);
	/* ARCHIVE_WARN: libarchive would run an external program for the
	 * compression; we want it built in, or a clear error. */
	if (rc != ARCHIVE_OK) {
		*why = "this libarchive cannot write it";
		archive_write_free(a);
		return NULL;
	}
	return a;
}

struct archive *archive_kind_reader(const struct archive_kind *k,
				    const char **why)
{
	struct archive *a;

	if (!archive_lib_load(why))
		return NULL;
	*why = "out of memory";
	a = archive_read_new();
	if (!a)
		return NULL;
	if (k->zip) {
		archive_read_support_format_zip(a);
	} else {
		archive_read_support_format_tar(a);
		archive_read_support_format_gnutar(a);
	}
	archive_read_support_filter_all(a);
	return a;
}

void archive_kind_set_path(const struct archive_kind *k,
			   struct archive_entry *e, const char *path)
{
	if (k->zip)
		archive_entry_set_pathname_utf8(e, path);
	else
		archive_entry_set_pathname(e, path);
}

locale_t archive_kind_utf8_begin(void)
{
	static locale_t utf8 = (locale_t)0;

	if (!utf8)
		utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	return utf8 ? uselocale(utf8) : (locale_t)0;
}

void archive_kind_utf8_end(locale_t saved)
{
	if (saved)
		uselocale(saved);
}

const char *archive_kind_get_path(const struct archive_kind *k,
				  struct archive_entry *e)
{
	const char *p = k->zip ? archive_entry_pathname_utf8(e) : NULL;

	return p ? p : archive_entry_pathname(e);
}
