/* sessrec verify: check a recording's parts, chain and completeness. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "rec.h"

void cli_verify_usage(FILE *out)
{
	fprintf(out,
		"Usage: %s verify [--json] PATH|SID...\n\n"
		"Check that each recording (a file, or a session's recording downloaded\n"
		"from the collector) is intact and complete: every part header, body\n"
		"hash and link of the SHA-256 chain, the order of parts and events, that it\n"
		"starts with session.start and that its last part is final.\n\n"
		"Prints \"PATH: OK: N parts, M events, session SID\" per sound recording; for a\n"
		"damaged one \"%s: PATH: <reason>\" on stderr, and the exit status is 1.\n\n"
		"Options:\n"
		"  -j, --json  one JSON object per recording on stdout instead\n"
		"  -h, --help  show this help\n\n"
		"An argument that names an existing file is read locally; a session id (a\n"
		"UUID) is downloaded from the collector, and must be that "
		"session's.\n\n" CLI_REMOTE_HELP,
		CLI_PROG, CLI_PROG);
}

static int cli_verify_json(const char *path, int err, const struct rec_verify_stats *st,
			   const char *why)
{
	json_t *o;
	char *s = NULL;
	int ret = -ENOMEM;

	if (err)
		o = json_pack("{s:s, s:b, s:s}", "path", path, "ok", 0, "error", why);
	else
		o = json_pack("{s:s, s:b, s:I, s:I, s:I, s:I, s:b, s:s}", "path", path, "ok", 1,
			      "parts", (json_int_t)st->parts, "events", (json_int_t)st->events,
			      "raw_bytes", (json_int_t)st->raw_bytes, "file_bytes",
			      (json_int_t)st->file_bytes, "final", st->final, "sid", st->sid);
	if (!o)
		goto out;
	s = json_dumps(o, JSON_COMPACT);
	if (!s)
		goto out;
	if (puts(s) == EOF) {
		ret = -EIO;
		goto out;
	}
	ret = 0;
out:
	free(s);
	json_decref(o);
	return ret;
}

static int cli_verify_one(const char *arg, bool json, struct cli_client **cl,
			  const struct cli_remote *remote)
{
	struct rec_verify_stats st = {0};
	struct cli_recsrc src = {.fd = -1};
	const char *path;
	char why[256] = "";
	int err, ret, status = CLI_EXIT_FAIL;

	err = cli_recsrc_open(&src, "verify", arg, cl, remote);
	if (err) {
		if (json) {
			if (err == -ENOENT)
				snprintf(why, sizeof(why), "no such file, and not a session id");
			else
				snprintf(why, sizeof(why), "%s",
					 *cl && *cli_client_error(*cl) ? cli_client_error(*cl)
								       : strerror(-err));
			cli_verify_json(arg, err, &st, why);
		}
		return CLI_EXIT_FAIL;
	}
	path = src.name;
	err = rec_verify(src.path, &st, why, sizeof(why));
	if (err && !why[0])
		snprintf(why, sizeof(why), "%s", strerror(-err));
	if (!err && src.sid[0] && strcmp(st.sid, src.sid) != 0) {
		err = -EBADMSG;
		snprintf(why, sizeof(why),
			 "the collector sent the recording of another session (%s)", st.sid);
	}
	if (json) {
		ret = cli_verify_json(path, err, &st, why);
		if (ret) {
			cli_err("verify: %s: cannot print the result: %s", path, strerror(-ret));
			goto out;
		}
	} else if (!err) {
		printf("%s: OK: %" PRIu32 " parts, %" PRIu64 " events, session %s\n", path,
		       st.parts, st.events, st.sid);
	}
	if (err) {
		cli_err("%s: %s", path, why);
		goto out;
	}
	status = CLI_EXIT_OK;
out:
	cli_recsrc_close(&src);
	return status;
}

int do_verify(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    CLI_REMOTE_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct cli_remote remote = {0};
	struct cli_client *cl = NULL;
	bool json = false;
	int c, status = CLI_EXIT_OK;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			cli_verify_usage(stdout);
			return CLI_EXIT_OK;
		default:
			if (cli_remote_opt(&remote, c, optarg))
				break;
			return cli_opt_error("verify", c, argv);
		}
	}
	if (optind >= argc) {
		cli_err("verify: expected a recording PATH or session ID (see '%s verify --help')",
			CLI_PROG);
		return CLI_EXIT_USAGE;
	}
	for (int i = optind; i < argc; i++) {
		if (cli_verify_one(argv[i], json, &cl, &remote) != CLI_EXIT_OK)
			status = CLI_EXIT_FAIL;
	}
	cli_client_close(cl);
	return status;
}
