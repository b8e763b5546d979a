/* sessrec ls, sessrec show: the sessions the collector holds. */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>

void cli_ls_usage(FILE *out)
{
	fprintf(out,
		"Usage: %s ls [OPTIONS]\n\n"
		"List the sessions the collector holds, newest first, as a table: SID (the\n"
		"first 8 characters unless --wide), START (UTC), DURATION, USER, LOGIN, NODE,\n"
		"KIND, EXIT, COMMAND. When more sessions match than one page holds, a note\n"
		"on stderr gives the --cursor of the next page.\n\n"
		"Filters (all together):\n"
		"  -u, --user USER      sessions of this user\n"
		"  -n, --node NODE      recorded on this node\n"
		"  -k, --kind KIND      ssh, k8s, local, ...\n"
		"      --from TIME      started at or after TIME\n"
		"      --to TIME        started at or before TIME\n"
		"  -l, --label K=V      carrying this label (repeat: all of them)\n"
		"  -c, --command TEXT   ran a command whose path or argv contains TEXT\n"
		"  -a, --addr ADDR      connected to address ADDR\n"
		"  -s, --status STATUS  complete or uploading\n"
		"  -r, --risk LEVEL     summarized with this risk level (its latest summary):\n"
		"                       low, medium, high or critical\n"
		"TIME is RFC 3339 (2026-11-22T10:00:00Z, 2026-11-22) or a time ago: 90s, 15m,\n"
		"1h, 2d, 1w, 1h30m.\n\n"
		"Pages:\n"
		"      --limit N        at most N sessions a page (1-1000; the collector's\n"
		"                       default is 100)\n"
		"      --cursor C       the page after the one that gave cursor C\n"
		"  -A, --all            every page, one after the other\n\n"
		"Output:\n"
		"  -w, --wide           whole session ids, and STATUS, RISK and LABELS columns\n"
		"  -j, --json           each session as one JSON object per line, as the\n"
		"                       collector sent it\n"
		"  -h, --help           show this help\n\n" CLI_REMOTE_HELP,
		CLI_PROG);
}

void cli_show_usage(FILE *out)
{
	fprintf(out,
		"Usage: %s show [--json] SID\n\n"
		"Print what the collector knows about a session: \"key: value\" lines (user,\n"
		"node, times, exit code, command, labels, counts, the SHA-256 of each part).\n\n"
		"Options:\n"
		"  -j, --json  the session as one JSON object\n"
		"  -h, --help  show this help\n\n" CLI_REMOTE_HELP,
		CLI_PROG);
}

static int cli_parse_uint(const char *s, unsigned long lo, unsigned long hi, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!*s || strspn(s, "0123456789") != strlen(s))
		return -EINVAL;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || *end || v < lo || v > hi)
		return -ERANGE;
	*out = v;
	return 0;
}

static int cli_ls_time(const char *opt, const char *arg, struct cli_buf *q, const char *key,
		       int64_t *ns)
{
	char ts[40];

	if (cli_parse_time(arg, util_now_ns(), ns)) {
		cli_err("ls: %s '%s': not a time (RFC 3339 like 2026-11-22T10:00:00Z, or a time "
			"ago like 1h or 2d)",
			opt, arg);
		return -EINVAL;
	}
	util_rfc3339(*ns, ts, sizeof(ts));
	return cli_query_add(q, key, ts);
}

/* One page: rows into t (or lines on stdout); the next cursor in *next (NULL at the end). */
static int cli_ls_page(struct cli_client *c, const char *path, bool json, bool wide,
		       struct cli_table *t, size_t *count, char **next)
{
	json_t *ans = NULL, *list, *s, *nc;
	size_t i;
	int err;

