/* sessrec export: a recording as asciicast v2 (for asciinema) or as a JSON array of events. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "rec.h"

void cli_export_usage(FILE *out)
{
	fprintf(out,
		"Usage: %s export --format asciicast|json [-o FILE] PATH|SID\n\n"
		"Convert a recording file, or a session's recording on the collector.\n\n"
		"  asciicast  asciicast v2, what asciinema plays (`asciinema play FILE`): a\n"
		"             header with the terminal size, start time and command, then the\n"
		"             terminal output as [seconds, \"o\", text] lines. Output that is not\n"
		"             UTF-8 shows as U+FFFD; output the recorder lost as a line\n"
		"             \"[sessrec: N bytes lost]\". Line feeds become \\r\\n, as the\n"
		"             session's terminal showed them (the recorder sees output\n"
		"             before the terminal's onlcr). The header's TERM is %s.\n"
		"  json       every event as a JSON array, in the `%s events --json` form\n\n"
		"Options:\n"
		"  -f, --format FMT  asciicast or json (required)\n"
		"  -o, --output FILE write FILE (replaced only once the export is whole);\n"
		"                    default: stdout\n"
		"      --no-crlf     asciicast: keep line feeds as recorded\n"
		"  -h, --help        show this help\n\n"
		"An argument that names an existing file is read locally; a session id (a\n"
		"UUID) is downloaded from the collector.\n\n" CLI_REMOTE_HELP,
		CLI_PROG, CLI_CAST_TERM, CLI_PROG);
}

enum cli_export_fmt {
	CLI_EXPORT_NONE = 0,
	CLI_EXPORT_CAST,
	CLI_EXPORT_JSON,
};

/* Where the export goes: stdout, or a temporary file renamed over FILE at the end. */
struct cli_export_out {
	FILE *f;
	const char *target; /* NULL: stdout */
	char *tmp;
};

