/* sessrec events: list the events of a recording, as a table or as JSON lines. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

#include "audit.h"
#include "rec.h"

void cli_events_usage(FILE *out)
{
	fprintf(out,
		"Usage: %s events [--json] [--type TYPE[,TYPE...]] PATH\n\n"
		"Print the events of a recording file, one line each: index, time, type and\n"
		"a summary (a command's argv and return code; a file's path, open flags and\n"
		"return code; a connection's protocol, source, destination and return code;\n"
		"the size of a chunk of terminal output).\n\n"
		"A damaged recording prints what could be read, then \"%s: PATH: <reason>\"\n"
		"on stderr, and the exit status is 1.\n\n"
		"Options:\n"
		"  -j, --json       every field of each event as one JSON object per line\n"
		"  -t, --type TYPE  only events of these types: start, end, command, disk,\n"
		"                   network, print, lost (comma-separated, or repeat)\n"
		"  -h, --help       show this help\n",
		CLI_PROG, CLI_PROG);
}

/* The session fields every JSON line carries, copied from the session.start event. */
struct cli_events_session {
	char *sid;
	char *server_id;
	char *server_hostname;
	char *login;
	char *user;
	int64_t start_ns;
};

static void cli_events_session_free(struct cli_events_session *s)
{
	free(s->sid);
	free(s->server_id);
	free(s->server_hostname);
	free(s->login);
	free(s->user);
	memset(s, 0, sizeof(*s));
}

static int cli_events_session_set(struct cli_events_session *s, const Sessrec__Event *ev)
{
	const Sessrec__SessionStart *st = ev->start;
	struct cli_events_session n = {
	    .sid = strdup(st->sid),
	    .server_id = strdup(st->server_id),
	    .server_hostname = strdup(st->server_hostname),
	    .login = strdup(st->login),
	    .user = strdup(st->user),
	    .start_ns = ev->time_ns,
	};

	if (!n.sid || !n.server_id || !n.server_hostname || !n.login || !n.user) {
		cli_events_session_free(&n);
		return -ENOMEM;
	}
	cli_events_session_free(s);
	*s = n;
	return 0;
}

static int cli_events_print(const Sessrec__Event *ev, const struct cli_events_session *s, bool json)
{
	struct audit_ctx ctx = {
	    .sid = s->sid ? s->sid : "",
	    .server_id = s->server_id ? s->server_id : "",
	    .server_hostname = s->server_hostname ? s->server_hostname : "",
	    .login = s->login ? s->login : "",
	    .user = s->user ? s->user : "",
	    .session_start_ns = s->start_ns,
	};
	char *line = NULL;
	int err;

	err = json ? audit_event_json(ev, &ctx, &line) : cli_event_line(ev, &line);
	if (err)
		goto out;
	errno = 0;
	if (puts(line) == EOF)
		err = errno ? -errno : -EIO;
out:
	free(line);
	return err;
}

int do_events(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"type", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	struct cli_events_session sess = {0};
	struct rec_reader *r = NULL;
	Sessrec__Event *ev = NULL;
	const char *path;
	uint32_t mask = 0, m;
	bool json = false;
	int c, n, err, status = CLI_EXIT_USAGE;

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
			status = cli_opt_error("events", c, argv);
			goto out;
		}
	}
	if (argc - optind != 1) {
		cli_err("events: expected one recording PATH (see '%s events --help')", CLI_PROG);
		goto out;
	}
	path = argv[optind];

	status = CLI_EXIT_FAIL;
	err = rec_reader_open(&r, path);
	if (err) {
		cli_err("%s: %s", path, strerror(-err));
		goto out;
	}
	while ((n = rec_reader_next(r, &ev)) == 1) {
		err = 0;
		if (ev->body_case == SESSREC__EVENT__BODY_START)
			err = cli_events_session_set(&sess, ev);
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
	cli_events_session_free(&sess);
	return status;
}
