/*
 * lib/audit: every event type rendered, parsed back with jansson, and checked
 * field by field (name, value and JSON type), in both the audit and the full form.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "audit.h"

#define EV_UID "4a1e7c0e-6f0b-4b8e-9d55-1f2a3b4c5d6e"
#define T_NS   1700000000123456789LL /* 2023-11-14T22:13:20.123Z */

static const struct audit_ctx test_ctx = {
    .sid = "0f0e0d0c-0b0a-4908-8706-050403020100",
    .server_id = "node-1-id",
    .server_hostname = "node-1",
    .login = "root",
    .user = "alice",
    .session_start_ns = 1700000000000000000LL,
};

typedef int (*render_fn)(const Sessrec__Event *, const struct audit_ctx *, char **);

/* Render, check the line's shape, and parse it back. */
static json_t *render(render_fn fn, const Sessrec__Event *ev, const struct audit_ctx *ctx)
{
	json_error_t jerr;
	char *line = NULL;
	json_t *j;

	assert_int_equal(fn(ev, ctx, &line), 0);
	assert_non_null(line);
	/* One line, compact. */
	assert_null(strchr(line, '\n'));
	assert_null(strstr(line, "\": "));
	j = json_loads(line, JSON_ALLOW_NUL | JSON_REJECT_DUPLICATES, &jerr);
	if (!j)
		fail_msg("not JSON (%s): %s", jerr.text, line);
	assert_true(json_is_object(j));
	free(line);
	return j;
}

static json_t *audit(const Sessrec__Event *ev)
{
	return render(audit_format, ev, &test_ctx);
}

static json_t *full(const Sessrec__Event *ev)
{
	return render(audit_event_json, ev, &test_ctx);
}

static void check_str(const json_t *o, const char *key, const char *want)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		fail_msg("missing \"%s\"", key);
	if (!json_is_string(v))
		fail_msg("\"%s\" is not a string", key);
	assert_string_equal(json_string_value(v), want);
}

static void check_int(const json_t *o, const char *key, long long want)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		fail_msg("missing \"%s\"", key);
	if (!json_is_integer(v))
		fail_msg("\"%s\" is not an integer", key);
	assert_int_equal(json_integer_value(v), want);
}

static void check_bool(const json_t *o, const char *key, bool want)
{
	json_t *v = json_object_get(o, key);

	if (!v)
		fail_msg("missing \"%s\"", key);
	if (!json_is_boolean(v))
		fail_msg("\"%s\" is not a boolean", key);
	assert_int_equal(json_is_true(v), want);
}

static void check_strv(const json_t *o, const char *key, const char *const *want, size_t n)
{
	json_t *v = json_object_get(o, key);
	size_t i;

	if (!v)
		fail_msg("missing \"%s\"", key);
	if (!json_is_array(v))
		fail_msg("\"%s\" is not an array", key);
	assert_int_equal(json_array_size(v), n);
	for (i = 0; i < n; i++) {
		assert_true(json_is_string(json_array_get(v, i)));
		assert_string_equal(json_string_value(json_array_get(v, i)), want[i]);
	}
}

/* Exactly these keys, in this order. */
static void check_keys(const json_t *o, const char *const *keys, size_t n)
{
	void *it = json_object_iter((json_t *)o);
	size_t i;

	for (i = 0; i < n; i++) {
		if (!it)
			fail_msg("missing \"%s\" (and later keys)", keys[i]);
		if (strcmp(json_object_iter_key(it), keys[i]) != 0)
			fail_msg("key %zu is \"%s\", want \"%s\"", i, json_object_iter_key(it),
				 keys[i]);
		it = json_object_iter_next((json_t *)o, it);
	}
	if (it)
		fail_msg("unexpected key \"%s\"", json_object_iter_key(it));
}

#define CHECK_KEYS(o, ...)                                                                         \
	do {                                                                                       \
		static const char *const k_[] = {__VA_ARGS__};                                     \
		check_keys(o, k_, sizeof(k_) / sizeof(k_[0]));                                     \
	} while (0)

#define COMMON_KEYS                                                                                \
	"event", "code", "time", "ei", "uid", "sid", "server_id", "server_hostname", "login", "user"

static void check_common(const json_t *o, const char *event, const char *code, uint64_t ei)
{
	check_str(o, "event", event);
	check_str(o, "code", code);
	check_str(o, "time", "2023-11-14T22:13:20.123Z");
	check_int(o, "ei", (long long)ei);
	check_str(o, "uid", EV_UID);
	check_str(o, "sid", test_ctx.sid);
	check_str(o, "server_id", "node-1-id");
	check_str(o, "server_hostname", "node-1");
	check_str(o, "login", "root");
	check_str(o, "user", "alice");
}

static void event_init(Sessrec__Event *ev, uint64_t ei)
{
	sessrec__event__init(ev);
	ev->ei = ei;
	ev->time_ns = T_NS;
	ev->uid = EV_UID;
}

