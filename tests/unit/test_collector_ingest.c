/*
 * collector/ingest.c on real recordings (lib/rec's writer) and the local
 * store: every refusal of a part upload, completion and what it indexes and
 * audits, idempotence, damage found at completion, and concurrent uploaders.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/sha.h>
#include <sqlite3.h>
#include <zlib.h>

#include "../../collector/collector.h"
#include "log.h"
#include "rec.h"

#define SID_A "0b7e9a52-6f1c-4d3e-9a8b-1c2d3e4f5a6b"
#define SID_B "7f3e2d1c-0b9a-4876-9543-21fedcba9876"
#define T0    1700000000000000000LL

static const struct store_ops *ops = &store_local_ops;
static char root[256];
static unsigned int seq;

/* ------------------------------------------------------------ recordings */

#define MAX_PARTS 64

/* A recording as its parts, captured from the writer's on_part hook. */
struct rec {
	uint8_t *part[MAX_PARTS];
	size_t len[MAX_PARTS];
	uint32_t n;
	uint64_t events, audit_lines, commands;
};

static int rec_cb(void *ctx, uint32_t index, const uint8_t *part, size_t len, bool final)
{
	struct rec *r = ctx;

	(void) final;
	assert_int_equal(index, r->n);
	assert_true(r->n < MAX_PARTS);
	r->part[r->n] = malloc(len);
	assert_non_null(r->part[r->n]);
	memcpy(r->part[r->n], part, len);
	r->len[r->n++] = len;
	return 0;
}

static void rec_free(struct rec *r)
{
	for (uint32_t i = 0; i < r->n; i++)
		free(r->part[i]);
	memset(r, 0, sizeof(*r));
}

/* Storage for one event of any type. */
struct tev {
	Sessrec__Event ev;
	Sessrec__SessionStart start;
	Sessrec__SessionStart__LabelsEntry lab[2], *labp[2];
	Sessrec__SessionEnd end;
	Sessrec__Command cmd;
	Sessrec__Disk disk;
	Sessrec__Network net;
	Sessrec__Print print;
	Sessrec__Lost lost;
	char *argv[3];
	char uid[40], sid[40], arg[64];
	uint8_t data[300];
};

/*
 * Event ei of a session of n events (with_end: the last one is session.end):
 * start, then command, print, disk, network, print, lost, over and over.
 * salt changes every timestamp, so two recordings of one sid differ.
 */
