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

#include <jansson.h>

#include "util.h"

/* Compact for one line per event; insertion order so that lines diff and grep predictably. */
#define AUDIT_DUMP_FLAGS (JSON_COMPACT | JSON_PRESERVE_ORDER)

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
 * s[0..len) with every byte that is not part of a well-formed sequence replaced by
 * U+FFFD, malloc'd into *out (not NUL-terminated), or *out = NULL when s is valid
 * as it is. Paths, argv and comm come from the kernel as raw bytes; jansson rejects
 * invalid UTF-8, and SIEM pipelines would choke on it anyway.
 */
static int audit_utf8_fix(const char *s, size_t len, char **out, size_t *outlen)
{
	static const char repl[3] = {(char)0xef, (char)0xbf, (char)0xbd};
	const unsigned char *p = (const unsigned char *)s;
	char *buf = NULL;
	size_t i = 0, o = 0, n;

	*out = NULL;
	*outlen = len;
	while (i < len && (n = audit_utf8_seq(p + i, len - i)) > 0)
		i += n;
	if (i == len)
		return 0;
	if (len > SIZE_MAX / 3)
		return -EOVERFLOW;
	buf = malloc(len * 3);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, s, i);
	o = i;
	while (i < len) {
		n = audit_utf8_seq(p + i, len - i);
		if (n == 0) {
			memcpy(buf + o, repl, sizeof(repl));
			o += sizeof(repl);
			i++;
		} else {
			memcpy(buf + o, s + i, n);
			o += n;
			i += n;
		}
	}
	*out = buf;
	*outlen = o;
	return 0;
}

/* A JSON string of arbitrary bytes (NULL reads as ""); NULL on allocation failure. */
static json_t *audit_jstrn(const char *s, size_t len)
{
	char *fixed = NULL;
	size_t flen;
	json_t *j;

	if (!s)
		return json_string("");
	if (audit_utf8_fix(s, len, &fixed, &flen) < 0)
		return NULL;
	j = json_stringn(fixed ? fixed : s, flen);
	free(fixed);
	return j;
}

static json_t *audit_jstr(const char *s)
{
	return audit_jstrn(s, s ? strlen(s) : 0);
}

/*
 * An object under construction. The first failure sticks in err and every later
 * put becomes a no-op, so that builders read as a plain list of fields and the
 * one check at the end covers every call.
 */
struct audit_obj {
	json_t *o;
	int err;
};

/* Takes v (a new reference, or NULL after a failed allocation). */
static void audit_put(struct audit_obj *b, const char *key, json_t *v)
{
	if (!v) {
		if (!b->err)
			b->err = -ENOMEM;
		return;
	}
	if (b->err) {
		json_decref(v);
		return;
	}
	/* json_object_set_new consumes v on failure too. */
	if (json_object_set_new(b->o, key, v) < 0)
		b->err = -ENOMEM;
}

static void audit_put_str(struct audit_obj *b, const char *key, const char *s)
{
	audit_put(b, key, audit_jstr(s));
}

static void audit_put_int(struct audit_obj *b, const char *key, int64_t v)
{
	audit_put(b, key, json_integer((json_int_t)v));
}

/* JSON integers are signed 64-bit here; real cgroup ids and counters stay far below. */
static void audit_put_u64(struct audit_obj *b, const char *key, uint64_t v)
{
	audit_put_int(b, key, v > (uint64_t)INT64_MAX ? INT64_MAX : (int64_t)v);
}

static void audit_put_bool(struct audit_obj *b, const char *key, bool v)
{
	audit_put(b, key, json_boolean(v));
}

static void audit_put_time(struct audit_obj *b, const char *key, int64_t ns)
{
	char buf[40];

	/* util_rfc3339 assumes a non-negative time; nothing we record predates 1970. */
	util_rfc3339(ns < 0 ? 0 : ns, buf, sizeof(buf));
	audit_put(b, key, json_string(buf));
}

/* v[from..n) as an array of strings. */
static void audit_put_strv(struct audit_obj *b, const char *key, char *const *v, size_t n,
			   size_t from)
{
	json_t *arr = json_array();
	size_t i;

	if (!v)
		n = 0;
	for (i = from; arr && i < n; i++) {
		if (json_array_append_new(arr, audit_jstr(v[i])) < 0) {
			json_decref(arr);
			arr = NULL;
		}
	}
	audit_put(b, key, arr);
}

/* Labels in the order given; on a repeated key the first one (the session's) wins. */
static void audit_put_labels(struct audit_obj *b, const char *key,
			     Sessrec__SessionStart__LabelsEntry *const *labels, size_t n)
{
	json_t *obj = json_object();
	size_t i;

	for (i = 0; obj && i < n; i++) {
		const char *k = labels[i] && labels[i]->key ? labels[i]->key : "";
		char *fixed = NULL;
		size_t klen;
		int err;

		err = audit_utf8_fix(k, strlen(k), &fixed, &klen);
		if (err == 0 && !json_object_getn(obj, fixed ? fixed : k, klen))
			err = json_object_setn_new(obj, fixed ? fixed : k, klen,
						   audit_jstr(labels[i] ? labels[i]->value : NULL));
		free(fixed);
		if (err < 0) {
			json_decref(obj);
			obj = NULL;
		}
	}
	audit_put(b, key, obj);
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
	audit_put(b, "data", audit_jstrn(data ? data : "", len));
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
static int audit_render(const Sessrec__Event *ev, const struct audit_ctx *ctx, bool full,
			char **out)
{
	struct audit_obj b = {NULL, 0};
	const struct audit_kind *k;
	bool print;
	char *s;
	int err;

	if (!out)
		return -EINVAL;
	*out = NULL;
	if (!ev || !audit_has_body(ev))
		return -EINVAL;
	print = ev->body_case == SESSREC__EVENT__BODY_PRINT;
	if (print && !full)
		return -ENOENT; /* terminal data lives in recordings only */
	k = audit_kind_of(ev);
	if (!print && !k)
		return -EINVAL;

	b.o = json_object();
	if (!b.o) {
		err = -ENOMEM;
		goto out;
	}
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
	err = b.err;
	if (err < 0)
		goto out;
	/* jansson allocates with malloc unless told otherwise; callers free() the line. */
	s = json_dumps(b.o, AUDIT_DUMP_FLAGS);
	if (!s) {
		err = -ENOMEM;
		goto out;
	}
	*out = s;
out:
	json_decref(b.o);
	return err;
}

int audit_format(const Sessrec__Event *ev, const struct audit_ctx *ctx, char **out)
{
	return audit_render(ev, ctx, false, out);
}

int audit_event_json(const Sessrec__Event *ev, const struct audit_ctx *ctx, char **out)
{
	return audit_render(ev, ctx, true, out);
}