/* ------------------------------------------------------------------ fixtures */

static char *start_argv[] = {"bash", "-l"};

static void start_init(Sessrec__Event *ev, Sessrec__SessionStart *st,
		       Sessrec__SessionStart__LabelsEntry *lab,
		       Sessrec__SessionStart__LabelsEntry **labp)
{
	event_init(ev, 0);
	sessrec__session_start__init(st);
	st->sid = "11111111-2222-4333-8444-555555555555";
	st->server_id = "node-1-id-from-start";
	st->server_hostname = "node-1.example";
	st->login = "admin";
	st->user = "bob";
	st->kind = "ssh";
	st->initial_command = start_argv;
	st->n_initial_command = 2;
	st->cols = 120;
	st->rows = 40;
	sessrec__session_start__labels_entry__init(&lab[0]);
	lab[0].key = "env";
	lab[0].value = "prod";
	sessrec__session_start__labels_entry__init(&lab[1]);
	lab[1].key = "team";
	lab[1].value = "infra";
	sessrec__session_start__labels_entry__init(&lab[2]);
	lab[2].key = "env"; /* a node label under the same key: the session's wins */
	lab[2].value = "staging";
	labp[0] = &lab[0];
	labp[1] = &lab[1];
	labp[2] = &lab[2];
	st->labels = labp;
	st->n_labels = 3;
	st->cgroup_id = 4321;
	st->tty = "/dev/pts/3";
	st->remote_addr = "10.0.0.9:51234";
	st->launcher_pid = 777;
	st->launcher_uid = 1000;
	ev->body_case = SESSREC__EVENT__BODY_START;
	ev->start = st;
}

static char *cmd_argv[] = {"/bin/ls", "-la", "/tmp"};

static void command_init(Sessrec__Event *ev, Sessrec__Command *c)
{
	event_init(ev, 5);
	sessrec__command__init(c);
	c->pid = 4242;
	c->ppid = 4200;
	c->uid = 1001;
	c->gid = 1002;
	c->cgroup_id = 987654321;
	c->program = "ls";
	c->path = "/usr/bin/ls";
	c->argv = cmd_argv;
	c->n_argv = 3;
	c->return_code = 0;
	ev->body_case = SESSREC__EVENT__BODY_COMMAND;
	ev->command = c;
}

static void disk_init(Sessrec__Event *ev, Sessrec__Disk *d)
{
	event_init(ev, 6);
	sessrec__disk__init(d);
	d->pid = 4243;
	d->uid = 1001;
	d->cgroup_id = 987654321;
	d->program = "cat";
	d->path = "/etc/passwd";
	d->flags = 0x80000; /* O_CLOEXEC */
	d->return_code = -2;
	ev->body_case = SESSREC__EVENT__BODY_DISK;
	ev->disk = d;
}

static void network_init(Sessrec__Event *ev, Sessrec__Network *n)
{
	event_init(ev, 7);
	sessrec__network__init(n);
	n->pid = 4244;
	n->uid = 1001;
	n->cgroup_id = 987654321;
	n->program = "curl";
	n->src_addr = "2001:db8::1";
	n->dst_addr = "2001:db8::2";
	n->src_port = 40000;
	n->dst_port = 443;
	n->version = 6;
	n->protocol = "tcp";
	n->return_code = -111;
	ev->body_case = SESSREC__EVENT__BODY_NETWORK;
	ev->network = n;
}

static void print_init(Sessrec__Event *ev, Sessrec__Print *p, const void *data, size_t len)
{
	event_init(ev, 8);
	sessrec__print__init(p);
	p->ci = 3;
	p->ms = 1500;
	p->offset = 1024;
	p->bytes = (uint32_t)len;
	p->data.data = (uint8_t *)data;
	p->data.len = len;
	p->pid = 4245;
	p->tty = "/dev/pts/3";
	ev->body_case = SESSREC__EVENT__BODY_PRINT;
	ev->print = p;
}

/* ------------------------------------------------------------------ tests */

static void test_names_and_codes(void **state)
{
	static const struct {
		Sessrec__Event__BodyCase body;
		const char *name, *code;
	} tab[] = {
	    {SESSREC__EVENT__BODY_START, "session.start", "T2000I"},
	    {SESSREC__EVENT__BODY_END, "session.end", "T2004I"},
	    {SESSREC__EVENT__BODY_COMMAND, "session.command", "T4000I"},
	    {SESSREC__EVENT__BODY_DISK, "session.disk", "T4001I"},
	    {SESSREC__EVENT__BODY_NETWORK, "session.network", "T4002I"},
	    {SESSREC__EVENT__BODY_LOST, "session.lost", "SR4010W"},
	};
	Sessrec__Event ev;
	size_t i;

	sessrec__event__init(&ev);
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		ev.body_case = tab[i].body;
		assert_string_equal(audit_event_name(&ev), tab[i].name);
		assert_string_equal(audit_event_code(&ev), tab[i].code);
	}
	assert_string_equal(AUDIT_EV_LOST, "session.lost");
	assert_string_equal(AUDIT_CODE_LOST, "SR4010W");
	ev.body_case = SESSREC__EVENT__BODY_PRINT;
	assert_null(audit_event_name(&ev));
	assert_null(audit_event_code(&ev));
	ev.body_case = SESSREC__EVENT__BODY__NOT_SET;
	assert_null(audit_event_name(&ev));
	assert_null(audit_event_code(&ev));
	assert_null(audit_event_name(NULL));
	assert_null(audit_event_code(NULL));
}