	*next = NULL;
	err = cli_client_get_json(c, path, &ans);
	if (err)
		goto out;
	list = json_object_get(ans, "sessions");
	nc = json_object_get(ans, "next_cursor");
	if (!json_is_array(list) || (nc && !json_is_null(nc) && !json_is_string(nc))) {
		cli_err("ls: the collector's answer has no \"sessions\" list");
		err = -EBADMSG;
		goto out;
	}
	json_array_foreach(list, i, s)
	{
		if (!json_is_object(s)) {
			cli_err("ls: session %zu of the collector's answer is not an object", i);
			err = -EBADMSG;
			goto out;
		}
		err = json ? cli_json_line(s, 0) : cli_ls_table_add(t, s, wide);
		if (err) {
			cli_err("%s: %s", json ? "stdout" : "ls", strerror(-err));
			goto out;
		}
		(*count)++;
	}
	if (json_is_string(nc) && *json_string_value(nc)) {
		*next = strdup(json_string_value(nc));
		if (!*next) {
			cli_err("out of memory");
			err = -ENOMEM;
		}
	}
out:
	json_decref(ans);
	return err;
}

int do_ls(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"user", required_argument, NULL, 'u'},
	    {"node", required_argument, NULL, 'n'},
	    {"kind", required_argument, NULL, 'k'},
	    {"from", required_argument, NULL, 'F'},
	    {"to", required_argument, NULL, 'T'},
	    {"label", required_argument, NULL, 'l'},
	    {"command", required_argument, NULL, 'c'},
	    {"addr", required_argument, NULL, 'a'},
	    {"status", required_argument, NULL, 's'},
	    {"risk", required_argument, NULL, 'r'},
	    {"limit", required_argument, NULL, 'L'},
	    {"cursor", required_argument, NULL, 'C'},
	    {"all", no_argument, NULL, 'A'},
	    {"wide", no_argument, NULL, 'w'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    CLI_REMOTE_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct cli_remote remote = {0};
	struct cli_labels labels = {0};
	struct cli_buf q = {0}, path = {0};
	struct cli_table t = {0};
	struct cli_client *cl = NULL;
	char *cursor = NULL, *next = NULL;
	const char *why = NULL, *cursor_arg = NULL;
	int64_t from = 0, to = 0;
	bool json = false, wide = false, all = false, have_from = false, have_to = false;
	unsigned long limit;
	size_t count = 0;
	int c, status = CLI_EXIT_USAGE;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":u:n:k:l:c:a:s:r:Awjh", opts, NULL)) != -1) {
		switch (c) {
		case 'u':
			cli_query_add(&q, "user", optarg);
			break;
		case 'n':
			cli_query_add(&q, "node", optarg);
			break;
		case 'k':
			cli_query_add(&q, "kind", optarg);
			break;
		case 'F':
			if (cli_ls_time("--from", optarg, &q, "from", &from))
				goto out;
			have_from = true;
			break;
		case 'T':
			if (cli_ls_time("--to", optarg, &q, "to", &to))
				goto out;
			have_to = true;
			break;
		case 'l':
			if (cli_labels_add(&labels, optarg, &why)) {
				cli_err("ls: --label '%s': %s", optarg,
					why ? why : "out of memory");
				goto out;
			}
			cli_query_add(&q, "label", optarg);
			break;
		case 'c':
			cli_query_add(&q, "command", optarg);
			break;
		case 'a':
			cli_query_add(&q, "addr", optarg);
			break;
		case 's':
			if (strcmp(optarg, "complete") != 0 && strcmp(optarg, "uploading") != 0) {
				cli_err("ls: --status '%s': one of complete, uploading", optarg);
				goto out;
			}
			cli_query_add(&q, "status", optarg);
			break;
		case 'r':
			if (strcmp(optarg, "low") != 0 && strcmp(optarg, "medium") != 0 &&
			    strcmp(optarg, "high") != 0 && strcmp(optarg, "critical") != 0) {
				cli_err("ls: --risk '%s': one of low, medium, high, critical",
					optarg);
				goto out;
			}
			cli_query_add(&q, "risk", optarg);
			break;
		case 'L':
			if (cli_parse_uint(optarg, 1, 1000, &limit)) {
				cli_err("ls: --limit '%s': a number from 1 to 1000", optarg);
				goto out;
			}
			cli_query_add(&q, "limit", optarg);
			break;
		case 'C':
			cursor_arg = optarg;
			break;
		case 'A':
			all = true;
			break;
		case 'w':
			wide = true;
			break;
		case 'j':
			json = true;
			break;
		case 'h':
			cli_ls_usage(stdout);
			status = CLI_EXIT_OK;
			goto out;
		default:
			if (cli_remote_opt(&remote, c, optarg))
				break;
			status = cli_opt_error("ls", c, argv);
			goto out;
		}
	}
	if (optind < argc) {
		cli_err("ls: unexpected argument '%s' (see '%s ls --help')", argv[optind],
			CLI_PROG);
		goto out;
	}
	if (have_from && have_to && from > to) {
		cli_err("ls: --from is after --to");
		goto out;
	}
	status = CLI_EXIT_FAIL;
	if (q.err) {
		cli_err("out of memory");
		goto out;
	}
	if (cursor_arg && !(cursor = strdup(cursor_arg))) {
		cli_err("out of memory");
		goto out;
	}
	if (!json && cli_ls_table_init(&t, wide)) {
		cli_err("out of memory");
		goto out;
	}
	if (cli_client_open(&cl, &remote))
		goto out;
	for (;;) {
		cli_buf_reset(&path);
		cli_buf_adds(&path, "/v1/sessions");
		if (q.len)
			cli_buf_add(&path, q.p, q.len);
		if (cursor)
			cli_query_add(&path, "cursor", cursor);
		if (path.err) {
			cli_err("out of memory");
			goto out;
		}
		if (cli_ls_page(cl, path.p, json, wide, &t, &count, &next))
			goto out;
		if (!next || !all)
			break;
		if (cursor && strcmp(cursor, next) == 0) {
			cli_err("ls: the collector gave the same cursor twice; stopping");
			goto out;
		}
		free(cursor);
		cursor = next;
		next = NULL;
	}
	if (!json && count && cli_table_print(&t, stdout)) {
		cli_err("stdout: %s", strerror(EIO));
		goto out;
	}
	if (!json && !count)
		fprintf(stderr, "%s: no sessions found\n", CLI_PROG);
	if (next) {
		if (fflush(stdout) != 0) {
			cli_err("stdout: %m");
			goto out;
		}
		fprintf(stderr, "%s: more sessions match: add --cursor ", CLI_PROG);
		cli_fput_word(stderr, next);
		fputs(" (or --all)\n", stderr);
	}
	status = CLI_EXIT_OK;
