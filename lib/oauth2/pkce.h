/*
 * pkce.h — Proof Key for Code Exchange (RFC 7636) for the loopback
 * redirect flow, and the random `state` that ties a redirect to the
 * request that caused it.
 *
 *   char verifier[OAUTH2_PKCE_VERIFIER_LEN + 1], challenge[OAUTH2_PKCE_CHALLENGE_LEN + 1];
 *   if (oauth2_pkce_verifier(verifier) ||
 *       oauth2_pkce_challenge(verifier, challenge)) ...;
 *   // authorize URL: code_challenge=<challenge>&code_challenge_method=S256
 *   // token request: code_verifier=<verifier>
 */
#ifndef IMAPSNAP_OAUTH2_PKCE_H
#define IMAPSNAP_OAUTH2_PKCE_H

#include <stddef.h>

/* 32 random bytes in base64url without padding (RFC 7636 §4.1). */
#define OAUTH2_PKCE_VERIFIER_LEN 43
/* base64url(SHA-256(verifier)) without padding (§4.2, S256). */
#define OAUTH2_PKCE_CHALLENGE_LEN 43

/* A new verifier from the system's random source.  0, or -1 when no
 * random bytes could be had. */
int oauth2_pkce_verifier(char out[OAUTH2_PKCE_VERIFIER_LEN + 1]);

/* The S256 challenge of a NUL-terminated verifier.  0, or -1. */
int oauth2_pkce_challenge(const char *verifier,
			  char out[OAUTH2_PKCE_CHALLENGE_LEN + 1]);

/* `n` random bytes as base64url into out (at least 4*n/3+3 bytes).
 * 0, or -1. */
int oauth2_random_base64url(size_t n, char *out, size_t size);

/* base64url without padding of `len` bytes into out (NUL-terminated);
 * out must hold (len * 4 + 2) / 3 + 1 bytes.  Returns the length. */
size_t oauth2_base64url(const unsigned char *in, size_t len, char *out);

#endif