static void test_time_format(void **state)
{
	static const struct {
		int64_t ns;
		const char *want;
	} tab[] = {
	    {1700000000123456789LL, "2023-11-14T22:13:20.123Z"},
	    {1700000000000999999LL, "2023-11-14T22:13:20.000Z"}, /* truncated, not rounded */
	    {1700000000999999999LL, "2023-11-14T22:13:20.999Z"},
	    {0, "1970-01-01T00:00:00.000Z"},
	    {-5, "1970-01-01T00:00:00.000Z"}, /* nonsense clamps to the epoch */
	    {951782400001000000LL, "2000-02-29T00:00:00.001Z"},
	};
	Sessrec__Event ev;
	Sessrec__Lost l;
	size_t i;

	event_init(&ev, 1);
	sessrec__lost__init(&l);
	ev.body_case = SESSREC__EVENT__BODY_LOST;
	ev.lost = &l;
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		json_t *j;

		ev.time_ns = tab[i].ns;
		j = audit(&ev);
		check_str(j, "time", tab[i].want);
		json_decref(j);
	}
}

static void test_start_audit(void **state)
{
	Sessrec__SessionStart__LabelsEntry lab[3], *labp[3];
	Sessrec__SessionStart st;
	Sessrec__Event ev;
	json_t *j, *labels;

	start_init(&ev, &st, lab, labp);
	j = audit(&ev);
	CHECK_KEYS(j, COMMON_KEYS, "size", "initial_command", "session_recording", "kind", "labels",
		   "cgroup_id", "remote_addr", "tty");
	check_str(j, "event", "session.start");
	check_str(j, "code", "T2000I");
	check_str(j, "time", "2023-11-14T22:13:20.123Z");
	check_int(j, "ei", 0);
	check_str(j, "uid", EV_UID);
	/* The start body wins over the context. */
	check_str(j, "sid", "11111111-2222-4333-8444-555555555555");
	check_str(j, "server_id", "node-1-id-from-start");
	check_str(j, "server_hostname", "node-1.example");
	check_str(j, "login", "admin");
	check_str(j, "user", "bob");
	check_str(j, "size", "120:40");
	check_strv(j, "initial_command", (const char *const[]){"bash", "-l"}, 2);
	check_str(j, "session_recording", "node");
	check_str(j, "kind", "ssh");
	labels = json_object_get(j, "labels");
	assert_true(json_is_object(labels));
	assert_int_equal(json_object_size(labels), 2);
	check_str(labels, "env", "prod");
	check_str(labels, "team", "infra");
	check_int(j, "cgroup_id", 4321);
	check_str(j, "remote_addr", "10.0.0.9:51234");
	check_str(j, "tty", "/dev/pts/3");
	json_decref(j);
}

static void test_start_fallbacks(void **state)
{
	Sessrec__SessionStart__LabelsEntry lab[3], *labp[3];
	Sessrec__SessionStart st;
	Sessrec__Event ev;
	json_t *j;

	start_init(&ev, &st, lab, labp);
	/* Empty in the body: taken from the context; empty tty/remote_addr: left out. */
	st.sid = "";
	st.server_id = "";
	st.server_hostname = "";
	st.login = "";
	st.user = NULL;
	st.tty = "";
	st.remote_addr = "";
	st.n_labels = 0;
	st.n_initial_command = 0;
	j = audit(&ev);
	CHECK_KEYS(j, COMMON_KEYS, "size", "initial_command", "session_recording", "kind", "labels",
		   "cgroup_id");
	check_common(j, "session.start", "T2000I", 0);
	check_strv(j, "initial_command", NULL, 0);
	assert_true(json_is_object(json_object_get(j, "labels")));
	assert_int_equal(json_object_size(json_object_get(j, "labels")), 0);
	json_decref(j);
}

static void test_start_event_json(void **state)
{
	Sessrec__SessionStart__LabelsEntry lab[3], *labp[3];
	Sessrec__SessionStart st;
	Sessrec__Event ev;
	json_t *j;

	start_init(&ev, &st, lab, labp);
	st.tty = "";
	j = full(&ev);
	/* Every field, empty ones included. */
	CHECK_KEYS(j, COMMON_KEYS, "size", "initial_command", "session_recording", "kind", "labels",
		   "cgroup_id", "remote_addr", "tty", "launcher_pid", "launcher_uid");
	check_str(j, "event", "session.start");
	check_str(j, "code", "T2000I");
	check_str(j, "sid", "11111111-2222-4333-8444-555555555555");
	check_str(j, "tty", "");
	check_int(j, "launcher_pid", 777);
	check_int(j, "launcher_uid", 1000);
	json_decref(j);
}

