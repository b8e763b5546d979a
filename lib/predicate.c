/*
 * The predicate language of policy filters: a lexer and a recursive-descent
 * parser that build a small tree, checked for types as far as the literals
 * allow, and an evaluator whose lists (set()) live in an arena freed at the
 * end of each evaluation. The language itself: docs/policies.md.
 *
 * Nesting is bounded while parsing (PRED_MAX_DEPTH), and && / || chains are
 * one node with many operands, so the tree is at most a few times
 * PRED_MAX_DEPTH high and the recursive walks over it stay shallow.
 */
#include "predicate.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PRED_ARENA_MAX (64u << 20) /* bytes of lists one evaluation may build */
#define PRED_QUOTE_MAX 40	   /* bytes of source text quoted in messages */

/* Types as bits, so that a set of accepted types is a mask. */
#define T_STR	  1u
#define T_LIST	  2u
#define T_BOOL	  4u
#define T_INT	  8u
#define T_ANY	  (T_STR | T_LIST | T_BOOL | T_INT) /* a field: known when evaluated */
#define T_MISSING 16u /* a map key that is not there: "" or an empty list */
#define T_SL	  (T_STR | T_LIST)

const char *const pred_policy_fields[] = {
    "user.metadata.name",
    "user.spec.roles",
    "user.spec.traits[]",
    "resource.kind",
    "resource.metadata.name",
    "resource.metadata.labels[]",
    "session.*",
    NULL,
};

/* ------------------------------------------------------------ functions */

enum pred_fn {
	FN_CONTAINS,
	FN_EQUALS,
	FN_CONTAINS_ALL,
	FN_CONTAINS_ANY,
	FN_SET,
	FN_ALL_END_WITH,
	FN_ALL_EQUAL,
	FN_IS_SUBSET,
	FN_HAS_PREFIX,
};

struct pred_func {
	const char *name;
	unsigned int min_args, max_args;
	unsigned int ret;    /* type of the result */
	unsigned int arg[3]; /* types accepted for argument 1, 2, and 3 onwards */
};

static const struct pred_func pred_funcs[] = {
    [FN_CONTAINS] = {"contains", 2, 2, T_BOOL, {T_SL, T_STR, 0}},
    [FN_EQUALS] = {"equals", 2, 2, T_BOOL, {T_ANY, T_ANY, 0}},
    [FN_CONTAINS_ALL] = {"contains_all", 2, 2, T_BOOL, {T_SL, T_SL, 0}},
    [FN_CONTAINS_ANY] = {"contains_any", 2, 2, T_BOOL, {T_SL, T_SL, 0}},
    [FN_SET] = {"set", 0, PRED_MAX_ARGS, T_LIST, {T_SL, T_SL, T_SL}},
    [FN_ALL_END_WITH] = {"all_end_with", 2, 2, T_BOOL, {T_SL, T_STR, 0}},
    [FN_ALL_EQUAL] = {"all_equal", 2, 2, T_BOOL, {T_SL, T_STR, 0}},
    [FN_IS_SUBSET] = {"is_subset", 2, PRED_MAX_ARGS, T_BOOL, {T_SL, T_SL, T_SL}},
    [FN_HAS_PREFIX] = {"has_prefix", 2, 2, T_BOOL, {T_STR, T_STR, 0}},
};

static int pred_func_find(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < sizeof(pred_funcs) / sizeof(pred_funcs[0]); i++) {
		if (strlen(pred_funcs[i].name) == len && memcmp(pred_funcs[i].name, name, len) == 0)
			return (int)i;
	}
	return -1;
}

static unsigned int pred_func_arg(const struct pred_func *f, size_t i)
{
	return f->arg[i < 2 ? i : 2];
}

/* ------------------------------------------------------------ tree */

enum pred_node_kind {
	N_STR,
	N_INT,
	N_BOOL,
	N_FIELD,
	N_NOT,
	N_EQ,
	N_NE,
	N_AND,
	N_OR,
	N_CALL,
};

struct pred_node {
	enum pred_node_kind kind;
	size_t pos;	   /* byte offset where the node's text starts */
	size_t oppos;	   /* N_EQ, N_NE: byte offset of the operator */
	unsigned int type; /* one T_ bit, or T_ANY for a field */
	char *str;	   /* N_STR: the value; N_FIELD: the dotted name */
	char *key;	   /* N_FIELD: the map key, NULL when not indexed */
	int64_t i;
	bool b;
	enum pred_fn fn;
	struct pred_node **kids; /* operands, arguments */
	size_t nkids, cap;
};

struct pred_expr {
	struct pred_node *root;
	char *src; /* for the positions in evaluation errors */
};

static void pred_node_free(struct pred_node *n)
{
	size_t i;

	if (!n)
		return;
	for (i = 0; i < n->nkids; i++)
		pred_node_free(n->kids[i]);
	free(n->kids);
	free(n->str);
	free(n->key);
	free(n);
}

static int pred_node_new(enum pred_node_kind kind, size_t pos, unsigned int type,
			 struct pred_node **out)
{
	struct pred_node *n = calloc(1, sizeof(*n));

	*out = n;
	if (!n)
		return -ENOMEM;
	n->kind = kind;
	n->pos = pos;
	n->type = type;
	return 0;
}

/* Append kid to n, which takes it over even when this fails. */
static int pred_node_push(struct pred_node *n, struct pred_node *kid)
{
	struct pred_node **kids;
	size_t cap;

	if (n->nkids == n->cap) {
		cap = n->cap ? n->cap * 2 : 4;
		kids = realloc(n->kids, cap * sizeof(*kids));
		if (!kids) {
			pred_node_free(kid);
			return -ENOMEM;
		}
		n->kids = kids;
		n->cap = cap;
	}
	n->kids[n->nkids++] = kid;
	return 0;
}

void pred_free(struct pred_expr *e)
{
	if (!e)
		return;
	pred_node_free(e->root);
	free(e->src);
	free(e);
}

/* ------------------------------------------------------------ messages */

static const char *pred_type_name(unsigned int t)
{
	switch (t) {
	case T_STR:
		return "a string";
	case T_LIST:
		return "a list";
	case T_BOOL:
		return "a boolean";
	case T_INT:
		return "an integer";
	case T_SL:
		return "a string or a list";
	case T_MISSING:
		return "a missing map key";
	default:
		return "a value";
	}
}

/*
 * "column 7", or "line 2, column 3" when the expression spans lines.
 * Columns count characters, not bytes.
 */
