/*
 * manifest_chain.h — the files of DEST/.imapsnap/manifest/ that manifest.c
 * writes and verify.c reads (docs/manifest.md): run files named after
 * their UTC start ("20240501T020000.123456Z.jsonl", so that names sort in
 * time order) and the chain, one line per run in run order, as sha256sum
 * writes them:
 *
 *   <64 lower-case hex digits of the run file's SHA-256>  <run file>\n
 */
#ifndef IMAPSNAP_MANIFEST_CHAIN_H
#define IMAPSNAP_MANIFEST_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <time.h>

#define MANIFEST_DIR "manifest"      /* below DEST/.imapsnap */
#define MANIFEST_CHAIN "chain"
/* A run file's name, with its NUL. */
#define MANIFEST_RUN_NAME_MAX 48
/* A chain is one short line per run; a file near this size is not one. */
#define MANIFEST_CHAIN_LIMIT (64u << 20)

/* The run file name for a run started at `ts`. */
void manifest_run_name(const struct timespec *ts,
		       char name[MANIFEST_RUN_NAME_MAX]);

/* Whether `name` has the form of a run file's name. */
bool manifest_is_run_name(const char *name);

/* Split one chain line (`len` bytes, without its newline) into the hash
 * and the run file's name; false when it is not a well-formed line. */
bool manifest_chain_parse(const char *line, size_t len, char sha[65],
			  char name[MANIFEST_RUN_NAME_MAX]);

/* Read dirfd/chain whole into *text (malloc'd, NUL-terminated; it may
 * hold NUL bytes before *len).  A missing chain is empty text and
 * *exists false.  Returns 0, or -1 with errno (EFBIG beyond
 * MANIFEST_CHAIN_LIMIT; ELOOP, ENXIO: a symbolic link, a FIFO, which are
 * neither followed nor opened, beneath.h). */
int manifest_chain_read(int dirfd, char **text, size_t *len, bool *exists);

/* Replace dirfd/chain with `text`, durably: chain.tmp, fsync, rename,
 * fsync of the directory; a crash leaves the old chain or the new one.
 * Returns 0, or -1 with errno (dirfd/chain is then as it was). */
int manifest_chain_write(int dirfd, const char *text, size_t len);

/* The SHA-256 (hex) of the whole file open at `fd`, read with pread, so
 * that its offset is left alone.  Returns 0, or -1 with errno. */
int manifest_sha256_fd(int fd, char out[65]);

#endif
