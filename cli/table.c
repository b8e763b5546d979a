/* Aligned tables for people, and the `ls` and `show` forms of a session. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* A copy of s that a terminal shows as text: control characters and invalid UTF-8 as '?'. */
static char *cli_cell_dup(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	char *out, *o;

	out = malloc(strlen(s) + 1);
	if (!out)
		return NULL;
	for (o = out; *p;) {
		size_t n = cli_utf8_len(p);

		if (n == 0 || *p < 0x20 || *p == 0x7f) {
			*o++ = '?';
			p++;
			continue;
		}
		memcpy(o, p, n);
		o += n;
		p += n;
	}
	*o = '\0';
	return out;
}

/* Characters a terminal advances for s: UTF-8 lead bytes (wide glyphs count one). */
static size_t cli_cell_width(const char *s)
{
	size_t w = 0;

	for (; *s; s++) {
		if (((unsigned char)*s & 0xc0) != 0x80)
			w++;
	}
	return w;
}

int cli_table_add(struct cli_table *t, const char *const *cells)
{
	char **v;
	size_t i;

	v = realloc(t->cells, (t->nrows + 1) * t->ncols * sizeof(*v));
	if (!v)
		return -ENOMEM;
	t->cells = v;
	v += t->nrows * t->ncols;
	for (i = 0; i < t->ncols; i++) {
		v[i] = cli_cell_dup(cells[i] ? cells[i] : "");
		if (!v[i])
			break;
	}
	if (i < t->ncols) {
		while (i-- > 0)
			free(v[i]);
		return -ENOMEM;
	}
	t->nrows++;
	return 0;
}

int cli_table_init(struct cli_table *t, size_t ncols, const char *const *headers)
{
	memset(t, 0, sizeof(*t));
	t->ncols = ncols;
	return cli_table_add(t, headers);
}

int cli_table_print(const struct cli_table *t, FILE *f)
{
	size_t *w;

	w = calloc(t->ncols ? t->ncols : 1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			size_t cw = cli_cell_width(t->cells[r * t->ncols + c]);

			if (cw > w[c])
				w[c] = cw;
		}
	}
	for (size_t r = 0; r < t->nrows; r++) {
		for (size_t c = 0; c < t->ncols; c++) {
			const char *cell = t->cells[r * t->ncols + c];

			fputs(cell, f);
			if (c + 1 == t->ncols)
				break;
			for (size_t pad = cli_cell_width(cell); pad < w[c] + 2; pad++)
				fputc(' ', f);
		}
		fputc('\n', f);
	}
	free(w);
	return ferror(f) ? -EIO : 0;
}

void cli_table_free(struct cli_table *t)
{
	if (!t)
		return;
	for (size_t i = 0; i < t->nrows * t->ncols; i++)
		free(t->cells[i]);
	free(t->cells);
	memset(t, 0, sizeof(*t));
}

/* ------------------------------------------------------------ sessions */

static const char *const cli_ls_cols[] = {"SID",  "START", "DURATION", "USER",	 "LOGIN",
					  "NODE", "KIND",  "EXIT",     "COMMAND"};
static const char *const cli_ls_cols_wide[] = {"SID",	 "START", "DURATION", "USER",
					       "LOGIN",	 "NODE",  "KIND",     "EXIT",
					       "STATUS", "RISK",  "LABELS",   "COMMAND"};

#define CLI_NCOLS(a) (sizeof(a) / sizeof((a)[0]))

int cli_ls_table_init(struct cli_table *t, bool wide)
{
	return wide ? cli_table_init(t, CLI_NCOLS(cli_ls_cols_wide), cli_ls_cols_wide)
		    : cli_table_init(t, CLI_NCOLS(cli_ls_cols), cli_ls_cols);
}

static const char *cli_sstr(const json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s && *s ? s : "-";
}

