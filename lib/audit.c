/*
 * Audit lines in Teleport's schema and the full JSON form of recording events.
 * Field names and codes are listed in docs/audit-events.md; keep the two in step.
 */
#include "audit.h"

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <inttypes.h>

#include "util.h"

struct audit_kind {
	const char *name;
	const char *code;
};

static const struct audit_kind *audit_kind_of(const Sessrec__Event *ev)
{
	static const struct audit_kind start = {"session.start", "T2000I"};
	static const struct audit_kind end = {"session.end", "T2004I"};
	static const struct audit_kind command = {"session.command", "T4000I"};
	static const struct audit_kind disk = {"session.disk", "T4001I"};
	static const struct audit_kind network = {"session.network", "T4002I"};
	static const struct audit_kind lost = {AUDIT_EV_LOST, AUDIT_CODE_LOST};

	if (!ev)
		return NULL;
	switch (ev->body_case) {
	case SESSREC__EVENT__BODY_START:
		return &start;
	case SESSREC__EVENT__BODY_END:
		return &end;
	case SESSREC__EVENT__BODY_COMMAND:
		return &command;
	case SESSREC__EVENT__BODY_DISK:
		return &disk;
	case SESSREC__EVENT__BODY_NETWORK:
		return &network;
	case SESSREC__EVENT__BODY_LOST:
		return &lost;
	default:
		return NULL;
	}
}

const char *audit_event_name(const Sessrec__Event *ev)
{
	const struct audit_kind *k = audit_kind_of(ev);

	return k ? k->name : NULL;
}

const char *audit_event_code(const Sessrec__Event *ev)
{
	const struct audit_kind *k = audit_kind_of(ev);

	return k ? k->code : NULL;
}

/*
 * Length of the well-formed UTF-8 sequence at p, or 0 when the byte at p does not
 * start one. Same rules as jansson's check (RFC 3629): no overlong forms, no
 * surrogates, nothing above U+10FFFF.
 */
static size_t audit_utf8_seq(const unsigned char *p, size_t left)
{
	unsigned char c = p[0];
	uint32_t cp, min;
	size_t n, i;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
		min = 0x80;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
		min = 0x800;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
		min = 0x10000;
	} else {
		return 0;
	}
	if (left < n)
		return 0;
	for (i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80)
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
		return 0;
	return n;
}

/*
 * An object written straight out as compact JSON, in field order. The agent
 * formats one line per kernel event (hundreds of thousands a second); building
 * a jansson tree for each cost a third of its CPU, so lines are written
 * directly, with jansson's compact syntax and escaping (the unit tests parse
 * every line back with jansson). The first failure sticks in err and later
 * puts become no-ops, so builders read as a plain list of fields.
 */
struct audit_obj {
	char *p;
	size_t len, cap;
	int err;
	bool first; /* no field yet in the innermost object or array */
};

/* Room for n more bytes and the NUL; false (and err set) when memory ran out. */
static bool audit_reserve(struct audit_obj *b, size_t n)
{
	size_t cap;
	char *np;

	if (b->err)
		return false;
	if (b->len + n + 1 <= b->cap)
		return true;
	cap = b->cap ? b->cap : 512;
	while (cap < b->len + n + 1)
		cap *= 2;
	np = realloc(b->p, cap);
	if (!np) {
		b->err = -ENOMEM;
		return false;
	}
	b->p = np;
	b->cap = cap;
	return true;
}

