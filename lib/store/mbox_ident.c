/* mbox_ident.c — see mbox_ident.h. */
#include "store/mbox_ident.h"

#include <openssl/evp.h>
#include <string.h>
#include <strings.h>

/* The fields mbox readers write themselves (mutt's CH_UPDATE and
 * CH_UPDATE_LEN; Dovecot and others read the same ones). */
static const char *const reader_fields[] = {
	"Status", "X-Status", "Content-Length", "Lines", NULL,
};

int mbox_ident_init(struct mbox_ident *id)
{
	memset(id, 0, sizeof *id);
	id->md = EVP_MD_CTX_new();
	return id->md ? 0 : -1;
}

void mbox_ident_free(struct mbox_ident *id)
{
	EVP_MD_CTX_free(id->md);
	id->md = NULL;
}

void mbox_ident_start(struct mbox_ident *id)
{
	EVP_DigestInit_ex(id->md, EVP_sha256(), NULL);
	id->in_header = true;
	id->line_start = true;
	id->dropping = false;
	id->deciding = false;
	id->name_len = 0;
}

static int put(struct mbox_ident *id, const void *p, size_t n)
{
	return n && EVP_DigestUpdate(id->md, p, n) != 1 ? -1 : 0;
}

static bool is_reader_field(const char *name, size_t len)
{
	for (const char *const *f = reader_fields; *f; f++)
		if (strlen(*f) == len && !strncasecmp(*f, name, len))
			return true;
	return false;
}

/* The name being collected is decided: keep what was held, or not. */
static int decide(struct mbox_ident *id, bool drop)
{
	id->deciding = false;
	id->dropping = drop;
	return drop ? 0 : put(id, id->name, id->name_len);
}

int mbox_ident_feed(struct mbox_ident *id, const void *data, size_t len)
{
	const char *p = data, *end = p + len;

	while (p < end) {
		if (!id->in_header)
			return put(id, p, (size_t)(end - p));
		if (id->line_start) {
			id->line_start = false;
			if (*p == '\n') {
				/* The empty line: the body follows. */
				id->in_header = false;
				id->dropping = false;
				continue;
			}
			if (*p != ' ' && *p != '\t') {
				/* A new field (a continuation keeps the
				 * decision of the one before). */
				id->deciding = true;
				id->dropping = false;
				id->name_len = 0;
			}
		}
		if (id->deciding) {
			char c = *p;
			if (c == ':' &&
			    decide(id, is_reader_field(id->name, id->name_len)))
				return -1;
			if (!id->deciding) {
				if (!id->dropping && put(id, p, 1))
					return -1;
			} else if (c == '\n' ||
				   id->name_len == sizeof id->name) {
				if (decide(id, false) || put(id, p, 1))
					return -1;
			} else {
				id->name[id->name_len++] = c;
			}
			if (c == '\n')
				id->line_start = true;
			p++;
			continue;
		}
		{
			const char *lf = memchr(p, '\n', (size_t)(end - p));
			const char *stop = lf ? lf + 1 : end;
			if (!id->dropping && put(id, p, (size_t)(stop - p)))
				return -1;
			p = stop;
			if (lf)
				id->line_start = true;
		}
	}
	return 0;
}

int mbox_ident_final(struct mbox_ident *id, unsigned char out[32])
{
	unsigned int n = 0;

	if (id->deciding && decide(id, false))
		return -1;
	return EVP_DigestFinal_ex(id->md, out, &n) == 1 && n == 32 ? 0 : -1;
}

int mbox_ident_copy(struct mbox_ident *to, const struct mbox_ident *from)
{
	void *md = to->md;

	if (EVP_MD_CTX_copy_ex(md, from->md) != 1)
		return -1;
	*to = *from;
	to->md = md;
	return 0;
}