static void tev_make(struct tev *t, const char *sid, uint64_t ei, uint64_t n, bool with_end,
		     int64_t salt)
{
	memset(t, 0, sizeof(*t));
	sessrec__event__init(&t->ev);
	t->ev.ei = ei;
	t->ev.time_ns = T0 + salt + (int64_t)ei * 1000000;
	snprintf(t->uid, sizeof(t->uid), "00000000-0000-4000-8000-%012llx",
		 (unsigned long long)(ei + (uint64_t)salt * 1000));
	t->ev.uid = t->uid;
	if (ei == 0) {
		sessrec__session_start__init(&t->start);
		snprintf(t->sid, sizeof(t->sid), "%s", sid);
		t->start.sid = t->sid;
		t->start.server_id = "node-id-1";
		t->start.server_hostname = "web-1";
		t->start.login = "root";
		t->start.user = "alice";
		t->start.kind = "ssh";
		t->argv[0] = "bash";
		t->argv[1] = "-l";
		t->start.initial_command = t->argv;
		t->start.n_initial_command = 2;
		for (int i = 0; i < 2; i++) {
			sessrec__session_start__labels_entry__init(&t->lab[i]);
			t->lab[i].key = i ? "team" : "env";
			t->lab[i].value = i ? "ops" : "prod";
			t->labp[i] = &t->lab[i];
		}
		t->start.labels = t->labp;
		t->start.n_labels = 2;
		t->start.cols = 120;
		t->start.rows = 40;
		t->ev.body_case = SESSREC__EVENT__BODY_START;
		t->ev.start = &t->start;
		return;
	}
	if (with_end && ei == n - 1) {
		sessrec__session_end__init(&t->end);
		t->end.session_start_ns = T0 + salt;
		t->end.session_stop_ns = t->ev.time_ns;
		t->end.exit_code = 7;
		t->end.reason = "exited";
		t->ev.body_case = SESSREC__EVENT__BODY_END;
		t->ev.end = &t->end;
		return;
	}
	switch (ei % 6) {
	case 1:
		sessrec__command__init(&t->cmd);
		snprintf(t->arg, sizeof(t->arg), "/etc/hosts-%llu", (unsigned long long)ei);
		t->cmd.pid = (uint32_t)(100 + ei);
		t->cmd.program = "vim";
		t->cmd.path = "/usr/bin/vim";
		t->argv[0] = "vim";
		t->argv[1] = t->arg;
		t->cmd.argv = t->argv;
		t->cmd.n_argv = 2;
		t->ev.body_case = SESSREC__EVENT__BODY_COMMAND;
		t->ev.command = &t->cmd;
		break;
	case 3:
		sessrec__disk__init(&t->disk);
		t->disk.program = "vim";
		t->disk.path = "/etc/hosts";
		t->disk.flags = 2;
		t->ev.body_case = SESSREC__EVENT__BODY_DISK;
		t->ev.disk = &t->disk;
		break;
	case 4:
		sessrec__network__init(&t->net);
		t->net.program = "curl";
		t->net.src_addr = "10.0.0.1";
		t->net.dst_addr = "10.1.2.3";
		t->net.dst_port = 443;
		t->net.version = 4;
		t->net.protocol = "tcp";
		t->ev.body_case = SESSREC__EVENT__BODY_NETWORK;
		t->ev.network = &t->net;
		break;
	case 5:
		sessrec__lost__init(&t->lost);
		t->lost.class_ = "disk";
		t->lost.events = 3;
		t->ev.body_case = SESSREC__EVENT__BODY_LOST;
		t->ev.lost = &t->lost;
		break;
	default:
		sessrec__print__init(&t->print);
		for (size_t i = 0; i < sizeof(t->data); i++)
			t->data[i] = (uint8_t)(ei * 131 + i * 7);
		t->print.ci = ei;
		t->print.bytes = sizeof(t->data);
		t->print.data.data = t->data;
		t->print.data.len = sizeof(t->data);
		t->ev.body_case = SESSREC__EVENT__BODY_PRINT;
		t->ev.print = &t->print;
		break;
	}
}

/* A recording of n events of session sid in parts of about part_size raw bytes. */
static void rec_build(struct rec *r, const char *sid, uint64_t n, bool with_end, int64_t salt,
		      size_t part_size)
{
	struct rec_writer_opts o = {.part_size = part_size, .no_fsync = true};
	struct rec_writer *w;
	struct tev t;
	char path[400];

	memset(r, 0, sizeof(*r));
	o.on_part = rec_cb;
	o.cb_ctx = r;
	snprintf(path, sizeof(path), "%s/rec-%u", root, seq++);
	assert_int_equal(rec_writer_open(&w, path, sid, &o), 0);
	for (uint64_t ei = 0; ei < n; ei++) {
		tev_make(&t, sid, ei, n, with_end, salt);
		assert_int_equal(rec_writer_append(w, &t.ev), 0);
		r->events++;
		r->audit_lines += t.ev.body_case != SESSREC__EVENT__BODY_PRINT;
		r->commands += t.ev.body_case == SESSREC__EVENT__BODY_COMMAND;
	}
	assert_int_equal(rec_writer_close(w), 0);
	assert_int_equal(unlink(path), 0);
}

