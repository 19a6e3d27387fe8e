/*
 * fuzz_parser.c — the IMAP response parser (lib/imap/parser.c) against
 * whatever a server might send, split at random points.
 *
 * fuzz-sources: lib/imap/parser.c
 *
 * The input's first byte seeds the choices (where to split, whether a
 * literal is inlined or streamed by the caller); the rest is the byte
 * stream from the server.  The stream is parsed twice: once handed over
 * whole, once in random chunks, each time recording every event (responses
 * in full, literal announcements, the error).  The two transcripts must be
 * identical: a response must not depend on how TCP cut the stream.  Along
 * the way the contract in parser.h is checked: `used` never exceeds what
 * was given, MORE consumes everything, strings are NUL-terminated, lists
 * are consistent and no deeper than allowed, and memory stays within the
 * bound the header promises.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "imap/parser.h"

#define MAX_RESPONSE 4096
#define MAX_INLINE 2048
#define MAX_DEPTH 8
#define MAX_ARGS 200

static const struct imap_parser_limits limits = {
	.max_response = MAX_RESPONSE,
	.max_inline_literal = MAX_INLINE,
	.max_depth = MAX_DEPTH,
	.max_args = MAX_ARGS,
	.max_literal = (uint64_t)1 << 20,
};

/* "Memory held stays within a small multiple of max_response plus about
 * 100 bytes per arg up to max_args." */
#define MEMORY_BOUND (16 * (MAX_RESPONSE + MAX_INLINE) + 256 * MAX_ARGS + 4096)

struct transcript {
	unsigned char *buf;
	size_t len, cap;
};

static void put(struct transcript *t, const void *data, size_t len)
{
	if (t->len + len > t->cap) {
		size_t cap = t->cap ? t->cap : 4096;
		while (cap < t->len + len)
			cap *= 2;
		t->buf = realloc(t->buf, cap);
		if (!t->buf)
			abort();
		t->cap = cap;
	}
	memcpy(t->buf + t->len, data, len);
	t->len += len;
}

static void put_u64(struct transcript *t, uint64_t v)
{
	put(t, &v, sizeof v);
}

/* A string field: NULL and "" differ; the length goes first. */
static void put_str(struct transcript *t, const char *s)
{
	if (!s) {
		put_u64(t, UINT64_MAX);
		return;
	}
	put_u64(t, strlen(s));
	put(t, s, strlen(s));
}

static void check(int ok, const char *what)
{
	if (!ok) {
		fprintf(stderr, "fuzz_parser: contract broken: %s\n", what);
		abort();
	}
}

static void put_args(struct transcript *t, const struct imap_arg *a,
		     size_t n, unsigned depth, size_t *total)
{
	check(n == 0 || a != NULL, "args NULL with a count");
	check(depth <= MAX_DEPTH + 1, "lists nested deeper than max_depth");
	for (size_t i = 0; i < n; i++) {
		const struct imap_arg *x = &a[i];
		uint32_t u32;
		uint64_t u64;
		const char *s;
		size_t len;

		(*total)++;
		put_u64(t, x->type);
		check(x->str != NULL, "arg str is NULL");
		switch (x->type) {
		case IMAP_ARG_ATOM:
			check(x->len > 0, "empty atom");
			/* fall through */
		case IMAP_ARG_STRING:
			check(x->str[x->len] == '\0', "str not NUL-terminated");
			put_u64(t, x->len);
			put(t, x->str, x->len);
			break;
		case IMAP_ARG_NIL:
			check(x->len == 0 && x->str[0] == '\0', "NIL with text");
			break;
		case IMAP_ARG_LIST:
			check(x->len == 0, "list with text");
			put_u64(t, x->count);
			put_args(t, x->list, x->count, depth + 1, total);
			break;
		case IMAP_ARG_LITERAL_STREAMED:
			put_u64(t, x->literal_size);
			break;
		default:
			check(0, "unknown arg type");
		}
		/* The helpers must cope with any arg. */
		if (imap_arg_uint32(x, &u32))
			check(x->type == IMAP_ARG_ATOM, "uint32 of a non-atom");
		if (imap_arg_uint64(x, &u64))
			check(x->type == IMAP_ARG_ATOM, "uint64 of a non-atom");
		if (imap_arg_string(x, true, &s, &len))
			check(x->type == IMAP_ARG_NIL || s[len] == '\0',
			      "imap_arg_string result not terminated");
		(void)imap_arg_is_atom(x, "BODY[]");
	}
}

