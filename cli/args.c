/* Command-line helpers shared by the subcommands: errors and pure parsers. */
#include "cli.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

void cli_err(const char *fmt, ...)
{
	va_list ap;

	fputs(CLI_PROG ": ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

int cli_opt_error(const char *cmd, int c, char *const argv[])
{
	/* getopt leaves optind after the offending word, or on it inside "-qx". */
	const char *word = optind > 0 ? argv[optind - 1] : "";

	if (c == ':')
		cli_err("%s: option '%s' needs a value (see '%s %s --help')", cmd, word, CLI_PROG,
			cmd);
	else if (optopt)
		cli_err("%s: unknown option '-%c' (see '%s %s --help')", cmd, optopt, CLI_PROG,
			cmd);
	else
		cli_err("%s: unknown option '%s' (see '%s %s --help')", cmd, word, CLI_PROG, cmd);
	return CLI_EXIT_USAGE;
}

static bool cli_label_key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       c == '.' || c == '_' || c == '-' || c == '/' || c == ':';
}

int cli_labels_add(struct cli_labels *l, const char *arg, const char **why)
{
	const char *eq = strchr(arg, '=');
	const char *value;
	struct cli_label *v;
	size_t klen;
	char *key = NULL, *val = NULL;
	int err = -EINVAL;

	if (!eq) {
		*why = "expected KEY=VALUE";
		goto out;
	}
	klen = (size_t)(eq - arg);
	value = eq + 1;
	if (klen == 0) {
		*why = "the key is empty";
		goto out;
	}
	if (klen > CLI_LABEL_KEY_MAX) {
		*why = "the key is longer than 128 bytes";
		goto out;
	}
	for (size_t i = 0; i < klen; i++) {
		if (!cli_label_key_char(arg[i])) {
			*why = "a key may only hold letters, digits and . _ - / :";
			goto out;
		}
	}
	if (strlen(value) > CLI_LABEL_VALUE_MAX) {
		*why = "the value is longer than 512 bytes";
		goto out;
	}
	for (const char *p = value; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f) {
			*why = "the value holds a control character";
			goto out;
		}
	}
	for (size_t i = 0; i < l->n; i++) {
		if (strlen(l->v[i].key) == klen && memcmp(l->v[i].key, arg, klen) == 0) {
			*why = "this key was given already";
			err = -EEXIST;
			goto out;
		}
	}
	if (l->n >= CLI_LABELS_MAX) {
		*why = "more than 64 labels";
		err = -E2BIG;
		goto out;
	}
	err = -ENOMEM;
	key = strndup(arg, klen);
	val = strdup(value);
	if (!key || !val)
		goto out;
	v = realloc(l->v, (l->n + 1) * sizeof(*v));
	if (!v)
		goto out;
	l->v = v;
	l->v[l->n].key = key;
	l->v[l->n].value = val;
	l->n++;
	key = NULL;
	val = NULL;
	err = 0;
out:
	free(key);
	free(val);
	return err;
}

void cli_labels_free(struct cli_labels *l)
{
	if (!l)
		return;
	for (size_t i = 0; i < l->n; i++) {
		free(l->v[i].key);
		free(l->v[i].value);
	}
	free(l->v);
	l->v = NULL;
	l->n = 0;
}

int cli_parse_kind(const char *s)
{
	static const char *const kinds[] = {"local", "ssh", "k8s"};

	for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++) {
		if (strcmp(s, kinds[i]) == 0)
			return 0;
	}
	return -EINVAL;
}

int cli_parse_double(const char *s, double lo, double hi, double *out)
{
	char *end;
	double v;

	/* strtod skips leading blanks and takes "inf", "nan" and hex: refuse all three. */
	if (!*s || strspn(s, "0123456789.+-eE") != strlen(s))
		return -EINVAL;
	errno = 0;
	v = strtod(s, &end);
	if (end == s || *end || !isfinite(v))
		return -EINVAL;
	if (errno == ERANGE || v < lo || v > hi)
		return -ERANGE;
	*out = v;
	return 0;
}

int cli_path_lookup(const char *name, const char *path, char **out)
{
	const char *p, *dir;
	struct stat sb;
	char *cand = NULL;
	size_t dlen;
	int err = -ENOENT;

	if (!*name)
		return -ENOENT;
	if (strchr(name, '/')) {
		*out = strdup(name);
		return *out ? 0 : -ENOMEM;
	}
	for (p = path ? path : "/bin:/usr/bin";; p += dlen + 1) {
		dlen = strcspn(p, ":");
		dir = dlen ? p : ".";
		free(cand);
		if (asprintf(&cand, "%.*s/%s", dlen ? (int)dlen : 1, dir, name) < 0) {
			cand = NULL;
			err = -ENOMEM;
			break;
		}
		if (stat(cand, &sb) == 0 && S_ISREG(sb.st_mode) && access(cand, X_OK) == 0) {
			*out = cand;
			cand = NULL;
			err = 0;
			break;
		}
		if (!p[dlen])
			break;
	}
	free(cand);
	return err;
}

int cli_exit_status(int wstatus)
{
	if (WIFEXITED(wstatus))
		return WEXITSTATUS(wstatus);
	if (WIFSIGNALED(wstatus))
		return 128 + WTERMSIG(wstatus);
	return CLI_EXIT_FAIL;
}