/* A part made by hand, for what no writer makes: a record per event. */
static void craft(uint8_t **out, size_t *outlen, uint32_t index, uint16_t flags,
		  const uint8_t prev[32], Sessrec__Event *const *evs, size_t n)
{
	struct rec_part_hdr h = {0};
	uint8_t *raw = NULL, *part;
	size_t rawlen = 0, k, bound;
	z_stream zs = {0};

	for (size_t i = 0; i < n; i++) {
		k = sessrec__event__get_packed_size(evs[i]);
		raw = realloc(raw, rawlen + 4 + k);
		assert_non_null(raw);
		raw[rawlen] = (uint8_t)(k >> 24);
		raw[rawlen + 1] = (uint8_t)(k >> 16);
		raw[rawlen + 2] = (uint8_t)(k >> 8);
		raw[rawlen + 3] = (uint8_t)k;
		assert_int_equal(sessrec__event__pack(evs[i], raw + rawlen + 4), k);
		rawlen += 4 + k;
	}
	assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
	bound = deflateBound(&zs, rawlen);
	part = malloc(REC_HDR_SIZE + bound);
	assert_non_null(part);
	zs.next_in = raw;
	zs.avail_in = (uInt)rawlen;
	zs.next_out = part + REC_HDR_SIZE;
	zs.avail_out = (uInt)bound;
	assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
	h.version = REC_VERSION;
	h.flags = flags;
	h.index = index;
	h.events = (uint32_t)n;
	h.raw_size = (uint32_t)rawlen;
	h.body_size = (uint32_t)(bound - zs.avail_out);
	h.first_ei = evs[0]->ei;
	h.last_ei = evs[n - 1]->ei;
	memcpy(h.prev_hash, prev, 32);
	SHA256(part + REC_HDR_SIZE, h.body_size, h.body_hash);
	deflateEnd(&zs);
	rec_hdr_encode(&h, part);
	*out = part;
	*outlen = REC_HDR_SIZE + h.body_size;
	free(raw);
}

/* ------------------------------------------------------------ the collector side */

struct env {
	char dir[300];
	struct collector_config cfg;
	struct store *st;
};

static void env_open(struct env *e)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->dir, sizeof(e->dir), "%s/d%u", root, seq++);
	e->cfg.data_dir = e->dir;
	e->cfg.audit_rotate_size = 1 << 20;
	e->cfg.audit_keep = 2;
	assert_int_equal(ops->open(&e->st, &e->cfg), 0);
}

static void env_close(struct env *e)
{
	ops->close(e->st);
	e->st = NULL;
}

/* Upload a part: the status, and the reason must contain want_why. */
static void put(struct env *e, const char *sid, uint32_t n, const uint8_t *buf, size_t len,
		int want, const char *want_why)
{
	char why[256] = "?";
	int status = 0;

	int err = collector_part_upload(e->st, ops, sid, n, buf, len, &status, why, sizeof(why));

	if (err)
		fail_msg("part %u: error %d (%d \"%s\")", n, err, status, why);
	if (status != want || (want_why && !strstr(why, want_why)))
		fail_msg("part %u: got %d \"%s\", want %d \"%s\"", n, status, why, want,
			 want_why ? want_why : "");
}

static void put_all(struct env *e, const char *sid, const struct rec *r)
{
	for (uint32_t i = 0; i < r->n; i++)
		put(e, sid, i, r->part[i], r->len[i], 201, "stored");
}

static void complete(struct env *e, const char *sid, const char *node, uint32_t parts,
		     const char *end, int want, const char *want_why)
{
	char why[400] = "?";
	int status = 0;

	assert_int_equal(collector_session_complete(e->st, ops, sid, node, parts, end, &status, why,
						    sizeof(why)),
			 0);
	if (status != want || (want_why && !strstr(why, want_why)))
		fail_msg("complete: got %d \"%s\", want %d \"%s\"", status, why, want,
			 want_why ? want_why : "");
}

struct lines {
	size_t n;
	char *line[2000];
};

static int lines_cb(void *ctx, uint64_t cursor, const char *line)
{
	struct lines *l = ctx;

	(void)cursor;
	assert_true(l->n < 2000);
	l->line[l->n++] = strdup(line);
	return 0;
}

static void lines_read(struct env *e, struct lines *l)
{
	uint64_t cur = 0, next = 0;

	memset(l, 0, sizeof(*l));
	do {
		cur = next;
		assert_int_equal(ops->audit_read(e->st, cur, 333, lines_cb, l, &next), 0);
	} while (next != cur);
}

static void lines_free(struct lines *l)
{
	for (size_t i = 0; i < l->n; i++)
		free(l->line[i]);
	l->n = 0;
}

static json_t *parse(const char *line)
{
	json_error_t jerr;
	json_t *j = json_loads(line, 0, &jerr);

	if (!j)
		fail_msg("not JSON (%s): %s", jerr.text, line);
	return j;
}

