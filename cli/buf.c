/* Growing strings, query strings, a line splitter and JSON strings from raw bytes. */
#include "cli.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

static int cli_buf_reserve(struct cli_buf *b, size_t n)
{
	size_t want, cap;
	char *p;

	if (b->err)
		return b->err;
	if (n > SIZE_MAX / 2 - b->len) {
		b->err = -ENOMEM;
		return b->err;
	}
	want = b->len + n + 1;
	if (want <= b->cap)
		return 0;
	cap = b->cap ? b->cap : 64;
	while (cap < want)
		cap *= 2;
	p = realloc(b->p, cap);
	if (!p) {
		b->err = -ENOMEM;
		return b->err;
	}
	b->p = p;
	b->cap = cap;
	return 0;
}

int cli_buf_add(struct cli_buf *b, const void *data, size_t n)
{
	int err = cli_buf_reserve(b, n);

	if (err)
		return err;
	if (n)
		memcpy(b->p + b->len, data, n);
	b->len += n;
	b->p[b->len] = '\0';
	return 0;
}

int cli_buf_adds(struct cli_buf *b, const char *s)
{
	return cli_buf_add(b, s, strlen(s));
}

int cli_buf_addf(struct cli_buf *b, const char *fmt, ...)
{
	va_list ap;
	int n, err;

	if (b->err)
		return b->err;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->err = -EINVAL;
		return b->err;
	}
	err = cli_buf_reserve(b, (size_t)n);
	if (err)
		return err;
	va_start(ap, fmt);
	n = vsnprintf(b->p + b->len, (size_t)n + 1, fmt, ap);
	va_end(ap);
	if (n < 0) {
		b->err = -EINVAL;
		return b->err;
	}
	b->len += (size_t)n;
	return 0;
}

void cli_buf_reset(struct cli_buf *b)
{
	b->len = 0;
	if (b->p)
		b->p[0] = '\0';
}

void cli_buf_free(struct cli_buf *b)
{
	if (!b)
		return;
	free(b->p);
	memset(b, 0, sizeof(*b));
}

static bool cli_unreserved(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '-' || c == '.' || c == '_' || c == '~';
}

static void cli_buf_add_encoded(struct cli_buf *b, const char *s)
{
	static const char hex[] = "0123456789ABCDEF";

	for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
		char esc[3] = {'%', hex[*p >> 4], hex[*p & 0xf]};

		if (cli_unreserved(*p))
			cli_buf_add(b, p, 1);
		else
			cli_buf_add(b, esc, sizeof(esc));
	}
}

int cli_query_add(struct cli_buf *b, const char *key, const char *value)
{
	bool first = !b->p || !memchr(b->p, '?', b->len);

	cli_buf_add(b, first ? "?" : "&", 1);
	cli_buf_add_encoded(b, key);
	cli_buf_add(b, "=", 1);
	cli_buf_add_encoded(b, value);
	return b->err;
}

/* ------------------------------------------------------------ lines */

static int cli_lines_emit(struct cli_lines *l)
{
	struct cli_buf *b = &l->buf;
	int err;

	err = cli_buf_add(b, "", 0); /* a NUL-terminated p even for an empty line */
	if (err)
		return err;
	if (b->len && b->p[b->len - 1] == '\r')
		b->p[--b->len] = '\0';
	err = l->cb(l->ctx, b->p, b->len);
	cli_buf_reset(b);
	return err;
}

int cli_lines_feed(struct cli_lines *l, const char *data, size_t len)
{
	int err;

	while (len) {
		const char *nl = memchr(data, '\n', len);
		size_t n = nl ? (size_t)(nl - data) : len;

		if (n > l->max - l->buf.len)
			return -E2BIG;
		err = cli_buf_add(&l->buf, data, n);
		if (err)
			return err;
		if (!nl)
			break;
		data += n + 1;
		len -= n + 1;
		err = cli_lines_emit(l);
		if (err)
			return err;
	}
	return 0;
}

int cli_lines_end(struct cli_lines *l)
{
	if (!l->buf.len)
		return 0;
	return cli_lines_emit(l);
}

void cli_lines_free(struct cli_lines *l)
{
	if (l)
		cli_buf_free(&l->buf);
}

/* ------------------------------------------------------------ JSON strings */

/*
 * The length of the UTF-8 sequence that lead byte c starts (2..4) and the
 * range its second byte must be in (which excludes overlong forms,
 * surrogates and code points above U+10FFFF); 0 for a byte that starts none.
 */
static size_t cli_utf8_lead(unsigned char c, unsigned char *lo, unsigned char *hi)
{
	*lo = 0x80;
	*hi = 0xbf;
	if (c >= 0xc2 && c <= 0xdf)
		return 2;
	if (c == 0xe0)
		*lo = 0xa0;
	else if (c == 0xed)
		*hi = 0x9f;
	if (c >= 0xe0 && c <= 0xef)
		return 3;
	if (c == 0xf0)
		*lo = 0x90;
	else if (c == 0xf4)
		*hi = 0x8f;
	if (c >= 0xf0 && c <= 0xf4)
		return 4;
	return 0;
}

static void cli_json_escape(struct cli_buf *b, unsigned char c)
{
	switch (c) {
	case '"':
		cli_buf_add(b, "\\\"", 2);
		break;
	case '\\':
		cli_buf_add(b, "\\\\", 2);
		break;
	case '\n':
		cli_buf_add(b, "\\n", 2);
		break;
	case '\r':
		cli_buf_add(b, "\\r", 2);
		break;
	case '\t':
		cli_buf_add(b, "\\t", 2);
		break;
	case '\b':
		cli_buf_add(b, "\\b", 2);
		break;
	case '\f':
		cli_buf_add(b, "\\f", 2);
		break;
	default:
		cli_buf_addf(b, "\\u%04x", c);
		break;
	}
}

size_t cli_json_utf8(struct cli_buf *b, const uint8_t *in, size_t len, bool final)
{
	static const char fffd[] = "\xef\xbf\xbd";
	size_t i = 0, run = 0; /* in[run..i) is plain text not yet copied */

	while (i < len) {
		unsigned char c = in[i], lo, hi;
		size_t n, k;

		if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\') {
			i++;
			continue;
		}
		cli_buf_add(b, in + run, i - run);
		if (c < 0x80) {
			cli_json_escape(b, c);
			run = ++i;
			continue;
		}
		n = cli_utf8_lead(c, &lo, &hi);
		for (k = 1; n && k < n && i + k < len; k++) {
			unsigned char d = in[i + k];

			if (k == 1 ? d < lo || d > hi : (d & 0xc0) != 0x80)
				break;
		}
		if (n && k == n) {
			cli_buf_add(b, in + i, n);
		} else if (n && i + k == len && !final) {
			return i; /* an incomplete sequence: the next chunk may finish it */
		} else {
			/* one U+FFFD for the lead byte and the continuation bytes that fit it */
			cli_buf_add(b, fffd, 3);
		}
		i += k;
		run = i;
	}
	cli_buf_add(b, in + run, i - run);
	return i;
}
