/*
 * parser.h — incremental IMAP response parser.  RFC 3501 §7 and §9 (formal
 * syntax), RFC 7888 (literal forms).  It does no I/O: the caller feeds it
 * whatever bytes it has and it says how far it got.
 *
 * Never trusts the server: every length is bounded (see struct
 * imap_parser_limits), literal sizes are checked for overflow, nesting depth
 * is capped, NUL outside a literal is an error.
 *
 * Use:
 *
 *   struct imap_parser *p = imap_parser_new(NULL);        // default limits
 *   for (;;) {
 *       size_t used;
 *       switch (imap_parser_parse(p, buf, len, &used)) {
 *       case IMAP_PARSE_MORE:      // all `len` bytes consumed; read more
 *       case IMAP_PARSE_RESPONSE:  // imap_parser_response(p) is complete
 *       case IMAP_PARSE_LITERAL:   // a literal of imap_parser_literal_size(p)
 *                                  // bytes starts right after `used`; either
 *                                  // imap_parser_literal_inline(p) to let the
 *                                  // parser collect it into the response, or
 *                                  // consume exactly that many bytes yourself
 *                                  // (stream them to disk) and then call
 *                                  // imap_parser_literal_done(p).
 *       case IMAP_PARSE_ERROR:     // imap_parser_error(p); the stream is
 *                                  // unusable, drop the connection
 *       }
 *       buf += used; len -= used;
 *   }
 *
 * `used` is always how many of the given bytes the parser consumed; bytes it
 * needs to keep are copied into its own buffer, so the caller may discard
 * consumed bytes immediately.  After IMAP_PARSE_RESPONSE the next call
 * starts a new response.
 *
 * Literals are accepted as `{N}CRLF` and `{N+}`/`{N-}` (RFC 7888) and
 * `~{N}` (RFC 3516, binary).  Line ends are CRLF; a bare LF is accepted too.
 * A literal header must end its line; after the literal the same response
 * goes on, and may hold further literals.
 *
 * What is accepted beyond RFC 3501's grammar, because servers send it:
 * atoms may hold ']', '%', '*' and 8-bit bytes; an atom's "[...]" runs to
 * the first ']' and may hold spaces and parentheses (BODY[HEADER.FIELDS
 * (FROM TO)]<0>); quoted strings may hold 8-bit bytes; "(a)(b)" needs no
 * space between the lists; extra spaces between args are skipped.  Not
 * accepted: an empty line, a bare CR, NUL outside a literal, escapes other
 * than \" and \\ in quoted strings, unbalanced parentheses, a tagged
 * response other than OK, NO or BAD.  The text of a status response (and
 * of a continuation) is taken as it stands: "{5}" there is text, not a
 * literal.
 */
#ifndef IMAPSNAP_IMAP_PARSER_H
#define IMAPSNAP_IMAP_PARSER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum imap_arg_type {
	IMAP_ARG_ATOM,             /* also numbers, flags (\Seen), BODY[...]<n> */
	IMAP_ARG_STRING,           /* quoted string (unescaped) or inlined literal */
	IMAP_ARG_NIL,
	IMAP_ARG_LIST,             /* parenthesised list */
	IMAP_ARG_LITERAL_STREAMED, /* literal the caller consumed itself */
};

struct imap_arg {
	enum imap_arg_type type;
	/* ATOM, STRING: the bytes, NUL-terminated for convenience (a literal may
	 * itself contain NUL, so use len).  "" with len 0 for the other types. */
	const char *str;
	size_t len;
	/* LIST: the children, contiguous (NULL when count is 0). */
	const struct imap_arg *list;
	size_t count;
	/* LITERAL_STREAMED: its size. */
	uint64_t literal_size;
};

enum imap_response_kind {
	IMAP_RESP_UNTAGGED,     /* "* ..." */
	IMAP_RESP_TAGGED,       /* "tag OK|NO|BAD ..." */
	IMAP_RESP_CONTINUATION, /* "+ ..." */
};

/*
 * One server response.  Shapes:
 *
 *   * OK [UIDVALIDITY 3857529045] UIDs valid     status response
 *   tag NO [AUTHENTICATIONFAILED] bad password    status response, tagged
 *   * 23 EXISTS / * 12 FETCH (...)                numbered data
 *   * LIST (\HasNoChildren) "/" INBOX             data
 *   * CAPABILITY IMAP4rev1 ...                    data
 *   + go ahead                                    continuation
 *
 * For status responses (name is OK, NO, BAD, BYE or PREAUTH) the rest of the
 * line is resp-text and is not split into args: `code` is the atom inside
 * [...] (upper-cased, NULL if none), `code_args` the raw text after it inside
 * the brackets ("" if none), `text` the human text after the brackets.
 * For everything else `args` holds what follows `name` (the numbered form
 * puts the number in `number`).  A continuation has only `text`.
 *
 * Fields that do not apply: `tag` and `code` are NULL, `name`, `code_args`
 * and `text` are "", `args` is NULL with `nargs` 0.  So `name` may always be
 * passed to strcmp.
 */
