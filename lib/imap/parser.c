/*
 * parser.c — incremental IMAP response parser; see parser.h for the
 * contract.  RFC 3501 §7 and §9, RFC 9051 §9, RFC 7888 (LITERAL+/-),
 * RFC 3516 (binary literals).
 *
 * How it works.  A response is a sequence of line segments separated by
 * literals: "* 1 FETCH (BODY[] {5}" CRLF <5 bytes> ")" CRLF is two segments.
 * Bytes are only looked at once a whole segment (up to its LF) is available,
 * which keeps the tokenizer a plain loop over complete text with no
 * "token cut in half" states: when the segment lies wholly inside the
 * caller's buffer it is tokenized straight from there (the common case,
 * costing no copy of the line), otherwise the pieces are gathered in `line`
 * (bounded by max_response) first.  Tokens are copied to `store`.  A literal header can
 * only end a segment, so no token ever spans two segments; what crosses
 * them is the stack of open lists and the list of args so far.
 *
 * Args are kept as `struct node`s in pre-order, with offsets (not pointers)
 * into `store`, because `store` may move when it grows while a response is
 * still being read.  The public `struct imap_arg` tree, where each list's
 * children must be contiguous, is laid out breadth-first from the nodes
 * only when a (partial) response is handed out.  All buffers are kept
 * between responses, so a steady stream of similar responses allocates
 * nothing.
 */
#include "imap/parser.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Offsets into `store` standing for "no string" and "empty string". */
#define OFF_NULL SIZE_MAX
#define OFF_EMPTY (SIZE_MAX - 1)

/* Per segment, tokens and their NUL terminators take at most the segment's
 * own length plus this (the status fields add one NUL each). */
#define SEGMENT_SLACK 8

/* The longest arg of a streamed SEARCH: a UID has at most 10 digits; what
 * is not a UID is handed out too, for the caller to refuse, up to this. */
#define SEARCH_TOKEN_MAX 64

enum state {
	ST_LINE,        /* reading a line segment */
	ST_LIT_WAIT,    /* returned IMAP_PARSE_LITERAL, awaiting the answer */
	ST_LIT_INLINE,  /* copying an inlined literal into `store` */
	ST_SEARCH,      /* reading the numbers of a streamed "* SEARCH" */
	ST_DONE,        /* returned IMAP_PARSE_RESPONSE; next call starts anew
			   (or goes on with the same SEARCH: search_more) */
	ST_ERROR,       /* sticky until imap_parser_reset() */
};

struct node {
	enum imap_arg_type type;
	size_t off, len;       /* ATOM, STRING: the bytes in `store` */
	size_t count;          /* LIST: direct children */
	size_t span;           /* nodes in this subtree, itself included */
	uint64_t literal_size; /* LITERAL_STREAMED */
};

struct imap_parser {
	struct imap_parser_limits lim;
	enum state st;

	/* A segment that arrived in several pieces. */
	char *line;
	size_t line_len, line_cap;

	/* Token text, NUL-terminated, and inlined literals. */
	char *store;
	size_t store_len, store_cap;

	/* Args so far, pre-order; `out` and `order` have the same capacity so
	 * that laying out a response never allocates. */
	struct node *nodes;
	struct imap_arg *out;
	size_t *order;
	size_t nnodes, nodes_cap;

	/* Indexes in `nodes` of the lists still open, outermost first. */
	size_t *stack;
	unsigned depth, stack_cap;

	size_t resp_bytes;  /* counted against max_response */
	bool head_done;     /* tag and name have been read */
	bool need_sep;      /* the next token must follow a space or be ')' */
	bool after_close;   /* last token was ')': "(a)(b)" needs no space */

	uint64_t lit_size;  /* announced size of the pending literal */
	uint64_t lit_left;  /* inline bytes still to copy */
	size_t lit_off;

	enum imap_response_kind kind;
	bool has_number;
	uint32_t number;
	size_t tag, name, code, code_args, text; /* offsets or OFF_* */

	/* A streamed SEARCH (lim.search_chunk): the token being read, a CR
	 * just seen, more of the line to come. */
	char search_tok[SEARCH_TOKEN_MAX];
	size_t search_tok_len;
	bool search_cr, search_more;

	struct imap_response resp;
	char err[256];
};

/*
 * Character classes.  C_ATOM is deliberately looser than RFC 3501's
 * ATOM-CHAR: servers put ']', '%', '*' and 8-bit bytes (UTF-8 mailbox
 * names) in atoms, and none of these can confuse the framing.  '[' is not
 * in C_ATOM because inside an atom it opens a section that runs to ']'
 * (BODY[HEADER.FIELDS (FROM TO)]).  C_TAG is RFC 3501's tag: ASTRING-CHAR
 * without '+'.  C_QUOTED is what may appear unescaped in a quoted string.
 */
