/*
 * curl_init.h — libcurl's global initialisation, with memory that is wiped
 * when libcurl frees it.  libcurl keeps copies of the password, builds the
 * SASL messages and holds OAuth2 tokens in its own allocations and frees
 * them without clearing them: a core dump, or anything that later reads
 * the heap, would find them.  Call isnap_curl_init before any other libcurl
 * function (every user of libcurl in lib/ does); it is safe to call from
 * several threads and more than once.
 */
#ifndef IMAPSNAP_CURL_INIT_H
#define IMAPSNAP_CURL_INIT_H

void isnap_curl_init(void);

#endif
