/*
 * folder_path.c — see folder_path.h.
 */
#include "folder_path.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mutf7.h"

static const char *const roles[] = {
	"\\All", "\\Archive", "\\Drafts", "\\Flagged",
	"\\Junk", "\\Sent", "\\Trash", NULL,
};

const char *folder_role(const char *attr)
{
	if (!attr)
		return NULL;
	for (const char *const *r = roles; *r; r++)
		if (!strcasecmp(attr, *r))
			return *r;
	return NULL;
}

bool folder_role_maps(const char *role)
{
	role = folder_role(role);
	return role && strcmp(role, "\\All") && strcmp(role, "\\Flagged");
}

static char *decode(const char *raw)
{
	char *s = NULL;

	if (mutf7_decode(raw, strlen(raw), &s) != 0)
		s = strdup(raw);
	return s;
}

/* Whether `name` begins with `prefix`; an INBOX at the front matches in
 * any case (RFC 3501: INBOX is case-insensitive). */
static bool has_prefix(const char *name, const char *prefix)
{
	size_t n = strlen(prefix);

	if (n >= 5 && !strncasecmp(prefix, "INBOX", 5))
		return !strncasecmp(name, prefix, 5) &&
		       !strncmp(name + 5, prefix + 5, n - 5);
	return !strncmp(name, prefix, n);
}

char *folder_logical_path(const char *raw, char delim, const char *prefix)
{
	const char *rest = raw;
	char *out;

	if (!strcasecmp(raw, "INBOX"))
		return strdup("INBOX");
	/* The prefix itself ("INBOX." names INBOX's level on Courier). */
	if (prefix && *prefix && has_prefix(raw, prefix) &&
	    raw[strlen(prefix)])
		rest = raw + strlen(prefix);
	if (!(out = decode(rest)))
		return NULL;
	if (delim && delim != '/')
		for (char *p = out; *p; p++)
			if (*p == delim)
				*p = '/';
	return out;
}

