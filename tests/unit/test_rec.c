/*
 * Recordings: writer/reader round trip, the on_part hook, and every kind of
 * damage the reader must detect with a reason that says what and where.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>
#include <zlib.h>

#include "rec.h"

#define SID_A "0b7e9a52-6f1c-4d3e-9a8b-1c2d3e4f5a6b"
#define SID_B "7f3e2d1c-0b9a-4876-9543-21fedcba9876"

static char tmpdir[256];
static unsigned int file_seq;

/* ------------------------------------------------------------ helpers */

static const char *tpath(char *buf, size_t len, const char *what)
{
	snprintf(buf, len, "%s/%s-%u.rec", tmpdir, what, file_seq++);
	return buf;
}

static void write_file(const char *path, const uint8_t *buf, size_t len)
{
	int fd = open(path, O_CREAT | O_TRUNC | O_WRONLY | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static uint8_t *read_whole(const char *path, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	assert_true(fd >= 0);
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

/* Growing byte buffer. */
struct bytes {
	uint8_t *p;
	size_t len, cap;
};

static void bytes_add(struct bytes *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 64;
		b->p = realloc(b->p, b->cap);
		assert_non_null(b->p);
	}
	if (n)
		memcpy(b->p + b->len, p, n);
	b->len += n;
}

static void be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* ------------------------------------------------------------ events */

/* Storage for one event of any body type, built without allocation. */
struct tev {
	Sessrec__Event ev;
	Sessrec__SessionStart start;
	Sessrec__SessionStart__LabelsEntry lab[2];
	Sessrec__SessionStart__LabelsEntry *labp[2];
	Sessrec__SessionEnd end;
	Sessrec__Command cmd;
	Sessrec__Disk disk;
	Sessrec__Network net;
	Sessrec__Print print;
	Sessrec__Lost lost;
	char *argv[3];
	char *who[2];
	char sid[64];
	char uid[40];
	char path[64];
	uint8_t data[700];
};

/* Event ei of a session whose last event is last: start, then a mix, then end. */
static void tev_make(struct tev *t, const char *sid, uint64_t ei, uint64_t last)
{
	size_t i, n;

	memset(t, 0, sizeof(*t));
	sessrec__event__init(&t->ev);
	t->ev.ei = ei;
	t->ev.time_ns = 1700000000000000000LL + (int64_t)ei * 1000;
	snprintf(t->uid, sizeof(t->uid), "00000000-0000-4000-8000-%012llx", (unsigned long long)ei);
	t->ev.uid = t->uid;
	snprintf(t->path, sizeof(t->path), "/home/user/file-%llu", (unsigned long long)ei);
	if (ei == 0) {
		sessrec__session_start__init(&t->start);
		snprintf(t->sid, sizeof(t->sid), "%s", sid);
		t->start.sid = t->sid;
		t->start.login = "root";
		t->start.user = "alice";
		t->start.kind = "ssh";
		t->argv[0] = "bash";
		t->argv[1] = "-l";
		t->start.initial_command = t->argv;
		t->start.n_initial_command = 2;
		for (i = 0; i < 2; i++) {
			sessrec__session_start__labels_entry__init(&t->lab[i]);
			t->lab[i].key = i ? "team" : "env";
			t->lab[i].value = i ? "ops" : "prod";
			t->labp[i] = &t->lab[i];
		}
		t->start.labels = t->labp;
		t->start.n_labels = 2;
		t->start.cols = 80;
		t->start.rows = 24;
		t->start.cgroup_id = 4242;
		t->start.tty = "/dev/pts/3";
		t->ev.body_case = SESSREC__EVENT__BODY_START;
		t->ev.start = &t->start;
		return;
	}
	if (ei == last) {
		sessrec__session_end__init(&t->end);
		t->end.session_start_ns = 1700000000000000000LL;
		t->end.session_stop_ns = t->ev.time_ns;
		t->who[0] = "alice";
		t->end.participants = t->who;
		t->end.n_participants = 1;
		t->end.interactive = 1;
		t->end.exit_code = -1;
		t->end.reason = "exited";
		t->ev.body_case = SESSREC__EVENT__BODY_END;
		t->ev.end = &t->end;
		return;
	}
	switch (ei % 5) {
	case 0:
		sessrec__command__init(&t->cmd);
		t->cmd.pid = (uint32_t)(1000 + ei);
		t->cmd.ppid = 999;
		t->cmd.program = "ls";
		t->cmd.path = "/usr/bin/ls";
		t->argv[0] = "ls";
		t->argv[1] = "-la";
		t->argv[2] = t->path;
		t->cmd.argv = t->argv;
		t->cmd.n_argv = 3;
		t->cmd.return_code = -2;
		t->ev.body_case = SESSREC__EVENT__BODY_COMMAND;
		t->ev.command = &t->cmd;
		break;
	case 1:
		sessrec__disk__init(&t->disk);
		t->disk.pid = (uint32_t)ei;
		t->disk.program = "vim";
		t->disk.path = t->path;
		t->disk.flags = 0x241;
		t->ev.body_case = SESSREC__EVENT__BODY_DISK;
		t->ev.disk = &t->disk;
		break;
	case 2:
		sessrec__network__init(&t->net);
		t->net.program = "curl";
		t->net.src_addr = "10.0.0.1";
		t->net.dst_addr = "2001:db8::1";
		t->net.src_port = 40000;
		t->net.dst_port = 443;
		t->net.version = 6;
		t->net.protocol = "tcp";
		t->ev.body_case = SESSREC__EVENT__BODY_NETWORK;
		t->ev.network = &t->net;
		break;
	case 3:
		/* Terminal output is binary: NUL bytes included, sizes 0 up to 700. */
		sessrec__print__init(&t->print);
		n = (size_t)(ei * 37 % sizeof(t->data));
		for (i = 0; i < n; i++)
			t->data[i] = i % 3 == 0 ? 0 : (uint8_t)((ei + i) * 31);
		t->print.ci = ei / 5;
		t->print.ms = ei * 3;
		t->print.offset = ei * 100;
		t->print.bytes = (uint32_t)n;
		t->print.data.data = n ? t->data : NULL;
		t->print.data.len = n;
		t->print.tty = "/dev/pts/3";
		t->ev.body_case = SESSREC__EVENT__BODY_PRINT;
		t->ev.print = &t->print;
		break;
	default:
		sessrec__lost__init(&t->lost);
		t->lost.class_ = "terminal";
		t->lost.events = ei;
		t->lost.bytes = ei * 4096;
		t->ev.body_case = SESSREC__EVENT__BODY_LOST;
		t->ev.lost = &t->lost;
		break;
	}
}

/* Two messages are equal when they pack to the same bytes (fields in order, no unknowns). */
static void assert_same_event(const Sessrec__Event *a, const Sessrec__Event *b)
{
	size_t la = sessrec__event__get_packed_size(a), lb = sessrec__event__get_packed_size(b);
	uint8_t *pa, *pb;

	assert_int_equal(la, lb);
	pa = malloc(la + 1);
	pb = malloc(lb + 1);
	assert_non_null(pa);
	assert_non_null(pb);
	sessrec__event__pack(a, pa);
	sessrec__event__pack(b, pb);
	assert_memory_equal(pa, pb, la);
	free(pa);
	free(pb);
}

/* ------------------------------------------------------------ recordings */

#define CAP_PARTS 256

/* What the on_part hook saw. */
struct cap {
	struct bytes all;
	size_t off[CAP_PARTS];
	size_t len[CAP_PARTS];
	uint32_t n;
	bool final;
	uint32_t fail_index; /* return -EPIPE for this part (UINT32_MAX: never) */
};

static int cap_cb(void *ctx, uint32_t index, const uint8_t *part, size_t len, bool final)
{
	struct cap *c = ctx;

	assert_int_equal(index, c->n);
	assert_true(c->n < CAP_PARTS);
	assert_false(c->final);
	c->off[c->n] = c->all.len;
	c->len[c->n] = len;
	bytes_add(&c->all, part, len);
	c->n++;
	c->final = final;
	return index == c->fail_index ? -EPIPE : 0;
}

static void cap_free(struct cap *c)
{
	free(c->all.p);
	memset(c, 0, sizeof(*c));
}

/* Write a recording of n events (ei 0..n-1) of session sid at path. */
static void build(const char *path, const char *sid, uint64_t n, size_t part_size, struct cap *c)
{
	struct rec_writer_opts o = {.part_size = part_size, .no_fsync = true};
	struct rec_writer *w;
	struct tev t;
	uint64_t ei;

	memset(c, 0, sizeof(*c));
	c->fail_index = UINT32_MAX;
	o.on_part = cap_cb;
	o.cb_ctx = c;
	assert_int_equal(rec_writer_open(&w, path, sid, &o), 0);
	for (ei = 0; ei < n; ei++) {
		tev_make(&t, sid, ei, n - 1);
		assert_int_equal(rec_writer_append(w, &t.ev), 0);
	}
	assert_int_equal(rec_writer_close(w), 0);
	assert_true(c->final);
}

/* rec_verify on a buffer in memory: the same checks through rec_reader_open_mem. */
static int verify_mem(const uint8_t *buf, size_t len, const char *sid, char *why, size_t whylen)
{
	struct rec_reader *r;
	Sessrec__Event *ev;
	int err;

	assert_int_equal(rec_reader_open_mem(&r, buf, len), 0);
	if (sid)
		assert_int_equal(rec_reader_expect_sid(r, sid), 0);
	while ((err = rec_reader_next(r, &ev)) == 1)
		sessrec__event__free_unpacked(ev, NULL);
	if (err < 0) {
		assert_true(ev == NULL);
		assert_true(strlen(rec_reader_error(r)) > 0);
		snprintf(why, whylen, "%s", rec_reader_error(r));
	} else if (!rec_reader_final(r)) {
		err = -EBADMSG;
		snprintf(why, whylen, "not final");
	}
	/* The error is sticky. */
	if (err < 0 && strcmp(why, "not final") != 0)
		assert_int_equal(rec_reader_next(r, &ev), err);
	rec_reader_close(r);
	return err;
}

/* The damaged recording must fail, from a file and from memory, with this reason. */
static void expect_bad(const uint8_t *buf, size_t len, int want, const char *msg)
{
	struct rec_verify_stats st;
	char path[512], why[256], mwhy[256];
	int err;

	tpath(path, sizeof(path), "damaged");
	write_file(path, buf, len);
	err = rec_verify(path, &st, why, sizeof(why));
	if (err != want || !strstr(why, msg))
		fail_msg("file: got %d \"%s\", want %d \"%s\"", err, why, want, msg);
	err = verify_mem(buf, len, NULL, mwhy, sizeof(mwhy));
	if (err != want || (!strstr(mwhy, msg) && strcmp(mwhy, "not final") != 0))
		fail_msg("memory: got %d \"%s\", want %d \"%s\"", err, mwhy, want, msg);
	assert_int_equal(unlink(path), 0);
}

/* A copy of the recording with part i replaced by the given bytes (or removed when NULL). */
static struct bytes with_part(const struct cap *c, uint32_t i, const uint8_t *p, size_t n)
{
	struct bytes b = {0};
	uint32_t k;

	for (k = 0; k < c->n; k++) {
		if (k == i) {
			if (p)
				bytes_add(&b, p, n);
			continue;
		}
		bytes_add(&b, c->all.p + c->off[k], c->len[k]);
	}
	return b;
}

/* Build a part by hand from raw record bytes: for damage the writer would never produce. */
static void craft_part(struct bytes *out, uint32_t index, uint16_t flags, const uint8_t prev[32],
		       const uint8_t *raw, size_t rawlen, uint32_t events, uint64_t first,
		       uint64_t last)
{
	struct rec_part_hdr h = {0};
	uint8_t hdr[REC_HDR_SIZE];
	z_stream zs = {0};
	uint8_t *body;
	size_t bound;

	assert_int_equal(deflateInit2(&zs, 6, Z_DEFLATED, 15 + 16, 8, Z_DEFAULT_STRATEGY), Z_OK);
	bound = deflateBound(&zs, rawlen);
	body = malloc(bound);
	assert_non_null(body);
	zs.next_in = (Bytef *)raw;
	zs.avail_in = (uInt)rawlen;
	zs.next_out = body;
	zs.avail_out = (uInt)bound;
	assert_int_equal(deflate(&zs, Z_FINISH), Z_STREAM_END);
	h.version = REC_VERSION;
	h.flags = flags;
	h.index = index;
	h.events = events;
	h.raw_size = (uint32_t)rawlen;
	h.body_size = (uint32_t)(bound - zs.avail_out);
	h.first_ei = first;
	h.last_ei = last;
	memcpy(h.prev_hash, prev, 32);
	SHA256(body, h.body_size, h.body_hash);
	deflateEnd(&zs);
	rec_hdr_encode(&h, hdr);
	bytes_add(out, hdr, sizeof(hdr));
	bytes_add(out, body, h.body_size);
	free(body);
}

/* Append one framed record to raw. */
static void raw_event(struct bytes *raw, const Sessrec__Event *ev)
{
	size_t n = sessrec__event__get_packed_size(ev);
	uint8_t len[4];
	uint8_t *p = malloc(n + 1);

	assert_non_null(p);
	sessrec__event__pack(ev, p);
	be32(len, (uint32_t)n);
	bytes_add(raw, len, 4);
	bytes_add(raw, p, n);
	free(p);
}

/* A hand-made part 0 holding events first..last of session sid, chained to seed_sid. */
static void craft_part0(struct bytes *out, const char *sid, const char *seed_sid, uint64_t first,
			uint64_t last, uint16_t flags)
{
	struct bytes raw = {0};
	uint8_t seed[32];
	struct tev t;
	uint64_t ei;

	for (ei = first; ei <= last; ei++) {
		tev_make(&t, sid, ei, 1000);
		raw_event(&raw, &t.ev);
	}
	rec_chain_seed(seed_sid, seed);
	craft_part(out, 0, flags, seed, raw.p, raw.len, (uint32_t)(last - first + 1), first, last);
	free(raw.p);
}

/* ------------------------------------------------------------ fixture */

static int group_setup(void **state)
{
	const char *base = getenv("TMPDIR");

	snprintf(tmpdir, sizeof(tmpdir), "%s/test_rec.XXXXXX", base && *base ? base : "/tmp");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int group_teardown(void **state)
{
	char path[512];
	struct dirent *de;
	DIR *d = opendir(tmpdir);

	if (!d)
		return -1;
	while ((de = readdir(d))) {
		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(path, sizeof(path), "%s/%s", tmpdir, de->d_name);
		unlink(path);
	}
	closedir(d);
	return rmdir(tmpdir);
}

/* ------------------------------------------------------------ tests */

static void test_header(void **state)
{
	struct rec_part_hdr h = {0}, g;
	uint8_t buf[REC_HDR_SIZE], bad[REC_HDR_SIZE], seed[32];
	const char *why = NULL;
	unsigned int i;

	h.version = REC_VERSION;
	h.flags = REC_FLAG_FINAL;
	h.index = 0x01020304;
	h.events = 3;
	h.raw_size = 300;
	h.body_size = 0x01223344;
	h.first_ei = 0x0102030405060708ULL;
	h.last_ei = 0x010203040506070aULL;
	for (i = 0; i < 32; i++) {
		h.prev_hash[i] = (uint8_t)i;
		h.body_hash[i] = (uint8_t)(0xff - i);
	}
	rec_hdr_encode(&h, buf);
	assert_memory_equal(buf, "SRECPRT1\0\1\0\1\1\2\3\4\0\0\0\3\0\0\1\x2c\x01\x22\x33\x44", 28);
	assert_memory_equal(buf + 28, "\1\2\3\4\5\6\7\x08\1\2\3\4\5\6\7\x0a", 16);
	assert_memory_equal(buf + 44, h.prev_hash, 32);
	assert_memory_equal(buf + 76, h.body_hash, 32);
	assert_memory_equal(buf + 108, "\0\0\0\0", 4);
	memset(&g, 0, sizeof(g)); /* padding compares equal too */
	assert_int_equal(rec_hdr_decode(buf, &g, &why), 0);
	assert_memory_equal(&g, &h, sizeof(h));

	static const struct {
		unsigned int off;
		uint8_t val;
		const char *why;
	} cases[] = {
	    {0, 'X', "bad magic"},
	    {9, 2, "unsupported format version"},
	    {11, 3, "unknown flags"},
	    {110, 1, "reserved bytes"},
	    {20, 0x10, "raw_size over the limit"},
	    {24, 0x10, "body_size over the limit"},
	    {19, 200, "more events than raw_size"},
	    {43, 0x0b, "ei range does not match"},
	};
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memcpy(bad, buf, sizeof(buf));
		bad[cases[i].off] = cases[i].val;
		why = NULL;
		assert_int_equal(rec_hdr_decode(bad, &g, &why), -EBADMSG);
		assert_non_null(why);
		if (!strstr(why, cases[i].why))
			fail_msg("case %u: \"%s\"", i, why);
	}
	/* A part without events must say so consistently, and must be the final one. */
	h.events = 0;
	h.raw_size = 0;
	h.first_ei = h.last_ei = 0;
	rec_hdr_encode(&h, bad);
	assert_int_equal(rec_hdr_decode(bad, &g, NULL), 0);
	h.flags = 0;
	rec_hdr_encode(&h, bad);
	assert_int_equal(rec_hdr_decode(bad, &g, &why), -EBADMSG);
	assert_non_null(strstr(why, "not final"));

	rec_chain_seed(SID_A, seed);
	assert_memory_equal(seed, SHA256((const uint8_t *)SID_A, strlen(SID_A), NULL), 32);
}

static void test_roundtrip(void **state)
{
	const uint64_t n = 3000;
	char path[512];
	struct rec_verify_stats st;
	struct rec_part_hdr h;
	struct rec_reader *r;
	Sessrec__Event *ev;
	struct cap c;
	struct tev t;
	uint8_t *file;
	size_t flen;
	uint64_t ei, raw = 0, nul_prints = 0;
	char why[256];
	uint32_t i;
	int pass;

	build(tpath(path, sizeof(path), "roundtrip"), SID_A, n, 8192, &c);
	assert_true(c.n >= 5);

	/* The hook saw exactly the bytes on disk, part by part. */
	file = read_whole(path, &flen);
	assert_int_equal(flen, c.all.len);
	assert_memory_equal(file, c.all.p, flen);
	for (i = 0, ei = 0; i < c.n; i++) {
		assert_int_equal(rec_hdr_decode(c.all.p + c.off[i], &h, NULL), 0);
		assert_int_equal(h.index, i);
		assert_int_equal(h.flags, i + 1 == c.n ? REC_FLAG_FINAL : 0);
		assert_int_equal(h.body_size + REC_HDR_SIZE, c.len[i]);
		assert_int_equal(h.first_ei, ei);
		ei = h.last_ei + 1;
		raw += h.raw_size;
	}
	assert_int_equal(ei, n);

	/* Events come back in order and identical, from the file and from memory. */
	for (pass = 0; pass < 2; pass++) {
		if (pass == 0)
			assert_int_equal(rec_reader_open(&r, path), 0);
		else
			assert_int_equal(rec_reader_open_mem(&r, file, flen), 0);
		assert_string_equal(rec_reader_sid(r), "");
		for (ei = 0; ei < n; ei++) {
			assert_int_equal(rec_reader_next(r, &ev), 1);
			tev_make(&t, SID_A, ei, n - 1);
			assert_int_equal(ev->ei, ei);
			assert_int_equal(ev->body_case, t.ev.body_case);
			assert_same_event(ev, &t.ev);
			if (ev->body_case == SESSREC__EVENT__BODY_PRINT) {
				assert_int_equal(ev->print->data.len, t.print.data.len);
				if (t.print.data.len) {
					assert_memory_equal(ev->print->data.data, t.data,
							    t.print.data.len);
					assert_non_null(
					    memchr(ev->print->data.data, 0, ev->print->data.len));
					nul_prints++;
				}
			}
			sessrec__event__free_unpacked(ev, NULL);
			assert_string_equal(rec_reader_sid(r), SID_A);
		}
		assert_int_equal(rec_reader_next(r, &ev), 0);
		assert_null(ev);
		assert_int_equal(rec_reader_next(r, &ev), 0);
		assert_int_equal(rec_reader_parts(r), c.n);
		assert_true(rec_reader_final(r));
		rec_reader_close(r);
	}
	assert_true(nul_prints > 100);

	assert_int_equal(rec_verify(path, &st, why, sizeof(why)), 0);
	assert_string_equal(why, "");
	assert_int_equal(st.parts, c.n);
	assert_int_equal(st.events, n);
	assert_int_equal(st.raw_bytes, raw);
	assert_int_equal(st.file_bytes, flen);
	assert_true(st.final);
	assert_string_equal(st.sid, SID_A);

	/* The recording belongs to SID_A and to no other session. */
	assert_int_equal(verify_mem(file, flen, SID_A, why, sizeof(why)), 0);
	assert_int_equal(verify_mem(file, flen, SID_B, why, sizeof(why)), -EBADMSG);
	assert_non_null(
	    strstr(why, "part 0: chain seed mismatch: the part is not from session " SID_B));

	free(file);
	cap_free(&c);
}

/* Text output is deflated hard, random output (no repeats) Huffman-coded: both
 * read back byte for byte, and each part's size shows which way it went. */
static void test_compressible_and_random(void **state)
{
	static uint8_t text[64 * 1024], noise[64 * 1024];
	struct rec_writer_opts o = {.no_fsync = true};
	struct rec_part_hdr h;
	struct rec_writer *w;
	struct rec_reader *r;
	Sessrec__Event *ev;
	char path[512];
	struct cap c;
	struct tev t;
	size_t i;
	int k;

	(void)state;
	for (i = 0; i < sizeof(text); i++)
		text[i] = (uint8_t)("drwxr-xr-x 2 root root 4096 Nov 22 13:02 bin\n"[i % 45]);
	srand(7);
	for (i = 0; i < sizeof(noise); i++)
		noise[i] = (uint8_t)(rand() >> 7);
	memset(&c, 0, sizeof(c));
	c.fail_index = UINT32_MAX;
	o.on_part = cap_cb;
	o.cb_ctx = &c;
	assert_int_equal(rec_writer_open(&w, tpath(path, sizeof(path), "mixed"), SID_A, &o), 0);
	tev_make(&t, SID_A, 0, 2); /* the session start */
	assert_int_equal(rec_writer_append(w, &t.ev), 0);
	for (k = 0; k < 2; k++) {
		Sessrec__Event e = SESSREC__EVENT__INIT;
		Sessrec__Print pr = SESSREC__PRINT__INIT;

		e.ei = (uint64_t)k + 1;
		e.body_case = SESSREC__EVENT__BODY_PRINT;
		e.print = &pr;
		pr.data.data = k == 0 ? text : noise;
		pr.data.len = sizeof(text);
		assert_int_equal(rec_writer_append(w, &e), 0);
		assert_int_equal(rec_writer_flush(w, false), 0); /* one part each */
	}
	assert_int_equal(rec_writer_close(w), 0);
	assert_true(c.n >= 2);
	assert_int_equal(rec_hdr_decode(c.all.p + c.off[0], &h, NULL), 0);
	assert_true(h.body_size < h.raw_size / 20); /* start + text: deflated */
	assert_int_equal(rec_hdr_decode(c.all.p + c.off[1], &h, NULL), 0);
	assert_true(h.body_size > h.raw_size * 9 / 10);		 /* noise: no gain to be had */
	assert_true(h.body_size < h.raw_size + h.raw_size / 50); /* and no blow-up */
	assert_int_equal(rec_reader_open(&r, path), 0);
	assert_int_equal(rec_reader_next(r, &ev), 1);
	assert_int_equal(ev->body_case, SESSREC__EVENT__BODY_START);
	sessrec__event__free_unpacked(ev, NULL);
	for (k = 0; k < 2; k++) {
		assert_int_equal(rec_reader_next(r, &ev), 1);
		assert_int_equal(ev->body_case, SESSREC__EVENT__BODY_PRINT);
		assert_int_equal(ev->print->data.len, sizeof(text));
		assert_memory_equal(ev->print->data.data, k == 0 ? text : noise, sizeof(text));
		sessrec__event__free_unpacked(ev, NULL);
	}
	assert_int_equal(rec_reader_next(r, &ev), 0);
	assert_true(rec_reader_final(r));
	rec_reader_close(r);
	cap_free(&c);
}

static void test_writer_api(void **state)
{
	struct rec_writer_opts o = {.part_size = 1u << 20, .no_fsync = true};
	struct rec_verify_stats st;
	struct rec_writer *w = NULL;
	struct tev t;
	char path[512], why[256];
	struct stat sb;
	size_t pending;
	uint64_t bytes;

	tpath(path, sizeof(path), "api");
	o.part_size = 0;
	o.compress_level = 10;
	assert_int_equal(rec_writer_open(&w, path, SID_A, &o), -EINVAL);
	o.compress_level = 9;
	assert_int_equal(rec_writer_open(&w, path, "", &o), -EINVAL);
	assert_null(w);
	assert_int_equal(access(path, F_OK), -1);

	/* Default options, fsync included. */
	assert_int_equal(rec_writer_open(&w, path, SID_A, NULL), 0);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal(sb.st_mode & 0777 & ~0640u, 0);
	{
		struct rec_writer *w2 = NULL;

		assert_int_equal(rec_writer_open(&w2, path, SID_A, NULL), -EEXIST);
		assert_null(w2);
	}

	/* The first event must be this session's start; then ei must follow. */
	tev_make(&t, SID_A, 1, 9);
	t.ev.ei = 0;
	assert_int_equal(rec_writer_append(w, &t.ev), -EINVAL);
	tev_make(&t, SID_B, 0, 9);
	assert_int_equal(rec_writer_append(w, &t.ev), -EINVAL);
	assert_int_equal(rec_writer_pending(w), 0);
	assert_int_equal(rec_writer_flush(w, false), 0);
	assert_int_equal(rec_writer_parts(w), 0);
	tev_make(&t, SID_A, 0, 9);
	assert_int_equal(rec_writer_append(w, &t.ev), 0);
	pending = rec_writer_pending(w);
	assert_int_equal(pending, 4 + sessrec__event__get_packed_size(&t.ev));
	tev_make(&t, SID_A, 2, 9);
	assert_int_equal(rec_writer_append(w, &t.ev), -EINVAL);
	tev_make(&t, SID_A, 1, 9);
	assert_int_equal(rec_writer_append(w, &t.ev), 0);
	assert_true(rec_writer_pending(w) > pending);

	/* An event over REC_EVENT_MAX is refused and leaves nothing behind. */
	{
		struct tev big;
		uint8_t *data = calloc(1, REC_EVENT_MAX + 1);

		assert_non_null(data);
		tev_make(&big, SID_A, 8, 9);
		big.ev.ei = 2;
		assert_int_equal(big.ev.body_case, SESSREC__EVENT__BODY_PRINT);
		big.print.data.data = data;
		big.print.data.len = REC_EVENT_MAX + 1;
		pending = rec_writer_pending(w);
		assert_int_equal(rec_writer_append(w, &big.ev), -EMSGSIZE);
		assert_int_equal(rec_writer_pending(w), pending);
		free(data);
	}

	assert_int_equal(rec_writer_flush(w, false), 0);
	assert_int_equal(rec_writer_pending(w), 0);
	assert_int_equal(rec_writer_parts(w), 1);
	bytes = rec_writer_bytes(w);
	assert_int_equal(stat(path, &sb), 0);
	assert_int_equal((uint64_t)sb.st_size, bytes);
	assert_int_equal(rec_writer_flush(w, false), 0);
	assert_int_equal(rec_writer_parts(w), 1);

	tev_make(&t, SID_A, 2, 9);
	assert_int_equal(rec_writer_append(w, &t.ev), 0);
	assert_int_equal(rec_writer_flush(w, true), 0);
	assert_int_equal(rec_writer_parts(w), 2);

	/* After the final part, nothing more. */
	tev_make(&t, SID_A, 3, 9);
	assert_int_equal(rec_writer_append(w, &t.ev), -EINVAL);
	assert_int_equal(rec_writer_flush(w, false), -EINVAL);
	assert_int_equal(rec_writer_flush(w, true), -EINVAL);
	assert_int_equal(rec_writer_parts(w), 2);
	assert_int_equal(rec_writer_close(w), 0);

	assert_int_equal(rec_verify(path, &st, why, sizeof(why)), 0);
	assert_int_equal(st.parts, 2);
	assert_int_equal(st.events, 3);

	/* Every free accepts NULL. */
	assert_int_equal(rec_writer_close(NULL), 0);

	/* A part_size past what readers accept is clamped, not refused. */
	o.part_size = REC_PART_RAW_MAX;
	o.compress_level = 0;
	assert_int_equal(rec_writer_open(&w, tpath(path, sizeof(path), "big"), SID_A, &o), 0);
	tev_make(&t, SID_A, 0, 9);
	assert_int_equal(rec_writer_append(w, &t.ev), 0);
	assert_int_equal(rec_writer_close(w), 0);
	assert_int_equal(rec_verify(path, &st, why, sizeof(why)), 0);
	rec_writer_abandon(NULL);
	rec_reader_close(NULL);

	/* Missing files and directories are plain errors. */
	assert_int_equal(rec_verify("/nonexistent/x.rec", &st, why, sizeof(why)), -ENOENT);
	assert_non_null(strstr(why, "/nonexistent/x.rec: cannot open"));
	assert_int_equal(rec_writer_open(&w, "/nonexistent/x.rec", SID_A, NULL), -ENOENT);
}

static void test_empty_final_part(void **state)
{
	struct rec_writer_opts o = {.no_fsync = true};
	struct rec_verify_stats st;
	struct rec_part_hdr h;
	struct rec_writer *w;
	struct cap c = {.fail_index = UINT32_MAX};
	struct tev t;
	char path[512], why[256];

	o.on_part = cap_cb;
	o.cb_ctx = &c;
	assert_int_equal(rec_writer_open(&w, tpath(path, sizeof(path), "empty"), SID_A, &o), 0);
	tev_make(&t, SID_A, 0, 9);
	assert_int_equal(rec_writer_append(w, &t.ev), 0);
	assert_int_equal(rec_writer_flush(w, false), 0);
	assert_int_equal(rec_writer_close(w), 0);
	assert_int_equal(c.n, 2);
	assert_true(c.final);
	assert_int_equal(rec_hdr_decode(c.all.p + c.off[1], &h, NULL), 0);
	assert_int_equal(h.events, 0);
	assert_int_equal(h.raw_size, 0);
	assert_int_equal(h.flags, REC_FLAG_FINAL);
	assert_int_equal(rec_verify(path, &st, why, sizeof(why)), 0);
	assert_int_equal(st.parts, 2);
	assert_int_equal(st.events, 1);
	cap_free(&c);
	c.fail_index = UINT32_MAX;

	/* Closed before anything was appended: one empty final part, and no session.start. */
	assert_int_equal(rec_writer_open(&w, tpath(path, sizeof(path), "nothing"), SID_A, &o), 0);
	assert_int_equal(rec_writer_close(w), 0);
	assert_int_equal(rec_verify(path, &st, why, sizeof(why)), -EBADMSG);
	assert_non_null(strstr(why, "part 0: no events"));

	/* Abandoned: the file stays as it was (here: empty, which is no recording). */
	assert_int_equal(rec_writer_open(&w, tpath(path, sizeof(path), "abandoned"), SID_A, &o), 0);
	assert_int_equal(rec_writer_append(w, &t.ev), 0);
	rec_writer_abandon(w);
	assert_int_equal(rec_verify(path, &st, why, sizeof(why)), -EIO);
	assert_string_equal(why, "empty recording: no parts (file ends at byte 0)");
	cap_free(&c);
}

static void test_on_part_error(void **state)
{
	struct rec_writer_opts o = {.part_size = 512, .no_fsync = true};
	struct rec_verify_stats st;
	struct rec_writer *w;
	struct cap c = {.fail_index = 1};
	struct tev t;
	char path[512], why[256];
	uint64_t ei;
	int err, seen = 0;

	o.on_part = cap_cb;
	o.cb_ctx = &c;
	assert_int_equal(rec_writer_open(&w, tpath(path, sizeof(path), "cb"), SID_A, &o), 0);
	for (ei = 0; ei < 200; ei++) {
		tev_make(&t, SID_A, ei, 199);
		err = rec_writer_append(w, &t.ev);
		if (err == -EPIPE)
			seen++;
		else
			assert_int_equal(err, 0);
	}
	/* Reported once, and the part is on disk all the same. */
	assert_int_equal(seen, 1);
	assert_int_equal(rec_writer_close(w), 0);
	assert_int_equal(rec_verify(path, &st, why, sizeof(why)), 0);
	assert_int_equal(st.events, 200);
	assert_int_equal(st.parts, c.n);
	cap_free(&c);
}

/* A recording of session A with several parts, for the damage tests. */
static void damage_fixture(struct cap *c)
{
	char path[512];

	build(tpath(path, sizeof(path), "fixture"), SID_A, 300, 2048, c);
	assert_true(c->n >= 5);
	assert_int_equal(unlink(path), 0);
}

static void test_truncated(void **state)
{
	struct cap c;
	char msg[128];
	size_t at;

	damage_fixture(&c);
	at = c.off[1] + 50;
	snprintf(msg, sizeof(msg), "truncated in part 1 header (file ends at byte %zu)", at);
	expect_bad(c.all.p, at, -EIO, msg);

	at = c.off[2] + REC_HDR_SIZE + 10;
	snprintf(msg, sizeof(msg), "truncated in part 2 body (file ends at byte %zu)", at);
	expect_bad(c.all.p, at, -EIO, msg);

	/* The last part cut off entirely: sound so far, but not finished. */
	expect_bad(c.all.p, c.off[c.n - 1], -EBADMSG,
		   "not final: the recording is incomplete or the session is still open");
	expect_bad(c.all.p, 0, -EIO, "empty recording: no parts");
	cap_free(&c);
}

static void test_parts_removed_or_swapped(void **state)
{
	struct bytes b;
	struct cap c;
	uint32_t k;

	damage_fixture(&c);
	b = with_part(&c, 2, NULL, 0);
	expect_bad(b.p, b.len, -EBADMSG,
		   "part 2: chain broken: previous part missing, reordered or altered "
		   "(header says part 3)");
	free(b.p);

	b = with_part(&c, 0, NULL, 0);
	expect_bad(b.p, b.len, -EBADMSG, "part 0: header says part 1: parts missing or reordered");
	free(b.p);

	/* Parts 1 and 2 swapped. */
	memset(&b, 0, sizeof(b));
	for (k = 0; k < c.n; k++) {
		uint32_t from = k == 1 ? 2 : k == 2 ? 1 : k;

		bytes_add(&b, c.all.p + c.off[from], c.len[from]);
	}
	expect_bad(b.p, b.len, -EBADMSG,
		   "part 1: chain broken: previous part missing, reordered or altered");
	free(b.p);

	/* A part repeated. */
	b = with_part(&c, 3, c.all.p + c.off[2], c.len[2]);
	expect_bad(b.p, b.len, -EBADMSG, "part 3: chain broken");
	free(b.p);
	cap_free(&c);
}

static void test_flipped_bytes(void **state)
{
	struct bytes b = {0};
	struct cap c;
	uint8_t *p;
	size_t h1;

	damage_fixture(&c);
	bytes_add(&b, c.all.p, c.all.len);
	p = b.p;

	/* One byte in the body of part 2 (past the gzip header). */
	p[c.off[2] + REC_HDR_SIZE + 20] ^= 0x01;
	expect_bad(p, b.len, -EBADMSG, "part 2: body hash mismatch (altered part)");
	p[c.off[2] + REC_HDR_SIZE + 20] ^= 0x01;

	/* Header fields of part 1: each caught by the check that covers it. */
	h1 = c.off[1];
	static const struct {
		unsigned int off;
		uint8_t x;
		const char *msg;
	} cases[] = {
	    {0, 0x20, "part 1: bad magic: not a recording part (header at byte"},
	    {9, 0x02, "part 1: unsupported format version"},
	    {11, 0x01, "data after the final part 1 at byte"},
	    {11, 0x04, "part 1: unknown flags set"},
	    {15, 0x08, "part 1: header says part 9: parts missing or reordered"},
	    {19, 0x01, "part 1: ei range does not match the event count"},
	    {23, 0x01, "part 1: body inflates to "},
	    {27, 0x01, "part 1: body hash mismatch"},
	    {35, 0x01, "part 1: ei range does not match the event count"},
	    {50, 0x01, "part 1: chain broken"},
	    {80, 0x80, "part 1: body hash mismatch"},
	    {111, 0x01, "part 1: reserved bytes are not zero"},
	};
	for (unsigned int i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		p[h1 + cases[i].off] ^= cases[i].x;
		expect_bad(p, b.len, -EBADMSG, cases[i].msg);
		p[h1 + cases[i].off] ^= cases[i].x;
	}
	/* Both ends of the ei range moved together: the events themselves disagree. */
	{
		struct rec_part_hdr h;

		assert_int_equal(rec_hdr_decode(p + h1, &h, NULL), 0);
		h.first_ei++;
		h.last_ei++;
		rec_hdr_encode(&h, p + h1);
		expect_bad(p, b.len, -EBADMSG, "part 1: first event has ei ");
		memcpy(p + h1, c.all.p + h1, REC_HDR_SIZE);
	}

	/* The last part's header is covered by no later hash: its own checks must hold. */
	p[c.off[c.n - 1] + 11] ^= 0x01;
	expect_bad(p, b.len, -EBADMSG, "not final");
	p[c.off[c.n - 1] + 11] ^= 0x01;
	p[c.off[c.n - 1] + 15] ^= 0x01;
	expect_bad(p, b.len, -EBADMSG, "parts missing or reordered");
	p[c.off[c.n - 1] + 15] ^= 0x01;

	assert_memory_equal(p, c.all.p, c.all.len);
	free(b.p);
	cap_free(&c);
}

static void test_other_session(void **state)
{
	struct bytes b = {0}, raw = {0};
	struct cap a, o;
	char path[512], why[256];
	uint8_t prev[32];
	struct tev t;

	damage_fixture(&a);
	build(tpath(path, sizeof(path), "other"), SID_B, 300, 2048, &o);
	assert_int_equal(o.n, a.n);

	/* Session B's part 1 spliced into A's recording. */
	b = with_part(&a, 1, o.all.p + o.off[1], o.len[1]);
	expect_bad(b.p, b.len, -EBADMSG, "part 1: chain broken");
	free(b.p);

	/* B's part 0 in front of A's parts: sound on its own, the chain breaks after it... */
	b = with_part(&a, 0, o.all.p + o.off[0], o.len[0]);
	expect_bad(b.p, b.len, -EBADMSG, "part 1: chain broken");
	/* ...and a reader that knows which session it reads refuses it at once. */
	assert_int_equal(verify_mem(b.p, b.len, SID_A, why, sizeof(why)), -EBADMSG);
	assert_string_equal(why, "part 0: chain seed mismatch: the part is not from session " SID_A
				 " (copied from another recording or altered)");
	free(b.p);

	/* A part 0 of A's events chained to B's seed. */
	memset(&b, 0, sizeof(b));
	craft_part0(&b, SID_A, SID_B, 0, 5, REC_FLAG_FINAL);
	expect_bad(b.p, b.len, -EBADMSG,
		   "part 0: chain seed mismatch: the part is not from session " SID_A);
	free(b.p);

	/* The same hand-made part chained right is sound: the helper itself is right. */
	memset(&b, 0, sizeof(b));
	craft_part0(&b, SID_A, SID_A, 0, 5, 0);
	SHA256(b.p, b.len, prev);
	tev_make(&t, SID_A, 6, 6);
	raw_event(&raw, &t.ev);
	craft_part(&b, 1, REC_FLAG_FINAL, prev, raw.p, raw.len, 1, 6, 6);
	assert_int_equal(verify_mem(b.p, b.len, SID_A, why, sizeof(why)), 0);
	free(b.p);
	free(raw.p);

	cap_free(&a);
	cap_free(&o);
}

static void test_trailing_garbage(void **state)
{
	struct bytes b = {0};
	struct cap c;
	uint8_t junk[200];
	char msg[128];

	damage_fixture(&c);
	bytes_add(&b, c.all.p, c.all.len);
	bytes_add(&b, "garbage", 7);
	snprintf(msg, sizeof(msg), "data after the final part %u at byte %zu", c.n - 1, c.all.len);
	expect_bad(b.p, b.len, -EBADMSG, msg);
	free(b.p);

	/* A whole copy of the recording appended to itself. */
	memset(&b, 0, sizeof(b));
	bytes_add(&b, c.all.p, c.all.len);
	bytes_add(&b, c.all.p, c.all.len);
	expect_bad(b.p, b.len, -EBADMSG, msg);
	free(b.p);

	/* Garbage in place of the last part. */
	memset(junk, 0xa5, sizeof(junk));
	memset(&b, 0, sizeof(b));
	bytes_add(&b, c.all.p, c.off[c.n - 1]);
	bytes_add(&b, junk, sizeof(junk));
	snprintf(msg, sizeof(msg), "part %u: bad magic: not a recording part (header at byte %zu)",
		 c.n - 1, c.off[c.n - 1]);
	expect_bad(b.p, b.len, -EBADMSG, msg);
	free(b.p);
	cap_free(&c);
}

static void test_oversized_lengths(void **state)
{
	struct bytes b = {0}, raw = {0};
	struct rec_part_hdr h;
	struct cap c;
	uint8_t hdr[REC_HDR_SIZE], len[4], seed[32];
	char msg[160];
	struct tev t;

	damage_fixture(&c);

	/* Lengths in the header past the caps are refused before anything is allocated. */
	assert_int_equal(rec_hdr_decode(c.all.p, &h, NULL), 0);
	h.body_size = UINT32_MAX;
	rec_hdr_encode(&h, hdr);
	bytes_add(&b, hdr, sizeof(hdr));
	bytes_add(&b, c.all.p + REC_HDR_SIZE, c.len[0] - REC_HDR_SIZE);
	expect_bad(b.p, b.len, -EBADMSG, "part 0: body_size over the limit (64 MiB)");

	assert_int_equal(rec_hdr_decode(c.all.p, &h, NULL), 0);
	h.raw_size = UINT32_MAX;
	rec_hdr_encode(&h, b.p);
	expect_bad(b.p, b.len, -EBADMSG, "part 0: raw_size over the limit (64 MiB)");

	assert_int_equal(rec_hdr_decode(c.all.p, &h, NULL), 0);
	h.events = UINT32_MAX;
	h.last_ei = h.first_ei + UINT32_MAX - 1;
	rec_hdr_encode(&h, b.p);
	expect_bad(b.p, b.len, -EBADMSG, "part 0: more events than raw_size can hold");

	/* At the cap, but more than the input holds: still nothing allocated for it. */
	assert_int_equal(rec_hdr_decode(c.all.p, &h, NULL), 0);
	h.body_size = REC_PART_RAW_MAX;
	rec_hdr_encode(&h, b.p);
	snprintf(msg, sizeof(msg), "truncated in part 0 body (file ends at byte %zu)", b.len);
	expect_bad(b.p, b.len, -EIO, msg);
	free(b.p);

	/* A record length past REC_EVENT_MAX inside a sound body. */
	rec_chain_seed(SID_A, seed);
	tev_make(&t, SID_A, 0, 9);
	raw_event(&raw, &t.ev);
	be32(len, 0xfffffff0u);
	bytes_add(&raw, len, 4);
	bytes_add(&raw, "xxxx", 4);
	memset(&b, 0, sizeof(b));
	craft_part(&b, 0, REC_FLAG_FINAL, seed, raw.p, raw.len, 2, 0, 1);
	expect_bad(b.p, b.len, -EBADMSG,
		   "part 0: record 1: length 4294967280 over the limit (1048576)");
	free(b.p);

	/* Under the cap but past the end of the part. */
	be32(raw.p + raw.len - 8, 100);
	memset(&b, 0, sizeof(b));
	craft_part(&b, 0, REC_FLAG_FINAL, seed, raw.p, raw.len, 2, 0, 1);
	expect_bad(b.p, b.len, -EBADMSG, "part 0: record 1: length 100 overruns the part body");
	free(b.p);

	/* A length field cut short at the end of the part. */
	raw.len -= 6;
	memset(&b, 0, sizeof(b));
	craft_part(&b, 0, REC_FLAG_FINAL, seed, raw.p, raw.len, 1, 0, 0);
	expect_bad(b.p, b.len, -EBADMSG, "part 0: record 1: length cut short");
	free(b.p);
	free(raw.p);
	cap_free(&c);
}

static void test_bad_contents(void **state)
{
	struct bytes b = {0}, raw = {0};
	uint8_t seed[32], prev[32], len[4];
	struct tev t;
	uint64_t ei;

	rec_chain_seed(SID_A, seed);

	/* The first event must be a session.start. */
	tev_make(&t, SID_A, 1, 9);
	t.ev.ei = 0;
	raw_event(&raw, &t.ev);
	craft_part(&b, 0, REC_FLAG_FINAL, seed, raw.p, raw.len, 1, 0, 0);
	expect_bad(b.p, b.len, -EBADMSG, "part 0: the first event is not a session.start");
	free(b.p);
	free(raw.p);

	/* A record that is not an Event. */
	memset(&raw, 0, sizeof(raw));
	memset(&b, 0, sizeof(b));
	tev_make(&t, SID_A, 0, 9);
	raw_event(&raw, &t.ev);
	be32(len, 3);
	bytes_add(&raw, len, 4);
	bytes_add(&raw, "\xff\xff\xff", 3);
	craft_part(&b, 0, REC_FLAG_FINAL, seed, raw.p, raw.len, 2, 0, 1);
	expect_bad(b.p, b.len, -EBADMSG, "part 0: record 1: not a valid sessrec.Event");
	free(b.p);
	free(raw.p);

	/* More records than the header says. */
	memset(&raw, 0, sizeof(raw));
	memset(&b, 0, sizeof(b));
	for (ei = 0; ei < 3; ei++) {
		tev_make(&t, SID_A, ei, 9);
		raw_event(&raw, &t.ev);
	}
	craft_part(&b, 0, REC_FLAG_FINAL, seed, raw.p, raw.len, 2, 0, 1);
	expect_bad(b.p, b.len, -EBADMSG, "part 0: holds 3 events, header says 2");
	free(b.p);
	free(raw.p);

	/* An ei gap between two parts whose headers agree with their events. */
	memset(&raw, 0, sizeof(raw));
	memset(&b, 0, sizeof(b));
	craft_part0(&b, SID_A, SID_A, 0, 4, 0);
	SHA256(b.p, b.len, prev);
	tev_make(&t, SID_A, 6, 9);
	raw_event(&raw, &t.ev);
	craft_part(&b, 1, REC_FLAG_FINAL, prev, raw.p, raw.len, 1, 6, 6);
	expect_bad(b.p, b.len, -EBADMSG,
		   "part 1: record 0: ei 6 where 5 was expected (events missing or reordered)");
	free(b.p);
	free(raw.p);

	/* Two gzip members in one body, hashes right: the body is one stream, nothing after. */
	{
		struct bytes one = {0};
		struct rec_part_hdr h;
		uint8_t *body;
		size_t blen;

		craft_part0(&one, SID_A, SID_A, 0, 2, REC_FLAG_FINAL);
		assert_int_equal(rec_hdr_decode(one.p, &h, NULL), 0);
		blen = (size_t)h.body_size * 2;
		body = malloc(blen);
		assert_non_null(body);
		memcpy(body, one.p + REC_HDR_SIZE, h.body_size);
		memcpy(body + h.body_size, one.p + REC_HDR_SIZE, h.body_size);
		h.body_size = (uint32_t)blen;
		SHA256(body, blen, h.body_hash);
		memset(&b, 0, sizeof(b));
		b.p = malloc(REC_HDR_SIZE + blen);
		assert_non_null(b.p);
		rec_hdr_encode(&h, b.p);
		memcpy(b.p + REC_HDR_SIZE, body, blen);
		b.len = REC_HDR_SIZE + blen;
		expect_bad(b.p, b.len, -EBADMSG, "bytes after the gzip stream in the body");
		free(b.p);
		free(body);
		free(one.p);
	}
}

/* Every single-byte change and every truncation of a small recording is caught. */
/* Three writers interleaved through one pool (tiny queue: backpressure): each is sound. */
static void test_pool(void **state)
{
	static const char *const sids[3] = {"11111111-1111-4111-8111-111111111111",
					    "22222222-2222-4222-8222-222222222222",
					    "33333333-3333-4333-8333-333333333333"};
	struct rec_writer *w[3];
	struct rec_pool *pool;
	struct cap caps[3];
	char paths[3][512];
	const uint64_t n = 400;
	struct tev t;
	size_t i;
	uint64_t ei;

	(void)state;
	assert_int_equal(rec_pool_start(&pool, 4096), 0);
	for (i = 0; i < 3; i++) {
		struct rec_writer_opts o = {.part_size = 2048, .no_fsync = true, .pool = pool};

		memset(&caps[i], 0, sizeof(caps[i]));
		caps[i].fail_index = UINT32_MAX;
		o.on_part = cap_cb;
		o.cb_ctx = &caps[i];
		tpath(paths[i], sizeof(paths[i]), "pool");
		assert_int_equal(rec_writer_open(&w[i], paths[i], sids[i], &o), 0);
	}
	for (ei = 0; ei < n; ei++) {
		for (i = 0; i < 3; i++) {
			tev_make(&t, sids[i], ei, n - 1);
			assert_int_equal(rec_writer_append(w[i], &t.ev), 0);
		}
	}
	for (i = 0; i < 3; i++) {
		struct rec_verify_stats st;
		char why[256];
		size_t len;
		uint8_t *disk;

		/* close waits for this writer's queued parts */
		assert_int_equal(rec_writer_close(w[i]), 0);
		assert_true(caps[i].final);
		assert_true(caps[i].n > 3);
		assert_int_equal(rec_verify(paths[i], &st, why, sizeof(why)), 0);
		assert_int_equal(st.events, n);
		assert_string_equal(st.sid, sids[i]);
		/* the callback saw exactly the bytes on disk, in order */
		disk = read_whole(paths[i], &len);
		assert_int_equal(len, caps[i].all.len);
		assert_memory_equal(disk, caps[i].all.p, len);
		free(disk);
		cap_free(&caps[i]);
	}
	assert_int_equal(rec_pool_queued(pool), 0);
	rec_pool_stop(pool);
}

/* A pool that falls behind stores parts uncompressed (every part here waits
 * behind more than a quarter of its tiny budget); one that keeps up deflates.
 * Both recordings read back the same. */
static void test_pool_behind_stores(void **state)
{
	static uint8_t text[32 * 1024];
	size_t budgets[2] = {1024, 64u << 20};
	size_t i;
	int b;

	(void)state;
	for (i = 0; i < sizeof(text); i++)
		text[i] = (uint8_t)("-rw-r--r-- 1 root root 1234 Nov 22 13:02 x.log\n"[i % 47]);
	for (b = 0; b < 2; b++) {
		struct rec_writer_opts o = {.part_size = 16384, .no_fsync = true};
		struct rec_verify_stats st;
		struct rec_part_hdr h;
		struct rec_writer *w;
		struct rec_pool *pool;
		char path[512], why[256];
		struct cap c;
		struct tev t;
		uint32_t k;

		assert_int_equal(rec_pool_start(&pool, budgets[b]), 0);
		memset(&c, 0, sizeof(c));
		c.fail_index = UINT32_MAX;
		o.on_part = cap_cb;
		o.cb_ctx = &c;
		o.pool = pool;
		assert_int_equal(
		    rec_writer_open(&w, tpath(path, sizeof(path), "behind"), SID_A, &o), 0);
		tev_make(&t, SID_A, 0, 8);
		assert_int_equal(rec_writer_append(w, &t.ev), 0);
		for (k = 1; k <= 8; k++) {
			Sessrec__Event e = SESSREC__EVENT__INIT;
			Sessrec__Print pr = SESSREC__PRINT__INIT;

			e.ei = k;
			e.body_case = SESSREC__EVENT__BODY_PRINT;
			e.print = &pr;
			pr.data.data = text;
			pr.data.len = sizeof(text);
			assert_int_equal(rec_writer_append(w, &e), 0);
		}
		assert_int_equal(rec_writer_close(w), 0);
		assert_true(c.n >= 8);
		for (k = 1; k + 1 < c.n; k++) {
			assert_int_equal(rec_hdr_decode(c.all.p + c.off[k], &h, NULL), 0);
			if (b == 0)
				assert_true(h.body_size >= h.raw_size); /* stored */
			else
				assert_true(h.body_size < h.raw_size / 10); /* deflated */
		}
		assert_int_equal(rec_verify(path, &st, why, sizeof(why)), 0);
		assert_int_equal(st.events, 9);
		cap_free(&c);
		rec_pool_stop(pool);
	}
}

static void test_every_byte(void **state)
{
	char path[512], why[256];
	struct cap c;
	uint8_t *p;
	size_t i;
	int err;

	build(tpath(path, sizeof(path), "small"), SID_A, 40, 400, &c);
	assert_true(c.n >= 3);
	assert_int_equal(verify_mem(c.all.p, c.all.len, NULL, why, sizeof(why)), 0);
	p = c.all.p;
	for (i = 0; i < c.all.len; i++) {
		p[i] ^= 0x01;
		err = verify_mem(p, c.all.len, NULL, why, sizeof(why));
		if (err >= 0)
			fail_msg("flip of byte %zu not detected", i);
		p[i] ^= 0xff;
		err = verify_mem(p, c.all.len, NULL, why, sizeof(why));
		if (err >= 0)
			fail_msg("change of byte %zu not detected", i);
		p[i] ^= 0xfe;
	}
	for (i = 0; i < c.all.len; i++) {
		err = verify_mem(p, i, NULL, why, sizeof(why));
		if (err >= 0)
			fail_msg("truncation at %zu not detected", i);
	}
	cap_free(&c);
}

/* ------------------------------------------------------------ reopen (crash recovery) */

#define RO_PER 10 /* events per part in these tests */

/*
 * An unfinished recording as a crash leaves it: nparts parts of RO_PER events
 * each, none final. ends[i] is the file size once part i was written.
 */
static void ro_build(const char *path, uint32_t nparts, uint64_t *ends)
{
	struct rec_writer_opts o = {.no_fsync = true};
	struct rec_writer *w;
	struct tev t;
	uint64_t ei = 0;

	assert_int_equal(rec_writer_open(&w, path, SID_A, &o), 0);
	for (uint32_t p = 0; p < nparts; p++) {
		for (uint64_t i = 0; i < RO_PER; i++, ei++) {
			tev_make(&t, SID_A, ei, 1000000);
			assert_int_equal(rec_writer_append(w, &t.ev), 0);
		}
		assert_int_equal(rec_writer_flush(w, false), 0);
		ends[p] = rec_writer_bytes(w);
	}
	rec_writer_abandon(w); /* the crash */
}

static uint64_t ro_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return (uint64_t)st.st_size;
}

/*
 * Reopen a recording whose first good_parts parts are sound, append ten more
 * events (the last a session.end) in two parts, close it and check that the
 * whole file is one sound recording with every event where it belongs.
 */
static void ro_continue(const char *path, uint32_t good_parts, uint64_t good_size)
{
	struct rec_writer_opts o = {.no_fsync = true};
	const uint64_t next = (uint64_t)good_parts * RO_PER, last = next + 9;
	struct rec_verify_stats st;
	struct rec_scan_info si;
	struct rec_reader *r;
	struct rec_writer *w;
	Sessrec__Event *start = NULL, *ev;
	uint64_t next_ei = 0, ei;
	int64_t last_ns = 0;
	char why[256];
	struct tev t;

	assert_int_equal(rec_writer_reopen(&w, path, &o, &start, &next_ei, &last_ns), 0);
	assert_int_equal(ro_size(path), good_size);
	assert_non_null(start);
	assert_int_equal(start->body_case, SESSREC__EVENT__BODY_START);
	assert_string_equal(start->start->sid, SID_A);
	assert_string_equal(start->start->user, "alice");
	assert_string_equal(start->start->tty, "/dev/pts/3");
	sessrec__event__free_unpacked(start, NULL);
	assert_int_equal(next_ei, next);
	assert_int_equal(last_ns, 1700000000000000000LL + (int64_t)(next - 1) * 1000);
	assert_int_equal(rec_writer_parts(w), good_parts);
	assert_int_equal(rec_writer_bytes(w), good_size);
	/* what the writer refuses after a reopen: a second start, an ei out of order */
	tev_make(&t, SID_A, next + 1, last);
	assert_int_equal(rec_writer_append(w, &t.ev), -EINVAL);
	for (ei = next; ei <= last; ei++) {
		tev_make(&t, SID_A, ei, last);
		assert_int_equal(rec_writer_append(w, &t.ev), 0);
		if (ei == next + 4)
			assert_int_equal(rec_writer_flush(w, false), 0);
	}
	assert_int_equal(rec_writer_close(w), 0);

	assert_int_equal(rec_verify(path, &st, why, sizeof(why)), 0);
	assert_int_equal(st.events, last + 1);
	assert_int_equal(st.parts, good_parts + 2);
	assert_true(st.final);
	assert_int_equal(rec_scan(path, &si), 0);
	assert_int_equal(si.parts, good_parts + 2);
	assert_true(si.final);
	assert_int_equal(si.end, si.size);

	/* every event is the one written, in order, across the restart */
	assert_int_equal(rec_reader_open(&r, path), 0);
	assert_int_equal(rec_reader_expect_sid(r, SID_A), 0);
	for (ei = 0; ei <= last; ei++) {
		assert_int_equal(rec_reader_next(r, &ev), 1);
		tev_make(&t, SID_A, ei, last);
		assert_same_event(ev, &t.ev);
		sessrec__event__free_unpacked(ev, NULL);
	}
	assert_int_equal(rec_reader_next(r, &ev), 0);
	rec_reader_close(r);

	/* finished now: a second reopen is refused and changes nothing */
	assert_int_equal(rec_writer_reopen(&w, path, &o, &start, &next_ei, &last_ns), -EALREADY);
	assert_null(w);
	assert_null(start);
	assert_int_equal(rec_verify(path, &st, why, sizeof(why)), 0);
}

static void test_reopen_clean(void **state)
{
	struct rec_scan_info si;
	char path[512];
	uint64_t ends[3];

	(void)state;
	ro_build(tpath(path, sizeof(path), "reopen-clean"), 3, ends);
	assert_int_equal(rec_scan(path, &si), 0);
	assert_int_equal(si.parts, 3);
	assert_false(si.final);
	assert_int_equal(si.end, ends[2]);
	assert_int_equal(si.size, ends[2]);
	ro_continue(path, 3, ends[2]);

	/* only part 0 (session.start and nine events) on disk */
	ro_build(tpath(path, sizeof(path), "reopen-one"), 1, ends);
	ro_continue(path, 1, ends[0]);
}

static void test_reopen_torn(void **state)
{
	struct rec_scan_info si;
	char path[512];
	uint64_t ends[3], cut;
	uint8_t *buf;
	size_t len;
	int fd;

	(void)state;
	/* the crash cut the last part's header, then its body, at every few bytes */
	for (cut = 1; cut < 400; cut += 37) {
		ro_build(tpath(path, sizeof(path), "reopen-cut"), 3, ends);
		if (ends[1] + cut >= ends[2])
			break;
		assert_int_equal(truncate(path, (off_t)(ends[1] + cut)), 0);
		assert_int_equal(rec_scan(path, &si), 0);
		assert_int_equal(si.parts, 2);
		assert_int_equal(si.end, ends[1]);
		assert_int_equal(si.size, ends[1] + cut);
		ro_continue(path, 2, ends[1]);
	}

	/* the last part's size reached the disk, not all its data */
	ro_build(tpath(path, sizeof(path), "reopen-garbled"), 3, ends);
	buf = read_whole(path, &len);
	memset(buf + ends[2] - 20, 0, 20);
	write_file(path, buf, len);
	free(buf);
	ro_continue(path, 2, ends[1]);

	/* zeros where parts should be: a file size that outran its data */
	ro_build(tpath(path, sizeof(path), "reopen-zeros"), 2, ends);
	assert_int_equal(truncate(path, (off_t)(ends[1] + 5000)), 0);
	ro_continue(path, 2, ends[1]);

	/* part 0 cut short: nothing to continue, the file stays */
	ro_build(tpath(path, sizeof(path), "reopen-nothing"), 1, ends);
	assert_int_equal(truncate(path, (off_t)(ends[0] - 1)), 0);
	{
		struct rec_writer *w = (struct rec_writer *)path;
		Sessrec__Event *start = (Sessrec__Event *)path;

		assert_int_equal(rec_writer_reopen(&w, path, NULL, &start, NULL, NULL), -ENODATA);
		assert_null(w);
		assert_null(start);
	}
	assert_int_equal(ro_size(path), ends[0] - 1);

	/* an empty file: the agent stopped before part 0 reached the disk */
	tpath(path, sizeof(path), "reopen-empty");
	fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(close(fd), 0);
	{
		struct rec_writer *w;

		assert_int_equal(rec_writer_reopen(&w, path, NULL, NULL, NULL, NULL), -ENODATA);
	}
	assert_int_equal(rec_scan(path, &si), 0);
	assert_int_equal(si.parts, 0);
	assert_int_equal(si.size, 0);
}

static void test_reopen_refused(void **state)
{
	struct rec_writer *w;
	struct cap c;
	char path[512];
	uint64_t ends[3];
	uint8_t *buf, *after;
	size_t len, len2;

	(void)state;
	/* damage before the last part is not a crash: refused, the file untouched */
	ro_build(tpath(path, sizeof(path), "reopen-damaged"), 3, ends);
	buf = read_whole(path, &len);
	buf[ends[0] + 150] ^= 0x40;
	write_file(path, buf, len);
	assert_int_equal(rec_writer_reopen(&w, path, NULL, NULL, NULL, NULL), -EBADMSG);
	after = read_whole(path, &len2);
	assert_int_equal(len2, len);
	assert_memory_equal(after, buf, len);
	free(after);

	/* a last part that is complete and hashes right but is not the next one */
	free(buf);
	ro_build(tpath(path, sizeof(path), "reopen-dup"), 2, ends);
	buf = read_whole(path, &len);
	buf = realloc(buf, len + (ends[1] - ends[0]));
	assert_non_null(buf);
	memcpy(buf + len, buf + ends[0], ends[1] - ends[0]); /* part 1 twice */
	write_file(path, buf, len + (ends[1] - ends[0]));
	assert_int_equal(rec_writer_reopen(&w, path, NULL, NULL, NULL, NULL), -EBADMSG);
	assert_int_equal(ro_size(path), len + (ends[1] - ends[0]));
	free(buf);

	/* a finished recording takes nothing more */
	build(tpath(path, sizeof(path), "reopen-final"), SID_A, 30, 400, &c);
	assert_int_equal(rec_writer_reopen(&w, path, NULL, NULL, NULL, NULL), -EALREADY);
	cap_free(&c);

	assert_int_equal(rec_writer_reopen(&w, "/nonexistent/x.rec", NULL, NULL, NULL, NULL),
			 -ENOENT);
	assert_int_equal(rec_writer_reopen(&w, NULL, NULL, NULL, NULL, NULL), -EINVAL);
	assert_int_equal(rec_writer_reopen(&w, tmpdir, NULL, NULL, NULL, NULL), -EISDIR);
}

/* Reopened writers work through the pool too, with on_part continuing the index. */
static void test_reopen_pool(void **state)
{
	struct rec_writer_opts o = {.no_fsync = true};
	struct rec_verify_stats st;
	struct rec_pool *pool;
	struct rec_writer *w;
	struct cap c;
	char path[512], why[256];
	uint64_t ends[2], next_ei = 0;
	struct tev t;

	(void)state;
	ro_build(tpath(path, sizeof(path), "reopen-pool"), 2, ends);
	assert_int_equal(rec_pool_start(&pool, 0), 0);
	memset(&c, 0, sizeof(c));
	c.fail_index = UINT32_MAX;
	c.n = 2; /* the callback checks that indexes follow on from the parts on disk */
	o.on_part = cap_cb;
	o.cb_ctx = &c;
	o.pool = pool;
	assert_int_equal(rec_writer_reopen(&w, path, &o, NULL, &next_ei, NULL), 0);
	assert_int_equal(next_ei, 2 * RO_PER);
	for (uint64_t ei = next_ei; ei < next_ei + 3; ei++) {
		tev_make(&t, SID_A, ei, next_ei + 2);
		assert_int_equal(rec_writer_append(w, &t.ev), 0);
	}
	assert_int_equal(rec_writer_close(w), 0);
	assert_int_equal(c.n, 3); /* one final part of three events */
	assert_true(c.final);
	assert_int_equal(rec_verify(path, &st, why, sizeof(why)), 0);
	assert_int_equal(st.events, next_ei + 3);
	cap_free(&c);
	rec_pool_stop(pool);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_header),
	    cmocka_unit_test(test_roundtrip),
	    cmocka_unit_test(test_compressible_and_random),
	    cmocka_unit_test(test_pool),
	    cmocka_unit_test(test_pool_behind_stores),
	    cmocka_unit_test(test_writer_api),
	    cmocka_unit_test(test_empty_final_part),
	    cmocka_unit_test(test_on_part_error),
	    cmocka_unit_test(test_truncated),
	    cmocka_unit_test(test_parts_removed_or_swapped),
	    cmocka_unit_test(test_flipped_bytes),
	    cmocka_unit_test(test_other_session),
	    cmocka_unit_test(test_trailing_garbage),
	    cmocka_unit_test(test_oversized_lengths),
	    cmocka_unit_test(test_bad_contents),
	    cmocka_unit_test(test_every_byte),
	    cmocka_unit_test(test_reopen_clean),
	    cmocka_unit_test(test_reopen_torn),
	    cmocka_unit_test(test_reopen_refused),
	    cmocka_unit_test(test_reopen_pool),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
