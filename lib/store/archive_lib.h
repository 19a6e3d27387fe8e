/*
 * archive_lib.h — libarchive, loaded when an archive is first read or
 * written rather than linked into the program.
 *
 * libarchive brings libxml2, ICU, liblzma, libzstd, libbz2, liblz4,
 * libnettle and libacl with it; linking them costs every run, Maildir and
 * mbox included, about 3 MB of resident memory and 2 ms of start-up
 * (docs/performance.md).  So the program is not linked against libarchive:
 * this header keeps libarchive's own declarations and names, and turns
 * each function the stores use into a call through a table that
 * archive_lib_load() fills with dlopen/dlsym.
 *
 * Use: include this instead of <archive.h> and <archive_entry.h>, and call
 * archive_lib_load() before the first libarchive call — archive_kind.c
 * does so in archive_kind_writer() and archive_kind_reader(), through which
 * every archive is created, so code handed a `struct archive *` needs
 * nothing more.  A function not listed below is not loaded: add it to
 * ARCHIVE_LIB_FUNCTIONS and to the #defines at the end.
 */
#ifndef IMAPSNAP_STORE_ARCHIVE_LIB_H
#define IMAPSNAP_STORE_ARCHIVE_LIB_H

#include <archive.h>
#include <archive_entry.h>
#include <stdbool.h>

/* The shared object dlopen()ed: libarchive 3.x's soname. */
#ifndef ARCHIVE_LIB_SONAME
#define ARCHIVE_LIB_SONAME "libarchive.so.13"
#endif

#define ARCHIVE_LIB_FUNCTIONS(X) \
	X(archive_entry_clear) \
	X(archive_entry_filetype) \
	X(archive_entry_free) \
	X(archive_entry_hardlink) \
	X(archive_entry_new) \
	X(archive_entry_pathname) \
	X(archive_entry_pathname_utf8) \
	X(archive_entry_set_filetype) \
	X(archive_entry_set_mtime) \
	X(archive_entry_set_pathname) \
	X(archive_entry_set_pathname_utf8) \
	X(archive_entry_set_perm) \
	X(archive_entry_set_size) \
	X(archive_error_string) \
	X(archive_read_data) \
	X(archive_read_data_skip) \
	X(archive_read_free) \
	X(archive_read_new) \
	X(archive_read_next_header) \
	X(archive_read_open_fd) \
	X(archive_read_support_filter_all) \
	X(archive_read_support_format_gnutar) \
	X(archive_read_support_format_tar) \
	X(archive_read_support_format_zip) \
	X(archive_write_add_filter_gzip) \
	X(archive_write_add_filter_xz) \
	X(archive_write_add_filter_zstd) \
	X(archive_write_close) \
	X(archive_write_data) \
	X(archive_write_finish_entry) \
	X(archive_write_free) \
	X(archive_write_header) \
	X(archive_write_new) \
	X(archive_write_open_fd) \
	X(archive_write_set_format_gnutar) \
	X(archive_write_set_format_pax_restricted) \
	X(archive_write_set_format_zip) \
	X(archive_write_set_options) \

struct archive_lib {
#define ARCHIVE_LIB_MEMBER(f) __typeof__(f) *f;
	ARCHIVE_LIB_FUNCTIONS(ARCHIVE_LIB_MEMBER)
#undef ARCHIVE_LIB_MEMBER
};

/* Load libarchive once per process (thread-safe).  Returns true, or false
 * with *why set to a sentence naming what failed ("libarchive.so.13:
 * cannot open shared object file: ...").  Every later call answers the
 * same. */
bool archive_lib_load(const char **why);

/* The table; only valid after archive_lib_load() returned true. */
extern struct archive_lib archive_lib;

#ifndef ARCHIVE_LIB_NO_MACROS
#define archive_entry_clear (archive_lib.archive_entry_clear)
#define archive_entry_filetype (archive_lib.archive_entry_filetype)
#define archive_entry_free (archive_lib.archive_entry_free)
#define archive_entry_hardlink (archive_lib.archive_entry_hardlink)
#define archive_entry_new (archive_lib.archive_entry_new)
#define archive_entry_pathname (archive_lib.archive_entry_pathname)
#define archive_entry_pathname_utf8 (archive_lib.archive_entry_pathname_utf8)
#define archive_entry_set_filetype (archive_lib.archive_entry_set_filetype)
#define archive_entry_set_mtime (archive_lib.archive_entry_set_mtime)
#define archive_entry_set_pathname (archive_lib.archive_entry_set_pathname)
#define archive_entry_set_pathname_utf8 (archive_lib.archive_entry_set_pathname_utf8)
#define archive_entry_set_perm (archive_lib.archive_entry_set_perm)
#define archive_entry_set_size (archive_lib.archive_entry_set_size)
#define archive_error_string (archive_lib.archive_error_string)
#define archive_read_data (archive_lib.archive_read_data)
#define archive_read_data_skip (archive_lib.archive_read_data_skip)
#define archive_read_free (archive_lib.archive_read_free)
#define archive_read_new (archive_lib.archive_read_new)
#define archive_read_next_header (archive_lib.archive_read_next_header)
#define archive_read_open_fd (archive_lib.archive_read_open_fd)
#define archive_read_support_filter_all (archive_lib.archive_read_support_filter_all)
#define archive_read_support_format_gnutar (archive_lib.archive_read_support_format_gnutar)
#define archive_read_support_format_tar (archive_lib.archive_read_support_format_tar)
#define archive_read_support_format_zip (archive_lib.archive_read_support_format_zip)
#define archive_write_add_filter_gzip (archive_lib.archive_write_add_filter_gzip)
#define archive_write_add_filter_xz (archive_lib.archive_write_add_filter_xz)
#define archive_write_add_filter_zstd (archive_lib.archive_write_add_filter_zstd)
#define archive_write_close (archive_lib.archive_write_close)
#define archive_write_data (archive_lib.archive_write_data)
#define archive_write_finish_entry (archive_lib.archive_write_finish_entry)
#define archive_write_free (archive_lib.archive_write_free)
#define archive_write_header (archive_lib.archive_write_header)
#define archive_write_new (archive_lib.archive_write_new)
#define archive_write_open_fd (archive_lib.archive_write_open_fd)
#define archive_write_set_format_gnutar (archive_lib.archive_write_set_format_gnutar)
#define archive_write_set_format_pax_restricted (archive_lib.archive_write_set_format_pax_restricted)
#define archive_write_set_format_zip (archive_lib.archive_write_set_format_zip)
#define archive_write_set_options (archive_lib.archive_write_set_options)
#endif

#endif
