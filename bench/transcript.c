/*
 * transcript: how much smaller a session's transcript (lib/transcript.c) is
 * than its raw terminal output, and whether it kept every command path and
 * every network destination of the recording.
 *
 *   build/bench/transcript [--json] [--show] [--target X] [PATH|DIR ...]
 *
 * PATH is a recording (.rec); a DIR is searched for *.rec (not recursively).
 * Without arguments: $SESSREC_BENCH_RECORDINGS, else build/bench/recordings
 * (where bench/sessions/make.sh puts them). Prints a table, or with --json one
 * JSON object; --show prints each transcript to stderr, --summary the built-in
 * summarizer's verdict on each recording (also to stderr). Exit status: 0 when
 * every recording was read (whether or not the target was met), 1 when one
 * could not be, 2 on a bad command line.
 */
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>

#include "rec.h"
#include "transcript.h"

#define BENCH_TX_DEFAULT_DIR "build/bench/recordings"
#define BENCH_TX_TARGET	     5.0

/* A set of distinct strings (command paths, destinations), kept small and simple. */
struct bench_tx_set {
	char **v;
	size_t n, cap;
};

struct bench_tx_result {
	char *path;
	char *name;
	uint64_t raw, text, events;
	double ratio, ms;
	size_t cmds, cmds_kept, dests, dests_kept;
	char *first_missing; /* one command path or destination that is not in the text */
	int err;
};

static int bench_tx_set_add(struct bench_tx_set *s, const char *v)
{
	for (size_t i = 0; i < s->n; i++)
		if (strcmp(s->v[i], v) == 0)
			return 0;
	if (s->n == s->cap) {
		size_t cap = s->cap ? s->cap * 2 : 64;
		char **nv = realloc(s->v, cap * sizeof(*nv));

		if (!nv)
			return -ENOMEM;
		s->v = nv;
		s->cap = cap;
	}
	s->v[s->n] = strdup(v);
	if (!s->v[s->n])
		return -ENOMEM;
	s->n++;
	return 0;
}

static void bench_tx_set_free(struct bench_tx_set *s)
{
	for (size_t i = 0; i < s->n; i++)
		free(s->v[i]);
	free(s->v);
	memset(s, 0, sizeof(*s));
}

/*
 * `word` appears in text as a word of its own: after the start, a space, "(" or
 * `lead`, and before a space, ")", a newline or the end. Command paths are
 * written after "exec " (or in a PATH search's list of misses), destinations
 * after "→ ".
 */
static bool bench_tx_has(const char *text, const char *word)
{
	size_t wl = strlen(word);
	const char *p = text;

	while ((p = strstr(p, word))) {
		char before = p > text ? p[-1] : ' ', after = p[wl];

		if ((before == ' ' || before == '(') &&
		    (after == ' ' || after == ')' || after == '\n' || !after))
			return true;
		p++;
	}
	return false;
}

static double bench_tx_now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* A short name: the bench/sessions script the session ran, else the file name. */
static char *bench_tx_name(const Sessrec__SessionStart *st, const char *path)
{
	const char *base = strrchr(path, '/');

	for (size_t i = 0; st && i < st->n_initial_command; i++) {
		const char *a = st->initial_command[i], *s = strrchr(a, '/');
		size_t n;

		s = s ? s + 1 : a;
		n = strlen(s);
		if (n > 3 && strcmp(s + n - 3, ".sh") == 0)
			return strndup(s, n - 3);
	}
	return strdup(base ? base + 1 : path);
}

/* The built-in summarizer's verdict, to stderr. */
static int bench_tx_summary(const char *path, const Sessrec__Event *const *ev, size_t n)
{
	struct summary s;
	int err = summary_builtin(ev, n, &s);

	if (err)
		return err;
	fprintf(stderr, "==== summary of %s\ntitle: %s\nshort: %s\nrisk: %s %u/100%s\n%s", path,
		s.title, s.short_description, summary_risk_name(s.risk_level), s.risk_score,
		s.needs_review ? ", needs review" : "", s.detailed_description);
	for (size_t i = 0; i < s.n_commands_of_interest; i++)
		fprintf(stderr, "command of interest: %s\n", s.commands_of_interest[i]);
	summary_clear(&s);
	return 0;
}