enum { C_ATOM = 1, C_TAG = 2, C_QUOTED = 4 };

static const unsigned char cclass[256] = {
	0, 4, 4, 4, 4, 4, 4, 4, 4, 4, 0, 4, 4, 0, 4, 4,
	4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4, 4,
	4, 7, 0, 7, 7, 5, 7, 7, 4, 4, 5, 5, 7, 7, 7, 7,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 6, 1, 7, 7, 7,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
	7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 4, 7, 7, 7, 4,
	5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
	5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
	5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
	5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
	5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
	5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
	5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
	5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 5,
};

static enum imap_parse_status fail(struct imap_parser *p, const char *fmt,
				   ...) __attribute__((format(printf, 2, 3)));

static enum imap_parse_status fail(struct imap_parser *p, const char *fmt,
				   ...)
{
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(p->err, sizeof p->err, fmt, ap);
	va_end(ap);
	p->st = ST_ERROR;
	return IMAP_PARSE_ERROR;
}

/* An unexpected byte outside any token, or inside an atom's [...]. */
static enum imap_parse_status bad_char(struct imap_parser *p, unsigned char c)
{
	if (c == '\0')
		return fail(p, "NUL byte in a response line (outside a literal)");
	if (c == '\r')
		return fail(p, "CR not followed by LF in a response line");
	return fail(p, "unexpected character 0x%02x in a response", c);
}

/* Grow `*buf` to hold at least `need` elements of `size` bytes, doubling,
 * but never past `cap_max` elements unless `need` itself is larger. */
static bool grow(void **buf, size_t *cap, size_t need, size_t size,
		 size_t cap_max)
{
	size_t n = *cap ? *cap : 64;
	void *nb;

	if (need <= *cap)
		return true;
	while (n < need && n <= SIZE_MAX / 2)
		n *= 2;
	if (n > cap_max)
		n = cap_max;
	if (n < need)
		n = need;
	if (n > SIZE_MAX / size || !(nb = realloc(*buf, n * size)))
		return false;
	*buf = nb;
	*cap = n;
	return true;
}

static bool store_reserve(struct imap_parser *p, size_t extra)
{
	void *b = p->store;
	if (extra > SIZE_MAX - p->store_len ||
	    !grow(&b, &p->store_cap, p->store_len + extra, 1, SIZE_MAX))
		return false;
	p->store = b;
	return true;
}

/* Copy [s, s+n) into `store` (space reserved by the caller), NUL-terminated;
 * returns its offset. */
static size_t put(struct imap_parser *p, const char *s, size_t n)
{
	size_t off = p->store_len;
	memcpy(p->store + off, s, n);
	p->store[off + n] = '\0';
	p->store_len += n + 1;
	return off;
}

static size_t put_upper(struct imap_parser *p, const char *s, size_t n)
{
	size_t off = put(p, s, n);
	char *d = p->store + off;
	for (size_t i = 0; i < n; i++)
		if (d[i] >= 'a' && d[i] <= 'z')
			d[i] = (char)(d[i] - 'a' + 'A');
	return off;
}

/* `nodes`, `out` and `order` grow together, so that build() never needs to
 * allocate (imap_parser_partial has no way to report failure). */
static bool grow_nodes(struct imap_parser *p)
{
	size_t cap = p->nodes_cap, out_cap = cap, order_cap = cap;
	void *nodes = p->nodes, *out = p->out, *order = p->order;
	bool ok;

	ok = grow(&nodes, &cap, p->nnodes + 1, sizeof *p->nodes,
		  p->lim.max_args);
	p->nodes = nodes;
	ok = ok && grow(&out, &out_cap, cap, sizeof *p->out, cap);
	p->out = out;
	ok = ok && grow(&order, &order_cap, cap, sizeof *p->order, cap);
	p->order = order;
	if (ok)
		p->nodes_cap = cap;
	return ok;
}

static struct node *add_node(struct imap_parser *p, enum imap_arg_type type)
{
	struct node *n;

	if (p->nnodes >= p->lim.max_args) {
		fail(p, "more than %zu arguments in one response",
		     p->lim.max_args);
		return NULL;
	}
	if (p->nnodes == p->nodes_cap && !grow_nodes(p)) {
		fail(p, "out of memory");
		return NULL;
	}
	if (p->depth)
		p->nodes[p->stack[p->depth - 1]].count++;
	n = &p->nodes[p->nnodes++];
	*n = (struct node){ .type = type, .span = 1 };
	return n;
}

