/* manifest_chain.c — see manifest_chain.h. */
#include "manifest_chain.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "beneath.h"
#include "store/store.h"

#define CHAIN_TMP "chain.tmp"

void manifest_run_name(const struct timespec *ts,
		       char name[MANIFEST_RUN_NAME_MAX])
{
	struct tm tm;
	time_t t = ts->tv_sec;
	size_t n;

	gmtime_r(&t, &tm);
	n = strftime(name, MANIFEST_RUN_NAME_MAX, "%Y%m%dT%H%M%S", &tm);
	snprintf(name + n, MANIFEST_RUN_NAME_MAX - n, ".%06uZ.jsonl",
		 (unsigned)(ts->tv_nsec / 1000) % 1000000u);
}

bool manifest_is_run_name(const char *name)
{
	static const char pat[] = "ddddddddTdddddd.ddddddZ.jsonl";
	size_t i;

	for (i = 0; pat[i]; i++)
		if (pat[i] == 'd' ? name[i] < '0' || name[i] > '9'
				  : name[i] != pat[i])
			return false;
	return name[i] == '\0';
}

static bool is_hex64(const char *s)
{
	for (int i = 0; i < 64; i++)
		if (!((s[i] >= '0' && s[i] <= '9') ||
		      (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}

bool manifest_chain_parse(const char *line, size_t len, char sha[65],
			  char name[MANIFEST_RUN_NAME_MAX])
{
	size_t nlen = len > 66 ? len - 66 : 0;

	if (!nlen || nlen >= MANIFEST_RUN_NAME_MAX || !is_hex64(line) ||
	    line[64] != ' ' || line[65] != ' ')
		return false;
	memcpy(sha, line, 64);
	sha[64] = '\0';
	memcpy(name, line + 66, nlen);
	name[nlen] = '\0';
	return manifest_is_run_name(name);
}

int manifest_chain_read(int dirfd, char **text, size_t *len, bool *exists)
{
	int fd = beneath_open_file(dirfd, MANIFEST_CHAIN, O_RDONLY, 0);
	struct stat sb;
	size_t got = 0;
	char *buf;
	int saved;

	*text = NULL;
	*len = 0;
	*exists = fd >= 0;
	if (fd < 0) {
		if (errno != ENOENT)
			return -1;
		return (*text = calloc(1, 1)) ? 0 : -1;
	}
	if (fstat(fd, &sb) != 0)
		goto fail;
	if (sb.st_size > (off_t)MANIFEST_CHAIN_LIMIT) {
		errno = EFBIG;
		goto fail;
	}
	if (!(buf = malloc((size_t)sb.st_size + 1)))
		goto fail;
	while (got < (size_t)sb.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)sb.st_size - got);
		if (n < 0 && errno == EINTR)
			continue;
		/* Less than fstat said is a failure too: a caller that
		 * writes the chain back must never write back less. */
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			free(buf);
			goto fail;
		}
		got += (size_t)n;
	}
	close(fd);
	buf[got] = '\0';
	*text = buf;
	*len = got;
	return 0;
fail:
	saved = errno;
	close(fd);
	errno = saved;
	return -1;
}

static int write_all(int fd, const char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n == 0)
				errno = EIO;
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int manifest_chain_write(int dirfd, const char *text, size_t len)
{
	int fd = beneath_open_file(dirfd, CHAIN_TMP,
				   O_WRONLY | O_CREAT | O_TRUNC, 0600);
	int saved;

	if (fd < 0)
		return -1;
	if (write_all(fd, text, len) != 0 || fsync(fd) != 0) {
		saved = errno;
		close(fd);
		goto fail;
	}
	if (close(fd) != 0 ||
	    renameat(dirfd, CHAIN_TMP, dirfd, MANIFEST_CHAIN) != 0) {
		saved = errno;
		goto fail;
	}
	/* The rename counts only once the directory is durable. */
	return store_fsync_dir(dirfd, "");
fail:
	unlinkat(dirfd, CHAIN_TMP, 0);
	errno = saved;
	return -1;
}

int manifest_sha256_fd(int fd, char out[65])
{
	static const char digits[] = "0123456789abcdef";
	unsigned char buf[65536], md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	EVP_MD_CTX *c = EVP_MD_CTX_new();
	off_t off = 0;
	int rc = -1;

	if (!c || !EVP_DigestInit_ex(c, EVP_sha256(), NULL)) {
		errno = ENOMEM;
		goto out;
	}
	for (;;) {
		ssize_t n = pread(fd, buf, sizeof buf, off);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			goto out;
		if (n == 0)
			break;
		if (!EVP_DigestUpdate(c, buf, (size_t)n)) {
			errno = ENOMEM;
			goto out;
		}
		off += n;
	}
	if (!EVP_DigestFinal_ex(c, md, &mdlen)) {
		errno = ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < mdlen; i++) {
		out[2 * i] = digits[md[i] >> 4];
		out[2 * i + 1] = digits[md[i] & 15];
	}
	out[2 * mdlen] = '\0';
	rc = 0;
out:
	EVP_MD_CTX_free(c);
	return rc;
}
