/*
 * sessrec create, get, rm: the collector's inference resources (models,
 * secrets, policies; docs/summaries.md). A secret's value goes to the
 * collector and never comes back: get shows its name and times only.
 */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define CLI_RESOURCE_MAX (1u << 20) /* bytes of YAML sent at once (the collector's cap) */

void cli_create_usage(FILE *out)
{
	fprintf(out,
		"Usage: %s create -f FILE [--force]\n\n"
		"Create inference resources on the collector from a YAML file of one or more\n"
		"documents separated by '---' (FILE '-' reads stdin): inference_model,\n"
		"inference_secret and inference_policy (docs/summaries.md). Everything in the\n"
		"file is checked first (fields, kinds, filters, the model a policy names, the\n"
		"secret a model names) and then stored all together, or nothing is.\n\n"
		"Options:\n"
		"  -f, --filename FILE  the YAML file\n"
		"      --force          replace resources that exist already (else: refused)\n"
		"  -h, --help           show this help\n\n"
		"Needs a token with the editor role.\n\n" CLI_REMOTE_HELP,
		CLI_PROG);
}

void cli_get_usage(FILE *out)
{
	fprintf(out,
		"Usage: %s get KIND [NAME] [--json]\n\n"
		"Show inference resources. KIND: inference_model (model), inference_secret\n"
		"(secret), inference_policy (policy) or all. Without NAME: a table; with NAME:\n"
		"the resource as YAML that `%s create -f` reads back. A secret shows its name\n"
		"and times only, never its value.\n\n"
		"Options:\n"
		"  -j, --json  JSON: one resource per line, or the resource\n"
		"  -h, --help  show this help\n\n"
		"Needs a token with the editor or auditor role.\n\n" CLI_REMOTE_HELP,
		CLI_PROG, CLI_PROG);
}

void cli_rm_usage(FILE *out)
{
	fprintf(out,
		"Usage: %s rm KIND NAME\n\n"
		"Remove an inference resource (KIND as for get). A model that a policy names,\n"
		"or a secret that a model names, is refused until that one changes.\n\n"
		"Options:\n"
		"  -h, --help  show this help\n\n"
		"Needs a token with the editor role.\n\n" CLI_REMOTE_HELP,
		CLI_PROG);
}

/* ------------------------------------------------------------ kinds */

static const struct {
	const char *name, *alias, *plural;
} cli_res_kinds[] = {
    {"inference_model", "model", "models"},
    {"inference_secret", "secret", "secrets"},
    {"inference_policy", "policy", "policies"},
};

/* The API's name of a KIND argument; "" for all; NULL when unknown. */
static const char *cli_res_kind(const char *arg, bool all_ok)
{
	if (all_ok && strcmp(arg, "all") == 0)
		return "";
	for (size_t i = 0; i < sizeof(cli_res_kinds) / sizeof(cli_res_kinds[0]); i++) {
		if (strcmp(arg, cli_res_kinds[i].name) == 0 ||
		    strcmp(arg, cli_res_kinds[i].alias) == 0 ||
		    strcmp(arg, cli_res_kinds[i].plural) == 0)
			return cli_res_kinds[i].name;
	}
	return NULL;
}

/* A name fit for a URL path: what the collector accepts. */
static bool cli_res_name_ok(const char *s)
{
	size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-");

	return n > 0 && n <= 128 && s[n] == '\0' && s[0] != '.' && s[0] != '-' && s[0] != '_';
}

/* ------------------------------------------------------------ output */

static const char *cli_jget(const json_t *o, const char *a, const char *b, const char *c)
{
	const json_t *v = json_object_get(o, a);

	if (b)
		v = json_object_get(v, b);
	if (c)
		v = json_object_get(v, c);
	return json_string_value(v);
}

static void cli_jnum(const json_t *v, const char *none, char *buf, size_t len)
{
	if (json_is_integer(v))
		snprintf(buf, len, "%lld", (long long)json_integer_value(v));
	else
		snprintf(buf, len, "%s", none);
}

