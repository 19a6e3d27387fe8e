/*
 * fetch_item.h — reading the items of a FETCH response (RFC 3501 §7.4.2:
 * "* n FETCH (UID 5 RFC822.SIZE 120 BODY[] {120}"), for the code that
 * fetches bodies to compare them (restore and migrate hash what a target
 * or a source holds).  The backup's own pipelined fetch is fetch.h.
 */
#ifndef IMAPSNAP_IMAP_FETCH_ITEM_H
#define IMAPSNAP_IMAP_FETCH_ITEM_H

#include <stdbool.h>

#include "imap/parser.h"

/* The value of item `name` ("UID", "RFC822.SIZE") of the untagged FETCH
 * response `r`, or NULL when it has none.  Borrowed from `r`. */
const struct imap_arg *imap_fetch_item(const struct imap_response *r,
				       const char *name);

/* At a literal (imap_handler.literal_begin, `partial` being the response
 * so far): whether that literal is the value of BODY[] in an untagged
 * FETCH response, and the first one in it.  Anything else a server
 * sends as a literal (BODY[HEADER], a string item, a second BODY[]) is
 * not the message and must not be hashed as it. */
bool imap_fetch_literal_is_body(const struct imap_response *partial);

#endif
