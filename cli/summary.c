/*
 * sessrec summary, sessrec summarize: a session's summary and risk
 * assessment, and asking the collector for one (docs/summaries.md).
 * Everything a model wrote is shown with control characters replaced, so
 * that a transcript's escape sequences cannot reach the terminal through it.
 */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define CLI_WAIT_POLL_MS 500
#define CLI_WAIT_MAX_S	 3600

void cli_summary_usage(FILE *out)
{
	fprintf(out,
		"Usage: %s summary [--json] [--all] SID\n\n"
		"Show the summary of a session: title, risk level and score, the reasons,\n"
		"the commands of interest, the description, the model, tokens and times. A\n"
		"session without one says why (no policy selected it, its job is pending,\n"
		"or waits for the model's daily token budget).\n\n"
		"Options:\n"
		"  -j, --json  the summary as the collector sent it (one JSON object)\n"
		"  -a, --all   every summary of the session, newest first\n"
		"  -h, --help  show this help\n\n"
		"Needs an auditor token, or an access token for one's own "
		"sessions.\n\n" CLI_REMOTE_HELP,
		CLI_PROG);
}

void cli_summarize_usage(FILE *out)
{
	fprintf(out,
		"Usage: %s summarize [--model M] [--wait] SID\n\n"
		"Ask the collector to summarize a completed session now, with model M (an\n"
		"inference_model), or without --model with the model of the policy the\n"
		"session meets. This is beside the automatic summary, not instead of it.\n\n"
		"Options:\n"
		"  -m, --model M  the inference_model to use\n"
		"  -w, --wait     wait for the job to end, then show the summary (or why it\n"
		"                 failed); exit status 1 unless it was summarized\n"
		"  -h, --help     show this help\n\n"
		"Needs an auditor or editor token.\n\n" CLI_REMOTE_HELP,
		CLI_PROG);
}

/* ------------------------------------------------------------ the readable block */

/* s with control characters (newlines too unless keep_nl) and invalid UTF-8 as '?'. */
static void cli_sum_text(FILE *f, const char *s, bool keep_nl, const char *nl_indent)
{
	const unsigned char *p = (const unsigned char *)(s ? s : "");

	while (*p) {
		size_t n = cli_utf8_len(p);

		if (*p == '\n' && keep_nl) {
			fputc('\n', f);
			fputs(nl_indent, f);
			p++;
			continue;
		}
		if (n == 0 || *p < 0x20 || *p == 0x7f) {
			fputc('?', f);
			p++;
			continue;
		}
		fwrite(p, 1, n, f);
		p += n;
	}
}

