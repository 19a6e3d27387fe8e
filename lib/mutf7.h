/*
 * mutf7.h — IMAP's modified UTF-7 for mailbox names (RFC 3501 §5.1.3).
 *
 * Printable ASCII other than '&' stands for itself; '&' is "&-"; everything
 * else is UTF-16 in modified base64 ('+' and ',' instead of '+' and '/', no
 * padding) between '&' and '-'.
 *
 * Both directions are strict: decoding rejects 8-bit bytes, control
 * characters, unterminated or empty shifts other than "&-", base64 that
 * encodes printable ASCII, non-zero padding bits, unpaired surrogates and
 * U+0000; encoding rejects invalid UTF-8 (overlongs, surrogates, > U+10FFFF)
 * and NUL.  So decode(encode(x)) == x for every valid x, and encode(decode(y))
 * == y for every y that decodes.
 *
 * In detail: control characters and DEL are rejected as raw bytes but are
 * valid inside a shift ("&AAk-" is a TAB), since that is how an encoder
 * writes them.  A shift must carry exactly the digits its UTF-16 needs (no
 * digit too many).  Two shifts in a row ("&AOQ-&AOQ-") are rejected: RFC
 * 3501 says encoders must not produce them, and accepting them would give
 * one name two spellings; the canonical form is "&AOQA5A-".  "&-" next to a
 * shift ("&AOQ-&-") is fine.
 */
#ifndef IMAPSNAP_MUTF7_H
#define IMAPSNAP_MUTF7_H

#include <stddef.h>

/* Decode `len` bytes of modified UTF-7 into a NUL-terminated UTF-8 string
 * in *out (malloc'd; the caller frees).  Returns 0, or -1 with errno EINVAL
 * (invalid input) or ENOMEM; *out is NULL on failure.  The result never
 * contains NUL, so strlen(*out) is its length. */
int mutf7_decode(const char *in, size_t len, char **out);

/* Encode `len` bytes of UTF-8 into NUL-terminated modified UTF-7 in *out
 * (malloc'd; the caller frees).  Returns 0, or -1 with errno EINVAL or
 * ENOMEM; *out is NULL on failure. */
int mutf7_encode(const char *in, size_t len, char **out);

#endif
