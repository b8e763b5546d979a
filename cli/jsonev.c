/*
 * Events in their JSON form (`sessrec events --json`, GET .../events) back
 * into Sessrec__Event, so that remote events print with the same line code
 * as local ones. Missing or mistyped fields read as zero or "".
 */
#include "cli.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

static char *cli_jstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	/* protobuf-c's strings are char *; these are only ever read */
	return (char *)(s ? s : "");
}

static int64_t cli_jint(const json_t *o, const char *key, int64_t def)
{
	const json_t *v = json_object_get(o, key);

	return json_is_integer(v) ? (int64_t)json_integer_value(v) : def;
}

static int64_t cli_jtime(const json_t *o, const char *key)
{
	int64_t ns;

	return cli_parse_rfc3339(cli_jstr(o, key), &ns) == 0 ? ns : 0;
}

static int cli_jstrv(struct cli_jsonev *je, const json_t *o, const char *key, char ***v, size_t *n)
{
	const json_t *a = json_object_get(o, key);
	size_t len = json_array_size(a);

	*v = NULL;
	*n = 0;
	if (!len)
		return 0;
	je->strv = calloc(len, sizeof(*je->strv));
	if (!je->strv)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		const char *s = json_string_value(json_array_get(a, i));

		je->strv[i] = (char *)(s ? s : "");
	}
	*v = je->strv;
	*n = len;
	return 0;
}

static void cli_jsize(const json_t *o, uint32_t *cols, uint32_t *rows)
{
	const char *s = cli_jstr(o, "size");
	char *end;
	unsigned long c, r;

	*cols = 0;
	*rows = 0;
	c = strtoul(s, &end, 10);
	if (end == s || *end != ':')
		return;
	s = end + 1;
	r = strtoul(s, &end, 10);
	if (end == s || *end || c > UINT32_MAX || r > UINT32_MAX)
		return;
	*cols = (uint32_t)c;
	*rows = (uint32_t)r;
}