struct imap_response {
	enum imap_response_kind kind;
	const char *tag;      /* TAGGED only */
	bool has_number;
	uint32_t number;      /* "* 23 EXISTS": 23 */
	const char *name;     /* upper-cased: "OK", "FETCH", "LIST", ... */
	const char *code;
	const char *code_args;
	const char *text;
	const struct imap_arg *args;
	size_t nargs;
};

enum imap_parse_status {
	IMAP_PARSE_MORE = 0,
	IMAP_PARSE_RESPONSE,
	IMAP_PARSE_LITERAL,
	IMAP_PARSE_ERROR,
};

#define IMAP_PARSER_DEFAULT_MAX_RESPONSE ((size_t)1 << 20)
#define IMAP_PARSER_DEFAULT_MAX_INLINE_LITERAL ((size_t)1 << 20)
#define IMAP_PARSER_DEFAULT_MAX_DEPTH 32u
#define IMAP_PARSER_DEFAULT_MAX_ARGS ((size_t)100000)
#define IMAP_PARSER_DEFAULT_MAX_LITERAL ((uint64_t)1 << 40)

/* Memory held stays within a small multiple of max_response plus about
 * 100 bytes per arg up to max_args, whatever the server sends. */
struct imap_parser_limits {
	size_t max_response;   /* bytes of one response, streamed literals
				  excluded; default 1 MiB */
	size_t max_inline_literal; /* largest literal imap_parser_literal_inline
				      accepts; default 1 MiB */
	unsigned max_depth;    /* list nesting; default 32 */
	size_t max_args;       /* args in one response, all levels; default 100000 */
	uint64_t max_literal;  /* largest literal size announced; default 2^40 */
	/* Nonzero: an untagged "* SEARCH n n ..." (RFC 3501 §7.2.5), which
	 * lists every match on one line and so outgrows max_response and
	 * max_args for a large folder, is read as it arrives and handed out
	 * as consecutive SEARCH responses of at most this many numbers
	 * each (the last one possibly with none), in memory bounded by it.
	 * Its args are atoms of at most 64 bytes, separated by spaces (no
	 * list: no MODSEQ, RFC 7162 §3.1.5, so ask for none).  0 (the
	 * default): a SEARCH line is like any other.  At most max_args. */
	size_t search_chunk;
};

struct imap_parser;

/* `limits` may be NULL for the defaults; a zero field means its default.
 * Returns NULL when out of memory. */
struct imap_parser *imap_parser_new(const struct imap_parser_limits *limits);
void imap_parser_free(struct imap_parser *p);

/* Forget any partial response (e.g. after reconnecting). */
void imap_parser_reset(struct imap_parser *p);

enum imap_parse_status imap_parser_parse(struct imap_parser *p,
					 const char *data, size_t len,
					 size_t *used);

/* After IMAP_PARSE_RESPONSE: the response, valid until the next call that
 * takes `p`.  NULL at any other time. */
const struct imap_response *imap_parser_response(const struct imap_parser *p);

/* After IMAP_PARSE_LITERAL: the literal's announced size, and the response
 * parsed so far (lists still open hold the children seen so far; the last
 * arg of the innermost open list is the one before the literal, e.g. the
 * atom "BODY[]").  Valid until the next call that takes `p`.  To find
 * that arg, follow the last arg of each level: every open list is the last
 * arg of its parent.  imap_parser_partial returns NULL when no literal is
 * pending and no response is complete. */
uint64_t imap_parser_literal_size(const struct imap_parser *p);
const struct imap_response *imap_parser_partial(struct imap_parser *p);

/* Answer to IMAP_PARSE_LITERAL: collect the literal into the response as an
 * IMAP_ARG_STRING (fails with IMAP_PARSE_ERROR on the next parse call if it
 * exceeds max_inline_literal), or declare that the caller consumed exactly
 * imap_parser_literal_size() bytes (an IMAP_ARG_LITERAL_STREAMED arg). */
void imap_parser_literal_inline(struct imap_parser *p);
void imap_parser_literal_done(struct imap_parser *p);

/* After IMAP_PARSE_ERROR: what was wrong, e.g. "literal size overflows".
 * Further parse calls keep returning IMAP_PARSE_ERROR until
 * imap_parser_reset().  Calling literal_inline or literal_done with no
 * literal pending is also an error. */
const char *imap_parser_error(const struct imap_parser *p);

/* Bytes of memory the parser holds now (for tests and monitoring). */
size_t imap_parser_memory(const struct imap_parser *p);

/* Helpers for reading args.  All return false if the arg is not of the
 * asked type or does not fit; they never read past `len`. */
bool imap_arg_is_atom(const struct imap_arg *a, const char *name); /* case-insensitive */
bool imap_arg_uint32(const struct imap_arg *a, uint32_t *out);  /* digits only */
bool imap_arg_uint64(const struct imap_arg *a, uint64_t *out);
/* ATOM, STRING (and NIL as NULL/0 if allow_nil). */
bool imap_arg_string(const struct imap_arg *a, bool allow_nil,
		     const char **str, size_t *len);

#endif