static int cli_export_out_open(struct cli_export_out *o, const char *target)
{
	mode_t mask;
	int fd, err = 0;

	memset(o, 0, sizeof(*o));
	if (!target || strcmp(target, "-") == 0) {
		o->f = stdout;
		return 0;
	}
	o->target = target;
	if (asprintf(&o->tmp, "%s.XXXXXX", target) < 0) {
		o->tmp = NULL;
		return -ENOMEM;
	}
	fd = mkostemp(o->tmp, O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	/* mkstemp's 0600, widened to what the umask lets a new file have */
	mask = umask(0);
	umask(mask);
	if (fchmod(fd, 0666 & ~mask) != 0) {
		err = -errno;
		close(fd);
		unlink(o->tmp);
		goto out;
	}
	o->f = fdopen(fd, "w");
	if (!o->f) {
		err = -errno;
		close(fd);
		unlink(o->tmp);
	}
out:
	if (err) {
		free(o->tmp);
		o->tmp = NULL;
	}
	return err;
}

/* Finish: keep (rename over the target) or throw away. 0 or -errno. */
static int cli_export_out_close(struct cli_export_out *o, bool keep)
{
	int err = 0;

	if (!o->f)
		return 0;
	if (!o->target) {
		if (fflush(stdout) != 0)
			err = -errno;
		goto out;
	}
	if (keep && fflush(o->f) != 0)
		err = -errno;
	if (fclose(o->f) != 0 && !err)
		err = -errno;
	if (keep && !err && rename(o->tmp, o->target) != 0)
		err = -errno;
	if (!keep || err)
		unlink(o->tmp);
out:
	o->f = NULL;
	free(o->tmp);
	o->tmp = NULL;
	return err;
}

/* Write the events of reader r in format fmt. Reports its own errors. */
static int cli_export_run(struct rec_reader *r, const char *name, enum cli_export_fmt fmt,
			  bool crlf, FILE *out)
{
	struct cli_evsess sess = {0};
	struct cli_cast cast = {0};
	struct audit_ctx ctx;
	Sessrec__Event *ev = NULL;
	bool begun = false;
	uint64_t nev = 0;
	char *line = NULL;
	int n = 0, err = 0;

	if (fmt == CLI_EXPORT_JSON && fputs("[", out) == EOF)
		err = -EIO;
	while (!err && (n = rec_reader_next(r, &ev)) == 1) {
		if (fmt == CLI_EXPORT_JSON) {
			err = cli_evsess_update(&sess, ev);
			cli_evsess_ctx(&sess, &ctx);
			if (!err)
				err = audit_event_json(ev, &ctx, &line);
			if (!err && fprintf(out, "%s\n%s", nev ? "," : "", line) < 0)
				err = -EIO;
			free(line);
			line = NULL;
		} else if (!begun) {
			if (ev->body_case != SESSREC__EVENT__BODY_START) {
				cli_err(
				    "export: %s: the recording does not start with session.start",
				    name);
				err = -EBADMSG;
			} else {
				err = cli_cast_begin(&cast, out, ev->start, ev->time_ns, NULL);
				cast.onlcr = crlf;
				begun = true;
			}
		} else if (ev->body_case == SESSREC__EVENT__BODY_PRINT) {
			err = cli_cast_output(&cast, ev->print->ms, ev->print->data.data,
					      ev->print->data.len);
		} else if (ev->body_case == SESSREC__EVENT__BODY_LOST &&
			   (ev->lost->bytes || strcmp(ev->lost->class_, "terminal") == 0)) {
			err = cli_cast_lost(&cast, ev->lost->bytes, ev->lost->events);
		}
		nev++;
		sessrec__event__free_unpacked(ev, NULL);
		ev = NULL;
	}
	if (err) {
		if (err != -EBADMSG)
			cli_err("export: %s: %s", name, strerror(-err));
		goto out;
	}
	if (n < 0) {
		const char *why = rec_reader_error(r);

		cli_err("export: %s: %s", name, why && *why ? why : strerror(-n));
		err = n;
		goto out;
	}
	if (fmt == CLI_EXPORT_CAST && !begun) {
		cli_err("export: %s: the recording holds no events", name);
		err = -EBADMSG;
		goto out;
	}
	err = fmt == CLI_EXPORT_JSON ? (fputs(nev ? "\n]\n" : "]\n", out) == EOF ? -EIO : 0)
				     : cli_cast_end(&cast);
	if (err)
		cli_err("export: %s", strerror(-err));
out:
	cli_cast_free(&cast);
	cli_evsess_free(&sess);
	return err;
}

int do_export(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"format", required_argument, NULL, 'f'},
	    {"output", required_argument, NULL, 'o'},
	    {"no-crlf", no_argument, NULL, 'N'},
	    {"help", no_argument, NULL, 'h'},
	    CLI_REMOTE_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct cli_export_out out = {0};
	struct cli_remote remote = {0};
	struct cli_recsrc src = {.fd = -1};
	struct cli_client *cl = NULL;
	struct rec_reader *r = NULL;
	enum cli_export_fmt fmt = CLI_EXPORT_NONE;
	const char *output = NULL;
	bool crlf = true;
	int c, err, status = CLI_EXIT_USAGE;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":f:o:h", opts, NULL)) != -1) {
		switch (c) {
		case 'f':
			if (strcmp(optarg, "asciicast") == 0) {
				fmt = CLI_EXPORT_CAST;
			} else if (strcmp(optarg, "json") == 0) {
				fmt = CLI_EXPORT_JSON;
			} else {
				cli_err("export: --format '%s': one of asciicast, json", optarg);
				goto out;
			}
			break;
		case 'o':
			output = optarg;
			break;
		case 'N':
			crlf = false;
			break;
		case 'h':
			cli_export_usage(stdout);
			status = CLI_EXIT_OK;
			goto out;
		default:
			if (cli_remote_opt(&remote, c, optarg))
				break;
			status = cli_opt_error("export", c, argv);
			goto out;
		}
	}
	if (argc - optind != 1) {
		cli_err("export: expected one recording PATH or session ID (see '%s export "
			"--help')",
			CLI_PROG);
		goto out;
	}
	if (fmt == CLI_EXPORT_NONE) {
		cli_err("export: --format asciicast|json is required");
		goto out;
	}

	status = CLI_EXIT_FAIL;
	if (cli_recsrc_open(&src, "export", argv[optind], &cl, &remote))
		goto out;
	err = rec_reader_open(&r, src.path);
	if (!err && src.sid[0])
		err = rec_reader_expect_sid(r, src.sid);
	if (err) {
		cli_err("export: %s: %s", src.name, strerror(-err));
		goto out;
	}
	err = cli_export_out_open(&out, output);
	if (err) {
		cli_err("export: %s: %s", output, strerror(-err));
		goto out;
	}
	if (cli_export_run(r, src.name, fmt, crlf, out.f)) {
		cli_export_out_close(&out, false);
		goto out;
	}
	err = cli_export_out_close(&out, true);
	if (err) {
		cli_err("export: %s: %s", output ? output : "stdout", strerror(-err));
		goto out;
	}
	status = CLI_EXIT_OK;
out:
	if (r)
		rec_reader_close(r);
	cli_recsrc_close(&src);
	cli_client_close(cl);
	return status;
}
