/* sessrec audit tail: the collector's central audit log, once or as it grows. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define CLI_TAIL_BACKOFF_MAX 30 /* seconds between two reconnects, at most */

void cli_audit_usage(FILE *out)
{
	fprintf(out,
		"Usage: %s audit tail [-f] [--type T[,T...]] [--sid SID] [--since TIME]\n"
		"                         [--limit N] [--json]\n\n"
		"Print the collector's central audit log (GET /v1/audit/events), oldest\n"
		"first, one line per event: time, event, user, [session] and a summary.\n"
		"With -f, keep printing events as they are written until interrupted; a\n"
		"broken connection is re-established where it left off.\n\n"
		"Options:\n"
		"  -f, --follow        wait for new events\n"
		"  -t, --type T        only these events (session.command or command, ...;\n"
		"                      comma-separated, or repeat)\n"
		"  -s, --sid SID       only the events of this session\n"
		"      --since TIME    events from TIME on: RFC 3339, or a time ago (1h, 2d)\n"
		"  -n, --limit N       at most N events (the collector's default is 1000)\n"
		"  -j, --json          the events as the collector sent them, one per line\n"
		"  -h, --help          show this help\n\n" CLI_REMOTE_HELP,
		CLI_PROG);
}

/* ------------------------------------------------------------ one line per event */

