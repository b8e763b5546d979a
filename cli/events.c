/* sessrec events: list the events of a recording, as a table or as JSON lines. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "rec.h"

void cli_events_usage(FILE *out)
{
	fprintf(out,
		"Usage: %s events [--json] [--type TYPE[,TYPE...]] PATH|SID\n\n"
		"Print the events of a recording file, or of a session on the collector\n"
		"(GET /v1/sessions/SID/events), one line each: index, time, type and\n"
		"a summary (a command's argv and return code; a file's path, open flags and\n"
		"return code; a connection's protocol, source, destination and return code;\n"
		"the size of a chunk of terminal output).\n\n"
		"A damaged recording prints what could be read, then \"%s: PATH: <reason>\"\n"
		"on stderr, and the exit status is 1.\n\n"
		"Options:\n"
		"  -j, --json       every field of each event as one JSON object per line\n"
		"  -t, --type TYPE  only events of these types: start, end, command, disk,\n"
		"                   network, print, lost (comma-separated, or repeat)\n"
		"  -h, --help       show this help\n\n"
		"An argument that names an existing file is read locally; a session id (a\n"
		"UUID) is asked of the collector.\n\n" CLI_REMOTE_HELP,
		CLI_PROG, CLI_PROG);
}

void cli_evsess_free(struct cli_evsess *s)
{
	if (!s)
		return;
	free(s->sid);
	free(s->server_id);
	free(s->server_hostname);
	free(s->login);
	free(s->user);
	memset(s, 0, sizeof(*s));
}

int cli_evsess_update(struct cli_evsess *s, const Sessrec__Event *ev)
{
	const Sessrec__SessionStart *st = ev->start;
	struct cli_evsess n;

	if (ev->body_case != SESSREC__EVENT__BODY_START || !st)
		return 0;
	n = (struct cli_evsess){
	    .sid = strdup(st->sid),
	    .server_id = strdup(st->server_id),
	    .server_hostname = strdup(st->server_hostname),
	    .login = strdup(st->login),
	    .user = strdup(st->user),
	    .start_ns = ev->time_ns,
	};
	if (!n.sid || !n.server_id || !n.server_hostname || !n.login || !n.user) {
		cli_evsess_free(&n);
		return -ENOMEM;
	}
	cli_evsess_free(s);
	*s = n;
	return 0;
}

void cli_evsess_ctx(const struct cli_evsess *s, struct audit_ctx *ctx)
{
	*ctx = (struct audit_ctx){
	    .sid = s->sid ? s->sid : "",
	    .server_id = s->server_id ? s->server_id : "",
	    .server_hostname = s->server_hostname ? s->server_hostname : "",
	    .login = s->login ? s->login : "",
	    .user = s->user ? s->user : "",
	    .session_start_ns = s->start_ns,
	};
}

static int cli_events_puts(const char *line)
{
	errno = 0;
	if (puts(line) == EOF)
		return errno ? -errno : -EIO;
	return 0;
}

static int cli_events_print(const Sessrec__Event *ev, const struct cli_evsess *s, bool json)
{
	struct audit_ctx ctx;
	char *line = NULL;
	int err;

	cli_evsess_ctx(s, &ctx);
	err = json ? audit_event_json(ev, &ctx, &line) : cli_event_line(ev, &line);
	if (!err)
		err = cli_events_puts(line);
	free(line);
	return err;
}

/* A local recording file. */
static int cli_events_file(const char *path, uint32_t mask, bool json)
{
	struct cli_evsess sess = {0};
	struct rec_reader *r = NULL;
	Sessrec__Event *ev = NULL;
	int n, err, status = CLI_EXIT_FAIL;

	err = rec_reader_open(&r, path);
	if (err) {
		cli_err("%s: %s", path, strerror(-err));
		goto out;
	}
	while ((n = rec_reader_next(r, &ev)) == 1) {
		err = cli_evsess_update(&sess, ev);
		if (!err && cli_event_type_match(mask, ev->body_case))
			err = cli_events_print(ev, &sess, json);
		sessrec__event__free_unpacked(ev, NULL);
		ev = NULL;
		if (err) {
			cli_err("%s: event: %s", path, strerror(-err));
			goto out;
		}
	}
	if (n < 0) {
		const char *why = rec_reader_error(r);

		/* What was read goes out first, then the reason it stops there. */
		if (fflush(stdout) != 0) {
			cli_err("stdout: %m");
			goto out;
		}
		cli_err("%s: %s", path, why && *why ? why : strerror(-n));
		goto out;
	}
	status = CLI_EXIT_OK;
out:
	if (r)
		rec_reader_close(r);
	cli_evsess_free(&sess);
	return status;
}

struct cli_events_remote {
	uint32_t mask;
	bool json;
	uint64_t lines;
};

/* An event name this CLI does not know: shown, never dropped. */
static int cli_events_unknown(const json_t *o, bool json, char **out)
{
	const char *name = json_string_value(json_object_get(o, "event"));
	const char *time = json_string_value(json_object_get(o, "time"));
	char *s = NULL;
	FILE *f;
	size_t len = 0;
	int err = 0;

	if (json) {
		*out = json_dumps(o, JSON_COMPACT);
		return *out ? 0 : -ENOMEM;
	}
	f = open_memstream(&s, &len);
	if (!f)
		return -ENOMEM;
	fprintf(f, "%6" PRIu64 "  ", (uint64_t)json_integer_value(json_object_get(o, "ei")));
	cli_fput_word(f, time ? time : "?");
	fputs("  ", f);
	cli_fput_word(f, name ? name : "?");
	if (ferror(f))
		err = -ENOMEM;
	if (fclose(f) != 0)
		err = -ENOMEM;
	if (err)
		free(s);
	else
		*out = s;
	return err;
}