static const char *jstr(json_t *j, const char *key)
{
	const char *s = json_string_value(json_object_get(j, key));

	return s ? s : "(none)";
}

static size_t count_list(struct env *e, const struct store_filter *f);

/* ------------------------------------------------------------ tests */

static void test_upload_complete(void **state)
{
	struct store_session ss;
	struct store_filter f = {0};
	struct lines l;
	struct rec r;
	struct env e;
	uint64_t bytes = 0;
	json_t *j;

	(void)state;
	rec_build(&r, SID_A, 60, true, 0, 1024);
	assert_true(r.n >= 5);
	env_open(&e);

	put(&e, SID_A, 0, r.part[0], r.len[0], 201, "stored");
	assert_int_equal(ops->session_get(e.st, SID_A, &ss), 0);
	assert_string_equal(ss.status, "uploading");
	assert_string_equal(ss.node, "web-1");
	assert_string_equal(ss.user, "alice");
	assert_string_equal(ss.login, "root");
	assert_string_equal(ss.kind, "ssh");
	assert_string_equal(ss.labels_json, "{\"env\":\"prod\",\"team\":\"ops\"}");
	assert_string_equal(ss.initial_command_json, "[\"bash\",\"-l\"]");
	assert_int_equal(ss.start_ns, T0);
	assert_int_equal(ss.end_ns, 0);
	assert_int_equal(ss.cols, 120);
	assert_int_equal(ss.rows, 40);
	assert_int_equal(ss.parts, 1);
	assert_int_equal(ss.bytes, r.len[0]);
	store_session_clear(&ss);
	for (uint32_t i = 1; i < r.n; i++)
		put(&e, SID_A, i, r.part[i], r.len[i], 201, "stored");
	for (uint32_t i = 0; i < r.n; i++)
		bytes += r.len[i];
	assert_int_equal(ops->session_get(e.st, SID_A, &ss), 0);
	assert_int_equal(ss.parts, r.n);
	assert_int_equal(ss.bytes, bytes);
	store_session_clear(&ss);
	/* not searchable before completion */
	f.command = "hosts-7";
	assert_int_equal(count_list(&e, &f), 0);

	complete(&e, SID_A, "node-cn", r.n, "{\"exit_code\":99}", 200, "complete");
	assert_int_equal(ops->session_get(e.st, SID_A, &ss), 0);
	assert_string_equal(ss.status, "complete");
	assert_string_equal(ss.closed_by, "session");
	assert_string_equal(ss.node, "node-cn"); /* the certificate's name wins */
	assert_string_equal(ss.user, "alice");
	assert_int_equal(ss.start_ns, T0);
	assert_int_equal(ss.end_ns, T0 + 59 * 1000000LL);
	assert_int_equal(ss.exit_code, 7); /* the recording's session.end wins */
	assert_int_equal(ss.events, 60);
	assert_int_equal(ss.commands, r.commands);
	assert_int_equal(ss.parts, r.n);
	assert_int_equal(ss.bytes, bytes);
	store_session_clear(&ss);

	/* events indexed */
	assert_int_equal(count_list(&e, &f), 1);
	f.command = "/usr/bin/vim";
	assert_int_equal(count_list(&e, &f), 1);
	f.command = "vim /etc/hosts-13";
	assert_int_equal(count_list(&e, &f), 1);
	f.command = "hosts-8"; /* ei 8 is not a command */
	assert_int_equal(count_list(&e, &f), 0);
	f.command = NULL;
	f.addr = "10.1.2.3";
	assert_int_equal(count_list(&e, &f), 1);

	/* the audit trail: every event but terminal output, in order, then session.upload */
	lines_read(&e, &l);
	assert_int_equal(l.n, r.audit_lines + 1);
	for (size_t i = 0; i + 1 < l.n; i++) {
		j = parse(l.line[i]);
		if (i == 0)
			assert_string_equal(jstr(j, "event"), "session.start");
		if (i + 2 == l.n)
			assert_string_equal(jstr(j, "event"), "session.end");
		assert_string_equal(jstr(j, "sid"), SID_A);
		assert_string_equal(jstr(j, "user"), "alice");
		assert_string_equal(jstr(j, "server_hostname"), "web-1");
		assert_string_not_equal(jstr(j, "event"), "print");
		if (i > 0)
			assert_true(json_integer_value(json_object_get(j, "ei")) > 0);
		json_decref(j);
	}
	j = parse(l.line[l.n - 1]);
	assert_string_equal(jstr(j, "event"), "session.upload");
	assert_string_equal(jstr(j, "code"), "T2005I");
	assert_string_equal(jstr(j, "sid"), SID_A);
	assert_string_equal(jstr(j, "server_id"), "node-id-1");
	assert_string_equal(jstr(j, "server_hostname"), "web-1");
	assert_string_equal(jstr(j, "url"), "/v1/sessions/" SID_A "/recording");
	assert_int_equal(json_integer_value(json_object_get(j, "ei")), 2147483647);
	assert_int_equal(strlen(jstr(j, "uid")), 36);
	assert_int_equal(strlen(jstr(j, "time")), 24);
	json_decref(j);
	lines_free(&l);

	env_close(&e);
	rec_free(&r);
}