/* Forget the response just returned (or never finished), keeping memory. */
static void start_response(struct imap_parser *p)
{
	p->st = ST_LINE;
	p->line_len = 0;
	p->store_len = 0;
	p->nnodes = 0;
	p->depth = 0;
	p->resp_bytes = 0;
	p->head_done = false;
	p->need_sep = false;
	p->after_close = false;
	p->lit_size = p->lit_left = 0;
	p->has_number = false;
	p->number = 0;
	p->kind = IMAP_RESP_UNTAGGED;
	p->tag = p->code = OFF_NULL;
	p->name = p->code_args = p->text = OFF_EMPTY;
	p->search_tok_len = 0;
	p->search_cr = p->search_more = false;
}

static bool is_status_name(const char *s, size_t n)
{
	static const char *const names[] = { "OK", "NO", "BAD", "BYE",
					     "PREAUTH" };
	for (size_t i = 0; i < sizeof names / sizeof *names; i++)
		if (strlen(names[i]) == n && !strncasecmp(s, names[i], n))
			return true;
	return false;
}

/* The ']' closing a response code's arguments: the first one outside a
 * quoted string. */
static const char *code_end(const char *s, const char *e)
{
	bool quoted = false;
	for (; s < e; s++) {
		if (quoted) {
			if (*s == '\\' && s + 1 < e)
				s++;
			else if (*s == '"')
				quoted = false;
		} else if (*s == '"') {
			quoted = true;
		} else if (*s == ']') {
			return s;
		}
	}
	return NULL;
}

/*
 * resp-text after a status name: s is at the space after the name, or at
 * the end.  Never split into args (RFC 3501 resp-text is text), so a
 * literal in a response code is not recognised; no server is known to send
 * one.  An unclosed '[' is taken as plain text rather than an error, since
 * the text is for humans and servers do send odd [ALERT] text.
 */
static enum imap_parse_status parse_resp_text(struct imap_parser *p,
					      const char *s, const char *e)
{
	for (const char *q = s; q < e; q++)
		if (*q == '\0' || *q == '\r')
			return bad_char(p, (unsigned char)*q);
	if (s < e)
		s++; /* the space */
	if (s < e && *s == '[') {
		const char *c = s + 1, *ce, *args, *close;
		while (c < e && (cclass[(unsigned char)*c] & C_ATOM) &&
		       *c != ']')
			c++;
		ce = c;
		if (ce > s + 1 && c < e && (*c == ']' || *c == ' ')) {
			args = *c == ' ' ? c + 1 : c;
			close = *c == ' ' ? code_end(args, e) : c;
			if (close) {
				p->code = put_upper(p, s + 1, (size_t)(ce - s - 1));
				p->code_args = put(p, args, (size_t)(close - args));
				s = close + 1;
				if (s < e && *s == ' ')
					s++;
			}
		}
	}
	p->text = put(p, s, (size_t)(e - s));
	return IMAP_PARSE_RESPONSE;
}

/* A literal header "{N}", "{N+}", "{N-}" or "~{N}" starting at *c; it must
 * end the segment. */
static enum imap_parse_status parse_literal(struct imap_parser *p,
					    const unsigned char *c,
					    const unsigned char *e)
{
	const unsigned char *digits;
	uint64_t v = 0;

	if (*c == '~')
		c++;
	digits = ++c;
	while (c < e && *c >= '0' && *c <= '9') {
		unsigned d = (unsigned)(*c - '0');
		if (v > (UINT64_MAX - d) / 10)
			return fail(p, "literal size overflows");
		v = v * 10 + d;
		c++;
	}
	if (c == digits)
		return fail(p, "literal header without a size");
	if (c < e && (*c == '+' || *c == '-'))
		c++;
	if (c == e || *c != '}')
		return fail(p, "malformed literal header");
	if (c + 1 != e)
		return fail(p, "literal header is not at the end of the line");
	if (v > p->lim.max_literal)
		return fail(p,
			    "literal of %" PRIu64 " bytes is larger than the "
			    "limit of %" PRIu64 " bytes",
			    v, p->lim.max_literal);
	/* Refuse now rather than after the caller streamed the whole body. */
	if (p->nnodes >= p->lim.max_args)
		return fail(p, "more than %zu arguments in one response",
			    p->lim.max_args);
	p->lit_size = v;
	return IMAP_PARSE_LITERAL;
}

/* A quoted string starting at *c (the opening quote); returns the byte
 * after the closing quote, or NULL on error. */