static const char *cli_jget(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static int64_t cli_jgeti(const json_t *o, const char *key)
{
	return (int64_t)json_integer_value(json_object_get(o, key));
}

/* s quoted as cli_fput_word does, or "?" when empty. */
static void cli_fput_field(FILE *f, const char *s)
{
	if (*s)
		cli_fput_word(f, s);
	else
		fputc('?', f);
}

/* A field padded with spaces to width characters. */
static void cli_fput_padded(FILE *f, const char *s, int width)
{
	long start = ftell(f), end;

	cli_fput_field(f, s);
	end = ftell(f);
	for (long n = end - start; start >= 0 && end >= 0 && n < width; n++)
		fputc(' ', f);
}

static void cli_fput_proc(FILE *f, const json_t *o)
{
	cli_fput_field(f, cli_jget(o, "program"));
	fprintf(f, "[%" PRId64 "] ", cli_jgeti(o, "pid"));
	cli_fput_rc(f, (int32_t)cli_jgeti(o, "return_code"));
	fputc(' ', f);
}

static void cli_fput_strv(FILE *f, const json_t *a)
{
	size_t i;
	json_t *v;

	json_array_foreach(a, i, v)
	{
		if (i)
			fputc(' ', f);
		cli_fput_word(f, json_string_value(v) ? json_string_value(v) : "");
	}
}

static void cli_audit_summary(FILE *f, const char *event, const json_t *o)
{
	char flags[256], dur[32];
	int64_t a, b;

	if (strcmp(event, "session.start") == 0) {
		fputs("login=", f);
		cli_fput_field(f, cli_jget(o, "login"));
		fputs(" kind=", f);
		cli_fput_field(f, cli_jget(o, "kind"));
		fputs(" node=", f);
		cli_fput_field(f, cli_jget(o, "server_hostname"));
		fputs(" size=", f);
		cli_fput_field(f, cli_jget(o, "size"));
		if (json_array_size(json_object_get(o, "initial_command"))) {
			fputs(": ", f);
			cli_fput_strv(f, json_object_get(o, "initial_command"));
		}
	} else if (strcmp(event, "session.end") == 0) {
		if (json_is_integer(json_object_get(o, "exit_code")) &&
		    cli_jgeti(o, "exit_code") >= 0)
			fprintf(f, "exit=%" PRId64, cli_jgeti(o, "exit_code"));
		else
			fputs("exit=?", f);
		if (cli_parse_rfc3339(cli_jget(o, "session_start"), &a) == 0 &&
		    cli_parse_rfc3339(cli_jget(o, "session_stop"), &b) == 0 && b >= a) {
			cli_fmt_duration((b - a) / 1000000, dur, sizeof(dur));
			fprintf(f, " duration=%s", dur);
		}
		if (*cli_jget(o, "reason")) {
			fputs(" reason=", f);
			cli_fput_word(f, cli_jget(o, "reason"));
		}
	} else if (strcmp(event, "session.upload") == 0) {
		fputs("url=", f);
		cli_fput_field(f, cli_jget(o, "url"));
	} else if (strcmp(event, "session.command") == 0) {
		cli_fput_proc(f, o);
		cli_fput_field(f, cli_jget(o, "path"));
		if (json_array_size(json_object_get(o, "argv"))) {
			fputc(' ', f);
			cli_fput_strv(f, json_object_get(o, "argv"));
		}
		if (json_is_true(json_object_get(o, "argv_truncated")))
			fputs(" [truncated]", f);
	} else if (strcmp(event, "session.disk") == 0) {
		cli_fput_proc(f, o);
		cli_fput_field(f, cli_jget(o, "path"));
		if (cli_open_flags_str((int32_t)cli_jgeti(o, "flags"), flags, sizeof(flags)) == 0)
			fprintf(f, " %s", flags);
	} else if (strcmp(event, "session.network") == 0) {
		const char *src = cli_jget(o, "src_addr"), *dst = cli_jget(o, "dst_addr");

		cli_fput_proc(f, o);
		cli_fput_field(f, cli_jget(o, "protocol"));
		fputc(' ', f);
		cli_fput_field(f, src);
		if (cli_jgeti(o, "src_port"))
			fprintf(f, ":%" PRId64, cli_jgeti(o, "src_port"));
		fputs(" -> ", f);
		if (strchr(dst, ':'))
			fputc('[', f);
		cli_fput_field(f, dst);
		if (strchr(dst, ':'))
			fputc(']', f);
		fprintf(f, ":%" PRId64, cli_jgeti(o, "dst_port"));
	} else if (strcmp(event, "session.summarized") == 0) {
		fputs("risk=", f);
		cli_fput_field(f, cli_jget(o, "risk_level"));
		fputs(" model=", f);
		cli_fput_field(f, cli_jget(o, "model_name"));
		if (json_is_false(json_object_get(o, "success")))
			fputs(" (failed)", f);
		if (*cli_jget(o, "short_description")) {
			fputs(": ", f);
			cli_fput_word(f, cli_jget(o, "short_description"));
		}
	} else if (strcmp(event, AUDIT_EV_LOST) == 0) {
		cli_fput_field(f, cli_jget(o, "class"));
		fprintf(f, ": %" PRId64 " events", cli_jgeti(o, "events"));
		if (cli_jgeti(o, "bytes"))
			fprintf(f, ", %" PRId64 " bytes", cli_jgeti(o, "bytes"));
		fputs(" lost", f);
	} else {
		fputs("code=", f);
		cli_fput_field(f, cli_jget(o, "code"));
	}
}

int cli_audit_line(const json_t *o, char **out)
{
	const char *event = cli_jget(o, "event"), *sid = cli_jget(o, "sid");
	char sid8[9];
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int err = 0;

	f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	cli_fput_padded(f, cli_jget(o, "time"), 24);
	fputs("  ", f);
	cli_fput_padded(f, event, 18);
	fputs("  ", f);
	cli_fput_padded(f, cli_jget(o, "user"), 8);
	fputs("  ", f);
	if (*sid) {
		snprintf(sid8, sizeof(sid8), "%s", sid);
		fputc('[', f);
		cli_fput_word(f, sid8);
		fputs("] ", f);
	}
	cli_audit_summary(f, event, o);
	if (ferror(f))
		err = -ENOMEM;
	if (fclose(f) != 0)
		err = -ENOMEM;
	if (err)
		free(buf);
	else
		*out = buf;
	return err;
}

/* ------------------------------------------------------------ audit tail */

struct cli_tail {
	bool json;
	bool follow;
	uint64_t lines; /* events printed */
	char *cursor;	/* the last event's cursor: where a reconnect resumes */
};

static int cli_tail_line(void *ctx, char *line, size_t len)
{
	struct cli_tail *t = ctx;
	json_error_t jerr;
	json_t *o, *cur;
	char *out = NULL, *nc = NULL;
	int err = 0;

	if (!len)
		return 0; /* the collector's keep-alive */
	o = json_loadb(line, len, 0, &jerr);
	if (!json_is_object(o)) {
		cli_err("audit tail: a line from the collector is not a JSON object%s%s",
			o ? "" : ": ", o ? "" : jerr.text);
		err = -EBADMSG;
		goto out;
	}
	cur = json_object_get(o, "cursor");
	if (json_is_string(cur))
		nc = strdup(json_string_value(cur));
	else if (json_is_integer(cur) &&
		 asprintf(&nc, "%" JSON_INTEGER_FORMAT, json_integer_value(cur)) < 0)
		nc = NULL;
	if (cur && (json_is_string(cur) || json_is_integer(cur)) && !nc) {
		err = -ENOMEM;
		goto out;
	}
	if (nc) {
		free(t->cursor);
		t->cursor = nc;
	}
	if (t->json) {
		out = json_dumps(o, JSON_COMPACT);
		err = out ? 0 : -ENOMEM;
	} else {
		err = cli_audit_line(o, &out);
	}
	if (err)
		goto out;
	errno = 0;
	if (puts(out) == EOF || (t->follow && fflush(stdout) != 0)) {
		err = errno ? -errno : -EIO;
		cli_err("stdout: %s", strerror(-err));
		goto out;
	}
	t->lines++;
out:
	if (err == -ENOMEM)
		cli_err("out of memory");
	free(out);
	json_decref(o);
	return err;
}

/* "command" and "session.command" both name session.command. */
static int cli_tail_types(const char *arg, struct cli_buf *types)
{
	const char *p = arg;

	for (;;) {
		size_t n = strcspn(p, ",");

		if (n == 0 || strspn(p, "abcdefghijklmnopqrstuvwxyz._") < n)
			return -EINVAL;
		cli_buf_addf(types, "%s%s%.*s", types->len ? "," : "",
			     memchr(p, '.', n) ? "" : "session.", (int)n, p);
		if (!p[n])
			break;
		p += n + 1;
	}
	return types->err;
}

int do_audit(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"follow", no_argument, NULL, 'f'},
	    {"type", required_argument, NULL, 't'},
	    {"sid", required_argument, NULL, 's'},
	    {"since", required_argument, NULL, 'S'},
	    {"limit", required_argument, NULL, 'n'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    CLI_REMOTE_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct cli_remote remote = {0};
	struct cli_tail t = {0};
	struct cli_buf q = {0}, types = {0}, path = {0};
	struct cli_client *cl = NULL;
	unsigned int backoff = 1;
	bool connected = false;
	int64_t since;
	char ts[40], *end;
	unsigned long limit;
	int c, err, status = CLI_EXIT_USAGE;

	if (argc >= 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		cli_audit_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (argc < 2 || strcmp(argv[1], "tail") != 0) {
		cli_err("audit: expected 'tail' (see '%s audit --help')", CLI_PROG);
		return CLI_EXIT_USAGE;
	}
	argc--;
	argv++;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":ft:s:n:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			t.follow = true;
			break;
		case 't':
			if (cli_tail_types(optarg, &types)) {
				cli_err("audit tail: --type '%s': expected event names like "
					"session.command or command, comma-separated",
					optarg);
				goto out;
			}
			break;
		case 's':
			if (!util_is_uuid(optarg)) {
				cli_err("audit tail: --sid '%s': not a session id (a UUID)",
					optarg);
				goto out;
			}
			for (char *p = optarg; *p; p++)
				*p = (char)tolower((unsigned char)*p);
			cli_query_add(&q, "sid", optarg);
			break;
		case 'S':
			if (cli_parse_time(optarg, util_now_ns(), &since)) {
				cli_err("audit tail: --since '%s': not a time (RFC 3339, or a time "
					"ago like 1h or 2d)",
					optarg);
				goto out;
			}
			util_rfc3339(since, ts, sizeof(ts));
			cli_query_add(&q, "since", ts);
			break;
		case 'n':
			errno = 0;
			limit = strtoul(optarg, &end, 10);
			if (!isdigit((unsigned char)optarg[0]) || *end || errno || limit == 0 ||
			    limit > 1000000) {
				cli_err("audit tail: --limit '%s': a number from 1 to 1000000",
					optarg);
				goto out;
			}
			cli_query_add(&q, "limit", optarg);
			break;
		case 'j':
			t.json = true;
			break;
		case 'h':
			cli_audit_usage(stdout);
			status = CLI_EXIT_OK;
			goto out;
		default:
			if (cli_remote_opt(&remote, c, optarg))
				break;
			status = cli_opt_error("audit tail", c, argv);
			goto out;
		}
	}
	if (optind < argc) {
		cli_err("audit tail: unexpected argument '%s' (see '%s audit --help')",
			argv[optind], CLI_PROG);
		goto out;
	}
	status = CLI_EXIT_FAIL;
	if (types.len)
		cli_query_add(&q, "type", types.p);
	if (t.follow)
		cli_query_add(&q, "follow", "1");
	if (q.err || types.err) {
		cli_err("out of memory");
		goto out;
	}
	if (cli_client_open(&cl, &remote))
		goto out;
	cli_client_quiet(cl, t.follow);
	for (;;) {
		uint64_t before = t.lines;

		cli_buf_reset(&path);
		cli_buf_adds(&path, "/v1/audit/events");
		if (q.len)
			cli_buf_add(&path, q.p, q.len);
		if (t.cursor)
			cli_query_add(&path, "after", t.cursor);
		if (path.err) {
			cli_err("out of memory");
			goto out;
		}
		err = cli_client_get_lines(cl, path.p, t.follow, cli_tail_line, &t);
		if (!t.follow) {
			if (err)
				goto out;
			break;
		}
		/* Follow: reconnect after a broken link, never after a refusal. */
		if (err == 0 || err == -ECONNRESET || err == -ETIMEDOUT)
			connected = true;
		if (!(err == 0 || err == -ECONNRESET || err == -ETIMEDOUT ||
		      (err == -ECONNREFUSED && connected))) {
			if (*cli_client_error(cl))
				cli_err("%s", cli_client_error(cl));
			goto out;
		}
		if (t.lines > before)
			backoff = 1;
		cli_err("audit tail: %s; reconnecting in %u s",
			err ? cli_client_error(cl) : "the collector ended the stream", backoff);
		sleep(backoff);
		if (backoff < CLI_TAIL_BACKOFF_MAX)
			backoff =
			    backoff * 2 > CLI_TAIL_BACKOFF_MAX ? CLI_TAIL_BACKOFF_MAX : backoff * 2;
	}
	status = CLI_EXIT_OK;
out:
	cli_client_close(cl);
	cli_buf_free(&q);
	cli_buf_free(&types);
	cli_buf_free(&path);
	free(t.cursor);
	return status;
}