static void test_idempotent(void **state)
{
	struct store_session ss;
	struct lines l;
	struct rec r;
	struct env e;
	size_t before;

	(void)state;
	rec_build(&r, SID_A, 40, true, 0, 700);
	assert_true(r.n >= 3);
	env_open(&e);
	put(&e, SID_A, 0, r.part[0], r.len[0], 201, NULL);
	put(&e, SID_A, 0, r.part[0], r.len[0], 200, "already stored");
	put(&e, SID_A, 1, r.part[1], r.len[1], 201, NULL);
	put(&e, SID_A, 1, r.part[1], r.len[1], 200, "already stored");
	put(&e, SID_A, 0, r.part[0], r.len[0], 200, "already stored");
	assert_int_equal(ops->session_get(e.st, SID_A, &ss), 0);
	assert_int_equal(ss.parts, 2); /* repeats count once */
	assert_int_equal(ss.bytes, r.len[0] + r.len[1]);
	store_session_clear(&ss);
	for (uint32_t i = 2; i < r.n; i++)
		put(&e, SID_A, i, r.part[i], r.len[i], 201, NULL);

	complete(&e, SID_A, "n1", r.n, NULL, 200, "complete");
	lines_read(&e, &l);
	before = l.n;
	lines_free(&l);
	assert_int_equal(before, r.audit_lines + 1);
	/* completing again, even with other metadata: nothing changes */
	complete(&e, SID_A, "n2", r.n, "{\"closed_by\":\"completer\"}", 200, "already");
	complete(&e, SID_A, "n2", r.n + 5, NULL, 200, "already");
	lines_read(&e, &l);
	assert_int_equal(l.n, before);
	lines_free(&l);
	assert_int_equal(ops->session_get(e.st, SID_A, &ss), 0);
	assert_string_equal(ss.node, "n1");
	assert_string_equal(ss.closed_by, "session");
	store_session_clear(&ss);
	/* a lost answer's retry still gets 200; anything new is refused */
	put(&e, SID_A, 1, r.part[1], r.len[1], 200, "already stored");
	{
		struct tev t;
		Sessrec__Event *evs[1] = {&t.ev};
		uint8_t prev[32], *buf;
		size_t len;

		tev_make(&t, SID_A, 1, 40, true, 0);
		t.ev.ei = 40;
		SHA256(r.part[r.n - 1], r.len[r.n - 1], prev);
		craft(&buf, &len, r.n, REC_FLAG_FINAL, prev, evs, 1);
		put(&e, SID_A, r.n, buf, len, 409, "session is complete");
		free(buf);
	}
	env_close(&e);
	rec_free(&r);
}