static const unsigned char *parse_quoted(struct imap_parser *p,
					 const unsigned char *c,
					 const unsigned char *e)
{
	char *start = p->store + p->store_len, *w = start;
	struct node *n;

	c++;
	for (;;) {
		const unsigned char *r = c;
		while (c < e && (cclass[*c] & C_QUOTED))
			c++;
		memcpy(w, r, (size_t)(c - r));
		w += c - r;
		if (c == e) {
			fail(p, "quoted string not closed before the end of "
				"the line");
			return NULL;
		}
		if (*c == '"')
			break;
		if (*c != '\\') {
			bad_char(p, *c);
			return NULL;
		}
		if (c + 1 == e || (c[1] != '"' && c[1] != '\\')) {
			fail(p, "invalid escape in a quoted string (only \\\" "
				"and \\\\ are allowed)");
			return NULL;
		}
		*w++ = (char)c[1];
		c += 2;
	}
	*w = '\0';
	if (!(n = add_node(p, IMAP_ARG_STRING)))
		return NULL;
	n->off = (size_t)(start - p->store);
	n->len = (size_t)(w - start);
	p->store_len += n->len + 1;
	return c + 1;
}

/* An atom starting at *c, brackets included; NIL becomes IMAP_ARG_NIL. */
static const unsigned char *parse_atom(struct imap_parser *p,
				       const unsigned char *c,
				       const unsigned char *e)
{
	const unsigned char *a = c;
	struct node *n;

	for (;;) {
		while (c < e && (cclass[*c] & C_ATOM))
			c++;
		if (c == e || *c != '[')
			break;
		const unsigned char *r = memchr(c, ']', (size_t)(e - c));
		if (!r) {
			fail(p, "'[' in an atom is not closed by ']'");
			return NULL;
		}
		for (c++; c < r; c++)
			if (*c < 0x20 || *c == 0x7f) {
				bad_char(p, *c);
				return NULL;
			}
		c = r + 1;
	}
	size_t len = (size_t)(c - a);
	if (len == 3 && (a[0] | 0x20) == 'n' && (a[1] | 0x20) == 'i' &&
	    (a[2] | 0x20) == 'l')
		return add_node(p, IMAP_ARG_NIL) ? c : NULL;
	if (!(n = add_node(p, IMAP_ARG_ATOM)))
		return NULL;
	n->off = put(p, (const char *)a, len);
	n->len = len;
	return c;
}

/*
 * Args from s to e (a segment without its line end).  Returns
 * IMAP_PARSE_RESPONSE when the response is complete, IMAP_PARSE_LITERAL
 * when the segment ended in a literal header, or IMAP_PARSE_ERROR.
 */
static enum imap_parse_status parse_args(struct imap_parser *p,
					 const char *s, const char *e)
{
	const unsigned char *c = (const unsigned char *)s;
	const unsigned char *end = (const unsigned char *)e;

	while (c < end) {
		unsigned char ch = *c;

		if (ch == ' ') {
			c++;
			p->need_sep = p->after_close = false;
			continue;
		}
		if (ch == ')') {
			if (!p->depth)
				return fail(p, "unbalanced parentheses: ')' "
					       "without a matching '('");
			size_t i = p->stack[--p->depth];
			p->nodes[i].span = p->nnodes - i;
			c++;
			p->need_sep = p->after_close = true;
			continue;
		}
		if (!(cclass[ch] & C_ATOM) && ch != '(' && ch != '"' &&
		    ch != '{' && ch != '[')
			return bad_char(p, ch);
		/* BODYSTRUCTURE puts multipart parts side by side: "(..)(..)" */
		if (p->need_sep && !(ch == '(' && p->after_close))
			return fail(p, "missing space between arguments");
		p->need_sep = true;
		p->after_close = false;

		if (ch == '(') {
			if (p->depth >= p->lim.max_depth)
				return fail(p, "lists nested deeper than %u "
					       "levels", p->lim.max_depth);
			if (p->depth == p->stack_cap) {
				void *b = p->stack;
				size_t cap = p->stack_cap;
				if (!grow(&b, &cap, cap + 1, sizeof *p->stack,
					  p->lim.max_depth))
					return fail(p, "out of memory");
				p->stack = b;
				p->stack_cap = (unsigned)cap;
			}
			if (!add_node(p, IMAP_ARG_LIST))
				return IMAP_PARSE_ERROR;
			p->stack[p->depth++] = p->nnodes - 1;
			p->need_sep = false;
			c++;
		} else if (ch == '"') {
			if (!(c = parse_quoted(p, c, end)))
				return IMAP_PARSE_ERROR;
		} else if (ch == '{' || (ch == '~' && c + 1 < end && c[1] == '{')) {
			return parse_literal(p, c, end);
		} else {
			if (!(c = parse_atom(p, c, end)))
				return IMAP_PARSE_ERROR;
		}
	}
	if (p->depth)
		return fail(p, "unbalanced parentheses: the line ended inside "
			       "a list");
	return IMAP_PARSE_RESPONSE;
}