static void pred_where(const char *src, size_t pos, char *buf, size_t len)
{
	size_t end = strlen(src), line = 1, col = 1, i;
	bool lines;

	while (end > 0 && strchr(" \t\r\n", src[end - 1]))
		end--;
	lines = memchr(src, '\n', end) != NULL;
	for (i = 0; i < pos && src[i]; i++) {
		if (src[i] == '\n') {
			line++;
			col = 1;
		} else if (((unsigned char)src[i] & 0xc0) != 0x80) {
			col++;
		}
	}
	if (lines)
		snprintf(buf, len, "line %zu, column %zu", line, col);
	else
		snprintf(buf, len, "column %zu", col);
}

static void pred_errf(char *err, size_t errlen, const char *src, size_t pos, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void pred_errf(char *err, size_t errlen, const char *src, size_t pos, const char *fmt, ...)
{
	char where[64];
	va_list ap;
	size_t n;
	char *s;

	if (!err || !errlen)
		return;
	pred_where(src, pos, where, sizeof(where));
	snprintf(err, errlen, "%s: ", where);
	n = strlen(err);
	va_start(ap, fmt);
	vsnprintf(err + n, errlen - n, fmt, ap);
	va_end(ap);
	/* one line, whatever a quoted string holds */
	for (s = err; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
	}
}

/* ------------------------------------------------------------ lexer */

enum pred_tok_kind {
	TK_EOF,
	TK_IDENT,
	TK_STRING,
	TK_INT,
	TK_LPAREN,
	TK_RPAREN,
	TK_LBRACK,
	TK_RBRACK,
	TK_COMMA,
	TK_DOT,
	TK_NOT,
	TK_EQ,
	TK_NE,
	TK_AND,
	TK_OR,
};

struct pred_tok {
	enum pred_tok_kind kind;
	size_t pos; /* byte offset of its first character */
	size_t len; /* bytes of source */
	char *str;  /* TK_STRING: the decoded value, owned until a node takes it */
	int64_t i;  /* TK_INT */
};

struct pred_parser {
	const char *src;
	size_t pos; /* next byte for the lexer */
	struct pred_tok tok;
	const char *const *known;
	unsigned int depth;
	char *err;
	size_t errlen;
};

#define PERR(p, at, ...) pred_errf((p)->err, (p)->errlen, (p)->src, (at), __VA_ARGS__)

static bool pred_is_ident_start(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static bool pred_is_ident(char c)
{
	return pred_is_ident_start(c) || (c >= '0' && c <= '9');
}

static int pred_hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static size_t pred_utf8(uint32_t cp, char *out)
{
	if (cp < 0x80) {
		out[0] = (char)cp;
		return 1;
	}
	if (cp < 0x800) {
		out[0] = (char)(0xc0 | (cp >> 6));
		out[1] = (char)(0x80 | (cp & 0x3f));
		return 2;
	}
	if (cp < 0x10000) {
		out[0] = (char)(0xe0 | (cp >> 12));
		out[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
		out[2] = (char)(0x80 | (cp & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | (cp >> 18));
	out[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
	out[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
	out[3] = (char)(0x80 | (cp & 0x3f));
	return 4;
}

/*
 * One escape sequence of a double-quoted string, Go's set. *i is at the
 * backslash and moves past the sequence; the bytes go to out (at most 4).
 */
static int pred_lex_escape(struct pred_parser *p, size_t *i, char *out, size_t *outlen)
{
	const char *s = p->src;
	size_t at = *i, ndig = 0, k;
	uint32_t v = 0, limit = 0;
	int base = 0, d;
	char c = s[at + 1];

	*outlen = 1;
	switch (c) {
	case 'a':
		out[0] = '\a';
		break;
	case 'b':
		out[0] = '\b';
		break;
	case 'f':
		out[0] = '\f';
		break;
	case 'n':
		out[0] = '\n';
		break;
	case 'r':
		out[0] = '\r';
		break;
	case 't':
		out[0] = '\t';
		break;
	case 'v':
		out[0] = '\v';
		break;
	case '\\':
	case '"':
		out[0] = c;
		break;
	case '0':
	case '1':
	case '2':
	case '3':
	case '4':
	case '5':
	case '6':
	case '7':
		base = 8, ndig = 3, limit = 255;
		break;
	case 'x':
		base = 16, ndig = 2, limit = 255;
		break;
	case 'u':
		base = 16, ndig = 4, limit = 0x10ffff;
		break;
	case 'U':
		base = 16, ndig = 8, limit = 0x10ffff;
		break;
	case '\0':
		PERR(p, at, "unterminated string");
		return -EINVAL;
	default:
		if ((unsigned char)c > 0x20 && (unsigned char)c < 0x7f)
			PERR(p, at, "unknown escape sequence \\%c", c);
		else
			PERR(p, at, "unknown escape sequence");
		return -EINVAL;
	}
	if (!base) {
		*i = at + 2;
		return 0;
	}
	/* \NNN has no letter before its digits */
	k = c >= '0' && c <= '7' ? at + 1 : at + 2;
	for (size_t n = 0; n < ndig; n++, k++) {
		d = pred_hexval(s[k]);
		if (d < 0 || d >= base) {
			if (base == 8)
				PERR(p, at, "an octal escape needs 3 octal digits");
			else
				PERR(p, at, "\\%c needs %zu hex digits", c, ndig);
			return -EINVAL;
		}
		v = v * (uint32_t)base + (uint32_t)d;
	}
	if (v > limit || (c != 'x' && base == 16 && v >= 0xd800 && v <= 0xdfff)) {
		if (base == 8)
			PERR(p, at, "octal escape value %u is greater than 255", v);
		else
			PERR(p, at, "escape sequence is an invalid Unicode code point");
		return -EINVAL;
	}
	if (v == 0) {
		PERR(p, at, "a string cannot hold a NUL character");
		return -EINVAL;
	}
	if (c == 'u' || c == 'U')
		*outlen = pred_utf8(v, out);
	else
		out[0] = (char)v;
	*i = k;
	return 0;
}

/* A "double-quoted" or `raw` string starting at p->pos. */
static int pred_lex_string(struct pred_parser *p)
{
	const char *s = p->src;
	size_t start = p->pos, i = start + 1, o = 0, n;
	char quote = s[start], *buf;
	int rc;

	/* what is decoded is never longer than the source left */
	buf = malloc(strlen(s + start) + 1);
	if (!buf)
		return -ENOMEM;
	for (;;) {
		if (s[i] == '\0' || (quote == '"' && s[i] == '\n')) {
			PERR(p, start,
			     quote == '"' ? "unterminated string" : "unterminated raw string");
			rc = -EINVAL;
			goto out;
		}
		if (s[i] == quote)
			break;
		if (quote == '"' && s[i] == '\\') {
			rc = pred_lex_escape(p, &i, buf + o, &n);
			if (rc)
				goto out;
			o += n;
		} else if (quote == '`' && s[i] == '\r') {
			i++; /* Go drops carriage returns from raw strings */
		} else {
			buf[o++] = s[i++];
		}
	}
	buf[o] = '\0';
	p->tok.kind = TK_STRING;
	p->tok.str = buf;
	buf = NULL;
	p->pos = i + 1;
	rc = 0;
out:
	free(buf);
	return rc;
}

/*
 * Go's integer literals: 42, 0x2a, 0o52, 052, 0b101010, with '_' between
 * digits. The whole run of letters and digits is the literal, so "12ab" is
 * one bad literal rather than 12 followed by ab.
 */
static int pred_lex_int(struct pred_parser *p)
{
	const char *s = p->src;
	size_t start = p->pos, end = start, k = start, ndig = 0, shown;
	uint64_t v = 0, base = 10;
	bool after_digit = false;
	int d;

	while (pred_is_ident(s[end]))
		end++;
	if (s[start] == '0' && end - start > 1) {
		switch (s[start + 1]) {
		case 'x':
		case 'X':
			base = 16, k = start + 2;
			break;
		case 'o':
		case 'O':
			base = 8, k = start + 2;
			break;
		case 'b':
		case 'B':
			base = 2, k = start + 2;
			break;
		default: /* 0755, C's octal, which Go keeps */
			base = 8, k = start + 1;
			break;
		}
		/* one '_' may follow a prefix: 0x_ff */
		after_digit = true;
	}
	for (; k < end; k++) {
		if (s[k] == '_') {
			if (!after_digit)
				goto bad;
			after_digit = false;
			continue;
		}
		d = pred_hexval(s[k]);
		if (d < 0 || (uint64_t)d >= base)
			goto bad;
		if (v > ((uint64_t)INT64_MAX - (uint64_t)d) / base) {
			PERR(p, start, "integer %.*s is out of range", (int)(end - start),
			     s + start);
			return -EINVAL;
		}
		v = v * base + (uint64_t)d;
		ndig++;
		after_digit = true;
	}
	/* "0x", "0_", "1_" */
	if (!ndig || !after_digit)
		goto bad;
	p->tok.kind = TK_INT;
	p->tok.i = (int64_t)v;
	p->pos = end;
	return 0;
bad:
	shown = end - start < PRED_QUOTE_MAX ? end - start : PRED_QUOTE_MAX;
	PERR(p, start, "invalid integer %.*s", (int)shown, s + start);
	return -EINVAL;
}

/* Move to the next token. */
static int pred_lex(struct pred_parser *p)
{
	const char *s = p->src;
	size_t i;
	char c;
	int rc;

	free(p->tok.str);
	memset(&p->tok, 0, sizeof(p->tok));
	while (s[p->pos] == ' ' || s[p->pos] == '\t' || s[p->pos] == '\n' || s[p->pos] == '\r')
		p->pos++;
	i = p->pos;
	p->tok.pos = i;
	c = s[i];
	if (c == '\0') {
		p->tok.kind = TK_EOF;
		return 0;
	}
	if (pred_is_ident_start(c)) {
		while (pred_is_ident(s[p->pos]))
			p->pos++;
		p->tok.kind = TK_IDENT;
		p->tok.len = p->pos - i;
		return 0;
	}
	if (c >= '0' && c <= '9') {
		rc = pred_lex_int(p);
		p->tok.len = p->pos - i;
		return rc;
	}
	if (c == '"' || c == '`') {
		rc = pred_lex_string(p);
		p->tok.len = p->pos - i;
		return rc;
	}
	p->tok.len = 1;
	switch (c) {
	case '(':
		p->tok.kind = TK_LPAREN;
		break;
	case ')':
		p->tok.kind = TK_RPAREN;
		break;
	case '[':
		p->tok.kind = TK_LBRACK;
		break;
	case ']':
		p->tok.kind = TK_RBRACK;
		break;
	case ',':
		p->tok.kind = TK_COMMA;
		break;
	case '.':
		p->tok.kind = TK_DOT;
		break;
	case '!':
		p->tok.kind = TK_NOT;
		if (s[i + 1] == '=') {
			p->tok.kind = TK_NE;
			p->tok.len = 2;
		}
		break;
	case '=':
		if (s[i + 1] != '=') {
			PERR(p, i, "unexpected '='; comparison is ==");
			return -EINVAL;
		}
		p->tok.kind = TK_EQ;
		p->tok.len = 2;
		break;
	case '&':
		if (s[i + 1] != '&') {
			PERR(p, i, "unexpected '&'; and is &&");
			return -EINVAL;
		}
		p->tok.kind = TK_AND;
		p->tok.len = 2;
		break;
	case '|':
		if (s[i + 1] != '|') {
			PERR(p, i, "unexpected '|'; or is ||");
			return -EINVAL;
		}
		p->tok.kind = TK_OR;
		p->tok.len = 2;
		break;
	case '\'':
		PERR(p, i, "strings are in double quotes or backticks, not single quotes");
		return -EINVAL;
	default:
		if ((unsigned char)c > 0x20 && (unsigned char)c < 0x7f)
			PERR(p, i, "unexpected character '%c'", c);
		else
			PERR(p, i, "unexpected byte 0x%02x", (unsigned char)c);
		return -EINVAL;
	}
	p->pos += p->tok.len;
	return 0;
}

/* What the current token is, for "expected X, found Y". */
static void pred_tok_desc(const struct pred_parser *p, char *buf, size_t len)
{
	const struct pred_tok *t = &p->tok;

	switch (t->kind) {
	case TK_EOF:
		snprintf(buf, len, "the end of the expression");
		break;
	case TK_IDENT:
		snprintf(buf, len, "'%.*s'",
			 (int)(t->len < PRED_QUOTE_MAX ? t->len : PRED_QUOTE_MAX), p->src + t->pos);
		break;
	case TK_STRING:
		snprintf(buf, len, "a string");
		break;
	case TK_INT:
		snprintf(buf, len, "an integer");
		break;
	default:
		snprintf(buf, len, "'%.*s'", (int)t->len, p->src + t->pos);
		break;
	}
}

/* ------------------------------------------------------------ parser */

static int pred_parse_or(struct pred_parser *p, struct pred_node **out);

static int pred_deeper(struct pred_parser *p, size_t at)
{
	if (++p->depth > PRED_MAX_DEPTH) {
		PERR(p, at, "nested deeper than %d levels", PRED_MAX_DEPTH);
		return -EINVAL;
	}
	return 0;
}

/* Is name (a field, indexed or not) allowed by the known_fields list? */
static int pred_check_field(struct pred_parser *p, const char *name, bool indexed, size_t at)
{
	const char *const *k;
	bool is_map = false, is_plain = false;
	size_t len;

	if (!p->known)
		return 0;
	for (k = p->known; *k; k++) {
		len = strlen(*k);
		if (len >= 2 && strcmp(*k + len - 2, ".*") == 0) {
			if (strncmp(name, *k, len - 1) == 0 && name[len - 1] != '\0')
				return 0;
		} else if (len >= 2 && strcmp(*k + len - 2, "[]") == 0) {
			if (strlen(name) == len - 2 && strncmp(name, *k, len - 2) == 0)
				is_map = true;
		} else if (strcmp(name, *k) == 0) {
			is_plain = true;
		}
	}
	if ((indexed && is_map) || (!indexed && is_plain))
		return 0;
	if (is_map)
		PERR(p, at, "%s is a map: give a key, as in %s[\"key\"]", name, name);
	else if (is_plain)
		PERR(p, at, "%s is not a map and cannot be indexed", name);
	else
		PERR(p, at, "unknown field %s", name);
	return -EINVAL;
}

/* The arguments of a call: the checks the literals allow before evaluation. */
static int pred_check_call(struct pred_parser *p, struct pred_node *n)
{
	const struct pred_func *f = &pred_funcs[n->fn];
	unsigned int want, a, b;
	size_t i;

	if (n->nkids < f->min_args || n->nkids > f->max_args) {
		if (f->min_args == f->max_args)
			PERR(p, n->pos, "%s takes %u arguments, got %zu", f->name, f->min_args,
			     n->nkids);
		else
			PERR(p, n->pos, "%s takes at least %u arguments, got %zu", f->name,
			     f->min_args, n->nkids);
		return -EINVAL;
	}
	for (i = 0; i < n->nkids; i++) {
		want = pred_func_arg(f, i);
		if (!(n->kids[i]->type & want)) {
			PERR(p, n->kids[i]->pos, "argument %zu of %s must be %s, not %s", i + 1,
			     f->name, pred_type_name(want), pred_type_name(n->kids[i]->type));
			return -EINVAL;
		}
	}
	if (n->fn == FN_EQUALS) {
		a = n->kids[0]->type;
		b = n->kids[1]->type;
		if (a != T_ANY && b != T_ANY && a != b && (a | b) != T_SL) {
			PERR(p, n->pos, "equals cannot compare %s with %s", pred_type_name(a),
			     pred_type_name(b));
			return -EINVAL;
		}
	}
	return 0;
}

/* name(args...), the name already read (at, len) and the '(' current. */
static int pred_parse_call(struct pred_parser *p, size_t at, size_t len, struct pred_node **out)
{
	struct pred_node *n = NULL, *arg = NULL;
	int fn = pred_func_find(p->src + at, len), rc;

	*out = NULL;
	if (fn < 0) {
		PERR(p, at, "unknown function %.*s", (int)len, p->src + at);
		return -EINVAL;
	}
	rc = pred_deeper(p, at);
	if (rc)
		goto out;
	rc = pred_node_new(N_CALL, at, pred_funcs[fn].ret, &n);
	if (rc)
		goto out;
	n->fn = (enum pred_fn)fn;
	rc = pred_lex(p);
	if (rc)
		goto out;
	while (p->tok.kind != TK_RPAREN) {
		if (n->nkids == PRED_MAX_ARGS) {
			PERR(p, p->tok.pos, "%s takes at most %d arguments", pred_funcs[fn].name,
			     PRED_MAX_ARGS);
			rc = -EINVAL;
			goto out;
		}
		rc = pred_parse_or(p, &arg);
		if (rc)
			goto out;
		rc = pred_node_push(n, arg);
		if (rc)
			goto out;
		if (p->tok.kind == TK_COMMA) {
			rc = pred_lex(p);
			if (rc)
				goto out;
		} else if (p->tok.kind != TK_RPAREN) {
			PERR(p, p->tok.pos, "expected ')' after the arguments of %s",
			     pred_funcs[fn].name);
			rc = -EINVAL;
			goto out;
		}
	}
	rc = pred_lex(p);
	if (rc)
		goto out;
	p->depth--;
	rc = pred_check_call(p, n);
	if (rc)
		goto out;
	*out = n;
	n = NULL;
out:
	pred_node_free(n);
	return rc;
}

/* a.b.c or a.b.c["key"], the first name already read (at, len) and the next token current. */
static int pred_parse_field(struct pred_parser *p, size_t at, size_t len, struct pred_node **out)
{
	struct pred_node *n = NULL;
	char *name = NULL;
	size_t nlen = len, i;
	int rc;

	*out = NULL;
	/* the dotted name without any blanks around the dots */
	name = malloc(strlen(p->src + at) + 1);
	if (!name)
		return -ENOMEM;
	memcpy(name, p->src + at, len);
	while (p->tok.kind == TK_DOT) {
		rc = pred_lex(p);
		if (rc)
			goto out;
		if (p->tok.kind != TK_IDENT) {
			char found[64];

			pred_tok_desc(p, found, sizeof(found));
			PERR(p, p->tok.pos, "expected a field name after '.', found %s", found);
			rc = -EINVAL;
			goto out;
		}
		name[nlen++] = '.';
		for (i = 0; i < p->tok.len; i++)
			name[nlen++] = p->src[p->tok.pos + i];
		rc = pred_lex(p);
		if (rc)
			goto out;
	}
	name[nlen] = '\0';
	if (p->tok.kind == TK_LPAREN) {
		PERR(p, at, "%s is not a function", name);
		rc = -EINVAL;
		goto out;
	}
	rc = pred_node_new(N_FIELD, at, T_ANY, &n);
	if (rc)
		goto out;
	n->str = name;
	name = NULL;
	if (p->tok.kind == TK_LBRACK) {
		rc = pred_lex(p);
		if (rc)
			goto out;
		if (p->tok.kind != TK_STRING) {
			PERR(p, p->tok.pos, "a map key must be a string literal");
			rc = -EINVAL;
			goto out;
		}
		n->key = p->tok.str;
		p->tok.str = NULL;
		rc = pred_lex(p);
		if (rc)
			goto out;
		if (p->tok.kind != TK_RBRACK) {
			PERR(p, p->tok.pos, "expected ']' after the map key");
			rc = -EINVAL;
			goto out;
		}
		rc = pred_lex(p);
		if (rc)
			goto out;
		if (p->tok.kind == TK_LBRACK) {
			PERR(p, p->tok.pos, "%s[\"%s\"] is not a map and cannot be indexed", n->str,
			     n->key);
			rc = -EINVAL;
			goto out;
		}
	}
	rc = pred_check_field(p, n->str, n->key != NULL, at);
	if (rc)
		goto out;
	*out = n;
	n = NULL;
out:
	free(name);
	pred_node_free(n);
	return rc;
}

static int pred_parse_primary(struct pred_parser *p, struct pred_node **out)
{
	struct pred_node *n = NULL;
	size_t at = p->tok.pos, len = p->tok.len;
	char found[64], where[64];
	int rc;

	*out = NULL;
	switch (p->tok.kind) {
	case TK_STRING:
		rc = pred_node_new(N_STR, at, T_STR, &n);
		if (rc)
			goto out;
		n->str = p->tok.str;
		p->tok.str = NULL;
		rc = pred_lex(p);
		break;
	case TK_INT:
		rc = pred_node_new(N_INT, at, T_INT, &n);
		if (rc)
			goto out;
		n->i = p->tok.i;
		rc = pred_lex(p);
		break;
	case TK_IDENT:
		rc = pred_lex(p);
		if (rc)
			goto out;
		if (p->tok.kind == TK_LPAREN) {
			rc = pred_parse_call(p, at, len, &n);
		} else if ((len == 4 && memcmp(p->src + at, "true", 4) == 0) ||
			   (len == 5 && memcmp(p->src + at, "false", 5) == 0)) {
			rc = pred_node_new(N_BOOL, at, T_BOOL, &n);
			if (rc)
				goto out;
			n->b = len == 4;
		} else {
			rc = pred_parse_field(p, at, len, &n);
		}
		break;
	case TK_LPAREN:
		rc = pred_deeper(p, at);
		if (rc)
			goto out;
		rc = pred_lex(p);
		if (rc)
			goto out;
		rc = pred_parse_or(p, &n);
		if (rc)
			goto out;
		if (p->tok.kind != TK_RPAREN) {
			pred_tok_desc(p, found, sizeof(found));
			pred_where(p->src, at, where, sizeof(where));
			PERR(p, p->tok.pos, "expected ')' to close the '(' at %s, found %s", where,
			     found);
			rc = -EINVAL;
			goto out;
		}
		p->depth--;
		rc = pred_lex(p);
		break;
	default:
		pred_tok_desc(p, found, sizeof(found));
		PERR(p, at, "expected a value, found %s", found);
		rc = -EINVAL;
		break;
	}
out:
	if (rc)
		pred_node_free(n);
	else
		*out = n;
	return rc;
}

static int pred_parse_unary(struct pred_parser *p, struct pred_node **out)
{
	struct pred_node *n = NULL, *sub = NULL;
	size_t at = p->tok.pos;
	int rc;

	if (p->tok.kind != TK_NOT)
		return pred_parse_primary(p, out);
	*out = NULL;
	rc = pred_deeper(p, at);
	if (rc)
		goto out;
	rc = pred_lex(p);
	if (rc)
		goto out;
	rc = pred_parse_unary(p, &sub);
	if (rc)
		goto out;
	p->depth--;
	if (!(sub->type & T_BOOL)) {
		PERR(p, at, "! needs a boolean, not %s", pred_type_name(sub->type));
		rc = -EINVAL;
		goto out;
	}
	rc = pred_node_new(N_NOT, at, T_BOOL, &n);
	if (rc)
		goto out;
	rc = pred_node_push(n, sub);
	sub = NULL;
	if (rc)
		goto out;
	*out = n;
	n = NULL;
out:
	pred_node_free(sub);
	pred_node_free(n);
	return rc;
}

/* a == b != c ..., left to right; each comparison nests the one before it. */
static int pred_parse_cmp(struct pred_parser *p, struct pred_node **out)
{
	struct pred_node *left = NULL, *right = NULL, *n = NULL;
	unsigned int levels = 0;
	size_t oppos;
	bool eq;
	int rc;

	*out = NULL;
	rc = pred_parse_unary(p, &left);
	if (rc)
		goto out;
	while (p->tok.kind == TK_EQ || p->tok.kind == TK_NE) {
		eq = p->tok.kind == TK_EQ;
		oppos = p->tok.pos;
		levels++;
		rc = pred_deeper(p, oppos);
		if (rc)
			goto out;
		rc = pred_lex(p);
		if (rc)
			goto out;
		rc = pred_parse_unary(p, &right);
		if (rc)
			goto out;
		if (left->type != T_ANY && right->type != T_ANY && left->type != right->type) {
			PERR(p, oppos, "%s cannot compare %s with %s",
			     eq ? "==" : "!=", pred_type_name(left->type),
			     pred_type_name(right->type));
			rc = -EINVAL;
			goto out;
		}
		rc = pred_node_new(eq ? N_EQ : N_NE, left->pos, T_BOOL, &n);
		if (rc)
			goto out;
		n->oppos = oppos;
		rc = pred_node_push(n, left);
		left = NULL;
		if (rc)
			goto out;
		rc = pred_node_push(n, right);
		right = NULL;
		if (rc)
			goto out;
		left = n;
		n = NULL;
	}
	p->depth -= levels;
	*out = left;
	left = NULL;
out:
	pred_node_free(left);
	pred_node_free(right);
	pred_node_free(n);
	return rc;
}

/* operand (op operand)*: one node for the whole chain. */
static int pred_parse_chain(struct pred_parser *p, enum pred_tok_kind op, enum pred_node_kind kind,
			    int (*sub)(struct pred_parser *, struct pred_node **),
			    struct pred_node **out)
{
	const char *opname = op == TK_AND ? "&&" : "||";
	struct pred_node *first = NULL, *n = NULL, *next = NULL;
	int rc;

	*out = NULL;
	rc = sub(p, &first);
	if (rc)
		goto out;
	if (p->tok.kind != op) {
		*out = first;
		first = NULL;
		goto out;
	}
	if (!(first->type & T_BOOL)) {
		PERR(p, first->pos, "%s needs booleans, not %s", opname,
		     pred_type_name(first->type));
		rc = -EINVAL;
		goto out;
	}
	rc = pred_node_new(kind, first->pos, T_BOOL, &n);
	if (rc)
		goto out;
	rc = pred_node_push(n, first);
	first = NULL;
	if (rc)
		goto out;
	while (p->tok.kind == op) {
		rc = pred_lex(p);
		if (rc)
			goto out;
		rc = sub(p, &next);
		if (rc)
			goto out;
		if (!(next->type & T_BOOL)) {
			PERR(p, next->pos, "%s needs booleans, not %s", opname,
			     pred_type_name(next->type));
			rc = -EINVAL;
			goto out;
		}
		rc = pred_node_push(n, next);
		next = NULL;
		if (rc)
			goto out;
	}
	*out = n;
	n = NULL;
out:
	pred_node_free(first);
	pred_node_free(next);
	pred_node_free(n);
	return rc;
}

static int pred_parse_and(struct pred_parser *p, struct pred_node **out)
{
	return pred_parse_chain(p, TK_AND, N_AND, pred_parse_cmp, out);
}

static int pred_parse_or(struct pred_parser *p, struct pred_node **out)
{
	return pred_parse_chain(p, TK_OR, N_OR, pred_parse_and, out);
}

int pred_parse(const char *src, const char *const *known_fields, struct pred_expr **out, char *err,
	       size_t errlen)
{
	struct pred_parser p = {.src = src, .known = known_fields, .err = err, .errlen = errlen};
	struct pred_expr *e = NULL;
	char found[64];
	size_t len;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (out)
		*out = NULL;
	if (!src || !out) {
		if (err && errlen)
			snprintf(err, errlen, "no expression");
		return -EINVAL;
	}
	len = strnlen(src, PRED_MAX_LEN + 1);
	if (len > PRED_MAX_LEN) {
		if (err && errlen)
			snprintf(err, errlen, "the expression is longer than %d bytes",
				 PRED_MAX_LEN);
		return -E2BIG;
	}
	e = calloc(1, sizeof(*e));
	if (!e) {
		rc = -ENOMEM;
		goto out;
	}
	e->src = strdup(src);
	if (!e->src) {
		rc = -ENOMEM;
		goto out;
	}
	rc = pred_lex(&p);
	if (rc)
		goto out;
	if (p.tok.kind == TK_EOF) {
		PERR(&p, 0, "the expression is empty");
		rc = -EINVAL;
		goto out;
	}
	rc = pred_parse_or(&p, &e->root);
	if (rc)
		goto out;
	if (p.tok.kind == TK_RPAREN) {
		PERR(&p, p.tok.pos, "unexpected ')' without a matching '('");
		rc = -EINVAL;
		goto out;
	}
	if (p.tok.kind != TK_EOF) {
		pred_tok_desc(&p, found, sizeof(found));
		PERR(&p, p.tok.pos, "unexpected %s after the expression; missing && or ||?", found);
		rc = -EINVAL;
		goto out;
	}
	if (!(e->root->type & T_BOOL)) {
		PERR(&p, e->root->pos, "the expression is %s, not a boolean",
		     pred_type_name(e->root->type));
		rc = -EINVAL;
		goto out;
	}
	*out = e;
	e = NULL;
out:
	if (rc == -ENOMEM && err && errlen)
		snprintf(err, errlen, "out of memory");
	free(p.tok.str);
	pred_free(e);
	return rc;
}

/* ------------------------------------------------------------ evaluation */

struct pred_val {
	unsigned int t; /* one T_ bit, or T_MISSING */
	const char *s;
	const char *const *list;
	size_t n;
	bool b;
	int64_t i;
};

struct pred_chunk {
	struct pred_chunk *next;
	_Alignas(max_align_t) unsigned char data[];
};

struct pred_eval_ctx {
	const struct pred_expr *e;
	const struct pred_env *env;
	struct pred_chunk *arena;
	size_t arena_used;
	char *err;
	size_t errlen;
};

#define EERR(c, at, ...) pred_errf((c)->err, (c)->errlen, (c)->e->src, (at), __VA_ARGS__)

static int pred_arena_alloc(struct pred_eval_ctx *c, size_t size, size_t at, void **out)
{
	struct pred_chunk *ch;

	*out = NULL;
	if (size > PRED_ARENA_MAX - c->arena_used) {
		EERR(c, at, "the lists built are larger than %u MiB", PRED_ARENA_MAX >> 20);
		return -E2BIG;
	}
	ch = malloc(sizeof(*ch) + size);
	if (!ch) {
		EERR(c, at, "out of memory");
		return -ENOMEM;
	}
	ch->next = c->arena;
	c->arena = ch;
	c->arena_used += size;
	*out = ch->data;
	return 0;
}

static void pred_arena_free(struct pred_eval_ctx *c)
{
	struct pred_chunk *ch, *next;

	for (ch = c->arena; ch; ch = next) {
		next = ch->next;
		free(ch);
	}
	c->arena = NULL;
	c->arena_used = 0;
}

/* "user.spec.traits["team"]" for messages. */
static void pred_field_desc(const struct pred_node *n, char *buf, size_t len)
{
	if (n->key)
		snprintf(buf, len, "%s[\"%s\"]", n->str, n->key);
	else
		snprintf(buf, len, "%s", n->str);
}

static int pred_eval_field(struct pred_eval_ctx *c, const struct pred_node *n, struct pred_val *out)
{
	struct pred_value v;
	char name[160], ebuf[128];
	size_t i;
	int rc;

	memset(&v, 0, sizeof(v));
	pred_field_desc(n, name, sizeof(name));
	if (!c->env || !c->env->lookup) {
		EERR(c, n->pos, "no environment to look up %s in", name);
		return -EINVAL;
	}
	rc = c->env->lookup(c->env->ctx, n->str, n->key, &v);
	if (rc == -ENOENT) {
		out->t = T_MISSING;
		return 0;
	}
	if (rc == -EINVAL) {
		EERR(c, n->pos, "unknown field %s", name);
		return rc;
	}
	if (rc < 0) {
		EERR(c, n->pos, "looking up %s: %s", name, strerror_r(-rc, ebuf, sizeof(ebuf)));
		return rc;
	}
	if (rc > 0)
		goto bad;
	switch (v.type) {
	case PRED_STRING:
		if (!v.s)
			goto bad;
		out->t = T_STR;
		out->s = v.s;
		return 0;
	case PRED_LIST:
		if (v.n && !v.list)
			goto bad;
		for (i = 0; i < v.n; i++) {
			if (!v.list[i])
				goto bad;
		}
		out->t = T_LIST;
		out->list = v.list;
		out->n = v.n;
		return 0;
	case PRED_BOOL:
		out->t = T_BOOL;
		out->b = v.b;
		return 0;
	case PRED_INT:
		out->t = T_INT;
		out->i = v.i;
		return 0;
	}
bad:
	EERR(c, n->pos, "the value of %s is malformed", name);
	return -EINVAL;
}

/* A missing key is "" where a string is wanted. */
static const char *pred_as_str(const struct pred_val *v)
{
	return v->t == T_STR ? v->s : "";
}

/* A string is a one-item list, a missing key an empty one; *one holds the item. */
static const char *const *pred_as_list(const struct pred_val *v, const char **one, size_t *n)
{
	if (v->t == T_LIST) {
		*n = v->n;
		return v->list;
	}
	if (v->t == T_STR) {
		*one = v->s;
		*n = 1;
		return one;
	}
	*n = 0;
	return one;
}

static bool pred_list_has(const char *const *l, size_t n, const char *s)
{
	size_t i;

	for (i = 0; i < n; i++) {
		if (strcmp(l[i], s) == 0)
			return true;
	}
	return false;
}

/*
 * a == b. A missing key takes the type of the other side ("" or an empty
 * list); lenient (equals()) also compares a string with a list as a one-item
 * list. Other mixes of types are errors.
 */
static int pred_values_equal(struct pred_eval_ctx *c, const char *what, size_t at,
			     const struct pred_val *a, const struct pred_val *b, bool lenient,
			     bool *eq)
{
	const char *const *la, *const *lb, *onea = NULL, *oneb = NULL;
	unsigned int ta = a->t, tb = b->t;
	size_t na, nb, i;

	if (ta == T_MISSING && tb == T_MISSING) {
		*eq = true;
		return 0;
	}
	if (ta == T_MISSING && (tb & T_SL))
		ta = tb;
	if (tb == T_MISSING && (ta & T_SL))
		tb = ta;
	if (lenient && (ta | tb) == T_SL)
		ta = tb = T_LIST;
	if (ta != tb) {
		EERR(c, at, "%s cannot compare %s with %s", what, pred_type_name(a->t),
		     pred_type_name(b->t));
		return -EINVAL;
	}
	switch (ta) {
	case T_STR:
		*eq = strcmp(pred_as_str(a), pred_as_str(b)) == 0;
		break;
	case T_LIST:
		la = pred_as_list(a, &onea, &na);
		lb = pred_as_list(b, &oneb, &nb);
		*eq = na == nb;
		for (i = 0; *eq && i < na; i++)
			*eq = strcmp(la[i], lb[i]) == 0;
		break;
	case T_BOOL:
		*eq = a->b == b->b;
		break;
	default:
		*eq = a->i == b->i;
		break;
	}
	return 0;
}

struct pred_sort_item {
	const char *s;
	size_t idx;
};

static int pred_sort_cmp(const void *x, const void *y)
{
	const struct pred_sort_item *a = x, *b = y;
	int r = strcmp(a->s, b->s);

	if (r)
		return r;
	return a->idx < b->idx ? -1 : a->idx > b->idx;
}

/* set(...): the items of every argument, first occurrences only, in order. */
static int pred_fn_set(struct pred_eval_ctx *c, const struct pred_node *n,
		       const struct pred_val *args, struct pred_val *out)
{
	struct pred_sort_item *sorted = NULL;
	const char **items = NULL, *one = NULL, *const * l;
	bool *dup = NULL;
	size_t total = 0, k = 0, i, j, m;
	void *mem;
	int rc;

	for (i = 0; i < n->nkids; i++) {
		pred_as_list(&args[i], &one, &m);
		total += m;
	}
	rc = pred_arena_alloc(c, (total ? total : 1) * sizeof(*items), n->pos, &mem);
	if (rc)
		goto out;
	items = mem;
	if (total > 1) {
		sorted = malloc(total * sizeof(*sorted));
		dup = calloc(total, sizeof(*dup));
		if (!sorted || !dup) {
			EERR(c, n->pos, "out of memory");
			rc = -ENOMEM;
			goto out;
		}
	}
	for (i = 0; i < n->nkids; i++) {
		l = pred_as_list(&args[i], &one, &m);
		for (j = 0; j < m; j++) {
			if (sorted) {
				sorted[k].s = l[j];
				sorted[k].idx = k;
			}
			items[k++] = l[j];
		}
	}
	if (sorted) {
		qsort(sorted, total, sizeof(*sorted), pred_sort_cmp);
		for (i = 1; i < total; i++) {
			if (strcmp(sorted[i].s, sorted[i - 1].s) == 0)
				dup[sorted[i].idx] = true;
		}
		for (i = 0, k = 0; i < total; i++) {
			if (!dup[i])
				items[k++] = items[i];
		}
	}
	out->t = T_LIST;
	out->list = items;
	out->n = k;
	rc = 0;
out:
	free(sorted);
	free(dup);
	return rc;
}

/* is_subset(a, items...): is a (or every item of a) among the items? */
static bool pred_fn_is_subset(const struct pred_node *n, const struct pred_val *args)
{
	const char *const *la, *const *li, *onea = NULL, *onei = NULL, *s;
	size_t na, ni, i, j;
	bool found;

	if (args[0].t == T_LIST) {
		la = args[0].list;
		na = args[0].n;
	} else {
		onea = pred_as_str(&args[0]);
		la = &onea;
		na = 1;
	}
	for (i = 0; i < na; i++) {
		s = la[i];
		found = false;
		for (j = 1; j < n->nkids && !found; j++) {
			li = pred_as_list(&args[j], &onei, &ni);
			found = pred_list_has(li, ni, s);
		}
		if (!found)
			return false;
	}
	return true;
}

/* all_end_with / all_equal: a string, or every item of a list. */
static bool pred_fn_all(const struct pred_val *a, const char *b, bool suffix)
{
	const char *one = NULL, *const * l;
	size_t n, i, ls, lb = strlen(b);
	bool ok = true;

	if (a->t == T_LIST) {
		l = a->list;
		n = a->n;
	} else {
		one = pred_as_str(a);
		l = &one;
		n = 1;
	}
	for (i = 0; ok && i < n; i++) {
		if (suffix) {
			ls = strlen(l[i]);
			ok = ls >= lb && memcmp(l[i] + ls - lb, b, lb) == 0;
		} else {
			ok = strcmp(l[i], b) == 0;
		}
	}
	return ok;
}

static int pred_eval_node(struct pred_eval_ctx *c, const struct pred_node *n, struct pred_val *out);

static int pred_eval_call(struct pred_eval_ctx *c, const struct pred_node *n, struct pred_val *out)
{
	const struct pred_func *f = &pred_funcs[n->fn];
	const char *const *l1, *const *l2, *one1 = NULL, *one2 = NULL;
	struct pred_val *args;
	size_t n1, n2, i;
	unsigned int want, t;
	bool r = false;
	int rc;

	args = calloc(n->nkids ? n->nkids : 1, sizeof(*args));
	if (!args) {
		EERR(c, n->pos, "out of memory");
		return -ENOMEM;
	}
	for (i = 0; i < n->nkids; i++) {
		rc = pred_eval_node(c, n->kids[i], &args[i]);
		if (rc)
			goto out;
		want = pred_func_arg(f, i);
		t = args[i].t;
		if (!(t & want) && !(t == T_MISSING && (want & T_SL))) {
			EERR(c, n->kids[i]->pos, "argument %zu of %s must be %s, not %s", i + 1,
			     f->name, pred_type_name(want), pred_type_name(t));
			rc = -EINVAL;
			goto out;
		}
	}
	rc = 0;
	switch (n->fn) {
	case FN_CONTAINS:
		l1 = pred_as_list(&args[0], &one1, &n1);
		r = pred_list_has(l1, n1, pred_as_str(&args[1]));
		break;
	case FN_EQUALS:
		rc = pred_values_equal(c, "equals", n->pos, &args[0], &args[1], true, &r);
		break;
	case FN_CONTAINS_ALL:
	case FN_CONTAINS_ANY:
		l1 = pred_as_list(&args[0], &one1, &n1);
		l2 = pred_as_list(&args[1], &one2, &n2);
		r = n->fn == FN_CONTAINS_ALL;
		for (i = 0; i < n2; i++) {
			if (pred_list_has(l1, n1, l2[i]) != (n->fn == FN_CONTAINS_ALL)) {
				r = !r;
				break;
			}
		}
		break;
	case FN_SET:
		rc = pred_fn_set(c, n, args, out);
		goto out;
	case FN_ALL_END_WITH:
	case FN_ALL_EQUAL:
		r = pred_fn_all(&args[0], pred_as_str(&args[1]), n->fn == FN_ALL_END_WITH);
		break;
	case FN_IS_SUBSET:
		r = pred_fn_is_subset(n, args);
		break;
	case FN_HAS_PREFIX:
		r = strncmp(pred_as_str(&args[0]), pred_as_str(&args[1]),
			    strlen(pred_as_str(&args[1]))) == 0;
		break;
	}
	if (rc)
		goto out;
	out->t = T_BOOL;
	out->b = r;
out:
	free(args);
	return rc;
}

static int pred_eval_node(struct pred_eval_ctx *c, const struct pred_node *n, struct pred_val *out)
{
	struct pred_val a, b;
	const char *op;
	size_t i;
	bool eq;
	int rc;

	memset(out, 0, sizeof(*out));
	memset(&a, 0, sizeof(a));
	memset(&b, 0, sizeof(b));
	switch (n->kind) {
	case N_STR:
		out->t = T_STR;
		out->s = n->str;
		return 0;
	case N_INT:
		out->t = T_INT;
		out->i = n->i;
		return 0;
	case N_BOOL:
		out->t = T_BOOL;
		out->b = n->b;
		return 0;
	case N_FIELD:
		return pred_eval_field(c, n, out);
	case N_NOT:
		rc = pred_eval_node(c, n->kids[0], &a);
		if (rc)
			return rc;
		if (a.t != T_BOOL) {
			EERR(c, n->pos, "! needs a boolean, not %s", pred_type_name(a.t));
			return -EINVAL;
		}
		out->t = T_BOOL;
		out->b = !a.b;
		return 0;
	case N_EQ:
	case N_NE:
		op = n->kind == N_EQ ? "==" : "!=";
		rc = pred_eval_node(c, n->kids[0], &a);
		if (rc)
			return rc;
		rc = pred_eval_node(c, n->kids[1], &b);
		if (rc)
			return rc;
		rc = pred_values_equal(c, op, n->oppos, &a, &b, false, &eq);
		if (rc)
			return rc;
		out->t = T_BOOL;
		out->b = n->kind == N_EQ ? eq : !eq;
		return 0;
	case N_AND:
	case N_OR:
		op = n->kind == N_AND ? "&&" : "||";
		out->t = T_BOOL;
		out->b = n->kind == N_AND;
		/* Go's short circuit: the rest is not evaluated once the result is known */
		for (i = 0; i < n->nkids; i++) {
			rc = pred_eval_node(c, n->kids[i], &a);
			if (rc)
				return rc;
			if (a.t != T_BOOL) {
				EERR(c, n->kids[i]->pos, "%s needs booleans, not %s", op,
				     pred_type_name(a.t));
				return -EINVAL;
			}
			if (a.b != (n->kind == N_AND)) {
				out->b = a.b;
				break;
			}
		}
		return 0;
	case N_CALL:
		return pred_eval_call(c, n, out);
	}
	EERR(c, n->pos, "internal error: node kind %d", (int)n->kind);
	return -EINVAL;
}

int pred_eval(const struct pred_expr *e, const struct pred_env *env, bool *result, char *err,
	      size_t errlen)
{
	struct pred_eval_ctx c = {.e = e, .env = env, .err = err, .errlen = errlen};
	struct pred_val v;
	int rc;

	if (err && errlen)
		err[0] = '\0';
	if (!e || !e->root || !result) {
		if (err && errlen)
			snprintf(err, errlen, "no expression");
		return -EINVAL;
	}
	rc = pred_eval_node(&c, e->root, &v);
	if (rc)
		goto out;
	if (v.t != T_BOOL) {
		EERR(&c, e->root->pos, "the expression is %s, not a boolean", pred_type_name(v.t));
		rc = -EINVAL;
		goto out;
	}
	*result = v.b;
out:
	pred_arena_free(&c);
	return rc;
}