static void audit_raw(struct audit_obj *b, const char *s, size_t n)
{
	if (!audit_reserve(b, n))
		return;
	memcpy(b->p + b->len, s, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static void audit_sep(struct audit_obj *b)
{
	if (!b->first)
		audit_raw(b, ",", 1);
	b->first = false;
}

/*
 * True when none of the 8 bytes of w needs a second look: no control
 * character, quote, backslash or byte >= 0x80. It may say false for a plain
 * word (a borrow between bytes), never true for one that is not.
 */
static inline bool audit_word_plain(uint64_t w)
{
	const uint64_t ones = 0x0101010101010101ULL, highs = 0x8080808080808080ULL;
	uint64_t ctl = w - ones * 0x20;		      /* bytes < 0x20 set their high bit */
	uint64_t quote = (w ^ (ones * '"')) - ones;   /* '"' becomes 0xff */
	uint64_t bslash = (w ^ (ones * '\\')) - ones; /* '\\' becomes 0xff */

	return ((ctl | quote | bslash | w) & highs) == 0;
}

/*
 * A JSON string of arbitrary bytes: invalid UTF-8 becomes U+FFFD, controls are
 * escaped. Room for the worst case (6 bytes per input byte) is made once.
 * Plain text is copied 8 bytes at a time: paths, ids and argv are mostly plain.
 */
static void audit_strval(struct audit_obj *b, const char *s, size_t len)
{
	static const char hex[] = "0123456789abcdef";
	const unsigned char *u = (const unsigned char *)(s ? s : "");
	size_t i = 0, n;
	char *o;

	if (!s)
		len = 0;
	if (len > (SIZE_MAX - 3) / 6) {
		b->err = -EOVERFLOW;
		return;
	}
	if (!audit_reserve(b, len * 6 + 2))
		return;
	o = b->p + b->len;
	*o++ = '"';
	while (i < len) {
		unsigned char c;
		uint64_t w;

		if (len - i >= 8) {
			memcpy(&w, u + i, 8);
			if (audit_word_plain(w)) {
				memcpy(o, &w, 8);
				o += 8;
				i += 8;
				continue;
			}
		}
		c = u[i];
		if (c >= 0x20 && c != '"' && c != '\\' && c < 0x80) {
			*o++ = (char)c;
			i++;
			continue;
		}
		if (c >= 0x80) {
			n = audit_utf8_seq(u + i, len - i);
			if (n) {
				memcpy(o, u + i, n);
				o += n;
				i += n;
			} else {
				*o++ = (char)0xef; /* U+FFFD */
				*o++ = (char)0xbf;
				*o++ = (char)0xbd;
				i++;
			}
			continue;
		}
		*o++ = '\\';
		switch (c) {
		case '"':
		case '\\':
			*o++ = (char)c;
			break;
		case '\b':
			*o++ = 'b';
			break;
		case '\f':
			*o++ = 'f';
			break;
		case '\n':
			*o++ = 'n';
			break;
		case '\r':
			*o++ = 'r';
			break;
		case '\t':
			*o++ = 't';
			break;
		default:
			*o++ = 'u';
			*o++ = '0';
			*o++ = '0';
			*o++ = hex[c >> 4];
			*o++ = hex[c & 0xf];
			break;
		}
		i++;
	}
	*o++ = '"';
	*o = '\0';
	b->len = (size_t)(o - b->p);
}

/*
 * Keys. Our own key names are string literals, written with their quotes and
 * colon as one constant (AUDIT_KEY): the audit line of every kernel event has
 * about fifteen of them. Label keys come from users and go through escaping
 * (audit_key_esc).
 */
struct audit_k {
	const char *s; /* "\"name\":" */
	size_t len;
};
#define AUDIT_KEY(name) ((struct audit_k){"\"" name "\":", sizeof("\"" name "\":") - 1})

static void audit_key(struct audit_obj *b, struct audit_k k)
{
	audit_sep(b);
	audit_raw(b, k.s, k.len);
}

static void audit_key_esc(struct audit_obj *b, const char *key)
{
	audit_sep(b);
	audit_strval(b, key, strlen(key));
	audit_raw(b, ":", 1);
}

static void audit_strval_z(struct audit_obj *b, const char *s)
{
	audit_strval(b, s, s ? strlen(s) : 0);
}

static void audit_int(struct audit_obj *b, int64_t v)
{
	char num[24], *p = num + sizeof(num);
	uint64_t u = v < 0 ? (uint64_t)0 - (uint64_t)v : (uint64_t)v;

	do {
		*--p = (char)('0' + u % 10);
		u /= 10;
	} while (u);
	if (v < 0)
		*--p = '-';
	audit_raw(b, p, (size_t)(num + sizeof(num) - p));
}

static void audit_put_strn_(struct audit_obj *b, struct audit_k k, const char *s, size_t len)
{
	audit_key(b, k);
	audit_strval(b, s, len);
}

static void audit_put_str_(struct audit_obj *b, struct audit_k k, const char *s)
{
	audit_key(b, k);
	audit_strval_z(b, s);
}

static void audit_put_int_(struct audit_obj *b, struct audit_k k, int64_t v)
{
	audit_key(b, k);
	audit_int(b, v);
}

/* JSON integers are signed 64-bit for most readers; real cgroup ids and counters stay below. */
static void audit_put_u64_(struct audit_obj *b, struct audit_k k, uint64_t v)
{
	audit_put_int_(b, k, v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v);
}

static void audit_put_bool_(struct audit_obj *b, struct audit_k k, bool v)
{
	audit_key(b, k);
	audit_raw(b, v ? "true" : "false", v ? 4 : 5);
}

static void audit_put_time_(struct audit_obj *b, struct audit_k k, int64_t ns)
{
	char buf[40];

	/* util_rfc3339 assumes a non-negative time; nothing we record predates 1970. */
	util_rfc3339(ns < 0 ? 0 : ns, buf, sizeof(buf));
	audit_put_str_(b, k, buf);
}

#define audit_put_strn(b, name, s, len)	    audit_put_strn_(b, AUDIT_KEY(name), s, len)
#define audit_put_str(b, name, s)	    audit_put_str_(b, AUDIT_KEY(name), s)
#define audit_put_int(b, name, v)	    audit_put_int_(b, AUDIT_KEY(name), v)
#define audit_put_u64(b, name, v)	    audit_put_u64_(b, AUDIT_KEY(name), v)
#define audit_put_bool(b, name, v)	    audit_put_bool_(b, AUDIT_KEY(name), v)
#define audit_put_time(b, name, ns)	    audit_put_time_(b, AUDIT_KEY(name), ns)
#define audit_put_strv(b, name, v, n, from) audit_put_strv_(b, AUDIT_KEY(name), v, n, from)
#define audit_put_labels(b, name, l, n)	    audit_put_labels_(b, AUDIT_KEY(name), l, n)

/* v[from..n) as an array of strings. */
static void audit_put_strv_(struct audit_obj *b, struct audit_k k, char *const *v, size_t n,
			    size_t from)
{
	size_t i;

	if (!v)
		n = 0;
	audit_key(b, k);
	audit_raw(b, "[", 1);
	for (i = from; i < n; i++) {
		if (i > from)
			audit_raw(b, ",", 1);
		audit_strval(b, v[i], v[i] ? strlen(v[i]) : 0);
	}
	audit_raw(b, "]", 1);
}

/* Labels in the order given; on a repeated key the first one (the session's) wins. */
static void audit_put_labels_(struct audit_obj *b, struct audit_k k,
			      Sessrec__SessionStart__LabelsEntry *const *labels, size_t n)
{
	size_t i, j;

	audit_key(b, k);
	audit_raw(b, "{", 1);
	b->first = true;
	for (i = 0; i < n; i++) {
		const char *lk = labels[i] && labels[i]->key ? labels[i]->key : "";
		bool dup = false;

		for (j = 0; j < i && !dup; j++)
			dup = strcmp(labels[j] && labels[j]->key ? labels[j]->key : "", lk) == 0;
		if (dup)
			continue;
		audit_key_esc(b, lk);
		audit_strval_z(b, labels[i] ? labels[i]->value : NULL);
	}
	audit_raw(b, "}", 1);
	b->first = false;
}

/* Standard base64 with padding, NUL-terminated, malloc'd. */
static int audit_base64(const uint8_t *in, size_t len, char **out)
{
	static const char tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;
	char *buf;

	if (len / 3 + 1 > (SIZE_MAX - 1) / 4)
		return -EOVERFLOW;
	buf = malloc((len + 2) / 3 * 4 + 1);
	if (!buf)
		return -ENOMEM;
	for (i = 0; i + 2 < len; i += 3) {
		uint32_t v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 | in[i + 2];

		buf[o++] = tab[v >> 18 & 0x3f];
		buf[o++] = tab[v >> 12 & 0x3f];
		buf[o++] = tab[v >> 6 & 0x3f];
		buf[o++] = tab[v & 0x3f];
	}
	if (i < len) {
		uint32_t v = (uint32_t)in[i] << 16;

		if (i + 1 < len)
			v |= (uint32_t)in[i + 1] << 8;
		buf[o++] = tab[v >> 18 & 0x3f];
		buf[o++] = tab[v >> 12 & 0x3f];
		buf[o++] = i + 1 < len ? tab[v >> 6 & 0x3f] : '=';
		buf[o++] = '=';
	}
	buf[o] = '\0';
	*out = buf;
	return 0;
}

/* The start body's value when it has one, else the session's; NULL reads as "". */
static const char *audit_pick(const char *body, const char *session)
{
	return body && body[0] ? body : session;
}

static void audit_common(struct audit_obj *b, const Sessrec__Event *ev, const struct audit_ctx *ctx,
			 const char *name, const char *code)
{
	const Sessrec__SessionStart *st =
	    ev->body_case == SESSREC__EVENT__BODY_START ? ev->start : NULL;
	struct audit_ctx none = {0};

	if (!ctx)
		ctx = &none;

	audit_put_str(b, "event", name);
	if (code)
		audit_put_str(b, "code", code);
	audit_put_time(b, "time", ev->time_ns);
	audit_put_u64(b, "ei", ev->ei);
	audit_put_str(b, "uid", ev->uid);
	if (!st && ctx->fixed) {
		audit_sep(b);
		audit_raw(b, ctx->fixed, ctx->fixed_len);
		return;
	}
	audit_put_str(b, "sid", audit_pick(st ? st->sid : NULL, ctx->sid));
	audit_put_str(b, "server_id", audit_pick(st ? st->server_id : NULL, ctx->server_id));
	audit_put_str(b, "server_hostname",
		      audit_pick(st ? st->server_hostname : NULL, ctx->server_hostname));
	audit_put_str(b, "login", audit_pick(st ? st->login : NULL, ctx->login));
	audit_put_str(b, "user", audit_pick(st ? st->user : NULL, ctx->user));
}

static void audit_start(struct audit_obj *b, const Sessrec__SessionStart *st, bool full)
{
	char size[32];
	int n;

	n = snprintf(size, sizeof(size), "%u:%u", st->cols, st->rows);
	if (n < 0 || (size_t)n >= sizeof(size)) {
		if (!b->err)
			b->err = -EOVERFLOW;
		return;
	}
	audit_put_str(b, "size", size);
	audit_put_strv(b, "initial_command", st->initial_command, st->n_initial_command, 0);
	audit_put_str(b, "session_recording", "node");
	audit_put_str(b, "kind", st->kind);
	audit_put_labels(b, "labels", st->labels, st->n_labels);
	audit_put_u64(b, "cgroup_id", st->cgroup_id);
	if (full || (st->remote_addr && st->remote_addr[0]))
		audit_put_str(b, "remote_addr", st->remote_addr);
	if (full || (st->tty && st->tty[0]))
		audit_put_str(b, "tty", st->tty);
	if (full) {
		audit_put_int(b, "launcher_pid", st->launcher_pid);
		audit_put_int(b, "launcher_uid", st->launcher_uid);
	}
}

static void audit_end(struct audit_obj *b, const Sessrec__SessionEnd *en,
		      const struct audit_ctx *ctx, int64_t ev_time_ns)
{
	int64_t start = en->session_start_ns;
	int64_t stop = en->session_stop_ns;

	if (start == 0 && ctx)
		start = ctx->session_start_ns;
	if (stop == 0)
		stop = ev_time_ns;
	audit_put_bool(b, "enhanced_recording", true);
	audit_put_bool(b, "interactive", en->interactive);
	audit_put_strv(b, "participants", en->participants, en->n_participants, 0);
	audit_put_time(b, "session_start", start);
	audit_put_time(b, "session_stop", stop);
	audit_put_strv(b, "initial_command", en->initial_command, en->n_initial_command, 0);
	audit_put_int(b, "exit_code", en->exit_code);
	audit_put_str(b, "reason", en->reason);
}

static void audit_command(struct audit_obj *b, const Sessrec__Command *c, bool full)
{
	audit_put_int(b, "pid", c->pid);
	audit_put_int(b, "ppid", c->ppid);
	audit_put_u64(b, "cgroup_id", c->cgroup_id);
	audit_put_str(b, "program", c->program);
	audit_put_str(b, "path", c->path);
	/* Teleport leaves argv[0] out of the audit event: program and path name it. */
	audit_put_strv(b, "argv", c->argv, c->n_argv, full ? 0 : 1);
	if (full || c->argv_truncated)
		audit_put_bool(b, "argv_truncated", c->argv_truncated);
	audit_put_int(b, "return_code", c->return_code);
	/* "uid" is the event id in this schema; the numeric ids get their own names. */
	audit_put_int(b, "user_id", c->uid);
	audit_put_int(b, "group_id", c->gid);
}

static void audit_disk(struct audit_obj *b, const Sessrec__Disk *d, bool full)
{
	audit_put_int(b, "pid", d->pid);
	audit_put_u64(b, "cgroup_id", d->cgroup_id);
	audit_put_str(b, "program", d->program);
	audit_put_str(b, "path", d->path);
	audit_put_int(b, "flags", d->flags);
	audit_put_int(b, "return_code", d->return_code);
	if (full)
		audit_put_int(b, "user_id", d->uid);
}

static void audit_network(struct audit_obj *b, const Sessrec__Network *n, bool full)
{
	audit_put_int(b, "pid", n->pid);
	audit_put_u64(b, "cgroup_id", n->cgroup_id);
	audit_put_str(b, "program", n->program);
	audit_put_str(b, "src_addr", n->src_addr);
	audit_put_str(b, "dst_addr", n->dst_addr);
	audit_put_int(b, "dst_port", n->dst_port);
	audit_put_int(b, "version", n->version);
	audit_put_int(b, "operation", n->operation);
	audit_put_int(b, "action", n->action);
	audit_put_int(b, "src_port", n->src_port);
	audit_put_str(b, "protocol", n->protocol);
	audit_put_int(b, "return_code", n->return_code);
	if (full)
		audit_put_int(b, "user_id", n->uid);
}

static void audit_lost(struct audit_obj *b, const Sessrec__Lost *l)
{
	audit_put_str(b, "class", l->class_);
	audit_put_u64(b, "events", l->events);
	audit_put_u64(b, "bytes", l->bytes);
}

static void audit_print(struct audit_obj *b, const Sessrec__Print *p)
{
	const char *data = (const char *)p->data.data;
	size_t len = data ? p->data.len : 0;
	char *b64 = NULL;
	int err;

	audit_put_u64(b, "ci", p->ci);
	audit_put_u64(b, "ms", p->ms);
	audit_put_u64(b, "offset", p->offset);
	audit_put_int(b, "bytes", p->bytes);
	audit_put_int(b, "pid", p->pid);
	audit_put_str(b, "tty", p->tty);
	audit_put_strn(b, "data", data ? data : "", len);
	err = audit_base64(p->data.data, len, &b64);
	if (err < 0) {
		if (!b->err)
			b->err = err;
		return;
	}
	audit_put_str(b, "data_b64", b64);
	free(b64);
}

/* A body pointer that matches body_case; hand-built events may lack one. */
static bool audit_has_body(const Sessrec__Event *ev)
{
	switch (ev->body_case) {
	case SESSREC__EVENT__BODY_START:
		return ev->start;
	case SESSREC__EVENT__BODY_END:
		return ev->end;
	case SESSREC__EVENT__BODY_COMMAND:
		return ev->command;
	case SESSREC__EVENT__BODY_DISK:
		return ev->disk;
	case SESSREC__EVENT__BODY_NETWORK:
		return ev->network;
	case SESSREC__EVENT__BODY_PRINT:
		return ev->print;
	case SESSREC__EVENT__BODY_LOST:
		return ev->lost;
	default:
		return false;
	}
}

/* full: the `sessrec events --json` form (every field, print included). */
static int audit_render_obj(const Sessrec__Event *ev, const struct audit_ctx *ctx, bool full,
			    struct audit_obj *bp);

static int audit_render(const Sessrec__Event *ev, const struct audit_ctx *ctx, bool full,
			char **out)
{
	struct audit_obj b = {0};
	int err;

	if (!out)
		return -EINVAL;
	*out = NULL;
	err = audit_render_obj(ev, ctx, full, &b);
	if (err)
		free(b.p);
	else
		*out = b.p;
	return err;
}

int audit_format_buf(const Sessrec__Event *ev, const struct audit_ctx *ctx, char **buf, size_t *cap,
		     size_t *len)
{
	struct audit_obj b = {.p = *buf, .cap = *cap};
	int err = audit_render_obj(ev, ctx, false, &b);

	*buf = b.p;
	*cap = b.cap;
	*len = err ? 0 : b.len;
	return err;
}

static int audit_render_obj(const Sessrec__Event *ev, const struct audit_ctx *ctx, bool full,
			    struct audit_obj *bp)
{
	struct audit_obj b = *bp;
	const struct audit_kind *k;
	bool print;
	int err;

	if (!ev || !audit_has_body(ev))
		return -EINVAL;
	print = ev->body_case == SESSREC__EVENT__BODY_PRINT;
	if (print && !full)
		return -ENOENT; /* terminal data lives in recordings only */
	k = audit_kind_of(ev);
	if (!print && !k)
		return -EINVAL;

	b.first = true;
	audit_raw(&b, "{", 1);
	audit_common(&b, ev, ctx, print ? "print" : k->name, print ? NULL : k->code);
	switch (ev->body_case) {
	case SESSREC__EVENT__BODY_START:
		audit_start(&b, ev->start, full);
		break;
	case SESSREC__EVENT__BODY_END:
		audit_end(&b, ev->end, ctx, ev->time_ns);
		break;
	case SESSREC__EVENT__BODY_COMMAND:
		audit_command(&b, ev->command, full);
		break;
	case SESSREC__EVENT__BODY_DISK:
		audit_disk(&b, ev->disk, full);
		break;
	case SESSREC__EVENT__BODY_NETWORK:
		audit_network(&b, ev->network, full);
		break;
	case SESSREC__EVENT__BODY_LOST:
		audit_lost(&b, ev->lost);
		break;
	case SESSREC__EVENT__BODY_PRINT:
		audit_print(&b, ev->print);
		break;
	default:
		b.err = -EINVAL;
		break;
	}
	audit_raw(&b, "}", 1);
	err = b.err;
	*bp = b;
	return err;
}

int audit_ctx_fixed(const struct audit_ctx *ctx, char **out, size_t *len)
{
	struct audit_obj b = {0};

	b.first = true;
	audit_put_str(&b, "sid", ctx->sid);
	audit_put_str(&b, "server_id", ctx->server_id);
	audit_put_str(&b, "server_hostname", ctx->server_hostname);
	audit_put_str(&b, "login", ctx->login);
	audit_put_str(&b, "user", ctx->user);
	if (b.err) {
		free(b.p);
		return b.err;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

int audit_format(const Sessrec__Event *ev, const struct audit_ctx *ctx, char **out)
{
	return audit_render(ev, ctx, false, out);
}

int audit_event_json(const Sessrec__Event *ev, const struct audit_ctx *ctx, char **out)
{
	return audit_render(ev, ctx, true, out);
}