static const char *cli_sum_str(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static void cli_sum_upper(char *dst, size_t len, const char *s)
{
	size_t i;

	for (i = 0; i + 1 < len && s[i]; i++)
		dst[i] = (char)toupper((unsigned char)s[i]);
	dst[i] = '\0';
}

static void cli_sum_list(FILE *f, const char *label, const json_t *a)
{
	const json_t *v;
	size_t i;

	if (!json_array_size(a))
		return;
	fprintf(f, "%s\n", label);
	json_array_foreach(a, i, v)
	{
		fputs("  - ", f);
		cli_sum_text(f, json_string_value(v), false, "");
		fputc('\n', f);
	}
}

/* "2.3s" between two RFC 3339 times; "" when either is missing. */
static void cli_sum_took(const json_t *o, char *buf, size_t len)
{
	int64_t a, b;

	buf[0] = '\0';
	if (cli_parse_rfc3339(cli_sum_str(o, "started"), &a) ||
	    cli_parse_rfc3339(cli_sum_str(o, "finished"), &b) || b < a)
		return;
	cli_fmt_duration((b - a) / 1000000, buf, len);
}

int cli_summary_write(const json_t *o, FILE *f)
{
	char level[16], took[32];
	const char *origin = cli_sum_str(o, "origin");
	long long parts = json_integer_value(json_object_get(o, "chunks"));

	if (!json_is_object(o))
		return -EINVAL;
	fprintf(f, "Session:      %s\n", cli_sum_str(o, "sid"));
	if (!json_is_true(json_object_get(o, "success"))) {
		fputs("Summary:      FAILED: ", f);
		cli_sum_text(f, cli_sum_str(o, "error_code"), false, "");
		fputs("\nError:        ", f);
		cli_sum_text(f, cli_sum_str(o, "error"), false, "");
		fputc('\n', f);
	} else {
		cli_sum_upper(level, sizeof(level), cli_sum_str(o, "risk_level"));
		fputs("Title:        ", f);
		cli_sum_text(f, cli_sum_str(o, "title"), false, "");
		fprintf(f, "\nRisk:         %s (%lld/100)%s\n", level,
			(long long)json_integer_value(json_object_get(o, "risk_score")),
			json_is_true(json_object_get(o, "needs_review")) ? ", needs review" : "");
		fputs("Summary:      ", f);
		cli_sum_text(f, cli_sum_str(o, "short_description"), false, "");
		fputc('\n', f);
		cli_sum_list(f, "Risk reasons:", json_object_get(o, "risk_reasons"));
		cli_sum_list(f,
			     "Commands of interest:", json_object_get(o, "commands_of_interest"));
		fputs("Description:\n  ", f);
		cli_sum_text(f, cli_sum_str(o, "detailed_description"), true, "  ");
		fputc('\n', f);
	}
	fputs("Model:        ", f);
	cli_sum_text(f, cli_sum_str(o, "model_name"), false, "");
	if (*cli_sum_str(o, "provider")) {
		fputs(" (", f);
		cli_sum_text(f, cli_sum_str(o, "provider"), false, "");
		if (*cli_sum_str(o, "model_id")) {
			fputc(' ', f);
			cli_sum_text(f, cli_sum_str(o, "model_id"), false, "");
		}
		fputc(')', f);
	}
	fprintf(f, ", %s\n", strcmp(origin, "manual") == 0 ? "on demand" : "automatic");
	fprintf(f, "Tokens:       %lld in, %lld out",
		(long long)json_integer_value(json_object_get(o, "tokens_in")),
		(long long)json_integer_value(json_object_get(o, "tokens_out")));
	if (parts > 1)
		fprintf(f, " (transcript in %lld parts)", parts);
	fputc('\n', f);
	cli_sum_took(o, took, sizeof(took));
	fprintf(f, "Time:         %s to %s%s%s%s\n", cli_sum_str(o, "started"),
		cli_sum_str(o, "finished"), took[0] ? " (" : "", took, took[0] ? ")" : "");
	return ferror(f) ? -EIO : 0;
}

/* ------------------------------------------------------------ commands */

/* A session id argument, lower-cased into sid. */
static int cli_sum_sid(const char *cmd, const char *arg, char sid[UUID_STR_LEN_])
{
	if (!util_is_uuid(arg)) {
		cli_err("%s: '%s' is not a session id (a UUID; `%s ls --wide` shows them whole)",
			cmd, arg, CLI_PROG);
		return -EINVAL;
	}
	for (size_t i = 0; i < UUID_STR_LEN_ - 1; i++)
		sid[i] = (char)tolower((unsigned char)arg[i]);
	sid[UUID_STR_LEN_ - 1] = '\0';
	return 0;
}

int do_summary(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"all", no_argument, NULL, 'a'},
	    {"help", no_argument, NULL, 'h'},
	    CLI_REMOTE_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct cli_remote remote = {0};
	struct cli_client *cl = NULL;
	char sid[UUID_STR_LEN_], path[128];
	json_t *ans = NULL, *v;
	bool json = false, all = false;
	size_t i;
	int c, err = 0, status = CLI_EXIT_USAGE;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":jah", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'a':
			all = true;
			break;
		case 'h':
			cli_summary_usage(stdout);
			return CLI_EXIT_OK;
		default:
			if (cli_remote_opt(&remote, c, optarg))
				break;
			return cli_opt_error("summary", c, argv);
		}
	}
	if (argc - optind != 1) {
		cli_err("summary: expected one session ID (see '%s summary --help')", CLI_PROG);
		return status;
	}
	if (cli_sum_sid("summary", argv[optind], sid))
		return status;
	snprintf(path, sizeof(path), "/v1/sessions/%s/summary%s", sid, all ? "?all=1" : "");
	status = CLI_EXIT_FAIL;
	if (cli_client_open(&cl, &remote))
		goto out;
	if (cli_client_get_json(cl, path, &ans))
		goto out;
	if (!all) {
		err = json ? cli_json_line(ans, 0) : cli_summary_write(ans, stdout);
	} else {
		json_array_foreach(json_object_get(ans, "summaries"), i, v)
		{
			if (!json && i)
				fputc('\n', stdout);
			err = json ? cli_json_line(v, 0) : cli_summary_write(v, stdout);
			if (err)
				break;
		}
	}
	if (err) {
		cli_err("stdout: %s", strerror(-err));
		goto out;
	}
	status = CLI_EXIT_OK;
out:
	json_decref(ans);
	cli_client_close(cl);
	return status;
}

