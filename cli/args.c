/* Command-line helpers shared by the subcommands: errors and pure parsers. */
#include "cli.h"

#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
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