static void test_end(void **state)
{
	static char *parts[] = {"alice", "carol"};
	static char *cmd[] = {"bash"};
	Sessrec__SessionEnd en;
	Sessrec__Event ev;
	json_t *j;

	event_init(&ev, 99);
	sessrec__session_end__init(&en);
	en.session_start_ns = 1700000000001000000LL;
	en.session_stop_ns = 1700000060002000000LL;
	en.participants = parts;
	en.n_participants = 2;
	en.interactive = 1;
	en.initial_command = cmd;
	en.n_initial_command = 1;
	en.exit_code = 3;
	en.reason = "exited";
	ev.body_case = SESSREC__EVENT__BODY_END;
	ev.end = &en;

	j = audit(&ev);
	CHECK_KEYS(j, COMMON_KEYS, "enhanced_recording", "interactive", "participants",
		   "session_start", "session_stop", "initial_command", "exit_code", "reason");
	check_common(j, "session.end", "T2004I", 99);
	check_bool(j, "enhanced_recording", true);
	check_bool(j, "interactive", true);
	check_strv(j, "participants", (const char *const[]){"alice", "carol"}, 2);
	check_str(j, "session_start", "2023-11-14T22:13:20.001Z");
	check_str(j, "session_stop", "2023-11-14T22:14:20.002Z");
	check_strv(j, "initial_command", (const char *const[]){"bash"}, 1);
	check_int(j, "exit_code", 3);
	check_str(j, "reason", "exited");
	json_decref(j);

	/* Times missing from the body: start from the context, stop from the event. */
	en.session_start_ns = 0;
	en.session_stop_ns = 0;
	en.interactive = 0;
	en.exit_code = -1;
	j = audit(&ev);
	check_str(j, "session_start", "2023-11-14T22:13:20.000Z");
	check_str(j, "session_stop", "2023-11-14T22:13:20.123Z");
	check_bool(j, "interactive", false);
	check_int(j, "exit_code", -1);
	json_decref(j);

	j = full(&ev);
	CHECK_KEYS(j, COMMON_KEYS, "enhanced_recording", "interactive", "participants",
		   "session_start", "session_stop", "initial_command", "exit_code", "reason");
	json_decref(j);
}

static void test_command_audit(void **state)
{
	Sessrec__Command c;
	Sessrec__Event ev;
	json_t *j;

	command_init(&ev, &c);
	j = audit(&ev);
	CHECK_KEYS(j, COMMON_KEYS, "pid", "ppid", "cgroup_id", "program", "path", "argv",
		   "return_code", "user_id", "group_id");
	check_common(j, "session.command", "T4000I", 5);
	check_int(j, "pid", 4242);
	check_int(j, "ppid", 4200);
	check_int(j, "cgroup_id", 987654321);
	check_str(j, "program", "ls");
	check_str(j, "path", "/usr/bin/ls");
	/* argv[0] left out, as Teleport does. */
	check_strv(j, "argv", (const char *const[]){"-la", "/tmp"}, 2);
	check_int(j, "return_code", 0);
	/* "uid" stays the event id; the numeric ids are user_id/group_id. */
	check_int(j, "user_id", 1001);
	check_int(j, "group_id", 1002);
	json_decref(j);

	/* A failed exec with a truncated argv and only argv[0]. */
	c.argv_truncated = 1;
	c.return_code = -2;
	c.n_argv = 1;
	j = audit(&ev);
	CHECK_KEYS(j, COMMON_KEYS, "pid", "ppid", "cgroup_id", "program", "path", "argv",
		   "argv_truncated", "return_code", "user_id", "group_id");
	check_strv(j, "argv", NULL, 0);
	check_bool(j, "argv_truncated", true);
	check_int(j, "return_code", -2);
	json_decref(j);

	/* No argv at all. */
	c.argv = NULL;
	c.n_argv = 0;
	j = audit(&ev);
	check_strv(j, "argv", NULL, 0);
	json_decref(j);
}

static void test_command_event_json(void **state)
{
	Sessrec__Command c;
	Sessrec__Event ev;
	json_t *j;

	command_init(&ev, &c);
	j = full(&ev);
	CHECK_KEYS(j, COMMON_KEYS, "pid", "ppid", "cgroup_id", "program", "path", "argv",
		   "argv_truncated", "return_code", "user_id", "group_id");
	check_common(j, "session.command", "T4000I", 5);
	/* The full argv, argv[0] included. */
	check_strv(j, "argv", (const char *const[]){"/bin/ls", "-la", "/tmp"}, 3);
	check_bool(j, "argv_truncated", false);
	check_int(j, "user_id", 1001);
	check_int(j, "group_id", 1002);
	json_decref(j);
}