static void cli_sleep_ms(unsigned int ms)
{
	struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* Poll the job until it ends; its final status into st. */
static int cli_sum_wait(struct cli_client *cl, const char *sid, json_int_t id, char *st,
			size_t stlen, char *why, size_t whylen)
{
	char path[160];
	json_t *ans = NULL, *j;
	size_t i;
	int err;

	snprintf(path, sizeof(path), "/v1/jobs?sid=%s&limit=1000", sid);
	for (unsigned int waited = 0; waited < CLI_WAIT_MAX_S * 1000; waited += CLI_WAIT_POLL_MS) {
		err = cli_client_get_json(cl, path, &ans);
		if (err)
			return err;
		json_array_foreach(json_object_get(ans, "jobs"), i, j)
		{
			const char *s = json_string_value(json_object_get(j, "status"));

			if (json_integer_value(json_object_get(j, "id")) != id || !s)
				continue;
			snprintf(st, stlen, "%s", s);
			snprintf(why, whylen, "%s",
				 json_string_value(json_object_get(j, "error"))
				     ? json_string_value(json_object_get(j, "error"))
				     : "");
		}
		json_decref(ans);
		ans = NULL;
		if (strcmp(st, "pending") != 0 && strcmp(st, "running") != 0)
			return 0;
		cli_sleep_ms(CLI_WAIT_POLL_MS);
	}
	return -ETIMEDOUT;
}

int do_summarize(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"model", required_argument, NULL, 'm'},
	    {"wait", no_argument, NULL, 'w'},
	    {"help", no_argument, NULL, 'h'},
	    CLI_REMOTE_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct cli_remote remote = {0};
	struct cli_client *cl = NULL;
	const char *model = NULL;
	char sid[UUID_STR_LEN_], path[128], st[32] = "", why[512] = "";
	json_t *ans = NULL, *job, *body = NULL, *sum = NULL;
	char *text = NULL;
	bool wait = false;
	json_int_t id;
	int c, err, status = CLI_EXIT_USAGE;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":m:wh", opts, NULL)) != -1) {
		switch (c) {
		case 'm':
			model = optarg;
			break;
		case 'w':
			wait = true;
			break;
		case 'h':
			cli_summarize_usage(stdout);
			return CLI_EXIT_OK;
		default:
			if (cli_remote_opt(&remote, c, optarg))
				break;
			return cli_opt_error("summarize", c, argv);
		}
	}
	if (argc - optind != 1) {
		cli_err("summarize: expected one session ID (see '%s summarize --help')", CLI_PROG);
		return status;
	}
	if (cli_sum_sid("summarize", argv[optind], sid))
		return status;
	status = CLI_EXIT_FAIL;
	body = model ? json_pack("{s:s}", "model", model) : json_object();
	text = body ? json_dumps(body, JSON_COMPACT) : NULL;
	if (!text) {
		cli_err("summarize: --model: not UTF-8 text, or out of memory");
		goto out;
	}
	snprintf(path, sizeof(path), "/v1/sessions/%s/summarize", sid);
	if (cli_client_open(&cl, &remote))
		goto out;
	if (cli_client_send(cl, "POST", path, "application/json", text, strlen(text), &ans))
		goto out;
	job = json_object_get(ans, "job");
	id = json_integer_value(json_object_get(job, "id"));
	snprintf(st, sizeof(st), "%s",
		 json_string_value(json_object_get(job, "status"))
		     ? json_string_value(json_object_get(job, "status"))
		     : "?");
	fprintf(stderr, "%s: summarizing session %s with model ", CLI_PROG, sid);
	cli_fput_word(stderr, json_string_value(json_object_get(job, "model"))
				  ? json_string_value(json_object_get(job, "model"))
				  : "?");
	fprintf(stderr, " (job %lld, %s)\n", (long long)id, st);
	if (!wait) {
		status = CLI_EXIT_OK;
		goto out;
	}
	err = cli_sum_wait(cl, sid, id, st, sizeof(st), why, sizeof(why));
	if (err == -ETIMEDOUT)
		cli_err("summarize: job %lld still %s after %d s", (long long)id, st,
			CLI_WAIT_MAX_S);
	if (err)
		goto out;
	if (strcmp(st, "budget_exceeded") == 0) {
		cli_err("summarize: job %lld waits for the model's token budget: %s", (long long)id,
			why);
		goto out;
	}
	/* done or failed: both leave a summary record, this job's (editors may not read it) */
	snprintf(path, sizeof(path), "/v1/sessions/%s/summary?all=1", sid);
	cli_client_quiet(cl, true);
	if (cli_client_get_json(cl, path, &sum) == 0) {
		json_t *one = NULL, *v;
		size_t i;

		json_array_foreach(json_object_get(sum, "summaries"), i, v)
		{
			if (!one && json_integer_value(json_object_get(v, "job_id")) == id)
				one = v;
		}
		if (one && cli_summary_write(one, stdout)) {
			cli_err("stdout: %s", strerror(EIO));
			goto out;
		}
	} else if (strcmp(st, "done") == 0) {
		fprintf(stderr, "%s: job %lld done (%s)\n", CLI_PROG, (long long)id,
			cli_client_error(cl));
	}
	if (strcmp(st, "done") != 0) {
		cli_err("summarize: job %lld %s%s%s", (long long)id, st, why[0] ? ": " : "", why);
		goto out;
	}
	status = CLI_EXIT_OK;
out:
	free(text);
	json_decref(body);
	json_decref(ans);
	json_decref(sum);
	cli_client_close(cl);
	return status;
}