/* The first segment: "+ text", "* [n] NAME ...", or "tag NAME ...". */
static enum imap_parse_status parse_head(struct imap_parser *p,
					 const char *s, const char *e)
{
	const char *q;

	if (s == e)
		return fail(p, "empty response line");
	if (*s == '+') {
		p->kind = IMAP_RESP_CONTINUATION;
		s++;
		if (s < e && *s == ' ')
			s++;
		for (q = s; q < e; q++)
			if (*q == '\0' || *q == '\r')
				return bad_char(p, (unsigned char)*q);
		p->text = put(p, s, (size_t)(e - s));
		return IMAP_PARSE_RESPONSE;
	}
	if (*s == '*') {
		if (++s == e || *s != ' ')
			return fail(p, "expected a space after '*'");
		s++;
		if (s < e && *s >= '0' && *s <= '9') {
			uint64_t v = 0;
			for (; s < e && *s >= '0' && *s <= '9'; s++) {
				v = v * 10 + (uint64_t)(*s - '0');
				if (v > UINT32_MAX)
					return fail(p, "message number in an "
						       "untagged response is "
						       "larger than 4294967295");
			}
			if (s == e || *s != ' ')
				return fail(p, "expected a space and a "
					       "response name after the "
					       "message number");
			p->has_number = true;
			p->number = (uint32_t)v;
			s++;
		}
	} else {
		p->kind = IMAP_RESP_TAGGED;
		for (q = s; q < e && (cclass[(unsigned char)*q] & C_TAG); q++)
			;
		if (q == s || q == e || *q != ' ')
			return fail(p, "response does not start with '*', '+' "
				       "or a valid tag");
		p->tag = put(p, s, (size_t)(q - s));
		s = q + 1;
	}

	for (q = s; q < e && (cclass[(unsigned char)*q] & C_ATOM); q++)
		;
	if (q == s)
		return fail(p, "response without a name");
	if (q < e && *q != ' ')
		return fail(p, "malformed response name");
	p->name = put_upper(p, s, (size_t)(q - s));
	if (is_status_name(s, (size_t)(q - s)))
		return parse_resp_text(p, q, e);
	if (p->kind == IMAP_RESP_TAGGED)
		return fail(p, "tagged response is not OK, NO or BAD");
	p->need_sep = true;
	return parse_args(p, q, e);
}

static const char *str_at(const struct imap_parser *p, size_t off)
{
	if (off == OFF_NULL)
		return NULL;
	if (off == OFF_EMPTY)
		return "";
	return p->store + off;
}

/* Lay out `nodes` as the public tree (breadth-first, so that each list's
 * children are contiguous) and fill `resp`.  Never allocates. */
static void build(struct imap_parser *p)
{
	size_t n = p->nnodes, m = 0;
	struct imap_response *r = &p->resp;

	/* Lists still open (partial response) hold everything after them. */
	for (unsigned i = 0; i < p->depth; i++)
		p->nodes[p->stack[i]].span = n - p->stack[i];

	for (size_t j = 0; j < n; j += p->nodes[j].span)
		p->order[m++] = j;
	r->nargs = m;
	for (size_t k = 0; k < m; k++) {
		const struct node *nd = &p->nodes[p->order[k]];
		struct imap_arg *a = &p->out[k];

		*a = (struct imap_arg){ .type = nd->type, .str = "" };
		switch (nd->type) {
		case IMAP_ARG_ATOM:
		case IMAP_ARG_STRING:
			a->str = p->store + nd->off;
			a->len = nd->len;
			break;
		case IMAP_ARG_LIST: {
			size_t j = p->order[k] + 1, end = p->order[k] + nd->span;
			a->count = nd->count;
			a->list = nd->count ? &p->out[m] : NULL;
			for (; j < end; j += p->nodes[j].span)
				p->order[m++] = j;
			break;
		}
		case IMAP_ARG_LITERAL_STREAMED:
			a->literal_size = nd->literal_size;
			break;
		case IMAP_ARG_NIL:
			break;
		}
	}

	r->kind = p->kind;
	r->tag = str_at(p, p->tag);
	r->has_number = p->has_number;
	r->number = p->number;
	r->name = str_at(p, p->name);
	r->code = str_at(p, p->code);
	r->code_args = str_at(p, p->code_args);
	r->text = str_at(p, p->text);
	r->args = r->nargs ? p->out : NULL;
}