static int cli_res_row_model(struct cli_table *t, const json_t *r)
{
	const json_t *spec = json_object_get(r, "spec"), *st = json_object_get(r, "status");
	const char *prov = json_object_get(spec, "openai")    ? "openai"
			   : json_object_get(spec, "bedrock") ? "bedrock"
			   : json_object_get(spec, "builtin") ? "builtin"
							      : "?";
	const char *id = cli_jget(
	    spec, prov, strcmp(prov, "openai") == 0 ? "openai_model_id" : "bedrock_model_id", NULL);
	char len[32], budget[32], used[64];
	long long in = json_integer_value(json_object_get(st, "tokens_in"));
	long long out = json_integer_value(json_object_get(st, "tokens_out"));

	cli_jnum(json_object_get(spec, "max_session_length_bytes"), "200000", len, sizeof(len));
	cli_jnum(json_object_get(spec, "max_tokens_per_day"), "-", budget, sizeof(budget));
	if (strcmp(budget, "0") == 0)
		snprintf(budget, sizeof(budget), "-");
	snprintf(used, sizeof(used), "%lld", in + out);
	{
		const char *row[] = {
		    cli_jget(r, "metadata", "name", NULL), prov, id ? id : "-", len, budget, used};

		return cli_table_add(t, row);
	}
}

static int cli_res_row_policy(struct cli_table *t, const json_t *r)
{
	const json_t *spec = json_object_get(r, "spec"), *k;
	struct cli_buf kinds = {0};
	const char *filter = cli_jget(spec, "filter", NULL, NULL);
	size_t i;
	int err;

	json_array_foreach(json_object_get(spec, "kinds"), i, k)
	{
		cli_buf_addf(&kinds, "%s%s", i ? "," : "",
			     json_string_value(k) ? json_string_value(k) : "?");
	}
	if (kinds.err) {
		cli_buf_free(&kinds);
		return kinds.err;
	}
	{
		const char *row[] = {cli_jget(r, "metadata", "name", NULL), kinds.p ? kinds.p : "-",
				     cli_jget(spec, "model", NULL, NULL),
				     filter && *filter ? filter : "(every session)"};

		err = cli_table_add(t, row);
	}
	cli_buf_free(&kinds);
	return err;
}

static int cli_res_row_secret(struct cli_table *t, const json_t *r)
{
	const char *row[] = {cli_jget(r, "metadata", "name", NULL),
			     cli_jget(r, "metadata", "created", NULL),
			     cli_jget(r, "metadata", "updated", NULL)};

	return cli_table_add(t, row);
}

int cli_resources_table(const json_t *list, FILE *f)
{
	static const char *const heads[3][6] = {
	    {"MODEL", "PROVIDER", "MODEL ID", "MAX LENGTH", "TOKENS/DAY", "USED TODAY"},
	    {"SECRET", "CREATED", "UPDATED"},
	    {"POLICY", "KINDS", "MODEL", "FILTER"},
	};
	static const size_t ncols[3] = {6, 3, 4};
	bool first = true;
	const json_t *r;
	size_t i;
	int err = 0;

	/* one table per kind, in the order of the list's kinds (the collector sorts them) */
	for (size_t k = 0; k < 3 && !err; k++) {
		struct cli_table t = {0};
		size_t rows = 0;

		err = cli_table_init(&t, ncols[k], heads[k]);
		json_array_foreach(list, i, r)
		{
			const char *kind = cli_jget(r, "kind", NULL, NULL);

			if (err || !kind || strcmp(kind, cli_res_kinds[k].name) != 0)
				continue;
			err = k == 0   ? cli_res_row_model(&t, r)
			      : k == 1 ? cli_res_row_secret(&t, r)
				       : cli_res_row_policy(&t, r);
			rows++;
		}
		if (!err && rows) {
			if (!first)
				fputc('\n', f);
			first = false;
			err = cli_table_print(&t, f);
		}
		cli_table_free(&t);
	}
	return err;
}

/* ------------------------------------------------------------ YAML */

static bool cli_yaml_plain_key(const char *k)
{
	return *k &&
	       strspn(k, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_.-") ==
		   strlen(k);
}

/* A scalar or a flow collection: JSON's forms are YAML's too. */
static int cli_yaml_flow(const json_t *v, FILE *f)
{
	char *s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY | JSON_REAL_PRECISION(15));

	if (!s)
		return -ENOMEM;
	/* strings from the collector: escapes keep control characters out of the terminal */
	fputs(s, f);
	free(s);
	return 0;
}