out:
	cli_client_close(cl);
	cli_table_free(&t);
	cli_labels_free(&labels);
	cli_buf_free(&q);
	cli_buf_free(&path);
	free(cursor);
	free(next);
	return status;
}

int do_show(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    CLI_REMOTE_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct cli_remote remote = {0};
	struct cli_client *cl = NULL;
	json_t *sess = NULL;
	char path[96], sid[UUID_STR_LEN_];
	bool json = false;
	int c, err, status = CLI_EXIT_USAGE;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			cli_show_usage(stdout);
			status = CLI_EXIT_OK;
			goto out;
		default:
			if (cli_remote_opt(&remote, c, optarg))
				break;
			status = cli_opt_error("show", c, argv);
			goto out;
		}
	}
	if (argc - optind != 1) {
		cli_err("show: expected one session ID (see '%s show --help')", CLI_PROG);
		goto out;
	}
	if (!util_is_uuid(argv[optind])) {
		cli_err("show: '%s' is not a session id (a UUID; `%s ls --wide` shows them whole)",
			argv[optind], CLI_PROG);
		goto out;
	}
	for (size_t i = 0; i < sizeof(sid) - 1; i++)
		sid[i] = (char)tolower((unsigned char)argv[optind][i]);
	sid[sizeof(sid) - 1] = '\0';
	snprintf(path, sizeof(path), "/v1/sessions/%s", sid);

	status = CLI_EXIT_FAIL;
	if (cli_client_open(&cl, &remote))
		goto out;
	if (cli_client_get_json(cl, path, &sess))
		goto out;
	if (!json_is_object(sess)) {
		cli_err("show: the collector's answer is not a session object");
		goto out;
	}
	err = json ? cli_json_line(sess, 0) : cli_show_write(sess, stdout);
	if (err) {
		cli_err("stdout: %s", strerror(-err));
		goto out;
	}
	status = CLI_EXIT_OK;
out:
	json_decref(sess);
	cli_client_close(cl);
	return status;
}
