/*
 * Event assembly: raw BPF records (as the kernel side writes them) become
 * recording events and audit lines with every field in place, in time order.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "../../agent/agent.h"
#include "util.h"

#define SID	  "0b7e8a9c-1d2e-4f30-8a4b-5c6d7e8f9a0b"
#define CGID	  4242
#define OFFSET_NS 1700000000000000000LL /* mono -> UTC in these tests */

struct fixture {
	struct agent a;
	struct agent_session *s;
	char path[64];
	char *audit_buf;
	size_t audit_len;
	Sessrec__Event *ev[64];
	size_t n;
	uint8_t raw[32768];
};

static void hdr(struct sessrec_hdr *h, uint32_t type, uint64_t ts, const char *comm)
{
	memset(h, 0, sizeof(*h));
	h->type = type;
	h->pid = 1000;
	h->tid = 1001;
	h->ppid = 999;
	h->uid = 1234;
	h->gid = 5678;
	h->ts_ns = ts;
	h->cgroup_id = CGID;
	h->task_cgroup = CGID;
	snprintf(h->comm, sizeof(h->comm), "%s", comm);
}

static int setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct rec_writer_opts o = {.no_fsync = true};
	Sessrec__Event ev = SESSREC__EVENT__INIT;
	Sessrec__SessionStart st = SESSREC__SESSION_START__INIT;
	int fd;

	assert_non_null(f);
	assert_int_equal(agent_config_defaults(&f->a.cfg), 0);
	f->a.audit = open_memstream(&f->audit_buf, &f->audit_len);
	assert_non_null(f->a.audit);
	f->a.mono_to_real = OFFSET_NS;
	snprintf(f->a.hostname, sizeof(f->a.hostname), "node-a");
	snprintf(f->a.server_id, sizeof(f->a.server_id), "11111111-2222-4333-8444-555555555555");
	f->s = calloc(1, sizeof(*f->s));
	assert_non_null(f->s);
	snprintf(f->s->sid, sizeof(f->s->sid), SID);
	f->s->cgid = CGID;
	f->s->user = strdup("alice");
	f->s->login = strdup("root");
	f->s->events_fd = -1;
	f->s->client_fd = -1;
	f->s->start_mono = 5000000000ULL;
	f->s->start_ns = OFFSET_NS + 5000000000LL;
	snprintf(f->path, sizeof(f->path), "/tmp/sessrec-test-ev-XXXXXX");
	fd = mkstemp(f->path);
	assert_true(fd >= 0);
	close(fd);
	unlink(f->path);
	assert_int_equal(rec_writer_open(&f->s->w, f->path, SID, &o), 0);
	f->a.sessions = calloc(1, sizeof(*f->a.sessions));
	f->a.sessions[0] = f->s;
	f->a.n_sessions = 1;
	f->a.cap_sessions = 1;
	st.sid = SID;
	st.user = "alice";
	st.login = "root";
	ev.time_ns = f->s->start_ns;
	ev.body_case = SESSREC__EVENT__BODY_START;
	ev.start = &st;
	assert_int_equal(agent_event_write(&f->a, f->s, &ev), 0);
	*state = f;
	return 0;
}

static int teardown(void **state)
{
	struct fixture *f = *state;

	for (size_t i = 0; i < f->n; i++)
		sessrec__event__free_unpacked(f->ev[i], NULL);
	agent_session_free(f->s); /* its writer is abandoned with it */
	free(f->a.sessions);
	free(f->a.line);
	if (f->a.audit)
		fclose(f->a.audit);
	free(f->audit_buf);
	agent_config_free(f->a.cfg);
	unlink(f->path);
	free(f);
	return 0;
}

/* Finish the recording and read every event back (index 0 is the session.start). */
static void readback(struct fixture *f)
{
	struct rec_reader *r;
	Sessrec__Event *ev;

	assert_int_equal(rec_writer_close(f->s->w), 0);
	f->s->w = NULL;
	assert_int_equal(rec_reader_open(&r, f->path), 0);
	while (rec_reader_next(r, &ev) == 1) {
		assert_true(f->n < 64);
		f->ev[f->n++] = ev;
	}
	assert_string_equal(rec_reader_error(r), "");
	rec_reader_close(r);
	fflush(f->a.audit);
}