static void test_disk(void **state)
{
	Sessrec__Event ev;
	Sessrec__Disk d;
	json_t *j;

	disk_init(&ev, &d);
	j = audit(&ev);
	CHECK_KEYS(j, COMMON_KEYS, "pid", "cgroup_id", "program", "path", "flags", "return_code");
	check_common(j, "session.disk", "T4001I", 6);
	check_int(j, "pid", 4243);
	check_int(j, "cgroup_id", 987654321);
	check_str(j, "program", "cat");
	check_str(j, "path", "/etc/passwd");
	check_int(j, "flags", 0x80000);
	check_int(j, "return_code", -2);
	json_decref(j);

	j = full(&ev);
	CHECK_KEYS(j, COMMON_KEYS, "pid", "cgroup_id", "program", "path", "flags", "return_code",
		   "user_id");
	check_int(j, "user_id", 1001);
	json_decref(j);
}

static void test_network(void **state)
{
	Sessrec__Network n;
	Sessrec__Event ev;
	json_t *j;

	network_init(&ev, &n);
	j = audit(&ev);
	CHECK_KEYS(j, COMMON_KEYS, "pid", "cgroup_id", "program", "src_addr", "dst_addr",
		   "dst_port", "version", "operation", "action", "src_port", "protocol",
		   "return_code");
	check_common(j, "session.network", "T4002I", 7);
	check_int(j, "pid", 4244);
	check_int(j, "cgroup_id", 987654321);
	check_str(j, "program", "curl");
	check_str(j, "src_addr", "2001:db8::1");
	check_str(j, "dst_addr", "2001:db8::2");
	check_int(j, "dst_port", 443);
	check_int(j, "version", 6);
	check_int(j, "operation", 0);
	check_int(j, "action", 0);
	check_int(j, "src_port", 40000);
	check_str(j, "protocol", "tcp");
	check_int(j, "return_code", -111);
	json_decref(j);

	n.version = 4;
	n.protocol = "udp";
	n.src_addr = "10.1.2.3";
	n.dst_addr = "10.1.2.4";
	n.dst_port = 53;
	n.return_code = 0;
	j = audit(&ev);
	check_int(j, "version", 4);
	check_str(j, "protocol", "udp");
	check_str(j, "dst_addr", "10.1.2.4");
	check_int(j, "dst_port", 53);
	json_decref(j);

	j = full(&ev);
	CHECK_KEYS(j, COMMON_KEYS, "pid", "cgroup_id", "program", "src_addr", "dst_addr",
		   "dst_port", "version", "operation", "action", "src_port", "protocol",
		   "return_code", "user_id");
	check_int(j, "user_id", 1001);
	json_decref(j);
}

static void test_lost(void **state)
{
	Sessrec__Event ev;
	Sessrec__Lost l;
	json_t *j;

	event_init(&ev, 12);
	sessrec__lost__init(&l);
	l.class_ = "terminal";
	l.events = 17;
	l.bytes = 65536;
	ev.body_case = SESSREC__EVENT__BODY_LOST;
	ev.lost = &l;
	j = audit(&ev);
	CHECK_KEYS(j, COMMON_KEYS, "class", "events", "bytes");
	check_common(j, "session.lost", "SR4010W", 12);
	check_str(j, "class", "terminal");
	check_int(j, "events", 17);
	check_int(j, "bytes", 65536);
	json_decref(j);

	j = full(&ev);
	CHECK_KEYS(j, COMMON_KEYS, "class", "events", "bytes");
	json_decref(j);
}

static void test_print_not_audited(void **state)
{
	char *line = (char *)"untouched";
	Sessrec__Event ev;
	Sessrec__Print p;

	print_init(&ev, &p, "hello\r\n", 7);
	assert_int_equal(audit_format(&ev, &test_ctx, &line), -ENOENT);
	assert_null(line);
}

/* An independent decoder, so that the round trip does not trust the encoder. */
static size_t b64_decode(const char *s, uint8_t *out)
{
	size_t n = 0, len = strlen(s), i;
	uint32_t acc = 0;
	int bits = 0;

	assert_int_equal(len % 4, 0);
	for (i = 0; i < len && s[i] != '='; i++) {
		const char *tab =
		    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
		const char *p = strchr(tab, s[i]);

		assert_non_null(p);
		acc = acc << 6 | (uint32_t)(p - tab);
		bits += 6;
		if (bits >= 8) {
			bits -= 8;
			out[n++] = (uint8_t)(acc >> bits);
		}
	}
	return n;
}