/* One line of GET /v1/sessions/{sid}/events, in the `events --json` form. */
static int cli_events_remote_line(void *ctx, char *line, size_t len)
{
	struct cli_events_remote *er = ctx;
	struct cli_jsonev je;
	json_error_t jerr;
	json_t *o = NULL;
	char *out = NULL;
	int err;

	if (!len)
		return 0; /* a keep-alive */
	er->lines++;
	o = json_loadb(line, len, 0, &jerr);
	if (!o || !json_is_object(o)) {
		cli_err("events: line %" PRIu64 " from the collector is not a JSON object%s%s",
			er->lines, o ? "" : ": ", o ? "" : jerr.text);
		err = -EBADMSG;
		goto out;
	}
	err = cli_jsonev_parse(&je, o);
	if (err == -ENOENT) {
		err = er->mask ? 0 : cli_events_unknown(o, er->json, &out);
	} else if (err) {
		cli_err("events: line %" PRIu64 " from the collector: %s", er->lines,
			strerror(-err));
		goto out;
	} else {
		if (cli_event_type_match(er->mask, je.ev.body_case)) {
			if (er->json) {
				out = json_dumps(o, JSON_COMPACT);
				err = out ? 0 : -ENOMEM;
			} else {
				err = cli_event_line(&je.ev, &out);
			}
		}
		cli_jsonev_free(&je);
	}
	if (err) {
		cli_err("events: %s", strerror(-err));
		goto out;
	}
	if (out) {
		err = cli_events_puts(out);
		if (err)
			cli_err("stdout: %s", strerror(-err));
	}
out:
	free(out);
	json_decref(o);
	return err;
}

/* A session on the collector. */
static int cli_events_sid(const char *arg, uint32_t mask, bool json,
			  const struct cli_remote *remote)
{
	static const int bodies[] = {
	    SESSREC__EVENT__BODY_START, SESSREC__EVENT__BODY_END,     SESSREC__EVENT__BODY_COMMAND,
	    SESSREC__EVENT__BODY_DISK,	SESSREC__EVENT__BODY_NETWORK, SESSREC__EVENT__BODY_PRINT,
	    SESSREC__EVENT__BODY_LOST,
	};
	struct cli_events_remote er = {.mask = mask, .json = json};
	struct cli_client *c = NULL;
	struct cli_buf path = {0}, types = {0};
	char sid[UUID_STR_LEN_];
	int status = CLI_EXIT_FAIL;

	for (size_t i = 0; i < sizeof(sid) - 1; i++)
		sid[i] = (char)tolower((unsigned char)arg[i]);
	sid[sizeof(sid) - 1] = '\0';
	cli_buf_addf(&path, "/v1/sessions/%s/events", sid);
	for (size_t i = 0; mask && i < sizeof(bodies) / sizeof(bodies[0]); i++) {
		if (cli_event_type_match(mask, bodies[i]))
			cli_buf_addf(&types, "%s%s", types.len ? "," : "",
				     cli_event_type_name(bodies[i]));
	}
	if (types.len)
		cli_query_add(&path, "type", types.p);
	if (path.err || types.err) {
		cli_err("out of memory");
		goto out;
	}
	if (cli_client_open(&c, remote))
		goto out;
	if (cli_client_get_lines(c, path.p, false, cli_events_remote_line, &er))
		goto out;
	status = CLI_EXIT_OK;
out:
	cli_client_close(c);
	cli_buf_free(&path);
	cli_buf_free(&types);
	return status;
}

int do_events(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"type", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    CLI_REMOTE_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct cli_remote remote = {0};
	const char *arg;
	uint32_t mask = 0, m;
	bool json = false;
	int c, status = CLI_EXIT_USAGE;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":jt:h", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 't':
			if (cli_event_types_parse(optarg, &m)) {
				cli_err("events: --type '%s': unknown type (one of start, end, "
					"command, disk, network, print, lost)",
					optarg);
				goto out;
			}
			mask |= m;
			break;
		case 'h':
			cli_events_usage(stdout);
			status = CLI_EXIT_OK;
			goto out;
		default:
			if (cli_remote_opt(&remote, c, optarg))
				break;
			status = cli_opt_error("events", c, argv);
			goto out;
		}
	}
	if (argc - optind != 1) {
		cli_err("events: expected one recording PATH or session ID (see '%s events "
			"--help')",
			CLI_PROG);
		goto out;
	}
	arg = argv[optind];
	switch (cli_target_of(arg)) {
	case CLI_TARGET_FILE:
		status = cli_events_file(arg, mask, json);
		break;
	case CLI_TARGET_SID:
		status = cli_events_sid(arg, mask, json, &remote);
		break;
	default:
		cli_err("events: %s: no such file, and not a session id (a UUID)", arg);
		status = CLI_EXIT_FAIL;
		break;
	}
out:
	return status;
}