static int bench_tx_one(const char *path, bool show, bool summarize, struct bench_tx_result *r)
{
	struct rec_reader *rd = NULL;
	struct transcript *t = NULL;
	struct bench_tx_set cmds = {0}, dests = {0};
	Sessrec__Event *ev = NULL, **all = NULL;
	const char *text;
	size_t len, n_all = 0, cap_all = 0;
	double t0, busy = 0;
	int err;

	memset(r, 0, sizeof(*r));
	r->path = strdup(path);
	if (!r->path)
		return -ENOMEM;
	err = rec_reader_open(&rd, path);
	if (err) {
		fprintf(stderr, "transcript: %s: %s\n", path, strerror(-err));
		goto out;
	}
	err = transcript_new(&t, 0, 0);
	if (err)
		goto out;
	while ((err = rec_reader_next(rd, &ev)) == 1) {
		char dest[96];

		err = 0;
		r->events++;
		if (ev->body_case == SESSREC__EVENT__BODY_START && !r->name)
			r->name = bench_tx_name(ev->start, path);
		/* commands that ran (failed attempts of a PATH search are not commands) */
		if (ev->body_case == SESSREC__EVENT__BODY_COMMAND && ev->command->path &&
		    ev->command->path[0] && ev->command->return_code == 0)
			err = bench_tx_set_add(&cmds, ev->command->path);
		if (ev->body_case == SESSREC__EVENT__BODY_NETWORK) {
			const Sessrec__Network *n = ev->network;
			bool v6 = n->version == 6 || strchr(n->dst_addr, ':');

			snprintf(dest, sizeof(dest), v6 ? "[%s]:%u" : "%s:%u", n->dst_addr,
				 n->dst_port);
			err = bench_tx_set_add(&dests, dest);
		}
		if (!err) {
			t0 = bench_tx_now_ms();
			err = transcript_add(t, ev);
			busy += bench_tx_now_ms() - t0;
		}
		if (!err && summarize) {
			if (n_all == cap_all) {
				size_t cap = cap_all ? cap_all * 2 : 1024;
				Sessrec__Event **na = realloc(all, cap * sizeof(*na));

				if (!na)
					err = -ENOMEM;
				else
					all = na, cap_all = cap;
			}
			if (!err) {
				all[n_all++] = ev;
				ev = NULL;
			}
		}
		sessrec__event__free_unpacked(ev, NULL);
		ev = NULL;
		if (err)
			break;
	}
	if (err < 0) {
		fprintf(stderr, "transcript: %s: %s\n", path,
			rec_reader_error(rd)[0] ? rec_reader_error(rd) : strerror(-err));
		goto out;
	}
	t0 = bench_tx_now_ms();
	err = transcript_finish(t, &text, &len);
	busy += bench_tx_now_ms() - t0;
	if (err)
		goto out;
	if (show)
		fprintf(stderr, "==== %s\n%s==== end of %s\n", path, text, path);
	if (summarize) {
		err = bench_tx_summary(path, (const Sessrec__Event *const *)all, n_all);
		if (err)
			goto out;
	}
	r->raw = transcript_raw_bytes(t);
	r->text = len;
	r->ratio = len ? (double)r->raw / (double)len : 0;
	r->ms = busy;
	r->cmds = cmds.n;
	r->dests = dests.n;
	for (size_t i = 0; i < cmds.n; i++) {
		if (bench_tx_has(text, cmds.v[i]))
			r->cmds_kept++;
		else if (!r->first_missing)
			r->first_missing = strdup(cmds.v[i]);
	}
	for (size_t i = 0; i < dests.n; i++) {
		if (bench_tx_has(text, dests.v[i]))
			r->dests_kept++;
		else if (!r->first_missing)
			r->first_missing = strdup(dests.v[i]);
	}
	if (!r->name)
		r->name = bench_tx_name(NULL, path);
out:
	for (size_t i = 0; i < n_all; i++)
		sessrec__event__free_unpacked(all[i], NULL);
	free(all);
	bench_tx_set_free(&cmds);
	bench_tx_set_free(&dests);
	transcript_free(t);
	rec_reader_close(rd);
	r->err = err;
	return err;
}

