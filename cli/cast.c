/*
 * asciicast v2 (https://docs.asciinema.org/manual/asciicast/v2/): a header
 * object, then one [time, "o", data] array per chunk of terminal output.
 * data must be a JSON string, so the recorded bytes become UTF-8 here: a
 * sequence that a print event boundary split is carried to the next chunk
 * and comes out whole; bytes that are not UTF-8 become U+FFFD.
 */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

static void cli_cast_str(struct cli_buf *b, const char *s)
{
	cli_buf_add(b, "\"", 1);
	cli_json_utf8(b, (const uint8_t *)s, strlen(s), true);
	cli_buf_add(b, "\"", 1);
}

static int cli_cast_put(struct cli_cast *c)
{
	if (c->line.err)
		return c->line.err;
	errno = 0;
	if (fwrite(c->line.p, 1, c->line.len, c->out) != c->line.len)
		return errno ? -errno : -EIO;
	return 0;
}

static char *cli_cast_title(const Sessrec__SessionStart *st)
{
	char *t = NULL;
	int n;

	if (st->login[0] && strcmp(st->login, st->user) != 0)
		n = asprintf(&t, "%s as %s on %s, session %s", st->user, st->login,
			     st->server_hostname, st->sid);
	else
		n = asprintf(&t, "%s on %s, session %s", st->user, st->server_hostname, st->sid);
	return n < 0 ? NULL : t;
}

int cli_cast_begin(struct cli_cast *c, FILE *out, const Sessrec__SessionStart *st, int64_t start_ns,
		   const char *term)
{
	struct cli_buf *b = &c->line;
	char *cmd = NULL, *title = NULL;
	int err;

	memset(c, 0, sizeof(*c));
	c->out = out;
	c->onlcr = true;
	if (st->n_initial_command) {
		err = cli_argv_string(st->initial_command, st->n_initial_command, &cmd);
		if (err)
			goto out;
	}
	title = cli_cast_title(st);
	if (!title) {
		err = -ENOMEM;
		goto out;
	}
	cli_buf_addf(b,
		     "{\"version\": 2, \"width\": %" PRIu32 ", \"height\": %" PRIu32
		     ", \"timestamp\": %" PRId64,
		     st->cols ? st->cols : 80, st->rows ? st->rows : 24,
		     start_ns > 0 ? start_ns / 1000000000 : 0);
	if (cmd) {
		cli_buf_adds(b, ", \"command\": ");
		cli_cast_str(b, cmd);
	}
	cli_buf_adds(b, ", \"title\": ");
	cli_cast_str(b, title);
	cli_buf_adds(b, ", \"env\": {\"TERM\": ");
	cli_cast_str(b, term && *term ? term : CLI_CAST_TERM);
	cli_buf_adds(b, "}}\n");
	err = cli_cast_put(c);
out:
	free(cmd);
	free(title);
	return err;
}

/* Start a line at ms: '[1.234, "o", "'. */
static void cli_cast_line_start(struct cli_cast *c, uint64_t ms)
{
	cli_buf_reset(&c->line);
	cli_buf_addf(&c->line, "[%" PRIu64 ".%03" PRIu64 ", \"o\", \"", ms / 1000, ms % 1000);
}

int cli_cast_output(struct cli_cast *c, uint64_t ms, const uint8_t *data, size_t len)
{
	size_t used;

	if (!len)
		return 0;
	/* asciinema needs times that never go back */
	if (ms < c->last_ms)
		ms = c->last_ms;
	cli_buf_reset(&c->in);
	cli_buf_add(&c->in, c->carry, c->ncarry);
	if (!c->onlcr) {
		cli_buf_add(&c->in, data, len);
	} else {
		const uint8_t *p = data, *end = data + len, *nl;

		while ((nl = memchr(p, '\n', (size_t)(end - p)))) {
			bool cr = nl > data ? nl[-1] == '\r' : c->last_cr;

			cli_buf_add(&c->in, p, (size_t)(nl - p));
			cli_buf_add(&c->in, cr ? "\n" : "\r\n", cr ? 1 : 2);
			p = nl + 1;
		}
		cli_buf_add(&c->in, p, (size_t)(end - p));
	}
	c->last_cr = data[len - 1] == '\r';
	if (c->in.err)
		return c->in.err;
	cli_cast_line_start(c, ms);
	used = cli_json_utf8(&c->line, (const uint8_t *)c->in.p, c->in.len, false);
	c->ncarry = c->in.len - used; /* at most 3: an unfinished sequence */
	memcpy(c->carry, c->in.p + used, c->ncarry);
	c->carry_ms = ms;
	if (!used)
		return c->line.err;
	c->last_ms = ms;
	cli_buf_adds(&c->line, "\"]\n");
	return cli_cast_put(c);
}

/* What was carried will not be finished (output lost, or the end): U+FFFD. */
static int cli_cast_flush_carry(struct cli_cast *c)
{
	if (!c->ncarry)
		return 0;
	if (c->carry_ms > c->last_ms)
		c->last_ms = c->carry_ms;
	cli_cast_line_start(c, c->last_ms);
	cli_json_utf8(&c->line, c->carry, c->ncarry, true);
	cli_buf_adds(&c->line, "\"]\n");
	c->ncarry = 0;
	return cli_cast_put(c);
}

int cli_cast_lost(struct cli_cast *c, uint64_t bytes, uint64_t chunks)
{
	int err = cli_cast_flush_carry(c);

	if (err)
		return err;
	cli_cast_line_start(c, c->last_ms);
	if (bytes || !chunks)
		cli_buf_addf(&c->line, "\\r\\n[sessrec: %" PRIu64 " bytes lost]\\r\\n\"]\n", bytes);
	else
		cli_buf_addf(&c->line,
			     "\\r\\n[sessrec: %" PRIu64 " chunks of output lost]\\r\\n\"]\n",
			     chunks);
	return cli_cast_put(c);
}

int cli_cast_end(struct cli_cast *c)
{
	int err = cli_cast_flush_carry(c);

	cli_cast_free(c);
	return err;
}

void cli_cast_free(struct cli_cast *c)
{
	if (!c)
		return;
	cli_buf_free(&c->in);
	cli_buf_free(&c->line);
	c->ncarry = 0;
}