/* "2026-11-22T10:13:19.123Z" as "2026-11-22 10:13:19" (UTC, to the second). */
static void cli_fmt_start(const json_t *sess, char *buf, size_t len)
{
	const char *s = json_string_value(json_object_get(sess, "start"));
	int64_t ns;
	time_t t;
	struct tm tm;

	if (!s || cli_parse_rfc3339(s, &ns) != 0) {
		snprintf(buf, len, "-");
		return;
	}
	t = (time_t)(ns / 1000000000);
	if (!gmtime_r(&t, &tm) || strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm) == 0)
		snprintf(buf, len, "-");
}

static int cli_strv_of(const json_t *a, char ***out, size_t *n)
{
	size_t len = json_array_size(a);

	*out = NULL;
	*n = 0;
	if (!len)
		return 0;
	*out = calloc(len, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (size_t i = 0; i < len; i++) {
		const char *s = json_string_value(json_array_get(a, i));

		(*out)[i] = (char *)(s ? s : "");
	}
	*n = len;
	return 0;
}

/* A JSON array of strings as shell words; "-" when empty. */
static int cli_command_str(const json_t *a, char **out)
{
	char **argv = NULL;
	size_t n;
	int err;

	*out = NULL;
	err = cli_strv_of(a, &argv, &n);
	if (!err && !n)
		*out = strdup("-");
	else if (!err)
		err = cli_argv_string(argv, n, out);
	if (!err && !*out)
		err = -ENOMEM;
	free(argv);
	return err;
}

/* A JSON object of labels as "k=v,k2=v2" (object order); "-" when empty. */
static int cli_labels_str(const json_t *labels, char **out)
{
	struct cli_buf b = {0};
	const char *k;
	json_t *v;

	cli_buf_add(&b, "", 0);
	json_object_foreach((json_t *)labels, k, v)
	{
		const char *s = json_string_value(v);

		cli_buf_addf(&b, "%s%s=%s", b.len ? "," : "", k, s ? s : "");
	}
	if (b.err) {
		cli_buf_free(&b);
		return -ENOMEM;
	}
	if (!b.len)
		cli_buf_adds(&b, "-");
	*out = b.p;
	return b.err;
}

static void cli_fmt_exit(const json_t *sess, char *buf, size_t len)
{
	const json_t *e = json_object_get(sess, "exit_code");

	if (json_is_integer(e) && json_integer_value(e) >= 0)
		snprintf(buf, len, "%" JSON_INTEGER_FORMAT, json_integer_value(e));
	else
		snprintf(buf, len, "-");
}

static void cli_fmt_sess_duration(const json_t *sess, char *buf, size_t len)
{
	const json_t *d = json_object_get(sess, "duration_ms");

	if (json_is_integer(d))
		cli_fmt_duration(json_integer_value(d), buf, len);
	else
		snprintf(buf, len, "-");
}

int cli_ls_table_add(struct cli_table *t, const json_t *sess, bool wide)
{
	const char *sid = cli_sstr(sess, "sid");
	char sidbuf[UUID_STR_LEN_], start[32], dur[32], exit[16];
	char *cmd = NULL, *labels = NULL;
	int err;

	snprintf(sidbuf, wide ? sizeof(sidbuf) : 9, "%s", sid);
	cli_fmt_start(sess, start, sizeof(start));
	cli_fmt_sess_duration(sess, dur, sizeof(dur));
	cli_fmt_exit(sess, exit, sizeof(exit));
	err = cli_command_str(json_object_get(sess, "initial_command"), &cmd);
	if (!err && wide)
		err = cli_labels_str(json_object_get(sess, "labels"), &labels);
	if (err)
		goto out;
	if (wide) {
		const char *row[] = {sidbuf,
				     start,
				     dur,
				     cli_sstr(sess, "user"),
				     cli_sstr(sess, "login"),
				     cli_sstr(sess, "node"),
				     cli_sstr(sess, "kind"),
				     exit,
				     cli_sstr(sess, "status"),
				     cli_sstr(sess, "risk_level"),
				     labels,
				     cmd};

		err = cli_table_add(t, row);
	} else {
		const char *row[] = {sidbuf,
				     start,
				     dur,
				     cli_sstr(sess, "user"),
				     cli_sstr(sess, "login"),
				     cli_sstr(sess, "node"),
				     cli_sstr(sess, "kind"),
				     exit,
				     cmd};

		err = cli_table_add(t, row);
	}
out:
	free(cmd);
	free(labels);
	return err;
}

/* ------------------------------------------------------------ show */

/* The keys `show` puts first, in this order; the rest follow as the server sent them. */
static const char *const cli_show_order[] = {
    "sid",	 "status",	 "node",	"user",	     "login",		"kind",
    "start",	 "end",		 "duration_ms", "exit_code", "initial_command", "cols",
    "rows",	 "labels",	 "commands",	"events",    "bytes",		"parts",
    "closed_by", "parts_sha256",
};

static bool cli_all_strings(const json_t *a)
{
	size_t i;
	json_t *v;

	json_array_foreach(a, i, v)
	{
		if (!json_is_string(v))
			return false;
	}
	return true;
}

/* ["ab","cd"] as "ab cd" (the part hashes). */
static char *cli_join_strings(const json_t *a)
{
	struct cli_buf b = {0};
	size_t i;
	json_t *v;

	cli_buf_add(&b, "", 0);
	json_array_foreach(a, i, v)
	{
		cli_buf_addf(&b, "%s%s", i ? " " : "", json_string_value(v));
	}
	if (b.err) {
		cli_buf_free(&b);
		return NULL;
	}
	return b.p;
}

static void cli_show_value(FILE *f, const char *key, const json_t *v)
{
	char buf[64];
	char *s = NULL, *clean;

	if (strcmp(key, "duration_ms") == 0 && json_is_integer(v)) {
		cli_fmt_duration(json_integer_value(v), buf, sizeof(buf));
		fprintf(f, "%" JSON_INTEGER_FORMAT " (%s)", json_integer_value(v), buf);
		return;
	}
	if (json_is_string(v)) {
		s = strdup(json_string_value(v));
	} else if (json_is_array(v) && strcmp(key, "initial_command") == 0) {
		if (cli_command_str(v, &s) != 0)
			s = NULL;
	} else if (json_is_object(v) && strcmp(key, "labels") == 0) {
		if (cli_labels_str(v, &s) != 0)
			s = NULL;
	} else if (json_is_array(v) && cli_all_strings(v)) {
		s = cli_join_strings(v);
	} else if (json_is_null(v)) {
		s = strdup("-");
	} else {
		s = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
	}
	clean = s ? cli_cell_dup(s) : NULL;
	fputs(clean ? clean : "?", f);
	free(clean);
	free(s);
}

int cli_show_write(const json_t *sess, FILE *f)
{
	const size_t norder = sizeof(cli_show_order) / sizeof(cli_show_order[0]);
	size_t width = 0;
	const char *key;
	json_t *v;

	json_object_foreach((json_t *)sess, key, v)
	{
		if (strlen(key) > width)
			width = strlen(key);
	}
	for (size_t i = 0; i < norder; i++) {
		v = json_object_get(sess, cli_show_order[i]);
		if (!v)
			continue;
		fprintf(f, "%s:%*s", cli_show_order[i],
			(int)(width + 1 - strlen(cli_show_order[i])), "");
		cli_show_value(f, cli_show_order[i], v);
		fputc('\n', f);
	}
	json_object_foreach((json_t *)sess, key, v)
	{
		size_t i;
		char *k;

		for (i = 0; i < norder && strcmp(key, cli_show_order[i]) != 0; i++)
			;
		if (i < norder)
			continue;
		k = cli_cell_dup(key);
		fprintf(f, "%s:%*s", k ? k : "?", (int)(width + 1 - strlen(key)), "");
		free(k);
		cli_show_value(f, key, v);
		fputc('\n', f);
	}
	return ferror(f) ? -EIO : 0;
}

int cli_json_line(const json_t *o, size_t flags)
{
	char *s = json_dumps(o, JSON_COMPACT | flags);
	int err = 0;

	if (!s)
		return -ENOMEM;
	errno = 0;
	if (puts(s) == EOF)
		err = errno ? -errno : -EIO;
	free(s);
	return err;
}