static void test_refusals(void **state)
{
	struct rec a, b, other;
	struct env e;
	uint8_t *buf;
	size_t len = 0;

	(void)state;
	rec_build(&a, SID_A, 40, true, 0, 700);
	rec_build(&b, SID_A, 40, true, 5, 700); /* same session id, other content */
	rec_build(&other, SID_B, 40, true, 0, 700);
	assert_true(a.n >= 3 && b.n >= 3);
	env_open(&e);

	/* a part of another session */
	put(&e, SID_A, 0, other.part[0], other.len[0], 409, "does not chain to session");
	/* the previous part first */
	put(&e, SID_A, 1, a.part[1], a.len[1], 409, "part 0 is missing");
	put(&e, SID_A, 0, a.part[0], a.len[0], 201, NULL);
	/* another part under a stored number */
	put(&e, SID_A, 0, b.part[0], b.len[0], 409, "a different part 0 is already stored");
	/* a part 1 that follows another part 0 */
	put(&e, SID_A, 1, b.part[1], b.len[1], 409, "does not chain to part 0");
	put(&e, SID_A, 2, a.part[2], a.len[2], 409, "part 1 is missing");

	/* cut short, trailing bytes, shorter than a header, no header */
	put(&e, SID_A, 1, a.part[1], a.len[1] - 1, 400, "truncated or trailing");
	buf = malloc(a.len[1] + 1);
	assert_non_null(buf);
	memcpy(buf, a.part[1], a.len[1]);
	buf[a.len[1]] = 0;
	put(&e, SID_A, 1, buf, a.len[1] + 1, 400, "truncated or trailing");
	put(&e, SID_A, 1, a.part[1], 50, 400, "shorter than a part header");
	put(&e, SID_A, 1, NULL, 0, 400, "shorter than a part header");
	memcpy(buf, "NOTAPART", 8);
	put(&e, SID_A, 1, buf, a.len[1], 400, "part header: bad magic");
	/* the body altered */
	memcpy(buf, a.part[1], a.len[1]);
	buf[a.len[1] - 3] ^= 0x40;
	put(&e, SID_A, 1, buf, a.len[1], 400, "body hash mismatch");
	free(buf);
	/* uploaded under the wrong number */
	put(&e, SID_A, 2, a.part[1], a.len[1], 400, "the header says part 1, uploaded as part 2");
	/* not a session id */
	put(&e, "../../etc/passwd", 0, a.part[0], a.len[0], 400, "not a UUID");
	/* another spelling is another session: its chain seed differs */
	put(&e, "0B7E9A52-6F1C-4D3E-9A8B-1C2D3E4F5A6B", 0, a.part[0], a.len[0], 409,
	    "does not chain to session");

	/* nothing of the refused parts was stored */
	assert_int_equal(ops->part_stat(e.st, SID_A, 1, NULL, NULL), -ENOENT);
	assert_int_equal(ops->part_stat(e.st, SID_B, 0, NULL, NULL), -ENOENT);
	/* and the good one still goes in */
	put(&e, SID_A, 1, a.part[1], a.len[1], 201, NULL);

	/* a part 0 that hashes and chains right but does not start with session.start */
	{
		struct tev t;
		Sessrec__Event *evs[1] = {&t.ev};
		uint8_t seed[32];

		tev_make(&t, SID_B, 1, 40, true, 0); /* a command */
		t.ev.ei = 0;
		rec_chain_seed(SID_B, seed);
		craft(&buf, &len, 0, 0, seed, evs, 1);
		put(&e, SID_B, 0, buf, len, 400, "the first event is not a session.start");
		free(buf);
		assert_int_equal(ops->part_stat(e.st, SID_B, 0, NULL, NULL), -ENOENT);
	}
	env_close(&e);
	rec_free(&a);
	rec_free(&b);
	rec_free(&other);
}