static int cli_yaml_block(const json_t *o, int indent, FILE *f)
{
	const char *key;
	json_t *v;
	int err = 0;

	json_object_foreach((json_t *)o, key, v)
	{
		fprintf(f, "%*s", indent, "");
		if (cli_yaml_plain_key(key)) {
			fputs(key, f);
		} else {
			json_t *k = json_string(key);

			err = k ? cli_yaml_flow(k, f) : -ENOMEM;
			json_decref(k);
			if (err)
				return err;
		}
		if (json_is_object(v) && json_object_size(v)) {
			fputs(":\n", f);
			err = cli_yaml_block(v, indent + 2, f);
		} else {
			fputs(": ", f);
			err = cli_yaml_flow(v, f);
			fputc('\n', f);
		}
		if (err)
			return err;
	}
	return 0;
}

int cli_resource_yaml(const json_t *res, FILE *f)
{
	int err;

	if (!json_is_object(res))
		return -EINVAL;
	err = cli_yaml_block(res, 0, f);
	return err ? err : ferror(f) ? -EIO : 0;
}

/* ------------------------------------------------------------ commands */

static int cli_read_all(const char *path, char **out, size_t *len)
{
	struct cli_buf b = {0};
	char chunk[65536];
	FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "r");
	size_t n;
	int err = 0;

	*out = NULL;
	*len = 0;
	if (!f)
		return -errno;
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0) {
		if (b.len + n > CLI_RESOURCE_MAX) {
			err = -EFBIG;
			break;
		}
		cli_buf_add(&b, chunk, n);
	}
	if (!err && ferror(f))
		err = -EIO;
	if (f != stdin)
		fclose(f);
	if (!err && b.err)
		err = b.err;
	if (!err && b.len == 0)
		err = -ENODATA;
	if (err) {
		cli_buf_free(&b);
		return err;
	}
	*out = b.p;
	*len = b.len;
	return 0;
}

int do_create(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"filename", required_argument, NULL, 'f'},
	    {"force", no_argument, NULL, 'F'},
	    {"help", no_argument, NULL, 'h'},
	    CLI_REMOTE_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct cli_remote remote = {0};
	struct cli_client *cl = NULL;
	const char *file = NULL;
	json_t *ans = NULL, *r;
	char *text = NULL;
	bool force = false;
	size_t len = 0, i;
	int c, err, status = CLI_EXIT_USAGE;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":f:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			file = optarg;
			break;
		case 'F':
			force = true;
			break;
		case 'h':
			cli_create_usage(stdout);
			return CLI_EXIT_OK;
		default:
			if (cli_remote_opt(&remote, c, optarg))
				break;
			return cli_opt_error("create", c, argv);
		}
	}
	if (optind < argc) {
		cli_err("create: unexpected argument '%s' (the file goes after -f)", argv[optind]);
		return status;
	}
	if (!file) {
		cli_err("create: -f FILE is required (see '%s create --help')", CLI_PROG);
		return status;
	}
	status = CLI_EXIT_FAIL;
	err = cli_read_all(file, &text, &len);
	if (err) {
		cli_err("create: %s: %s", file,
			err == -EFBIG	  ? "larger than 1 MiB"
			: err == -ENODATA ? "empty"
					  : strerror(-err));
		goto out;
	}
	if (cli_client_open(&cl, &remote))
		goto out;
	cli_client_quiet(cl, true);
	err = cli_client_send(cl, "POST", force ? "/v1/resources?force=1" : "/v1/resources",
			      "application/yaml", text, len, &ans);
	if (err) {
		/* the collector's message names the document, line and field in the file */
		cli_err("create: %s: %s", file, cli_client_error(cl));
		goto out;
	}
	json_array_foreach(json_object_get(ans, "resources"), i, r)
	{
		const char *name = cli_jget(r, "name", NULL, NULL);

		printf("%s ",
		       cli_jget(r, "kind", NULL, NULL) ? cli_jget(r, "kind", NULL, NULL) : "?");
		cli_fput_word(stdout, name ? name : "?");
		printf(" %s\n", cli_jget(r, "action", NULL, NULL)
				    ? cli_jget(r, "action", NULL, NULL)
				    : "created");
	}
	status = CLI_EXIT_OK;