static void put_response(struct transcript *t, const struct imap_response *r)
{
	size_t total = 0;

	check(r != NULL, "response is NULL");
	check(r->name != NULL && r->text != NULL && r->code_args != NULL,
	      "a string field of the response is NULL");
	put_u64(t, r->kind);
	put_str(t, r->tag);
	put_u64(t, r->has_number);
	put_u64(t, r->has_number ? r->number : 0);
	put_str(t, r->name);
	put_str(t, r->code);
	put_str(t, r->code_args);
	put_str(t, r->text);
	put_u64(t, r->nargs);
	check(r->kind != IMAP_RESP_TAGGED || r->tag != NULL, "tagged, no tag");
	put_args(t, r->args, r->nargs, 0, &total);
	check(total <= MAX_ARGS + 1, "more args than max_args");
}

/* A small deterministic generator for the choices. */
struct rng {
	uint32_t s;
};

static uint32_t next(struct rng *g)
{
	g->s = g->s * 1103515245u + 12345u;
	return g->s >> 8;
}

enum { EV_MORE = 1, EV_RESPONSE, EV_LITERAL, EV_ERROR, EV_END };

/* Parse `data` fed in chunks (chunk size 0: all at once); literal choices
 * come from `choice_seed` so that both runs decide alike. */
static void run(const char *data, size_t size, uint32_t split_seed,
		int whole, uint32_t choice_seed, struct transcript *t)
{
	struct imap_parser *p = imap_parser_new(&limits);
	struct rng split = { split_seed }, choice = { choice_seed };
	size_t pos = 0, end = 0;
	size_t calls = 0;

	if (!p)
		abort();
	while (pos < size) {
		/* Every MORE consumes at least one byte: many more calls than
		 * bytes means the parser is going round in circles. */
		check(++calls <= 2 * size + 1000, "no progress");
		if (end <= pos) {
			end = whole ? size : pos + 1 + next(&split) % 64;
			if (end > size)
				end = size;
		}
		size_t len = end - pos, used = 12345;
		enum imap_parse_status st =
			imap_parser_parse(p, data + pos, len, &used);
		check(used <= len, "used > len");
		check(imap_parser_memory(p) <= MEMORY_BOUND,
		      "parser memory above the documented bound");
		pos += used;
		switch (st) {
		case IMAP_PARSE_MORE:
			check(used == len, "MORE without consuming everything");
			break;
		case IMAP_PARSE_RESPONSE:
			put_u64(t, EV_RESPONSE);
			put_response(t, imap_parser_response(p));
			check(imap_parser_partial(p) != NULL ||
				      imap_parser_response(p) != NULL,
			      "no response after RESPONSE");
			break;
		case IMAP_PARSE_LITERAL: {
			uint64_t lsize = imap_parser_literal_size(p);
			const struct imap_response *partial =
				imap_parser_partial(p);
			check(imap_parser_response(p) == NULL,
			      "a response while a literal is pending");
			put_u64(t, EV_LITERAL);
			put_u64(t, lsize);
			put_response(t, partial);
			if (next(&choice) % 2 == 0) {
				imap_parser_literal_inline(p);
			} else {
				/* The caller consumes the bytes itself. */
				if (lsize > size - pos) {
					put_u64(t, EV_END);
					goto out;
				}
				pos += (size_t)lsize;
				imap_parser_literal_done(p);
			}
			break;
		}
		case IMAP_PARSE_ERROR:
			put_u64(t, EV_ERROR);
			check(imap_parser_error(p) != NULL &&
				      imap_parser_error(p)[0] != '\0',
			      "error without a message");
			put_str(t, imap_parser_error(p));
			/* Sticky until reset. */
			check(imap_parser_parse(p, "x\r\n", 3, &used) ==
				      IMAP_PARSE_ERROR,
			      "error not sticky");
			goto out;
		default:
			check(0, "unknown status");
		}
	}
	put_u64(t, EV_END);
out:
	imap_parser_reset(p);
	/* A reset parser parses a plain response again. */
	{
		size_t used;
		check(imap_parser_parse(p, "* OK x\r\n", 8, &used) ==
			      IMAP_PARSE_RESPONSE,
		      "reset parser does not parse a plain response");
	}
	imap_parser_free(p);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct transcript a = { 0 }, b = { 0 };
	uint32_t seed;

	if (size < 1)
		return 0;
	seed = data[0] * 2654435761u;
	data++;
	size--;
	run((const char *)data, size, 0, 1, seed, &a);
	run((const char *)data, size, seed ^ 0x5bd1e995u, 0, seed, &b);
	if (a.len != b.len || memcmp(a.buf, b.buf, a.len) != 0) {
		size_t i = 0;
		while (i < a.len && i < b.len && a.buf[i] == b.buf[i])
			i++;
		fprintf(stderr,
			"fuzz_parser: the stream parsed whole and in chunks "
			"gives different results (transcripts of %zu and %zu "
			"bytes differ at %zu)\n",
			a.len, b.len, i);
		abort();
	}
	free(a.buf);
	free(b.buf);
	return 0;
}