static void test_complete_refusals(void **state)
{
	char path[600];
	struct rec r;
	struct env e;
	int fd;

	(void)state;
	rec_build(&r, SID_A, 40, true, 0, 700);
	assert_true(r.n >= 4);
	env_open(&e);
	complete(&e, SID_A, "n", r.n, NULL, 409, "part 0 of");
	put(&e, SID_A, 0, r.part[0], r.len[0], 201, NULL);
	put(&e, SID_A, 1, r.part[1], r.len[1], 201, NULL);
	complete(&e, SID_A, "n", r.n, NULL, 409, "part 2 of");
	complete(&e, SID_A, "n", 0, NULL, 400, "at least 1");
	complete(&e, SID_A, "n", 2, NULL, 409, "part 1 is not final");
	complete(&e, SID_A, "n", 1, NULL, 409, "part 1 is stored");
	complete(&e, "nope", "n", 1, NULL, 400, "not a UUID");
	complete(&e, SID_A, "n", r.n, "{\"closed_by\":", 400, "not JSON");
	complete(&e, SID_A, "n", r.n, "[1]", 400, "not a JSON object");
	complete(&e, SID_A, "n", r.n, "{\"closed_by\":\"me\"}", 400, "closed_by");
	complete(&e, SID_A, "n", r.n, "{\"exit_code\":\"1\"}", 400, "exit_code");
	complete(&e, SID_A, "n", r.n, "{\"session_stop\":\"yesterday\"}", 400, "session_stop");
	for (uint32_t i = 2; i < r.n; i++)
		put(&e, SID_A, i, r.part[i], r.len[i], 201, NULL);

	/* a stored part damaged on disk behind the collector's back: 422 with the reason */
	snprintf(path, sizeof(path), "%s/sessions/%s/2.part", e.dir, SID_A);
	fd = open(path, O_WRONLY | O_CLOEXEC);
	assert_true(fd >= 0);
	assert_int_equal(pwrite(fd, "\xff\xff", 2, (off_t)r.len[2] - 4), 2);
	close(fd);
	complete(&e, SID_A, "n", r.n, NULL, 422, "part 2: body hash mismatch");
	{
		struct store_session ss;
		struct lines l;

		assert_int_equal(ops->session_get(e.st, SID_A, &ss), 0);
		assert_string_equal(ss.status, "uploading");
		store_session_clear(&ss);
		lines_read(&e, &l);
		assert_int_equal(l.n, 0);
	}
	env_close(&e);
	rec_free(&r);
}

static void test_closed_by_completer(void **state)
{
	struct store_session ss;
	struct lines l;
	struct rec r;
	struct env e;
	json_t *j;

	(void)state;
	/* the agent crashed: no session.end; its completer closes the session */
	rec_build(&r, SID_B, 25, false, 0, 100000);
	assert_int_equal(r.n, 1);
	env_open(&e);
	put_all(&e, SID_B, &r);
	complete(&e, SID_B, "", 1,
		 "{\"closed_by\":\"completer\",\"exit_code\":3,"
		 "\"session_stop\":\"2023-11-14T23:13:20.5+01:00\",\"reason\":\"agent restart\"}",
		 200, "complete");
	assert_int_equal(ops->session_get(e.st, SID_B, &ss), 0);
	assert_string_equal(ss.closed_by, "completer");
	assert_int_equal(ss.exit_code, 3);
	assert_int_equal(ss.end_ns, 1700000000500000000LL);
	assert_string_equal(ss.node, "web-1"); /* no certificate name: the start event's */
	assert_int_equal(ss.events, 25);
	store_session_clear(&ss);
	lines_read(&e, &l);
	assert_int_equal(l.n, r.audit_lines + 1);
	j = parse(l.line[l.n - 1]);
	assert_string_equal(jstr(j, "event"), "session.upload");
	json_decref(j);
	lines_free(&l);
	env_close(&e);
	rec_free(&r);

	/* without the node's word either: the last event's time, exit code unknown */
	rec_build(&r, SID_A, 25, false, 0, 100000);
	env_open(&e);
	put_all(&e, SID_A, &r);
	complete(&e, SID_A, "n", 1, "null", 200, NULL);
	assert_int_equal(ops->session_get(e.st, SID_A, &ss), 0);
	assert_int_equal(ss.end_ns, T0 + 24 * 1000000LL);
	assert_int_equal(ss.exit_code, -1);
	assert_string_equal(ss.closed_by, "session");
	store_session_clear(&ss);
	env_close(&e);
	rec_free(&r);
}