struct imap_parser *imap_parser_new(const struct imap_parser_limits *limits)
{
	struct imap_parser *p = calloc(1, sizeof *p);

	if (!p)
		return NULL;
	if (limits)
		p->lim = *limits;
	if (!p->lim.max_response)
		p->lim.max_response = IMAP_PARSER_DEFAULT_MAX_RESPONSE;
	if (!p->lim.max_inline_literal)
		p->lim.max_inline_literal = IMAP_PARSER_DEFAULT_MAX_INLINE_LITERAL;
	if (!p->lim.max_depth)
		p->lim.max_depth = IMAP_PARSER_DEFAULT_MAX_DEPTH;
	if (!p->lim.max_args)
		p->lim.max_args = IMAP_PARSER_DEFAULT_MAX_ARGS;
	if (!p->lim.max_literal)
		p->lim.max_literal = IMAP_PARSER_DEFAULT_MAX_LITERAL;
	if (p->lim.search_chunk > p->lim.max_args)
		p->lim.search_chunk = p->lim.max_args;
	start_response(p);
	return p;
}

void imap_parser_free(struct imap_parser *p)
{
	if (!p)
		return;
	free(p->line);
	free(p->store);
	free(p->nodes);
	free(p->out);
	free(p->order);
	free(p->stack);
	free(p);
}

void imap_parser_reset(struct imap_parser *p)
{
	start_response(p);
	p->err[0] = '\0';
}

size_t imap_parser_memory(const struct imap_parser *p)
{
	return sizeof *p + p->line_cap + p->store_cap +
	       p->nodes_cap * (sizeof *p->nodes + sizeof *p->out +
			       sizeof *p->order) +
	       p->stack_cap * sizeof *p->stack;
}

/* Copy the rest of an inlined literal that is in [data, data+len). */
static size_t take_literal(struct imap_parser *p, const char *data,
			   size_t len)
{
	size_t n = p->lit_left < len ? (size_t)p->lit_left : len;
	struct node *nd;

	if (n) {
		memcpy(p->store + p->store_len, data, n);
		p->store_len += n;
		p->lit_left -= n;
	}
	if (p->lit_left)
		return n;
	p->store[p->store_len++] = '\0';
	if (!(nd = add_node(p, IMAP_ARG_STRING)))
		return n;
	nd->off = p->lit_off;
	nd->len = (size_t)p->lit_size;
	p->need_sep = true;
	p->after_close = false;
	p->st = ST_LINE;
	return n;
}

/* --- a streamed SEARCH ---------------------------------------------------- */

#define SEARCH_HEAD "* SEARCH"
#define SEARCH_HEAD_LEN 8

/* Whether the response starting with line[0..line_len) and then
 * s[0..n) is a SEARCH to stream: 1 yes, 0 no, -1 too few bytes to say. */
static int is_search_head(const struct imap_parser *p, const char *s,
			  size_t n)
{
	char head[SEARCH_HEAD_LEN + 1];
	size_t have = 0;

	for (size_t i = 0; i < p->line_len && have < sizeof head; i++)
		head[have++] = p->line[i];
	for (size_t i = 0; i < n && have < sizeof head; i++)
		head[have++] = s[i];
	for (size_t i = 0; i < have && i < SEARCH_HEAD_LEN; i++) {
		char c = head[i];
		if (c >= 'a' && c <= 'z')
			c = (char)(c - 'a' + 'A');
		if (c != SEARCH_HEAD[i])
			return 0;
	}
	if (have < sizeof head)
		return -1;
	return head[SEARCH_HEAD_LEN] == ' ' || head[SEARCH_HEAD_LEN] == '\r' ||
	       head[SEARCH_HEAD_LEN] == '\n';
}

/* A new chunk of the SEARCH being read: no args yet, the name again. */
static bool search_chunk_start(struct imap_parser *p)
{
	p->store_len = 0;
	p->nnodes = 0;
	if (!store_reserve(p, sizeof "SEARCH"))
		return false;
	p->name = put(p, "SEARCH", 6);
	p->search_more = false;
	p->st = ST_SEARCH;
	return true;
}

/* The token just read becomes an arg (an atom, as in any response). */
static bool search_emit(struct imap_parser *p)
{
	size_t n = p->search_tok_len;
	struct node *nd;

	p->search_tok_len = 0;
	if (!store_reserve(p, n + 1)) {
		fail(p, "out of memory");
		return false;
	}
	if (!(nd = add_node(p, IMAP_ARG_ATOM)))
		return false;
	nd->off = put(p, p->search_tok, n);
	nd->len = n;
	return true;
}

