/*
 * utf8.h — strict UTF-8 decoding of one character, shared by the folder
 * name code (mutf7.c, fsname.c) so that both agree on what is valid.
 */
#ifndef IMAPSNAP_UTF8_H
#define IMAPSNAP_UTF8_H

#include <stddef.h>
#include <stdint.h>

/* Decode the character at s (n > 0 bytes available) into *cp and return
 * its length, or 0 if the bytes there are not one: truncated, overlong, a
 * surrogate, above U+10FFFF, or a stray continuation byte. */
size_t utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);

#endif
