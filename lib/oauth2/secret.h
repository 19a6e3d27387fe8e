/*
 * secret.h — freeing strings that hold tokens and secrets: wiped first,
 * so that a freed access or refresh token does not linger in the heap.
 */
#ifndef IMAPSNAP_OAUTH2_SECRET_H
#define IMAPSNAP_OAUTH2_SECRET_H

#include <stdlib.h>
#include <string.h>

/* Wipe and free a NUL-terminated string (NULL is fine). */
static inline void oauth2_secret_free(char *s)
{
	if (s) {
		explicit_bzero(s, strlen(s));
		free(s);
	}
}

#endif