/* Args of a streamed SEARCH from data[0..len): IMAP_PARSE_MORE when all
 * were taken, IMAP_PARSE_RESPONSE at a full chunk or the line's end
 * (`used` says where), IMAP_PARSE_ERROR.  Args are atoms, as the numbers
 * of RFC 3501 §7.2.5 are; whether they are valid UIDs is the caller's to
 * say, as it is for a SEARCH that is not streamed. */
static enum imap_parse_status search_scan(struct imap_parser *p,
					  const char *data, size_t len,
					  size_t *used)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)data[i];

		if (p->search_cr && c != '\n')
			return bad_char(p, '\r');
		if ((cclass[c] & C_ATOM) && c != '(' && c != ')' && c != '"' &&
		    c != '{') {
			if (p->search_tok_len == SEARCH_TOKEN_MAX)
				return fail(p, "an argument of more than %d "
					       "bytes in a SEARCH answer",
					    SEARCH_TOKEN_MAX);
			p->search_tok[p->search_tok_len++] = (char)c;
			continue;
		}
		if (c == '\r') {
			p->search_cr = true;
			continue;
		}
		if (c != ' ' && c != '\n')
			return c == '(' ? fail(p, "a list in a SEARCH answer "
						  "(MODSEQ was not asked "
						  "for)")
					: bad_char(p, c);
		if (p->search_tok_len && !search_emit(p))
			return IMAP_PARSE_ERROR;
		if (c == '\n') {
			*used = i + 1;
			build(p);
			p->st = ST_DONE;
			return IMAP_PARSE_RESPONSE;
		}
		if (p->nnodes >= p->lim.search_chunk) {
			*used = i + 1;
			build(p);
			p->st = ST_DONE;
			p->search_more = true;
			return IMAP_PARSE_RESPONSE;
		}
	}
	*used = len;
	return IMAP_PARSE_MORE;
}

/* The response starting in line[0..line_len) + s[0..n) is a SEARCH to
 * stream: take it from after its name.  The head is looked at as soon as
 * it can be told, so the line buffer holds at most the name. */
static enum imap_parse_status search_begin(struct imap_parser *p,
					   const char *s, size_t n,
					   size_t *used)
{
	size_t skip = SEARCH_HEAD_LEN - p->line_len, u = 0;
	enum imap_parse_status rc;

	*used = 0;
	p->line_len = 0;
	p->head_done = true;
	p->kind = IMAP_RESP_UNTAGGED;
	if (!search_chunk_start(p))
		return fail(p, "out of memory");
	rc = search_scan(p, s + skip, n - skip, &u);
	*used = skip + u;
	return rc;
}

enum imap_parse_status imap_parser_parse(struct imap_parser *p,
					 const char *data, size_t len,
					 size_t *used)
{
	size_t pos = 0, take, seglen;
	const char *s, *nl, *seg, *e;
	enum imap_parse_status rc;

	*used = 0;
	switch (p->st) {
	case ST_ERROR:
		return IMAP_PARSE_ERROR;
	case ST_LIT_WAIT:
		return fail(p, "a literal was neither inlined nor consumed");
	case ST_DONE:
		if (!p->search_more) {
			start_response(p);
			break;
		}
		if (!search_chunk_start(p))
			return fail(p, "out of memory");
		/* fall through */
	case ST_SEARCH:
		return search_scan(p, data, len, used);
	case ST_LIT_INLINE:
		pos = take_literal(p, data, len);
		if (p->st == ST_ERROR)
			return IMAP_PARSE_ERROR;
		if (p->st == ST_LIT_INLINE) {
			*used = pos;
			return IMAP_PARSE_MORE;
		}
		break;
	case ST_LINE:
		break;
	}

	if (pos == len) {
		*used = pos;
		return IMAP_PARSE_MORE;
	}
	s = data + pos;
	if (p->lim.search_chunk && !p->head_done) {
		int search = is_search_head(p, s, len - pos);
		if (search > 0) {
			rc = search_begin(p, s, len - pos, &take);
			*used = pos + take;
			return rc;
		}
	}
	nl = memchr(s, '\n', len - pos);
	take = nl ? (size_t)(nl - s) + 1 : len - pos;
	if (take > p->lim.max_response - p->resp_bytes - p->line_len) {
		*used = pos;
		return fail(p, "response line longer than %zu bytes",
			    p->lim.max_response);
	}
	if (!nl || p->line_len) {
		void *b = p->line;
		if (!grow(&b, &p->line_cap, p->line_len + take, 1,
			  p->lim.max_response))
			return fail(p, "out of memory");
		p->line = b;
		memcpy(p->line + p->line_len, s, take);
		p->line_len += take;
		if (!nl) {
			*used = len;
			return IMAP_PARSE_MORE;
		}
		seg = p->line;
		seglen = p->line_len;
	} else {
		seg = s; /* the whole segment is here: no copy */
		seglen = take;
	}
	*used = pos + take;
	p->resp_bytes += seglen;
	p->line_len = 0;

	e = seg + seglen - 1; /* the LF */
	if (e > seg && e[-1] == '\r')
		e--;
	if (!store_reserve(p, seglen + SEGMENT_SLACK))
		return fail(p, "out of memory");
	if (p->head_done) {
		rc = parse_args(p, seg, e);
	} else {
		p->head_done = true;
		rc = parse_head(p, seg, e);
	}
	switch (rc) {
	case IMAP_PARSE_RESPONSE:
		build(p);
		p->st = ST_DONE;
		break;
	case IMAP_PARSE_LITERAL:
		p->st = ST_LIT_WAIT;
		break;
	default:
		break;
	}
	return rc;
}