static void test_print_event_json(void **state)
{
	/* NUL, terminal escapes, invalid UTF-8, a valid multibyte character, CR LF. */
	static const uint8_t data[] = {'o',  'k',  0x00, 0x1b, '[',  '3',  '1',	 'm', 0xff,
				       0xfe, 0xe2, 0x82, 0xac, 0xc3, '\r', '\n', 0x80};
	uint8_t back[sizeof(data)];
	Sessrec__Event ev;
	Sessrec__Print p;
	json_t *j, *d;

	print_init(&ev, &p, data, sizeof(data));
	j = full(&ev);
	CHECK_KEYS(j, "event", "time", "ei", "uid", "sid", "server_id", "server_hostname", "login",
		   "user", "ci", "ms", "offset", "bytes", "pid", "tty", "data", "data_b64");
	check_str(j, "event", "print");
	check_str(j, "time", "2023-11-14T22:13:20.123Z");
	check_int(j, "ei", 8);
	check_str(j, "sid", test_ctx.sid);
	check_int(j, "ci", 3);
	check_int(j, "ms", 1500);
	check_int(j, "offset", 1024);
	check_int(j, "bytes", (long long)sizeof(data));
	check_int(j, "pid", 4245);
	check_str(j, "tty", "/dev/pts/3");

	/* data: the text with each invalid byte as U+FFFD, NUL kept as \u0000. */
	d = json_object_get(j, "data");
	assert_true(json_is_string(d));
	{
		static const char want[] = "ok\0\x1b[31m\xef\xbf\xbd\xef\xbf\xbd"
					   "\xe2\x82\xac\xef\xbf\xbd\r\n\xef\xbf\xbd";

		assert_int_equal(json_string_length(d), sizeof(want) - 1);
		assert_memory_equal(json_string_value(d), want, sizeof(want) - 1);
	}

	/* data_b64: the exact bytes. */
	d = json_object_get(j, "data_b64");
	assert_true(json_is_string(d));
	assert_int_equal(strlen(json_string_value(d)), (sizeof(data) + 2) / 3 * 4);
	assert_int_equal(b64_decode(json_string_value(d), back), sizeof(data));
	assert_memory_equal(back, data, sizeof(data));
	json_decref(j);
}

static void test_print_base64_vectors(void **state)
{
	/* RFC 4648 section 10. */
	static const char *const in[] = {"", "f", "fo", "foo", "foob", "fooba", "foobar"};
	static const char *const out[] = {"",	      "Zg==",	  "Zm8=",    "Zm9v",
					  "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"};
	Sessrec__Event ev;
	Sessrec__Print p;
	size_t i;

	for (i = 0; i < sizeof(in) / sizeof(in[0]); i++) {
		json_t *j;

		print_init(&ev, &p, in[i], strlen(in[i]));
		j = full(&ev);
		check_str(j, "data", in[i]);
		check_str(j, "data_b64", out[i]);
		json_decref(j);
	}
	/* No data at all. */
	print_init(&ev, &p, NULL, 0);
	{
		json_t *j = full(&ev);

		check_str(j, "data", "");
		check_str(j, "data_b64", "");
		json_decref(j);
	}
}

