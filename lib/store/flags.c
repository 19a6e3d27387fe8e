/*
 * flags.c — the system flags' IMAP names and Maildir letters (store.h).
 * Apart from store.c so that code which only parses flags (the fetch, the
 * manifest, restore; and their fuzz targets) does not pull in every store.
 */
#include "store/store.h"

#include <stddef.h>
#include <strings.h>

void store_flag_letters(unsigned flags, char *buf)
{
	/* Maildir wants the letters in ASCII order. */
	static const struct {
		unsigned flag;
		char letter;
	} letters[] = {
		{ STORE_FLAG_DRAFT, 'D' },     { STORE_FLAG_FLAGGED, 'F' },
		{ STORE_FLAG_FORWARDED, 'P' }, { STORE_FLAG_ANSWERED, 'R' },
		{ STORE_FLAG_SEEN, 'S' },      { STORE_FLAG_DELETED, 'T' },
	};
	char *p = buf;

	for (size_t i = 0; i < sizeof letters / sizeof *letters; i++)
		if (flags & letters[i].flag)
			*p++ = letters[i].letter;
	*p = '\0';
}

static const struct {
	unsigned bit;
	const char *name;
} flag_names[] = {
	{ STORE_FLAG_SEEN, "\\Seen" },
	{ STORE_FLAG_ANSWERED, "\\Answered" },
	{ STORE_FLAG_FLAGGED, "\\Flagged" },
	{ STORE_FLAG_DELETED, "\\Deleted" },
	{ STORE_FLAG_DRAFT, "\\Draft" },
	{ STORE_FLAG_FORWARDED, "$Forwarded" },
};

const char *store_flag_name(unsigned bit)
{
	for (size_t i = 0; i < sizeof flag_names / sizeof *flag_names; i++)
		if (flag_names[i].bit == bit)
			return flag_names[i].name;
	return NULL;
}

unsigned store_flag_by_name(const char *name)
{
	for (size_t i = 0; i < sizeof flag_names / sizeof *flag_names; i++)
		if (!strcasecmp(name, flag_names[i].name))
			return flag_names[i].bit;
	return 0;
}