uint64_t cli_play_gap_ns(uint64_t prev_ms, uint64_t cur_ms, double speed, double max_idle)
{
	double s;

	if (speed <= 0 || cur_ms <= prev_ms)
		return 0;
	s = (double)(cur_ms - prev_ms) / 1000.0;
	if (max_idle > 0 && s > max_idle)
		s = max_idle;
	s /= speed;
	/* A year is more than any replay waits; this also keeps the cast defined. */
	if (s > 365.0 * 86400.0)
		s = 365.0 * 86400.0;
	return (uint64_t)(s * 1e9);
}

size_t cli_eof_seq(const struct termios *t, bool line_open, char out[2])
{
	cc_t c = t->c_cc[VEOF];

	if (c == _POSIX_VDISABLE)
		c = 0x04; /* ^D, what programs in raw mode (readline) take for end of input */
	out[0] = (char)c;
	out[1] = (char)c;
	return (t->c_lflag & ICANON) && line_open ? 2 : 1;
}

static bool cli_digits(const char *s, size_t n, int *out)
{
	int v = 0;

	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (s[i] - '0');
	}
	*out = v;
	return true;
}

static int cli_days_in_month(int year, int month)
{
	static const int days[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
	bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;

	return month == 2 && leap ? 29 : days[month - 1];
}

int cli_parse_rfc3339(const char *s, int64_t *out_ns)
{
	struct tm tm = {0};
	int year, mon, day, hour = 0, min = 0, sec = 0, oh, om, off = 0;
	int64_t frac = 0, scale = 100000000;
	const char *p;
	time_t t;

	if (strlen(s) < 10 || !cli_digits(s, 4, &year) || s[4] != '-' ||
	    !cli_digits(s + 5, 2, &mon) || s[7] != '-' || !cli_digits(s + 8, 2, &day))
		return -EINVAL;
	if (year < 1970 || mon < 1 || mon > 12 || day < 1 || day > cli_days_in_month(year, mon))
		return -EINVAL;
	p = s + 10;
	if (*p) {
		if ((*p != 'T' && *p != 't' && *p != ' ') || strlen(p) < 10 ||
		    !cli_digits(p + 1, 2, &hour) || p[3] != ':' || !cli_digits(p + 4, 2, &min) ||
		    p[6] != ':' || !cli_digits(p + 7, 2, &sec))
			return -EINVAL;
		if (hour > 23 || min > 59 || sec > 60)
			return -EINVAL;
		p += 9;
		if (*p == '.') {
			if (p[1] < '0' || p[1] > '9')
				return -EINVAL;
			for (p++; *p >= '0' && *p <= '9'; p++) {
				frac += (*p - '0') * scale;
				scale /= 10;
			}
		}
		if (*p == 'Z' || *p == 'z') {
			p++;
		} else if ((*p == '+' || *p == '-') && strlen(p) == 6 &&
			   cli_digits(p + 1, 2, &oh) && p[3] == ':' && cli_digits(p + 4, 2, &om) &&
			   oh <= 23 && om <= 59) {
			off = (oh * 60 + om) * 60 * (*p == '-' ? -1 : 1);
			p += 6;
		} else {
			return -EINVAL;
		}
		if (*p)
			return -EINVAL;
	}
	tm.tm_year = year - 1900;
	tm.tm_mon = mon - 1;
	tm.tm_mday = day;
	tm.tm_hour = hour;
	tm.tm_min = min;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t == (time_t)-1 || (int64_t)t - off < 0)
		return -EINVAL;
	*out_ns = ((int64_t)t - off) * 1000000000LL + frac;
	return 0;
}

int cli_parse_time(const char *s, int64_t now_ns, int64_t *out_ns)
{
	/* 100 years: more than any recording is old, and far from overflowing */
	const int64_t max_s = 100LL * 366 * 86400;
	const char *p = s;
	int64_t total = 0;

	if (strcmp(s, "now") == 0) {
		*out_ns = now_ns;
		return 0;
	}
	if (cli_parse_rfc3339(s, out_ns) == 0)
		return 0;
	if (!*p)
		return -EINVAL;
	while (*p) {
		int64_t v = 0, unit;
		size_t nd = 0;

		for (; *p >= '0' && *p <= '9'; p++, nd++) {
			if (nd >= 9)
				return -EINVAL;
			v = v * 10 + (*p - '0');
		}
		switch (nd ? *p : '\0') {
		case 's':
			unit = 1;
			break;
		case 'm':
			unit = 60;
			break;
		case 'h':
			unit = 3600;
			break;
		case 'd':
			unit = 86400;
			break;
		case 'w':
			unit = 7 * 86400;
			break;
		default:
			return -EINVAL;
		}
		p++;
		total += v * unit;
		if (total > max_s)
			return -EINVAL;
	}
	if (total * 1000000000LL > now_ns)
		return -EINVAL;
	*out_ns = now_ns - total * 1000000000LL;
	return 0;
}

void cli_fmt_duration(int64_t ms, char *buf, size_t len)
{
	int64_t s = ms / 1000;

	if (ms < 0)
		snprintf(buf, len, "-");
	else if (ms < 60000)
		snprintf(buf, len, "%" PRId64 ".%" PRId64 "s", s, ms % 1000 / 100);
	else if (s < 3600)
		snprintf(buf, len, "%" PRId64 "m%02" PRId64 "s", s / 60, s % 60);
	else if (s < 86400)
		snprintf(buf, len, "%" PRId64 "h%02" PRId64 "m", s / 3600, s % 3600 / 60);
	else
		snprintf(buf, len, "%" PRId64 "d%02" PRId64 "h", s / 86400, s % 86400 / 3600);
}