static void test_invalid_utf8(void **state)
{
	static const struct {
		const char *in, *want;
	} tab[] = {
	    {"/tmp/\xff\xfe", "/tmp/\xef\xbf\xbd\xef\xbf\xbd"},
	    /* A truncated sequence: each byte replaced on its own. */
	    {"/a\xe2\x82/b", "/a\xef\xbf\xbd\xef\xbf\xbd/b"},
	    {"/end\xe2\x82", "/end\xef\xbf\xbd\xef\xbf\xbd"},
	    /* Overlong '/' and a surrogate half. */
	    {"\xc0\xaf", "\xef\xbf\xbd\xef\xbf\xbd"},
	    {"\xed\xa0\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
	    /* Above U+10FFFF. */
	    {"\xf4\x90\x80\x80", "\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd\xef\xbf\xbd"},
	    /* Valid: Latin, CJK, emoji, U+10FFFF pass unchanged. */
	    {"/h\xc3\xa9/\xe6\x97\xa5/\xf0\x9f\x98\x80/\xf4\x8f\xbf\xbf",
	     "/h\xc3\xa9/\xe6\x97\xa5/\xf0\x9f\x98\x80/\xf4\x8f\xbf\xbf"},
	    /* JSON specials are escaped by jansson and come back as they were. */
	    {"/q\"b\\s\t\x01/", "/q\"b\\s\t\x01/"},
	};
	Sessrec__Event ev;
	Sessrec__Disk d;
	size_t i;

	disk_init(&ev, &d);
	for (i = 0; i < sizeof(tab) / sizeof(tab[0]); i++) {
		json_t *j;

		d.path = (char *)tab[i].in;
		d.program = (char *)tab[i].in;
		j = audit(&ev);
		check_str(j, "path", tab[i].want);
		check_str(j, "program", tab[i].want);
		json_decref(j);
		j = full(&ev);
		check_str(j, "path", tab[i].want);
		json_decref(j);
	}
}

/* Every byte that needs escaping, at every offset of a long plain string: the
 * writer copies plain text 8 bytes at a time and must notice each of them. */
static void test_escapes_at_every_offset(void **state)
{
	static const char *specials[] = {
	    "\x01", "\x1f", "\t",	"\n",		"\"",
	    "\\",   "\x7f", "\xc3\xa9", "\xe6\x97\xa5", "\xf0\x9f\x98\x80"};
	Sessrec__Event ev;
	Sessrec__Disk d;
	char in[64];
	size_t k, off;

	(void)state;
	disk_init(&ev, &d);
	for (k = 0; k < sizeof(specials) / sizeof(specials[0]); k++) {
		for (off = 0; off < 24; off++) {
			json_t *j;

			memset(in, 'a', sizeof(in));
			memcpy(in + off, specials[k], strlen(specials[k]));
			in[off + strlen(specials[k]) + 17] = '\0';
			d.path = in;
			j = audit(&ev);
			check_str(j, "path", in);
			json_decref(j);
		}
	}
	/* a lone continuation byte in the middle of plain words becomes U+FFFD */
	memset(in, 'b', sizeof(in));
	in[13] = (char)0x80;
	in[30] = '\0';
	d.path = in;
	{
		char want[64];
		json_t *j = audit(&ev);

		memset(want, 'b', sizeof(want));
		memcpy(want + 13, "\xef\xbf\xbd", 3);
		want[32] = '\0';
		check_str(j, "path", want);
		json_decref(j);
	}
}

static void test_invalid_utf8_elsewhere(void **state)
{
	static char *argv[] = {"cat", "\xff", "ok"};
	Sessrec__SessionStart__LabelsEntry lab[3], *labp[3];
	Sessrec__SessionStart st;
	Sessrec__Command c;
	Sessrec__Event ev;
	struct audit_ctx ctx = test_ctx;
	json_t *j;

	command_init(&ev, &c);
	c.argv = argv;
	c.program = "c\x80t";
	j = audit(&ev);
	check_strv(j, "argv", (const char *const[]){"\xef\xbf\xbd", "ok"}, 2);
	check_str(j, "program", "c\xef\xbf\xbdt");
	json_decref(j);

	/* Session fields and label keys from the outside world are sanitized too. */
	ctx.user = "al\xffice";
	j = render(audit_format, &ev, &ctx);
	check_str(j, "user", "al\xef\xbf\xbdice");
	json_decref(j);

	start_init(&ev, &st, lab, labp);
	lab[1].key = "t\xfe";
	lab[1].value = "v\xfe";
	j = audit(&ev);
	check_str(json_object_get(j, "labels"), "t\xef\xbf\xbd", "v\xef\xbf\xbd");
	json_decref(j);
}

static void test_null_ctx_and_strings(void **state)
{
	Sessrec__Event ev;
	Sessrec__Disk d;
	json_t *j;

	disk_init(&ev, &d);
	d.path = NULL;
	ev.uid = NULL;
	j = render(audit_format, &ev, NULL);
	CHECK_KEYS(j, COMMON_KEYS, "pid", "cgroup_id", "program", "path", "flags", "return_code");
	check_str(j, "uid", "");
	check_str(j, "sid", "");
	check_str(j, "server_id", "");
	check_str(j, "server_hostname", "");
	check_str(j, "login", "");
	check_str(j, "user", "");
	check_str(j, "path", "");
	json_decref(j);
}

/* The session's pre-rendered fields (ctx.fixed, what the agent uses) give the
 * very same line as rendering them field by field; a start event keeps its own. */
static void test_fixed_fields(void **state)
{
	static char *argv[] = {"ls", "-l"};
	struct audit_ctx ctx = test_ctx;
	Sessrec__SessionStart__LabelsEntry lab[3], *labp[3];
	Sessrec__SessionStart st;
	Sessrec__Command c;
	Sessrec__Network n;
	Sessrec__Disk d;
	Sessrec__Event ev[4];
	char *plain, *fixed;
	size_t i;

	(void)state;
	ctx.server_hostname = "host \"with\" quotes\n";
	assert_int_equal(audit_ctx_fixed(&ctx, (char **)&ctx.fixed, &ctx.fixed_len), 0);
	assert_int_equal(ctx.fixed_len, strlen(ctx.fixed));
	command_init(&ev[0], &c);
	c.argv = argv;
	c.n_argv = 2;
	disk_init(&ev[1], &d);
	network_init(&ev[2], &n);
	start_init(&ev[3], &st, lab, labp);
	assert_string_not_equal(st.sid, test_ctx.sid);
	for (i = 0; i < 4; i++) {
		struct audit_ctx none = ctx;

		none.fixed = NULL;
		none.fixed_len = 0;
		assert_int_equal(audit_format(&ev[i], &none, &plain), 0);
		assert_int_equal(audit_format(&ev[i], &ctx, &fixed), 0);
		assert_string_equal(fixed, plain);
		free(plain);
		free(fixed);
	}
	/* the start event's own sid wins over the session's */
	assert_int_equal(audit_format(&ev[3], &ctx, &fixed), 0);
	assert_non_null(strstr(fixed, "\"sid\":\"11111111-2222-4333-8444-555555555555\""));
	free(fixed);
	free((char *)ctx.fixed);
}

static void test_large_integers(void **state)
{
	Sessrec__Event ev;
	Sessrec__Command c;
	json_t *j;

	command_init(&ev, &c);
	ev.ei = 1ULL << 40;
	c.cgroup_id = (1ULL << 62) + 5;
	c.pid = UINT32_MAX;
	c.return_code = INT32_MIN;
	j = audit(&ev);
	check_int(j, "ei", 1LL << 40);
	check_int(j, "cgroup_id", (1LL << 62) + 5);
	check_int(j, "pid", (long long)UINT32_MAX);
	check_int(j, "return_code", INT32_MIN);
	json_decref(j);

	/* Beyond a signed 64-bit JSON integer: clamped, never negative. */
	c.cgroup_id = UINT64_MAX;
	j = audit(&ev);
	check_int(j, "cgroup_id", INT64_MAX);
	json_decref(j);
}

static void test_line_shape(void **state)
{
	Sessrec__Event ev;
	Sessrec__Command c;
	char *line = NULL;

	command_init(&ev, &c);
	assert_int_equal(audit_format(&ev, &test_ctx, &line), 0);
	/* Stable key order: the common fields first, as Teleport writes them. */
	assert_string_equal(line, "{\"event\":\"session.command\",\"code\":\"T4000I\","
				  "\"time\":\"2023-11-14T22:13:20.123Z\",\"ei\":5,"
				  "\"uid\":\"" EV_UID "\",\"sid\":\"0f0e0d0c-0b0a-4908-8706-"
				  "050403020100\",\"server_id\":\"node-1-id\","
				  "\"server_hostname\":\"node-1\",\"login\":\"root\","
				  "\"user\":\"alice\",\"pid\":4242,\"ppid\":4200,"
				  "\"cgroup_id\":987654321,\"program\":\"ls\","
				  "\"path\":\"/usr/bin/ls\",\"argv\":[\"-la\",\"/tmp\"],"
				  "\"return_code\":0,\"user_id\":1001,\"group_id\":1002}");
	free(line);
}

static void test_invalid_args(void **state)
{
	Sessrec__Event ev;
	char *line = NULL;

	event_init(&ev, 0);
	assert_int_equal(audit_format(NULL, &test_ctx, &line), -EINVAL);
	assert_int_equal(audit_event_json(NULL, &test_ctx, &line), -EINVAL);
	assert_int_equal(audit_format(&ev, &test_ctx, NULL), -EINVAL);
	assert_int_equal(audit_event_json(&ev, &test_ctx, NULL), -EINVAL);
	/* No body. */
	assert_int_equal(audit_format(&ev, &test_ctx, &line), -EINVAL);
	assert_null(line);
	assert_int_equal(audit_event_json(&ev, &test_ctx, &line), -EINVAL);
	assert_null(line);
	/* A body case without its message. */
	ev.body_case = SESSREC__EVENT__BODY_COMMAND;
	ev.command = NULL;
	assert_int_equal(audit_format(&ev, &test_ctx, &line), -EINVAL);
	assert_null(line);
	ev.body_case = SESSREC__EVENT__BODY_PRINT;
	assert_int_equal(audit_event_json(&ev, &test_ctx, &line), -EINVAL);
	assert_null(line);
	/* An unknown body case (a newer writer). */
	ev.body_case = (Sessrec__Event__BodyCase)99;
	ev.command = NULL;
	assert_int_equal(audit_format(&ev, &test_ctx, &line), -EINVAL);
	assert_null(audit_event_name(&ev));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_names_and_codes),
	    cmocka_unit_test(test_time_format),
	    cmocka_unit_test(test_start_audit),
	    cmocka_unit_test(test_start_fallbacks),
	    cmocka_unit_test(test_start_event_json),
	    cmocka_unit_test(test_end),
	    cmocka_unit_test(test_command_audit),
	    cmocka_unit_test(test_command_event_json),
	    cmocka_unit_test(test_disk),
	    cmocka_unit_test(test_network),
	    cmocka_unit_test(test_lost),
	    cmocka_unit_test(test_print_not_audited),
	    cmocka_unit_test(test_print_event_json),
	    cmocka_unit_test(test_print_base64_vectors),
	    cmocka_unit_test(test_invalid_utf8),
	    cmocka_unit_test(test_invalid_utf8_elsewhere),
	    cmocka_unit_test(test_null_ctx_and_strings),
	    cmocka_unit_test(test_large_integers),
	    cmocka_unit_test(test_escapes_at_every_offset),
	    cmocka_unit_test(test_fixed_fields),
	    cmocka_unit_test(test_line_shape),
	    cmocka_unit_test(test_invalid_args),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
