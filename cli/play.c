/* sessrec play: replay a recording's terminal output with its timing. */
#include "cli.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "rec.h"
#include "util.h"

#define CLI_PLAY_SPEED_MAX 1000.0
#define CLI_PLAY_IDLE_MAX  86400.0

void cli_play_usage(FILE *out)
{
	fprintf(out,
		"Usage: %s play [--speed X] [--max-idle S] PATH|SID\n\n"
		"Write the terminal output of a recording (a file, or a session's recording\n"
		"downloaded from the collector) to stdout with the timing it was\n"
		"recorded with. Output that the recorder lost shows up where it was lost, as a\n"
		"line \"[sessrec: N bytes of terminal output lost here]\".\n\n"
		"Options:\n"
		"  -s, --speed X     play X times as fast (default 1; 0 plays without delays)\n"
		"  -i, --max-idle S  wait at most S seconds between two chunks (default: no cap)\n"
		"  -h, --help        show this help\n\n"
		"Environment: SESSREC_PLAY_NOWAIT=1 plays without delays, like --speed 0.\n\n"
		"An argument that names an existing file is read locally; a session id (a\n"
		"UUID) is downloaded from the collector first.\n\n" CLI_REMOTE_HELP,
		CLI_PROG);
}

struct cli_play {
	double speed;
	double max_idle;
	bool color;	    /* stdout is a terminal: dim the lost markers */
	struct timespec t0; /* CLOCK_MONOTONIC when playback started */
	uint64_t at_ns;	    /* where playback is, relative to t0 */
	uint64_t prev_ms;   /* ms of the previous chunk */
};

/* Sleep until t0 + at_ns: absolute deadlines, so that delays do not drift. */
static int cli_play_wait(const struct cli_play *p)
{
	struct timespec ts = p->t0;
	int err;

	ts.tv_sec += (time_t)(p->at_ns / 1000000000u);
	ts.tv_nsec += (long)(p->at_ns % 1000000000u);
	if (ts.tv_nsec >= 1000000000L) {
		ts.tv_sec++;
		ts.tv_nsec -= 1000000000L;
	}
	do
		err = clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
	while (err == EINTR);
	return -err;
}

static int cli_play_print(struct cli_play *p, const Sessrec__Print *pr)
{
	int err;

	p->at_ns += cli_play_gap_ns(p->prev_ms, pr->ms, p->speed, p->max_idle);
	if (pr->ms > p->prev_ms)
		p->prev_ms = pr->ms;
	if (p->speed > 0) {
		err = cli_play_wait(p);
		if (err)
			return err;
	}
	return util_write_all(STDOUT_FILENO, pr->data.data, pr->data.len);
}

static int cli_play_lost(const struct cli_play *p, const Sessrec__Lost *l)
{
	char line[160];
	int n;

	if (strcmp(l->class_, "terminal") != 0 && !l->bytes)
		return 0; /* commands, files or connections lost: not part of the output */
	if (l->bytes)
		n = snprintf(line, sizeof(line),
			     "\r\n%s[sessrec: %" PRIu64
			     " bytes of terminal output lost here]%s\r\n",
			     p->color ? "\033[2m" : "", l->bytes, p->color ? "\033[22m" : "");
	else
		n = snprintf(line, sizeof(line),
			     "\r\n%s[sessrec: %" PRIu64
			     " chunks of terminal output lost here]%s\r\n",
			     p->color ? "\033[2m" : "", l->events, p->color ? "\033[22m" : "");
	if (n < 0 || (size_t)n >= sizeof(line))
		return -EOVERFLOW;
	return util_write_all(STDOUT_FILENO, line, (size_t)n);
}

static int cli_play_parse_number(const char *opt, const char *arg, double lo, double hi,
				 double *out)
{
	int err = cli_parse_double(arg, lo, hi, out);

	if (err == -ERANGE)
		cli_err("play: %s '%s': must be between %g and %g", opt, arg, lo, hi);
	else if (err)
		cli_err("play: %s '%s': not a number", opt, arg);
	return err;
}

int do_play(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"speed", required_argument, NULL, 's'},
	    {"max-idle", required_argument, NULL, 'i'},
	    {"help", no_argument, NULL, 'h'},
	    CLI_REMOTE_OPTIONS,
	    {NULL, 0, NULL, 0},
	};
	struct cli_play p = {.speed = 1.0};
	struct cli_remote remote = {0};
	struct cli_recsrc src = {.fd = -1};
	struct cli_client *cl = NULL;
	struct rec_reader *r = NULL;
	Sessrec__Event *ev = NULL;
	const char *nowait;
	int c, n, err, status = CLI_EXIT_USAGE;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":s:i:h", opts, NULL)) != -1) {
		switch (c) {
		case 's':
			if (cli_play_parse_number("--speed", optarg, 0, CLI_PLAY_SPEED_MAX,
						  &p.speed))
				goto out;
			break;
		case 'i':
			if (cli_play_parse_number("--max-idle", optarg, 0, CLI_PLAY_IDLE_MAX,
						  &p.max_idle))
				goto out;
			if (p.max_idle <= 0) {
				cli_err("play: --max-idle '%s': must be more than 0", optarg);
				goto out;
			}
			break;
		case 'h':
			cli_play_usage(stdout);
			status = CLI_EXIT_OK;
			goto out;
		default:
			if (cli_remote_opt(&remote, c, optarg))
				break;
			status = cli_opt_error("play", c, argv);
			goto out;
		}
	}
	if (argc - optind != 1) {
		cli_err("play: expected one recording PATH or session ID (see '%s play --help')",
			CLI_PROG);
		goto out;
	}
	nowait = getenv("SESSREC_PLAY_NOWAIT");
	if (nowait && *nowait && strcmp(nowait, "0") != 0)
		p.speed = 0;
	p.color = isatty(STDOUT_FILENO) == 1;

	status = CLI_EXIT_FAIL;
	if (cli_recsrc_open(&src, "play", argv[optind], &cl, &remote))
		goto out;
	err = rec_reader_open(&r, src.path);
	if (!err && src.sid[0])
		err = rec_reader_expect_sid(r, src.sid);
	if (err) {
		cli_err("%s: %s", src.name, strerror(-err));
		goto out;
	}
	if (clock_gettime(CLOCK_MONOTONIC, &p.t0) != 0) {
		cli_err("play: clock: %m");
		goto out;
	}
	while ((n = rec_reader_next(r, &ev)) == 1) {
		err = 0;
		if (ev->body_case == SESSREC__EVENT__BODY_PRINT)
			err = cli_play_print(&p, ev->print);
		else if (ev->body_case == SESSREC__EVENT__BODY_LOST)
			err = cli_play_lost(&p, ev->lost);
		sessrec__event__free_unpacked(ev, NULL);
		ev = NULL;
		if (err) {
			cli_err("stdout: %s", strerror(-err));
			goto out;
		}
	}
	if (n < 0) {
		const char *why = rec_reader_error(r);

		cli_err("%s: %s", src.name, why && *why ? why : strerror(-n));
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
