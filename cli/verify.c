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
		"Usage: %s verify [--json] PATH...\n\n"
		"Check that each recording is intact and complete: every part header, body\n"
		"hash and link of the SHA-256 chain, the order of parts and events, that it\n"
		"starts with session.start and that its last part is final.\n\n"
		"Prints \"PATH: OK: N parts, M events, session SID\" per sound recording; for a\n"
		"damaged one \"%s: PATH: <reason>\" on stderr, and the exit status is 1.\n\n"
		"Options:\n"
		"  -j, --json  one JSON object per recording on stdout instead\n"
		"  -h, --help  show this help\n",
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

static int cli_verify_one(const char *path, bool json)
{
	struct rec_verify_stats st = {0};
	char why[256] = "";
	int err, ret;

	err = rec_verify(path, &st, why, sizeof(why));
	if (err && !why[0])
		snprintf(why, sizeof(why), "%s", strerror(-err));
	if (json) {
		ret = cli_verify_json(path, err, &st, why);
		if (ret) {
			cli_err("verify: %s: cannot print the result: %s", path, strerror(-ret));
			return CLI_EXIT_FAIL;
		}
	} else if (!err) {
		printf("%s: OK: %" PRIu32 " parts, %" PRIu64 " events, session %s\n", path,
		       st.parts, st.events, st.sid);
	}
	if (err) {
		cli_err("%s: %s", path, why);
		return CLI_EXIT_FAIL;
	}
	return CLI_EXIT_OK;
}

int do_verify(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
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
			return cli_opt_error("verify", c, argv);
		}
	}
	if (optind >= argc) {
		cli_err("verify: expected a recording PATH (see '%s verify --help')", CLI_PROG);
		return CLI_EXIT_USAGE;
	}
	for (int i = optind; i < argc; i++) {
		if (cli_verify_one(argv[i], json) != CLI_EXIT_OK)
			status = CLI_EXIT_FAIL;
	}
	return status;
}