static int bench_tx_cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static int bench_tx_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The recordings named on the command line, directories expanded (sorted). */
static int bench_tx_collect(char **args, int n, struct bench_tx_set *out)
{
	int err = 0;

	for (int i = 0; i < n && !err; i++) {
		struct stat st;
		struct dirent *de;
		DIR *d;
		size_t first = out->n;

		if (stat(args[i], &st) < 0) {
			fprintf(stderr, "transcript: %s: %s\n", args[i], strerror(errno));
			return -errno;
		}
		if (!S_ISDIR(st.st_mode)) {
			err = bench_tx_set_add(out, args[i]);
			continue;
		}
		d = opendir(args[i]);
		if (!d) {
			fprintf(stderr, "transcript: %s: %s\n", args[i], strerror(errno));
			return -errno;
		}
		while (!err && (de = readdir(d))) {
			size_t l = strlen(de->d_name);
			char p[4096];

			if (l < 5 || strcmp(de->d_name + l - 4, ".rec") != 0)
				continue;
			snprintf(p, sizeof(p), "%s/%s", args[i], de->d_name);
			err = bench_tx_set_add(out, p);
		}
		closedir(d);
		qsort(out->v + first, out->n - first, sizeof(*out->v), bench_tx_cmp);
	}
	return err;
}

static void bench_tx_table(const struct bench_tx_result *r, size_t n, double avg, double med,
			   double all, double target)
{
	printf("%-16s %12s %11s %8s %12s %13s %9s\n", "session", "raw bytes", "transcript", "ratio",
	       "commands", "destinations", "ms");
	for (size_t i = 0; i < n; i++) {
		char c[32], d[32];

		if (r[i].err) {
			printf("%-16s error: %s\n", r[i].name ? r[i].name : r[i].path,
			       strerror(-r[i].err));
			continue;
		}
		snprintf(c, sizeof(c), "%zu/%zu", r[i].cmds_kept, r[i].cmds);
		snprintf(d, sizeof(d), "%zu/%zu", r[i].dests_kept, r[i].dests);
		printf("%-16s %12" PRIu64 " %11" PRIu64 " %7.1fx %12s %13s %9.1f%s%s\n", r[i].name,
		       r[i].raw, r[i].text, r[i].ratio, c, d, r[i].ms,
		       r[i].first_missing ? "  missing: " : "",
		       r[i].first_missing ? r[i].first_missing : "");
	}
	printf("average ratio %.1fx (target >= %.1fx: %s); median %.1fx; all sessions together "
	       "%.1fx\n",
	       avg, target, avg >= target ? "met" : "NOT met", med, all);
}

static int bench_tx_json(const struct bench_tx_result *r, size_t n, double avg, double med,
			 double all, double target, bool covered)
{
	json_t *root = json_object(), *arr = json_array();
	int err = -ENOMEM;

	if (!root || !arr)
		goto out;
	for (size_t i = 0; i < n; i++) {
		json_t *o = json_pack(
		    "{s:s, s:s, s:I, s:I, s:f, s:I, s:I, s:I, s:I, s:I, s:f, s:b, s:s?, s:s?}",
		    "name", r[i].name ? r[i].name : "", "path", r[i].path, "raw_bytes",
		    (json_int_t)r[i].raw, "transcript_bytes", (json_int_t)r[i].text, "ratio",
		    r[i].ratio, "events", (json_int_t)r[i].events, "commands",
		    (json_int_t)r[i].cmds, "commands_kept", (json_int_t)r[i].cmds_kept,
		    "destinations", (json_int_t)r[i].dests, "destinations_kept",
		    (json_int_t)r[i].dests_kept, "ms", r[i].ms, "ok", r[i].err == 0, "missing",
		    r[i].first_missing, "error", r[i].err ? strerror(-r[i].err) : NULL);

		if (!o || json_array_append_new(arr, o))
			goto out;
	}
	if (json_object_set_new(root, "recordings", arr)) {
		arr = NULL;
		goto out;
	}
	arr = NULL;
	if (json_object_set_new(root, "average_ratio", json_real(avg)) ||
	    json_object_set_new(root, "median_ratio", json_real(med)) ||
	    json_object_set_new(root, "overall_ratio", json_real(all)) ||
	    json_object_set_new(root, "target_ratio", json_real(target)) ||
	    json_object_set_new(root, "target_met", json_boolean(avg >= target)) ||
	    json_object_set_new(root, "all_kept", json_boolean(covered)))
		goto out;
	if (json_dumpf(root, stdout, JSON_INDENT(2)) < 0)
		goto out;
	putchar('\n');
	err = 0;
out:
	json_decref(arr);
	json_decref(root);
	return err;
}