/* A crash between storing a part and writing the row: the next request mends it. */
static void test_row_repair(void **state)
{
	char db[600];
	struct store_session ss;
	sqlite3 *h;
	struct rec r;
	struct env e;

	(void)state;
	rec_build(&r, SID_A, 40, true, 0, 700);
	assert_true(r.n >= 3);
	env_open(&e);
	put(&e, SID_A, 0, r.part[0], r.len[0], 201, NULL);
	put(&e, SID_A, 1, r.part[1], r.len[1], 201, NULL);
	snprintf(db, sizeof(db), "%s/index.db", e.dir);
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h, "DELETE FROM sessions", NULL, NULL, NULL), SQLITE_OK);
	assert_int_equal(sqlite3_close(h), SQLITE_OK);

	put(&e, SID_A, 1, r.part[1], r.len[1], 200, NULL);
	assert_int_equal(ops->session_get(e.st, SID_A, &ss), 0);
	assert_int_equal(ss.parts, 2);
	assert_int_equal(ss.bytes, r.len[0] + r.len[1]);
	assert_string_equal(ss.user, "alice");
	store_session_clear(&ss);
	for (uint32_t i = 2; i < r.n; i++)
		put(&e, SID_A, i, r.part[i], r.len[i], 201, NULL);
	complete(&e, SID_A, "n", r.n, NULL, 200, NULL);
	env_close(&e);
	rec_free(&r);
}

/* ------------------------------------------------------------ threads */

#define UPLOADERS 6

struct uploader {
	struct env *e;
	char sid[40];
	struct rec r;
	int fails;
};

static void *uploader_main(void *arg)
{
	struct uploader *u = arg;
	char why[256];
	int status;

	for (uint32_t i = 0; i < u->r.n; i++) {
		for (int k = 0; k < 2; k++) { /* every part twice: 201, then 200 */
			if (collector_part_upload(u->e->st, ops, u->sid, i, u->r.part[i],
						  u->r.len[i], &status, why, sizeof(why)) != 0 ||
			    status != (k ? 200 : 201))
				u->fails++;
		}
	}
	for (int k = 0; k < 2; k++)
		if (collector_session_complete(u->e->st, ops, u->sid, "n", u->r.n, NULL, &status,
					       why, sizeof(why)) != 0 ||
		    status != 200)
			u->fails++;
	return NULL;
}

static void test_concurrent(void **state)
{
	struct uploader u[UPLOADERS];
	pthread_t t[UPLOADERS];
	struct store_filter f = {.status = "complete"};
	struct lines l;
	struct env e;
	uint64_t want = 0;

	(void)state;
	env_open(&e);
	for (int i = 0; i < UPLOADERS; i++) {
		memset(&u[i], 0, sizeof(u[i]));
		u[i].e = &e;
		snprintf(u[i].sid, sizeof(u[i].sid), "11111111-2222-4333-8444-%012d", i);
		rec_build(&u[i].r, u[i].sid, 30 + (uint64_t)i * 7, true, i, 900);
		want += u[i].r.audit_lines + 1;
	}
	for (int i = 0; i < UPLOADERS; i++)
		assert_int_equal(pthread_create(&t[i], NULL, uploader_main, &u[i]), 0);
	for (int i = 0; i < UPLOADERS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(u[i].fails, 0);
	}
	assert_int_equal(count_list(&e, &f), UPLOADERS);
	lines_read(&e, &l);
	assert_int_equal(l.n, want);
	lines_free(&l);
	env_close(&e);
	for (int i = 0; i < UPLOADERS; i++)
		rec_free(&u[i].r);
}

/* ------------------------------------------------------------ main */

static int count_cb(void *ctx, const struct store_session *ss)
{
	(void)ss;
	(*(size_t *)ctx)++;
	return 0;
}

static size_t count_list(struct env *e, const struct store_filter *f)
{
	size_t n = 0;

	assert_int_equal(ops->session_list(e->st, f, count_cb, &n, NULL), 0);
	return n;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int group_setup(void **state)
{
	(void)state;
	log_init("test_collector_ingest", LOG_LVL_ERROR);
	snprintf(root, sizeof(root), "%s/sessrec-ingest-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	return mkdtemp(root) ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	return nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_upload_complete),
	    cmocka_unit_test(test_idempotent),
	    cmocka_unit_test(test_refusals),
	    cmocka_unit_test(test_complete_refusals),
	    cmocka_unit_test(test_closed_by_completer),
	    cmocka_unit_test(test_row_repair),
	    cmocka_unit_test(test_concurrent),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