static size_t exec_record(uint8_t *buf, int32_t ret, uint32_t flags, const char *args,
			  size_t args_len, const char *path, uint64_t ts)
{
	struct sessrec_exec *e = (struct sessrec_exec *)buf;
	size_t plen = strlen(path) + 1;

	hdr(&e->hdr, SESSREC_EV_EXEC, ts, "bash");
	e->retval = ret;
	e->flags = flags;
	e->args_len = (uint16_t)args_len;
	e->path_len = (uint16_t)plen;
	memcpy(e->data, args, args_len);
	memcpy(e->data + args_len, path, plen);
	return sizeof(*e) + args_len + plen;
}

static void test_exec(void **state)
{
	struct fixture *f = *state;
	static const char args[] = "ls\0-la\0/tmp";
	Sessrec__Command *c;
	size_t n;

	n = exec_record(f->raw, 0, 0, args, sizeof(args), "/usr/bin/ls", 6000000000ULL);
	assert_int_equal(agent_event_raw(&f->a, f->s, f->raw, n), 0);
	n = exec_record(f->raw, -2, SESSREC_EXEC_F_ARGS_TRUNC, "nope\0x", 7, "/no/such",
			6000001000ULL);
	assert_int_equal(agent_event_raw(&f->a, f->s, f->raw, n), 0);
	readback(f);
	assert_int_equal(f->n, 3);

	assert_int_equal(f->ev[1]->body_case, SESSREC__EVENT__BODY_COMMAND);
	assert_int_equal(f->ev[1]->ei, 1);
	assert_int_equal(f->ev[1]->time_ns, OFFSET_NS + 6000000000LL);
	c = f->ev[1]->command;
	assert_int_equal(c->pid, 1000);
	assert_int_equal(c->ppid, 999);
	assert_int_equal(c->uid, 1234);
	assert_int_equal(c->gid, 5678);
	assert_int_equal(c->cgroup_id, CGID);
	assert_string_equal(c->program, "bash");
	assert_string_equal(c->path, "/usr/bin/ls");
	assert_int_equal(c->n_argv, 3);
	assert_string_equal(c->argv[0], "ls");
	assert_string_equal(c->argv[1], "-la");
	assert_string_equal(c->argv[2], "/tmp");
	assert_false(c->argv_truncated);
	assert_int_equal(c->return_code, 0);

	c = f->ev[2]->command;
	assert_int_equal(c->return_code, -2);
	assert_true(c->argv_truncated);
	assert_int_equal(c->n_argv, 2);
	assert_string_equal(c->argv[1], "x");
	assert_string_equal(c->path, "/no/such");

	/* the audit log: Teleport's schema, argv without argv[0] */
	assert_non_null(strstr(f->audit_buf, "\"event\":\"session.command\",\"code\":\"T4000I\""));
	assert_non_null(strstr(f->audit_buf, "\"argv\":[\"-la\",\"/tmp\"]"));
	assert_non_null(strstr(f->audit_buf, "\"sid\":\"" SID "\""));
	assert_non_null(strstr(f->audit_buf, "\"server_hostname\":\"node-a\""));
}

static size_t open_record(uint8_t *buf, int32_t ret, int32_t flags, int32_t dfd, uint16_t abs,
			  const char *path, uint64_t ts)
{
	struct sessrec_open *e = (struct sessrec_open *)buf;
	size_t plen = strlen(path) + 1;

	hdr(&e->hdr, SESSREC_EV_OPEN, ts, "cat");
	e->hdr.pid = (uint32_t)getpid(); /* relative paths resolve against this cwd */
	e->retval = ret;
	e->flags = flags;
	e->dfd = dfd;
	e->abs = abs;
	e->path_len = (uint16_t)plen;
	memcpy(e->data, path, plen);
	return sizeof(*e) + plen;
}