const struct imap_response *imap_parser_response(const struct imap_parser *p)
{
	return p->st == ST_DONE ? &p->resp : NULL;
}

uint64_t imap_parser_literal_size(const struct imap_parser *p)
{
	return p->st == ST_LIT_WAIT ? p->lit_size : 0;
}

const struct imap_response *imap_parser_partial(struct imap_parser *p)
{
	if (p->st == ST_LIT_WAIT)
		build(p);
	else if (p->st != ST_DONE)
		return NULL;
	return &p->resp;
}

void imap_parser_literal_inline(struct imap_parser *p)
{
	if (p->st != ST_LIT_WAIT) {
		fail(p, "imap_parser_literal_inline called without a literal");
		return;
	}
	if (p->lit_size > p->lim.max_inline_literal) {
		fail(p,
		     "literal of %" PRIu64 " bytes is too large to keep in "
		     "memory (limit %zu bytes)",
		     p->lit_size, p->lim.max_inline_literal);
		return;
	}
	if (p->lit_size > p->lim.max_response - p->resp_bytes) {
		fail(p, "response longer than %zu bytes with its literals",
		     p->lim.max_response);
		return;
	}
	if (!store_reserve(p, (size_t)p->lit_size + 1)) {
		fail(p, "out of memory");
		return;
	}
	p->resp_bytes += (size_t)p->lit_size;
	p->lit_off = p->store_len;
	p->lit_left = p->lit_size;
	p->st = ST_LIT_INLINE;
}

void imap_parser_literal_done(struct imap_parser *p)
{
	struct node *n;

	if (p->st != ST_LIT_WAIT) {
		fail(p, "imap_parser_literal_done called without a literal");
		return;
	}
	if (!(n = add_node(p, IMAP_ARG_LITERAL_STREAMED)))
		return;
	n->literal_size = p->lit_size;
	p->need_sep = true;
	p->after_close = false;
	p->st = ST_LINE;
}

const char *imap_parser_error(const struct imap_parser *p)
{
	return p->err;
}

bool imap_arg_is_atom(const struct imap_arg *a, const char *name)
{
	return a && a->type == IMAP_ARG_ATOM && strlen(name) == a->len &&
	       !strncasecmp(a->str, name, a->len);
}

bool imap_arg_uint64(const struct imap_arg *a, uint64_t *out)
{
	uint64_t v = 0;

	if (!a || a->type != IMAP_ARG_ATOM || !a->len)
		return false;
	for (size_t i = 0; i < a->len; i++) {
		unsigned char c = (unsigned char)a->str[i];
		if (c < '0' || c > '9')
			return false;
		if (v > (UINT64_MAX - (c - '0')) / 10)
			return false;
		v = v * 10 + (c - '0');
	}
	*out = v;
	return true;
}

bool imap_arg_uint32(const struct imap_arg *a, uint32_t *out)
{
	uint64_t v;

	if (!imap_arg_uint64(a, &v) || v > UINT32_MAX)
		return false;
	*out = (uint32_t)v;
	return true;
}

bool imap_arg_string(const struct imap_arg *a, bool allow_nil,
		     const char **str, size_t *len)
{
	if (!a)
		return false;
	switch (a->type) {
	case IMAP_ARG_ATOM:
	case IMAP_ARG_STRING:
		*str = a->str;
		*len = a->len;
		return true;
	case IMAP_ARG_NIL:
		if (!allow_nil)
			return false;
		*str = NULL;
		*len = 0;
		return true;
	default:
		return false;
	}
}