static void bench_tx_usage(FILE *f)
{
	fprintf(f,
		"Usage: transcript [--json] [--show] [--summary] [--target X] [RECORDING|DIR ...]\n"
		"Transcript size against raw terminal bytes, per recording; without\n"
		"arguments, the recordings in $SESSREC_BENCH_RECORDINGS or " BENCH_TX_DEFAULT_DIR
		".\n");
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"json", no_argument, NULL, 'j'},	 {"show", no_argument, NULL, 's'},
	    {"summary", no_argument, NULL, 'S'}, {"target", required_argument, NULL, 't'},
	    {"help", no_argument, NULL, 'h'},	 {NULL, 0, NULL, 0},
	};
	struct bench_tx_set paths = {0};
	struct bench_tx_result *res = NULL;
	bool json = false, show = false, summarize = false, covered = true;
	double target = BENCH_TX_TARGET, sum = 0, avg = 0, med = 0, all = 0, *ratios = NULL;
	uint64_t raw = 0, text = 0;
	size_t ok = 0;
	int c, rc = 1, err;

	while ((c = getopt_long(argc, argv, "jsSt:h", opts, NULL)) != -1) {
		char *end;

		switch (c) {
		case 'j':
			json = true;
			break;
		case 's':
			show = true;
			break;
		case 'S':
			summarize = true;
			break;
		case 't':
			target = strtod(optarg, &end);
			if (end == optarg || *end || target <= 0) {
				fprintf(stderr, "transcript: bad --target '%s'\n", optarg);
				return 2;
			}
			break;
		case 'h':
			bench_tx_usage(stdout);
			return 0;
		default:
			bench_tx_usage(stderr);
			return 2;
		}
	}
	if (optind < argc) {
		err = bench_tx_collect(argv + optind, argc - optind, &paths);
	} else {
		const char *env = getenv("SESSREC_BENCH_RECORDINGS");
		char *dir = (char *)(env && env[0] ? env : BENCH_TX_DEFAULT_DIR);

		err = bench_tx_collect(&dir, 1, &paths);
	}
	if (err)
		goto out;
	if (!paths.n) {
		fprintf(stderr,
			"transcript: no recordings (make them with bench/sessions/make.sh)\n");
		goto out;
	}
	res = calloc(paths.n, sizeof(*res));
	ratios = calloc(paths.n, sizeof(*ratios));
	if (!res || !ratios)
		goto out;
	rc = 0;
	for (size_t i = 0; i < paths.n; i++) {
		if (bench_tx_one(paths.v[i], show, summarize, &res[i])) {
			rc = 1;
			continue;
		}
		ok++;
		sum += res[i].ratio;
		ratios[ok - 1] = res[i].ratio;
		raw += res[i].raw;
		text += res[i].text;
		if (res[i].cmds_kept != res[i].cmds || res[i].dests_kept != res[i].dests)
			covered = false;
	}
	avg = ok ? sum / (double)ok : 0;
	/* the median: one very compressible session does not carry the others */
	qsort(ratios, ok, sizeof(*ratios), bench_tx_cmp_double);
	med = !ok ? 0 : ok % 2 ? ratios[ok / 2] : (ratios[ok / 2 - 1] + ratios[ok / 2]) / 2;
	all = text ? (double)raw / (double)text : 0;
	if (json) {
		if (bench_tx_json(res, paths.n, avg, med, all, target, covered))
			rc = 1;
	} else {
		bench_tx_table(res, paths.n, avg, med, all, target);
		printf("every command path and destination kept: %s\n", covered ? "yes" : "NO");
	}
out:
	for (size_t i = 0; res && i < paths.n; i++) {
		free(res[i].path);
		free(res[i].name);
		free(res[i].first_missing);
	}
	free(res);
	free(ratios);
	bench_tx_set_free(&paths);
	return rc;
}
