/* fetch_item.c — see fetch_item.h. */
#include "imap/fetch_item.h"

#include <string.h>

/* The item list of an untagged FETCH response, or NULL. */
static const struct imap_arg *items_of(const struct imap_response *r)
{
	if (r->kind != IMAP_RESP_UNTAGGED || !r->name ||
	    strcmp(r->name, "FETCH") || r->nargs != 1 ||
	    r->args[0].type != IMAP_ARG_LIST)
		return NULL;
	return &r->args[0];
}

const struct imap_arg *imap_fetch_item(const struct imap_response *r,
				       const char *name)
{
	const struct imap_arg *l = items_of(r);

	if (!l)
		return NULL;
	for (size_t i = 0; i + 1 < l->count; i += 2)
		if (imap_arg_is_atom(&l->list[i], name))
			return &l->list[i + 1];
	return NULL;
}

bool imap_fetch_literal_is_body(const struct imap_response *partial)
{
	const struct imap_arg *l = items_of(partial);

	/* Names and values alternate: the literal is a value only when an
	 * odd number of items came before it, the last of them its name. */
	if (!l || l->count % 2 != 1 ||
	    !imap_arg_is_atom(&l->list[l->count - 1], "BODY[]"))
		return false;
	for (size_t i = 0; i + 1 < l->count; i += 2)
		if (imap_arg_is_atom(&l->list[i], "BODY[]"))
			return false; /* a second body */
	return true;
}