int cli_jsonev_parse(struct cli_jsonev *je, const json_t *o)
{
	const char *name = cli_jstr(o, "event");
	Sessrec__Event *ev = &je->ev;
	int err = 0;

	memset(je, 0, sizeof(*je));
	sessrec__event__init(ev);
	ev->ei = (uint64_t)cli_jint(o, "ei", 0);
	ev->time_ns = cli_jtime(o, "time");
	ev->uid = cli_jstr(o, "uid");

	if (strcmp(name, "session.start") == 0) {
		Sessrec__SessionStart *st = &je->start;

		sessrec__session_start__init(st);
		st->sid = cli_jstr(o, "sid");
		st->server_id = cli_jstr(o, "server_id");
		st->server_hostname = cli_jstr(o, "server_hostname");
		st->login = cli_jstr(o, "login");
		st->user = cli_jstr(o, "user");
		st->kind = cli_jstr(o, "kind");
		st->tty = cli_jstr(o, "tty");
		st->remote_addr = cli_jstr(o, "remote_addr");
		st->cgroup_id = (uint64_t)cli_jint(o, "cgroup_id", 0);
		cli_jsize(o, &st->cols, &st->rows);
		err = cli_jstrv(je, o, "initial_command", &st->initial_command,
				&st->n_initial_command);
		ev->body_case = SESSREC__EVENT__BODY_START;
		ev->start = st;
	} else if (strcmp(name, "session.end") == 0) {
		Sessrec__SessionEnd *en = &je->end;

		sessrec__session_end__init(en);
		en->session_start_ns = cli_jtime(o, "session_start");
		en->session_stop_ns = cli_jtime(o, "session_stop");
		en->exit_code = (int32_t)cli_jint(o, "exit_code", -1);
		en->reason = cli_jstr(o, "reason");
		en->interactive = json_is_true(json_object_get(o, "interactive"));
		err = cli_jstrv(je, o, "initial_command", &en->initial_command,
				&en->n_initial_command);
		ev->body_case = SESSREC__EVENT__BODY_END;
		ev->end = en;
	} else if (strcmp(name, "session.command") == 0) {
		Sessrec__Command *c = &je->command;

		sessrec__command__init(c);
		c->pid = (uint32_t)cli_jint(o, "pid", 0);
		c->ppid = (uint32_t)cli_jint(o, "ppid", 0);
		c->uid = (uint32_t)cli_jint(o, "user_id", 0);
		c->gid = (uint32_t)cli_jint(o, "group_id", 0);
		c->cgroup_id = (uint64_t)cli_jint(o, "cgroup_id", 0);
		c->program = cli_jstr(o, "program");
		c->path = cli_jstr(o, "path");
		c->argv_truncated = json_is_true(json_object_get(o, "argv_truncated"));
		c->return_code = (int32_t)cli_jint(o, "return_code", 0);
		/* the full form keeps argv[0] (the audit log leaves it out) */
		err = cli_jstrv(je, o, "argv", &c->argv, &c->n_argv);
		ev->body_case = SESSREC__EVENT__BODY_COMMAND;
		ev->command = c;
	} else if (strcmp(name, "session.disk") == 0) {
		Sessrec__Disk *d = &je->disk;

		sessrec__disk__init(d);
		d->pid = (uint32_t)cli_jint(o, "pid", 0);
		d->uid = (uint32_t)cli_jint(o, "user_id", 0);
		d->cgroup_id = (uint64_t)cli_jint(o, "cgroup_id", 0);
		d->program = cli_jstr(o, "program");
		d->path = cli_jstr(o, "path");
		d->flags = (int32_t)cli_jint(o, "flags", 0);
		d->return_code = (int32_t)cli_jint(o, "return_code", 0);
		ev->body_case = SESSREC__EVENT__BODY_DISK;
		ev->disk = d;
	} else if (strcmp(name, "session.network") == 0) {
		Sessrec__Network *n = &je->network;

		sessrec__network__init(n);
		n->pid = (uint32_t)cli_jint(o, "pid", 0);
		n->uid = (uint32_t)cli_jint(o, "user_id", 0);
		n->cgroup_id = (uint64_t)cli_jint(o, "cgroup_id", 0);
		n->program = cli_jstr(o, "program");
		n->src_addr = cli_jstr(o, "src_addr");
		n->dst_addr = cli_jstr(o, "dst_addr");
		n->src_port = (uint32_t)cli_jint(o, "src_port", 0);
		n->dst_port = (uint32_t)cli_jint(o, "dst_port", 0);
		n->version = (uint32_t)cli_jint(o, "version", 0);
		n->protocol = cli_jstr(o, "protocol");
		n->operation = (uint32_t)cli_jint(o, "operation", 0);
		n->action = (uint32_t)cli_jint(o, "action", 0);
		n->return_code = (int32_t)cli_jint(o, "return_code", 0);
		ev->body_case = SESSREC__EVENT__BODY_NETWORK;
		ev->network = n;
	} else if (strcmp(name, "print") == 0) {
		Sessrec__Print *p = &je->print;

		/* the line form shows the size only: data stays undecoded */
		sessrec__print__init(p);
		p->ci = (uint64_t)cli_jint(o, "ci", 0);
		p->ms = (uint64_t)cli_jint(o, "ms", 0);
		p->offset = (uint64_t)cli_jint(o, "offset", 0);
		p->bytes = (uint32_t)cli_jint(o, "bytes", 0);
		p->pid = (uint32_t)cli_jint(o, "pid", 0);
		p->tty = cli_jstr(o, "tty");
		ev->body_case = SESSREC__EVENT__BODY_PRINT;
		ev->print = p;
	} else if (strcmp(name, AUDIT_EV_LOST) == 0) {
		Sessrec__Lost *l = &je->lost;

		sessrec__lost__init(l);
		l->class_ = cli_jstr(o, "class");
		l->events = (uint64_t)cli_jint(o, "events", 0);
		l->bytes = (uint64_t)cli_jint(o, "bytes", 0);
		ev->body_case = SESSREC__EVENT__BODY_LOST;
		ev->lost = l;
	} else {
		err = -ENOENT;
	}
	if (err)
		cli_jsonev_free(je);
	return err;
}

void cli_jsonev_free(struct cli_jsonev *je)
{
	if (!je)
		return;
	free(je->strv);
	je->strv = NULL;
}
