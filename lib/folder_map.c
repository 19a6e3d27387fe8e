/*
 * folder_map.c — see folder_map.h; the rules are in docs/restore.md.
 */
#include "folder_map.h"

#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "mutf7.h"

#define ROLES_MAPPED 5

struct role_folder {
	const char *role;  /* folder_role's spelling */
	char *raw;
};

struct folder_map {
	char *prefix;      /* the target's personal prefix, UTF-8 */
	char delim;        /* '/' when the target has none */
	char *into;
	bool map_roles;
	struct role_folder roles[ROLES_MAPPED];
};

static char *decode(const char *raw)
{
	char *s = NULL;

	if (mutf7_decode(raw, strlen(raw), &s) != 0)
		s = strdup(raw);
	return s;
}

/* ---------------------------------------------------------------------- */

void folder_map_free(struct folder_map *m)
{
	if (!m)
		return;
	free(m->prefix);
	free(m->into);
	for (size_t i = 0; i < ROLES_MAPPED; i++)
		free(m->roles[i].raw);
	free(m);
}

static enum isnap_status oom(struct folder_map *m, struct isnap_error *err)
{
	folder_map_free(m);
	return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
}

enum isnap_status folder_map_new(const struct imap_folder_list *target,
				 const struct folder_map_opts *o,
				 struct folder_map **out,
				 struct isnap_error *err)
{
	struct folder_map *m = calloc(1, sizeof *m);
	size_t nroles = 0;

	*out = NULL;
	if (!m)
		return oom(m, err);
	m->delim = target->ns.delim ? target->ns.delim : '/';
	m->map_roles = o->map_roles;
	if (!(m->prefix = decode(target->ns.prefix ? target->ns.prefix : "")) ||
	    (o->into && *o->into && !(m->into = strdup(o->into))))
		return oom(m, err);
	/* The first selectable folder of each role, in LIST order. */
	for (size_t i = 0; i < target->n; i++) {
		const struct imap_folder *f = &target->v[i];
		const char *role = folder_role(f->special_use);
		bool seen = false;
		if (!role || !folder_role_maps(role) || f->noselect ||
		    f->invalid)
			continue;
		for (size_t j = 0; j < nroles; j++)
			seen |= !strcmp(m->roles[j].role, role);
		if (seen || nroles == ROLES_MAPPED)
			continue;
		m->roles[nroles].role = role;
		if (!(m->roles[nroles++].raw = strdup(f->name)))
			return oom(m, err);
	}
	*out = m;
	return ISNAP_OK;
}

char folder_map_delim(const struct folder_map *m)
{
	return m->delim;
}

void folder_target_free(struct folder_target *t)
{
	free(t->raw);
	free(t->utf8);
	t->raw = t->utf8 = NULL;
}

/* Append `s` with each '/' made the target's delimiter. */
static char *put_levels(char *p, const char *s, char delim)
{
	for (; *s; s++)
		*p++ = *s == '/' ? delim : *s;
	return p;
}

enum isnap_status folder_map_target(const struct folder_map *m,
				    const char *path, const char *role,
				    struct folder_target *out,
				    struct isnap_error *err)
{
	const char *prefix = m->prefix;
	size_t plen = strlen(prefix), ilen = m->into ? strlen(m->into) : 0;
	char *p;

	memset(out, 0, sizeof *out);
	role = folder_role(role);
	if (m->map_roles && !m->into && role)
		for (size_t i = 0; i < ROLES_MAPPED && m->roles[i].role; i++)
			if (!strcmp(m->roles[i].role, role)) {
				out->by_role = true;
				if (!(out->raw = strdup(m->roles[i].raw)) ||
				    !(out->utf8 = decode(out->raw)))
					goto oom;
				return ISNAP_OK;
			}
	if (!m->into && !strcasecmp(path, "INBOX")) {
		if (!(out->raw = strdup("INBOX")) ||
		    !(out->utf8 = strdup("INBOX")))
			goto oom;
		return ISNAP_OK;
	}
	/* Below INBOX where the target's own folders are below INBOX
	 * anyway: Dovecot's INBOX/Sub is Courier's INBOX.Sub, not
	 * INBOX.INBOX.Sub. */
	if (!m->into && plen == 6 && !strncasecmp(prefix, "INBOX", 5) &&
	    !strncasecmp(path, "INBOX/", 6) && path[6])
		path += 6;
	if (!(out->utf8 = malloc(plen + ilen + strlen(path) + 2)))
		goto oom;
	p = out->utf8;
	memcpy(p, prefix, plen);
	p += plen;
	if (ilen) {
		p = put_levels(p, m->into, m->delim);
		*p++ = m->delim;
	}
	p = put_levels(p, path, m->delim);
	*p = '\0';
	if (mutf7_encode(out->utf8, strlen(out->utf8), &out->raw) != 0) {
		folder_target_free(out);
		return isnap_fail(err, ISNAP_EFOLDER,
				  "%s: the name cannot be encoded for IMAP",
				  path);
	}
	if (!strcasecmp(out->raw, "INBOX"))
		memcpy(out->raw, "INBOX", 5);
	return ISNAP_OK;
oom:
	folder_target_free(out);
	return isnap_fail(err, ISNAP_ENOMEM, "out of memory");
}