static void test_open(void **state)
{
	struct fixture *f = *state;
	char cwd[PATH_MAX], want[PATH_MAX + 32];
	size_t n;

	assert_non_null(getcwd(cwd, sizeof(cwd)));
	n = open_record(f->raw, 3, 0101, -100, 1, "/etc/hostname", 7000000000ULL);
	assert_int_equal(agent_event_raw(&f->a, f->s, f->raw, n), 0);
	/* a failed open of a relative path: made absolute with the process's cwd */
	n = open_record(f->raw, -2, 0, -100, 0, "missing.txt", 7000000001ULL);
	assert_int_equal(agent_event_raw(&f->a, f->s, f->raw, n), 0);
	/* relative to another directory fd: left as the process gave it */
	n = open_record(f->raw, -2, 0, 5, 0, "rel.txt", 7000000002ULL);
	assert_int_equal(agent_event_raw(&f->a, f->s, f->raw, n), 0);
	readback(f);
	assert_int_equal(f->n, 4);
	assert_int_equal(f->ev[1]->body_case, SESSREC__EVENT__BODY_DISK);
	assert_string_equal(f->ev[1]->disk->path, "/etc/hostname");
	assert_int_equal(f->ev[1]->disk->flags, 0101);
	assert_int_equal(f->ev[1]->disk->return_code, 3);
	assert_string_equal(f->ev[1]->disk->program, "cat");
	snprintf(want, sizeof(want), "%s/missing.txt", strcmp(cwd, "/") ? cwd : "");
	assert_string_equal(f->ev[2]->disk->path, want);
	assert_int_equal(f->ev[2]->disk->return_code, -2);
	assert_string_equal(f->ev[3]->disk->path, "rel.txt");
	assert_non_null(strstr(f->audit_buf, "\"event\":\"session.disk\",\"code\":\"T4001I\""));
}

static size_t connect_record(uint8_t *buf, uint16_t family, uint16_t proto, const char *src,
			     uint16_t sport, const char *dst, uint16_t dport, int32_t ret)
{
	struct sessrec_connect *e = (struct sessrec_connect *)buf;
	int af = family == 10 ? AF_INET6 : AF_INET;

	hdr(&e->hdr, SESSREC_EV_CONNECT, 8000000000ULL, "curl");
	e->retval = ret;
	e->family = family;
	e->protocol = proto;
	e->sport = sport;
	e->dport = dport;
	memset(e->saddr, 0, sizeof(e->saddr));
	memset(e->daddr, 0, sizeof(e->daddr));
	assert_int_equal(inet_pton(af, src, e->saddr), 1);
	assert_int_equal(inet_pton(af, dst, e->daddr), 1);
	return sizeof(*e);
}

static void test_connect(void **state)
{
	struct fixture *f = *state;
	Sessrec__Network *n;
	size_t len;

	len = connect_record(f->raw, 2, 6, "127.0.0.1", 40000, "127.0.0.1", 8080, 0);
	assert_int_equal(agent_event_raw(&f->a, f->s, f->raw, len), 0);
	len = connect_record(f->raw, 10, 17, "::1", 50000, "2001:db8::1", 53, -111);
	assert_int_equal(agent_event_raw(&f->a, f->s, f->raw, len), 0);
	readback(f);
	n = f->ev[1]->network;
	assert_string_equal(n->src_addr, "127.0.0.1");
	assert_string_equal(n->dst_addr, "127.0.0.1");
	assert_int_equal(n->src_port, 40000);
	assert_int_equal(n->dst_port, 8080);
	assert_int_equal(n->version, 4);
	assert_string_equal(n->protocol, "tcp");
	assert_int_equal(n->return_code, 0);
	n = f->ev[2]->network;
	assert_string_equal(n->src_addr, "::1");
	assert_string_equal(n->dst_addr, "2001:db8::1");
	assert_int_equal(n->version, 6);
	assert_string_equal(n->protocol, "udp");
	assert_int_equal(n->return_code, -111);
	assert_non_null(strstr(f->audit_buf, "\"dst_addr\":\"2001:db8::1\",\"dst_port\":53"));
}

static size_t tty_record(uint8_t *buf, const void *data, uint32_t len, uint64_t lost_total,
			 uint64_t ts)
{
	struct sessrec_tty *e = (struct sessrec_tty *)buf;

	hdr(&e->hdr, SESSREC_EV_TTY, ts, "bash");
	e->tty_major = 136;
	e->tty_minor = 3;
	e->offset = 0;
	e->len = len;
	e->lost_total = lost_total;
	memcpy(e->data, data, len);
	return sizeof(*e) + len;
}