out:
	if (text) {
		explicit_bzero(text, len); /* it may hold a secret */
		free(text);
	}
	json_decref(ans);
	cli_client_close(cl);
	return status;
}

int do_get(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    CLI_REMOTE_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct cli_remote remote = {0};
	struct cli_client *cl = NULL;
	const char *kind, *name = NULL;
	char path[256];
	json_t *ans = NULL, *r, *list;
	bool json = false;
	size_t i;
	int c, err, status = CLI_EXIT_USAGE;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":jh", opts, NULL)) != -1) {
		switch (c) {
		case 'j':
			json = true;
			break;
		case 'h':
			cli_get_usage(stdout);
			return CLI_EXIT_OK;
		default:
			if (cli_remote_opt(&remote, c, optarg))
				break;
			return cli_opt_error("get", c, argv);
		}
	}
	if (argc - optind < 1 || argc - optind > 2) {
		cli_err("get: expected KIND [NAME] (see '%s get --help')", CLI_PROG);
		return status;
	}
	kind = cli_res_kind(argv[optind], true);
	if (!kind) {
		cli_err("get: unknown kind '%s' (inference_model, inference_secret, "
			"inference_policy, or model, secret, policy, all)",
			argv[optind]);
		return status;
	}
	if (argc - optind == 2) {
		name = argv[optind + 1];
		if (!*kind) {
			cli_err("get: all takes no NAME");
			return status;
		}
		if (!cli_res_name_ok(name)) {
			cli_err("get: '%s' is not a resource name", name);
			return status;
		}
		snprintf(path, sizeof(path), "/v1/resources/%s/%s", kind, name);
	} else {
		snprintf(path, sizeof(path), "/v1/resources%s%s", *kind ? "/" : "", kind);
	}
	status = CLI_EXIT_FAIL;
	if (cli_client_open(&cl, &remote))
		goto out;
	if (cli_client_get_json(cl, path, &ans))
		goto out;
	if (name) {
		err = json ? cli_json_line(ans, JSON_REAL_PRECISION(15))
			   : cli_resource_yaml(ans, stdout);
	} else {
		list = json_object_get(ans, "resources");
		if (!json_is_array(list)) {
			cli_err("get: the collector's answer has no \"resources\" list");
			goto out;
		}
		err = 0;
		if (json) {
			json_array_foreach(list, i, r)
			{
				err = cli_json_line(r, JSON_REAL_PRECISION(15));
				if (err)
					break;
			}
		} else if (json_array_size(list)) {
			err = cli_resources_table(list, stdout);
		} else {
			fprintf(stderr, "%s: no %s\n", CLI_PROG,
				*kind ? kind : "inference resources");
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

int do_rm(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"help", no_argument, NULL, 'h'},
	    CLI_REMOTE_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct cli_remote remote = {0};
	struct cli_client *cl = NULL;
	const char *kind;
	char path[256];
	json_t *ans = NULL;
	int c, status = CLI_EXIT_USAGE;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
		switch (c) {
		case 'h':
			cli_rm_usage(stdout);
			return CLI_EXIT_OK;
		default:
			if (cli_remote_opt(&remote, c, optarg))
				break;
			return cli_opt_error("rm", c, argv);
		}
	}
	if (argc - optind != 2) {
		cli_err("rm: expected KIND NAME (see '%s rm --help')", CLI_PROG);
		return status;
	}
	kind = cli_res_kind(argv[optind], false);
	if (!kind) {
		cli_err("rm: unknown kind '%s' (inference_model, inference_secret, "
			"inference_policy, or model, secret, policy)",
			argv[optind]);
		return status;
	}
	if (!cli_res_name_ok(argv[optind + 1])) {
		cli_err("rm: '%s' is not a resource name", argv[optind + 1]);
		return status;
	}
	snprintf(path, sizeof(path), "/v1/resources/%s/%s", kind, argv[optind + 1]);
	status = CLI_EXIT_FAIL;
	if (cli_client_open(&cl, &remote))
		goto out;
	if (cli_client_send(cl, "DELETE", path, NULL, NULL, 0, &ans))
		goto out;
	printf("%s ", kind);
	cli_fput_word(stdout, argv[optind + 1]);
	printf(" removed\n");
	status = CLI_EXIT_OK;
out:
	json_decref(ans);
	cli_client_close(cl);
	return status;
}
