/*
 * tsa.h — RFC 3161 trusted timestamps of a run's manifest
 * (docs/manifest.md, "The forensic record").
 *
 * A Time Stamping Authority signs the SHA-256 of the run file together
 * with the time it saw it: the token proves that the manifest, and with
 * the chain every manifest before it, existed unchanged at that time.
 * The request and the response are built and checked with OpenSSL's TS
 * API (libcrypto) and sent over HTTP or HTTPS with libcurl, as RFC 3161
 * section 3.4 describes (POST, application/timestamp-query).
 *
 *   tsa_request(url, cafile, sha, mdir, "<run>.tsr", &err)  // after the run
 *   tsa_check(mdir, "<run>.tsr", sha, cafile, ..., &err)     // verify
 *
 * The token lives beside the run file in DEST/.imapsnap/manifest, open at
 * `mdir`; it is written and read below that descriptor without following
 * a link, and only if it is a regular file (beneath.h).
 */
#ifndef IMAPSNAP_TSA_H
#define IMAPSNAP_TSA_H

#include <stdbool.h>
#include <stddef.h>

#include "error.h"

/* Ask the TSA at `url` to timestamp `sha256` (a SHA-256, 32 bytes), with
 * a nonce and asking for its certificate, check the answer against the
 * request (granted, same imprint, same nonce; and the signature against
 * the certificates in `cafile`, the TSA's CA, when it is not NULL; it is
 * also what an https URL is checked against), and write the DER response
 * to dirfd/out_name (a temporary name created afresh, fsync, rename).  ISNAP_ECONN when the
 * TSA cannot be reached or answers with an HTTP error, ISNAP_EPROTO for a
 * malformed or refused answer, ISNAP_EINTEGRITY when it does not match,
 * ISNAP_ELOCAL when the file cannot be written. */
enum isnap_status tsa_request(const char *url, const char *cafile,
			      const unsigned char sha256[32], int dirfd,
			      const char *out_name, struct isnap_error *err);

/* Check the response dirfd/name against `sha256`: a granted response whose
 * token names exactly that SHA-256; with `cafile`, signed by a TSA whose
 * certificate chains to it (and is meant for timestamping).  *signed_r
 * says whether the signature was checked.  `when` receives the token's
 * time (genTime, "20240501020001Z").  ISNAP_OK, ISNAP_EINTEGRITY (err
 * says what is wrong), ISNAP_ELOCAL (cannot be read: a link or a FIFO
 * is not opened), ISNAP_ENOMEM. */
enum isnap_status tsa_check(int dirfd, const char *name,
			    const unsigned char sha256[32],
			    const char *cafile, bool *signed_r, char *when,
			    size_t when_size, struct isnap_error *err);

#endif