static void test_tty_and_loss(void **state)
{
	struct fixture *f = *state;
	static const uint8_t one[] = {'h', 'i', 0, 0xff, '\n'};
	Sessrec__Print *p;
	size_t n;

	n = tty_record(f->raw, one, sizeof(one), 0, 5250000000ULL);
	assert_int_equal(agent_event_raw(&f->a, f->s, f->raw, n), 0);
	/* 100 bytes went missing before the next chunk: the gap is marked where it is */
	n = tty_record(f->raw, "ok", 2, 100, 6000000000ULL);
	assert_int_equal(agent_event_raw(&f->a, f->s, f->raw, n), 0);
	/* a record shorter than it claims is refused and takes no ei */
	n = tty_record(f->raw, "xyz", 3, 100, 6000000001ULL);
	assert_int_equal(agent_event_raw(&f->a, f->s, f->raw, n - 1), -EBADMSG);
	readback(f);
	assert_int_equal(f->n, 4);

	p = f->ev[1]->print;
	assert_int_equal(f->ev[1]->body_case, SESSREC__EVENT__BODY_PRINT);
	assert_int_equal(p->ci, 0);
	assert_int_equal(p->ms, 250);
	assert_int_equal(p->offset, 0);
	assert_int_equal(p->bytes, sizeof(one));
	assert_int_equal(p->data.len, sizeof(one));
	assert_memory_equal(p->data.data, one, sizeof(one));
	assert_string_equal(p->tty, "/dev/pts/3");

	assert_int_equal(f->ev[2]->body_case, SESSREC__EVENT__BODY_LOST);
	assert_string_equal(f->ev[2]->lost->class_, "terminal");
	assert_int_equal(f->ev[2]->lost->bytes, 100);

	p = f->ev[3]->print;
	assert_int_equal(p->ci, 1);
	assert_int_equal(p->ms, 1000);
	assert_int_equal(p->offset, sizeof(one) + 100);
	assert_memory_equal(p->data.data, "ok", 2);
	assert_int_equal(f->ev[3]->ei, 3);

	/* terminal data never reaches the audit log; the loss does */
	assert_null(strstr(f->audit_buf, "\"ci\""));
	assert_non_null(strstr(f->audit_buf, "\"event\":\"session.lost\",\"code\":\"SR4010W\""));
}

/* Records drained from different ring buffers come back in time order. */
static void test_order(void **state)
{
	struct fixture *f = *state;
	static const char args[] = "true";
	uint8_t a[512], b[512], c[512];
	size_t na, nb, nc;

	nb = tty_record(b, "second", 6, 0, 9000000002ULL);
	na = exec_record(a, 0, 0, args, sizeof(args), "/bin/true", 9000000001ULL);
	nc = open_record(c, 3, 0, -100, 1, "/third", 9000000003ULL);
	/* queued as the rings are drained: the command ring first, then the others */
	agent_session_queue(&f->a, c, nc);
	agent_session_queue(&f->a, b, nb);
	agent_session_queue(&f->a, a, na);
	/* a record of a cgroup that is no session is dropped */
	((struct sessrec_hdr *)a)->cgroup_id = CGID + 1;
	agent_session_queue(&f->a, a, na);
	agent_session_flush_cycle(&f->a);
	readback(f);
	assert_int_equal(f->n, 4);
	assert_int_equal(f->ev[1]->body_case, SESSREC__EVENT__BODY_COMMAND);
	assert_int_equal(f->ev[2]->body_case, SESSREC__EVENT__BODY_PRINT);
	assert_int_equal(f->ev[3]->body_case, SESSREC__EVENT__BODY_DISK);
	for (size_t i = 0; i < f->n; i++)
		assert_int_equal(f->ev[i]->ei, i);
}

/* Every audit line is one valid JSON object. */
static void test_audit_lines_parse(void **state)
{
	struct fixture *f = *state;
	static const char args[] = "echo\0\"quoted\"\0tab\there";
	char *line, *save = NULL;
	size_t n, lines = 0;

	n = exec_record(f->raw, 0, 0, args, sizeof(args), "/bin/echo", 6000000000ULL);
	assert_int_equal(agent_event_raw(&f->a, f->s, f->raw, n), 0);
	readback(f);
	for (line = strtok_r(f->audit_buf, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		json_error_t jerr;
		json_t *j = json_loads(line, 0, &jerr);

		assert_non_null(j);
		if (strcmp(json_string_value(json_object_get(j, "event")), "session.command") ==
		    0) {
			json_t *argv = json_object_get(j, "argv");

			assert_int_equal(json_array_size(argv), 2);
			assert_string_equal(json_string_value(json_array_get(argv, 0)),
					    "\"quoted\"");
			assert_string_equal(json_string_value(json_array_get(argv, 1)),
					    "tab\there");
		}
		json_decref(j);
		lines++;
	}
	assert_int_equal(lines, 2);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test_setup_teardown(test_exec, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_open, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_connect, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_tty_and_loss, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_order, setup, teardown),
	    cmocka_unit_test_setup_teardown(test_audit_lines_parse, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
