/*
 * msg_norm.c — see msg_norm.h.
 */
#include "msg_norm.h"

#include <string.h>

#include <openssl/evp.h>

static void put(struct msg_norm *m, char c)
{
	if (m->n == sizeof m->buf) {
		if (!EVP_DigestUpdate(m->md, m->buf, m->n))
			m->failed = true;
		m->n = 0;
	}
	m->buf[m->n++] = (unsigned char)c;
	m->last[0] = m->last[1];
	m->last[1] = c;
	m->size++;
}

bool msg_norm_init(struct msg_norm *m)
{
	memset(m, 0, sizeof *m);
	m->in_header = true;
	m->line_empty = true;
	if (!(m->md = EVP_MD_CTX_new()) ||
	    !EVP_DigestInit_ex(m->md, EVP_sha256(), NULL)) {
		EVP_MD_CTX_free(m->md);
		m->md = NULL;
		return false;
	}
	return true;
}

/* A line ended (CRLF out already). */
static void line_end(struct msg_norm *m)
{
	if (m->in_header && m->line_empty)
		m->in_header = false;
	m->line_empty = true;
}

void msg_norm_update(struct msg_norm *m, const void *data, size_t len)
{
	const unsigned char *p = data;

	for (size_t i = 0; i < len; i++) {
		unsigned char c = p[i];
		if (c == '\n') {
			if (!m->cr)
				put(m, '\r');
			put(m, '\n');
			m->cr = false;
			line_end(m);
			continue;
		}
		if (m->cr) {
			/* A CR not followed by LF: it was content. */
			m->line_empty = false;
		}
		m->cr = c == '\r';
		if (!m->cr)
			m->line_empty = false;
		put(m, m->in_header && c >= 0x80 ? 'X' : (char)c);
	}
}

bool msg_norm_final(struct msg_norm *m, unsigned char sha[32])
{
	unsigned len = 0;
	bool ok;

	if (m->size && !(m->last[0] == '\r' && m->last[1] == '\n')) {
		/* A trailing lone CR is not a line end: CRLF after it. */
		put(m, '\r');
		put(m, '\n');
	}
	ok = !m->failed && EVP_DigestUpdate(m->md, m->buf, m->n) &&
	     EVP_DigestFinal_ex(m->md, sha, &len) && len == 32;
	EVP_MD_CTX_free(m->md);
	m->md = NULL;
	return ok;
}

bool msg_norm_size_fits(uint64_t sent, uint64_t stored)
{
	return stored >= sent && stored - sent <= sent / 16 + 2;
}
