#include "conf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <yaml.h>

#define CONF_PATH_MAX  128  /* section path shown in messages */
#define CONF_QUOTE_MAX 64   /* bytes of user text quoted in messages */
#define CONF_MAX_ITEMS 4096 /* map or list entries when the table sets no limit */

/* Where a mapping sits: "collector.tls" and " in collector.tls" ("" at the top). */
struct conf_path {
	char name[CONF_PATH_MAX];
	char in[CONF_PATH_MAX + 4];
};

struct conf_ctx {
	yaml_parser_t yp;
	yaml_event_t ev;
	bool have_ev;
	const char *name;
	const char *buf;
	size_t len;
	char *err;
	size_t errlen;
	bool failed;
};

struct conf_unit {
	const char *suffix;
	uint64_t mult;
};

static const struct conf_unit conf_units_plain[] = {{"", 1}, {NULL, 0}};
static const struct conf_unit conf_units_size[] = {
    {"", 1},
    {"K", 1ull << 10},
    {"KiB", 1ull << 10},
    {"M", 1ull << 20},
    {"MiB", 1ull << 20},
    {"G", 1ull << 30},
    {"GiB", 1ull << 30},
    {NULL, 0},
};
static const struct conf_unit conf_units_duration[] = {
    {"", 1}, {"s", 1}, {"m", 60}, {"h", 3600}, {NULL, 0},
};

/* ------------------------------------------------------------ messages */

/* Errors are one line whatever a path or a value holds. */
static void conf_one_line(char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
	}
}

static void conf_errf(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void conf_errf(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	conf_one_line(err);
}

/* Report "NAME:LINE: problem" once (the first problem wins). Returns -EINVAL. */
static int conf_fail(struct conf_ctx *x, size_t line, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int conf_fail(struct conf_ctx *x, size_t line, const char *fmt, ...)
{
	char msg[512];
	va_list ap;

	if (x->failed)
		return -EINVAL;
	x->failed = true;
	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	conf_errf(x->err, x->errlen, "%s:%zu: %s", x->name, line, msg);
	return -EINVAL;
}

/* Copy user text for a message: at most CONF_QUOTE_MAX bytes, cut on a UTF-8 boundary. */
static const char *conf_quote(char *out, size_t outlen, const char *s, size_t len)
{
	size_t n = len;

	if (n > CONF_QUOTE_MAX) {
		n = CONF_QUOTE_MAX;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--;
	}
	snprintf(out, outlen, "%.*s%s", (int)n, s, n < len ? "..." : "");
	return out;
}

static size_t conf_line(const struct conf_ctx *x)
{
	return x->ev.start_mark.line + 1;
}

static const char *conf_scalar(const struct conf_ctx *x)
{
	return (const char *)x->ev.data.scalar.value;
}

static bool conf_is_null(const struct conf_ctx *x)
{
	const char *s = conf_scalar(x);

	if (x->ev.type != YAML_SCALAR_EVENT || x->ev.data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	       !strcmp(s, "NULL");
}

/* What the current event is, for "expected X, got Y". */
static const char *conf_describe(const struct conf_ctx *x, char *buf, size_t buflen)
{
	char q[CONF_QUOTE_MAX + 4];

	switch (x->ev.type) {
	case YAML_SCALAR_EVENT:
		if (conf_is_null(x))
			return "an empty value";
		snprintf(buf, buflen, "'%s'",
			 conf_quote(q, sizeof(q), conf_scalar(x), x->ev.data.scalar.length));
		return buf;
	case YAML_MAPPING_START_EVENT:
		return "a mapping";
	case YAML_SEQUENCE_START_EVENT:
		return "a list";
	default:
		return "something else";
	}
}

/* Only messages use paths, so a cut one is fine (our tables never come close). */
static void conf_subpath(struct conf_path *sub, const struct conf_path *p, const char *name)
{
	int n;

	n = snprintf(sub->name, sizeof(sub->name), "%s%s%s", p->name, p->name[0] ? "." : "", name);
	if (n < 0)
		sub->name[0] = '\0';
	n = snprintf(sub->in, sizeof(sub->in), " in %s", sub->name);
	if (n < 0)
		sub->in[0] = '\0';
}

static int conf_fail_type(struct conf_ctx *x, const struct conf_key *k, const struct conf_path *p,
			  const char *expected)
{
	char got[CONF_QUOTE_MAX + 8];

	return conf_fail(x, conf_line(x), "expected %s for '%s'%s, got %s", expected, k->name,
			 p->in, conf_describe(x, got, sizeof(got)));
}

/* ------------------------------------------------------------ events */

static size_t conf_offset_line(const struct conf_ctx *x, size_t off)
{
	size_t line = 1;

	for (size_t i = 0; i < off && i < x->len; i++) {
		if (x->buf[i] == '\n')
			line++;
	}
	return line;
}

static int conf_yaml_error(struct conf_ctx *x)
{
	const yaml_parser_t *p = &x->yp;
	const char *problem = p->problem ? p->problem : "syntax error";
	size_t line;

	if (p->error == YAML_MEMORY_ERROR) {
		conf_fail(x, p->mark.line + 1, "out of memory");
		return -ENOMEM;
	}
	/* The reader reports a byte offset, not a mark. */
	if (p->error == YAML_READER_ERROR)
		line = conf_offset_line(x, p->problem_offset);
	else
		line = p->problem_mark.line + 1;
	if (p->context)
		return conf_fail(x, line, "invalid YAML: %s (%s at line %zu)", problem, p->context,
				 p->context_mark.line + 1);
	return conf_fail(x, line, "invalid YAML: %s", problem);
}

static int conf_next(struct conf_ctx *x)
{
	if (x->have_ev) {
		yaml_event_delete(&x->ev);
		x->have_ev = false;
	}
	if (!yaml_parser_parse(&x->yp, &x->ev))
		return conf_yaml_error(x);
	x->have_ev = true;
	/* Aliases would turn a small file into a large tree; configs need none. */
	if (x->ev.type == YAML_ALIAS_EVENT)
		return conf_fail(x, conf_line(x), "YAML aliases are not supported");
	if (x->ev.type == YAML_SCALAR_EVENT &&
	    memchr(x->ev.data.scalar.value, 0, x->ev.data.scalar.length))
		return conf_fail(x, conf_line(x), "NUL character in a value");
	return 0;
}

/* ------------------------------------------------------------ fields */

static void *conf_at(void *base, size_t off)
{
	return (char *)base + off;
}

/* Array fields have the element's pointer type; go through memcpy to stay type-agnostic. */
static void *conf_get_ptr(const void *base, size_t off)
{
	void *p;

	memcpy(&p, (const char *)base + off, sizeof(p));
	return p;
}

static void conf_set_ptr(void *base, size_t off, void *p)
{
	memcpy((char *)base + off, &p, sizeof(p));
}

static size_t conf_count(const void *base, const struct conf_key *k)
{
	size_t n;

	memcpy(&n, (const char *)base + k->count_offset, sizeof(n));
	return n;
}

static void conf_set_count(void *base, const struct conf_key *k, size_t n)
{
	memcpy((char *)base + k->count_offset, &n, sizeof(n));
}

static char **conf_pair_str(void *arr, const struct conf_key *k, size_t i, size_t off)
{
	return (char **)((char *)arr + i * k->elem_size + off);
}

static void conf_free_key(const struct conf_key *k, void *base)
{
	char **sp;
	void *arr;
	size_t n, i;

	switch (k->type) {
	case CONF_T_STRING:
		sp = conf_at(base, k->offset);
		free(*sp);
		*sp = NULL;
		break;
	case CONF_T_SECTION:
		conf_free(k->sub, base);
		break;
	case CONF_T_MAP:
		arr = conf_get_ptr(base, k->offset);
		n = conf_count(base, k);
		for (i = 0; arr && i < n; i++) {
			free(*conf_pair_str(arr, k, i, k->key_offset));
			free(*conf_pair_str(arr, k, i, k->value_offset));
		}
		free(arr);
		conf_set_ptr(base, k->offset, NULL);
		conf_set_count(base, k, 0);
		break;
	case CONF_T_STRLIST:
		arr = conf_get_ptr(base, k->offset);
		n = conf_count(base, k);
		for (i = 0; arr && i < n; i++)
			free(((char **)arr)[i]);
		free(arr);
		conf_set_ptr(base, k->offset, NULL);
		conf_set_count(base, k, 0);
		break;
	default:
		break;
	}
}

void conf_free(const struct conf_key *table, void *base)
{
	if (!table || !base)
		return;
	for (const struct conf_key *k = table; k->name; k++)
		conf_free_key(k, base);
}

int conf_defaults(const struct conf_key *table, void *base)
{
	char **sp;
	int err;

	for (const struct conf_key *k = table; k->name; k++) {
		switch (k->type) {
		case CONF_T_STRING:
			sp = conf_at(base, k->offset);
			free(*sp);
			*sp = NULL;
			if (k->def_str) {
				*sp = strdup(k->def_str);
				if (!*sp)
					return -ENOMEM;
			}
			break;
		case CONF_T_BOOL:
			*(bool *)conf_at(base, k->offset) = k->def_bool;
			break;
		case CONF_T_UINT32:
		case CONF_T_SIZE:
		case CONF_T_DURATION:
			*(uint32_t *)conf_at(base, k->offset) = k->def_u32;
			break;
		case CONF_T_SECTION:
			err = conf_defaults(k->sub, base);
			if (err)
				return err;
			break;
		default:
			conf_free_key(k, base);
			break;
		}
	}
	return 0;
}

/* ------------------------------------------------------------ scalars */

/* Digits, then optionally spaces and one of units' suffixes. -EINVAL or -ERANGE. */
static int conf_parse_num(const char *s, const struct conf_unit *units, uint64_t *out)
{
	uint64_t v = 0;
	bool range = false;
	const char *p = s;

	if (*p < '0' || *p > '9')
		return -EINVAL;
	for (; *p >= '0' && *p <= '9'; p++) {
		unsigned int d = (unsigned int)(*p - '0');

		if (v > (UINT64_MAX - d) / 10)
			range = true;
		else
			v = v * 10 + d;
	}
	if (*p == ' ' && p[1] != '\0')
		while (*p == ' ')
			p++;
	for (; units->suffix; units++) {
		if (strcmp(p, units->suffix) != 0)
			continue;
		if (range || (v && units->mult > UINT64_MAX / v))
			return -ERANGE;
		*out = v * units->mult;
		return 0;
	}
	return -EINVAL;
}

static bool conf_parse_bool(const char *s, bool *out)
{
	static const char *const yes[] = {"true", "yes", "on"};
	static const char *const no[] = {"false", "no", "off"};

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcasecmp(s, yes[i])) {
			*out = true;
			return true;
		}
		if (!strcasecmp(s, no[i])) {
			*out = false;
			return true;
		}
	}
	return false;
}

static int conf_set_number(struct conf_ctx *x, const struct conf_key *k, void *base,
			   const struct conf_path *p)
{
	const struct conf_unit *units = conf_units_plain;
	const char *what = "a number";
	uint32_t hi = k->max ? k->max : UINT32_MAX;
	char q[CONF_QUOTE_MAX + 4];
	uint64_t v = 0;
	int err;

	if (k->type == CONF_T_SIZE) {
		units = conf_units_size;
		what = "a size (bytes, or with K, M or G)";
	} else if (k->type == CONF_T_DURATION) {
		units = conf_units_duration;
		what = "a duration (seconds, or with s, m or h)";
	}
	if (x->ev.type != YAML_SCALAR_EVENT || conf_is_null(x))
		return conf_fail_type(x, k, p, what);
	err = conf_parse_num(conf_scalar(x), units, &v);
	if (err == -EINVAL)
		return conf_fail_type(x, k, p, what);
	conf_quote(q, sizeof(q), conf_scalar(x), x->ev.data.scalar.length);
	if (err || v < k->min || v > hi)
		return conf_fail(x, conf_line(x), "'%s'%s must be between %u and %u, got %s",
				 k->name, p->in, k->min, hi, q);
	if ((k->flags & CONF_POW2) && (v == 0 || (v & (v - 1)) != 0))
		return conf_fail(x, conf_line(x), "'%s'%s must be a power of two, got %s", k->name,
				 p->in, q);
	*(uint32_t *)conf_at(base, k->offset) = (uint32_t)v;
	return 0;
}

static int conf_set_bool(struct conf_ctx *x, const struct conf_key *k, void *base,
			 const struct conf_path *p)
{
	bool v;

	if (x->ev.type != YAML_SCALAR_EVENT || conf_is_null(x) ||
	    !conf_parse_bool(conf_scalar(x), &v))
		return conf_fail_type(x, k, p, "true or false");
	*(bool *)conf_at(base, k->offset) = v;
	return 0;
}

static int conf_run_check(struct conf_ctx *x, int (*check)(const char *, char *, size_t),
			  const char *s, const char *fmt_what, const char *name, const char *in)
{
	char why[256] = "";

	if (!check || check(s, why, sizeof(why)) == 0)
		return 0;
	return conf_fail(x, conf_line(x), "invalid %s '%s'%s: %s", fmt_what, name, in,
			 why[0] ? why : "not allowed");
}

static int conf_set_string(struct conf_ctx *x, const struct conf_key *k, void *base,
			   const struct conf_path *p)
{
	char **sp = conf_at(base, k->offset);
	char q[CONF_QUOTE_MAX + 4];
	const char *s;
	char *v;
	int err;

	if (x->ev.type == YAML_SCALAR_EVENT && conf_is_null(x) && (k->flags & CONF_NULLABLE)) {
		free(*sp);
		*sp = NULL;
		return 0;
	}
	if (x->ev.type != YAML_SCALAR_EVENT || conf_is_null(x))
		return conf_fail_type(x, k, p, "a string");
	s = conf_scalar(x);
	if (k->choices) {
		char list[256] = "";
		size_t used = 0;
		bool ok = false;

		for (const char *const *c = k->choices; *c; c++) {
			int n = snprintf(list + used, sizeof(list) - used, "%s%s",
					 c == k->choices ? "" : ", ", *c);

			if (n > 0 && (size_t)n < sizeof(list) - used)
				used += (size_t)n;
			if (!strcmp(s, *c))
				ok = true;
		}
		if (!ok)
			return conf_fail(x, conf_line(x),
					 "invalid value '%s' for '%s'%s, expected one of: %s",
					 conf_quote(q, sizeof(q), s, x->ev.data.scalar.length),
					 k->name, p->in, list);
	}
	err = conf_run_check(x, k->check, s, "value for", k->name, p->in);
	if (err)
		return err;
	v = strdup(s);
	if (!v)
		return -ENOMEM;
	free(*sp);
	*sp = v;
	return 0;
}

/* ------------------------------------------------------------ maps and lists */

struct conf_pair {
	char *key;
	char *value;
	size_t line;
};

static void conf_pairs_free(struct conf_pair *v, size_t n)
{
	for (size_t i = 0; v && i < n; i++) {
		free(v[i].key);
		free(v[i].value);
	}
	free(v);
}

/* Current event: the map's MAPPING_START. */
static int conf_parse_map(struct conf_ctx *x, const struct conf_key *k, void *base,
			  const struct conf_path *p)
{
	size_t max = k->max_items ? k->max_items : CONF_MAX_ITEMS;
	struct conf_pair *v = NULL, *tmp;
	size_t n = 0, cap = 0, i;
	struct conf_path mp;
	const char *in = mp.in;
	char q[CONF_QUOTE_MAX + 4];
	char got[CONF_QUOTE_MAX + 8];
	void *arr = NULL;
	int err;

	conf_subpath(&mp, p, k->name);
	for (;;) {
		err = conf_next(x);
		if (err)
			goto out;
		if (x->ev.type == YAML_MAPPING_END_EVENT)
			break;
		if (x->ev.type != YAML_SCALAR_EVENT || conf_is_null(x)) {
			err = conf_fail(x, conf_line(x), "expected a key%s, got %s", in,
					conf_describe(x, got, sizeof(got)));
			goto out;
		}
		conf_quote(q, sizeof(q), conf_scalar(x), x->ev.data.scalar.length);
		for (i = 0; i < n; i++) {
			if (!strcmp(v[i].key, conf_scalar(x))) {
				err = conf_fail(x, conf_line(x),
						"duplicate key '%s'%s (first at line %zu)", q, in,
						v[i].line);
				goto out;
			}
		}
		if (n == max) {
			err =
			    conf_fail(x, conf_line(x), "too many entries%s (at most %zu)", in, max);
			goto out;
		}
		err = conf_run_check(x, k->check, conf_scalar(x), "key", q, in);
		if (err)
			goto out;
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			tmp = realloc(v, cap * sizeof(*v));
			if (!tmp) {
				err = -ENOMEM;
				goto out;
			}
			v = tmp;
		}
		v[n].value = NULL;
		v[n].line = conf_line(x);
		v[n].key = strdup(conf_scalar(x));
		if (!v[n].key) {
			err = -ENOMEM;
			goto out;
		}
		n++;

		err = conf_next(x);
		if (err)
			goto out;
		if (x->ev.type != YAML_SCALAR_EVENT) {
			err = conf_fail(x, conf_line(x), "expected a string for '%s'%s, got %s", q,
					in, conf_describe(x, got, sizeof(got)));
			goto out;
		}
		/* "key:" with nothing is an empty string, not an error. */
		err = conf_run_check(x, k->check_value, conf_is_null(x) ? "" : conf_scalar(x),
				     "value for", q, in);
		if (err)
			goto out;
		v[n - 1].value = strdup(conf_is_null(x) ? "" : conf_scalar(x));
		if (!v[n - 1].value) {
			err = -ENOMEM;
			goto out;
		}
	}
	if (n) {
		arr = calloc(n, k->elem_size);
		if (!arr) {
			err = -ENOMEM;
			goto out;
		}
		for (i = 0; i < n; i++) {
			*conf_pair_str(arr, k, i, k->key_offset) = v[i].key;
			*conf_pair_str(arr, k, i, k->value_offset) = v[i].value;
			v[i].key = v[i].value = NULL;
		}
	}
	conf_free_key(k, base);
	conf_set_ptr(base, k->offset, arr);
	conf_set_count(base, k, n);
out:
	conf_pairs_free(v, n);
	return err;
}

/* Current event: the list's SEQUENCE_START. */
static int conf_parse_list(struct conf_ctx *x, const struct conf_key *k, void *base,
			   const struct conf_path *p)
{
	size_t max = k->max_items ? k->max_items : CONF_MAX_ITEMS;
	char **v = NULL, **tmp;
	size_t n = 0, cap = 0;
	char got[CONF_QUOTE_MAX + 8];
	int err;

	for (;;) {
		err = conf_next(x);
		if (err)
			goto out;
		if (x->ev.type == YAML_SEQUENCE_END_EVENT)
			break;
		if (x->ev.type != YAML_SCALAR_EVENT || conf_is_null(x)) {
			err = conf_fail(x, conf_line(x), "expected a string in '%s'%s, got %s",
					k->name, p->in, conf_describe(x, got, sizeof(got)));
			goto out;
		}
		if (n == max) {
			err = conf_fail(x, conf_line(x), "too many entries in '%s'%s (at most %zu)",
					k->name, p->in, max);
			goto out;
		}
		err = conf_run_check(x, k->check, conf_scalar(x), "item in", k->name, p->in);
		if (err)
			goto out;
		if (n == cap) {
			cap = cap ? cap * 2 : 8;
			tmp = realloc(v, cap * sizeof(*v));
			if (!tmp) {
				err = -ENOMEM;
				goto out;
			}
			v = tmp;
		}
		v[n] = strdup(conf_scalar(x));
		if (!v[n]) {
			err = -ENOMEM;
			goto out;
		}
		n++;
	}
	conf_free_key(k, base);
	conf_set_ptr(base, k->offset, n ? v : NULL);
	conf_set_count(base, k, n);
	if (n)
		v = NULL;
out:
	for (size_t i = 0; v && i < n; i++)
		free(v[i]);
	free(v);
	return err;
}

/* ------------------------------------------------------------ mappings */

static int conf_parse_mapping(struct conf_ctx *x, const struct conf_key *table, void *base,
			      const struct conf_path *p, int depth);

/* Current event: the start of a value; consume it whole (the scan capped its depth). */
static int conf_skip(struct conf_ctx *x)
{
	int depth = 0;
	int err;

	for (;;) {
		if (x->ev.type == YAML_MAPPING_START_EVENT ||
		    x->ev.type == YAML_SEQUENCE_START_EVENT)
			depth++;
		else if (x->ev.type == YAML_MAPPING_END_EVENT ||
			 x->ev.type == YAML_SEQUENCE_END_EVENT)
			depth--;
		if (depth == 0)
			return 0;
		err = conf_next(x);
		if (err)
			return err;
	}
}

static int conf_parse_value(struct conf_ctx *x, const struct conf_key *k, void *base,
			    const struct conf_path *p, int depth)
{
	struct conf_path sub;

	switch (k->type) {
	case CONF_T_STRING:
		return conf_set_string(x, k, base, p);
	case CONF_T_BOOL:
		return conf_set_bool(x, k, base, p);
	case CONF_T_UINT32:
	case CONF_T_SIZE:
	case CONF_T_DURATION:
		return conf_set_number(x, k, base, p);
	case CONF_T_SECTION:
		if (conf_is_null(x))
			return 0;
		if (x->ev.type != YAML_MAPPING_START_EVENT)
			return conf_fail_type(x, k, p, "a mapping");
		conf_subpath(&sub, p, k->name);
		return conf_parse_mapping(x, k->sub, base, &sub, depth + 1);
	case CONF_T_MAP:
		if (conf_is_null(x)) {
			conf_free_key(k, base);
			return 0;
		}
		if (x->ev.type != YAML_MAPPING_START_EVENT)
			return conf_fail_type(x, k, p, "a mapping of strings");
		return conf_parse_map(x, k, base, p);
	case CONF_T_STRLIST:
		if (conf_is_null(x)) {
			conf_free_key(k, base);
			return 0;
		}
		if (x->ev.type != YAML_SEQUENCE_START_EVENT)
			return conf_fail_type(x, k, p, "a list of strings");
		return conf_parse_list(x, k, base, p);
	case CONF_T_EXTERN:
		return conf_skip(x);
	default:
		return conf_fail(x, conf_line(x), "'%s'%s has no type (bad table)", k->name, p->in);
	}
}

static const struct conf_key *conf_lookup(const struct conf_key *table, const char *s, size_t len)
{
	for (const struct conf_key *k = table; k->name; k++) {
		if (strlen(k->name) == len && !memcmp(k->name, s, len))
			return k;
	}
	return NULL;
}

/* Current event: the MAPPING_START of the mapping that table describes. */
static int conf_parse_mapping(struct conf_ctx *x, const struct conf_key *table, void *base,
			      const struct conf_path *p, int depth)
{
	char q[CONF_QUOTE_MAX + 4];
	char got[CONF_QUOTE_MAX + 8];
	const struct conf_key *k;
	size_t *seen = NULL;
	size_t n = 0, idx;
	int err;

	if (depth > CONF_MAX_DEPTH) {
		err = conf_fail(x, conf_line(x), "sections nested deeper than %d levels%s",
				CONF_MAX_DEPTH, p->in);
		goto out;
	}
	while (table[n].name)
		n++;
	seen = calloc(n + 1, sizeof(*seen));
	if (!seen) {
		err = -ENOMEM;
		goto out;
	}
	for (;;) {
		err = conf_next(x);
		if (err)
			goto out;
		if (x->ev.type == YAML_MAPPING_END_EVENT)
			break;
		if (x->ev.type != YAML_SCALAR_EVENT || conf_is_null(x)) {
			err = conf_fail(x, conf_line(x), "expected a key%s, got %s", p->in,
					conf_describe(x, got, sizeof(got)));
			goto out;
		}
		conf_quote(q, sizeof(q), conf_scalar(x), x->ev.data.scalar.length);
		k = conf_lookup(table, conf_scalar(x), x->ev.data.scalar.length);
		if (!k) {
			err = conf_fail(x, conf_line(x), "unknown key '%s'%s", q, p->in);
			goto out;
		}
		idx = (size_t)(k - table);
		if (seen[idx]) {
			err = conf_fail(x, conf_line(x), "duplicate key '%s'%s (first at line %zu)",
					k->name, p->in, seen[idx]);
			goto out;
		}
		seen[idx] = conf_line(x);
		err = conf_next(x);
		if (err)
			goto out;
		err = conf_parse_value(x, k, base, p, depth);
		if (err)
			goto out;
	}
out:
	free(seen);
	return err;
}

static int conf_parse_stream(struct conf_ctx *x, const struct conf_key *table, void *base)
{
	static const struct conf_path top = {"", ""};
	char got[CONF_QUOTE_MAX + 8];
	int err;

	err = conf_next(x); /* STREAM-START */
	if (err)
		return err;
	err = conf_next(x);
	if (err)
		return err;
	if (x->ev.type == YAML_STREAM_END_EVENT)
		return 0;   /* nothing but comments and blank lines */
	err = conf_next(x); /* the root node after DOCUMENT-START */
	if (err)
		return err;
	if (x->ev.type == YAML_MAPPING_START_EVENT)
		err = conf_parse_mapping(x, table, base, &top, 0);
	else if (!conf_is_null(x))
		err = conf_fail(x, conf_line(x), "the top level must be a mapping, got %s",
				conf_describe(x, got, sizeof(got)));
	if (err)
		return err;
	err = conf_next(x); /* DOCUMENT-END */
	if (err)
		return err;
	err = conf_next(x);
	if (err)
		return err;
	if (x->ev.type != YAML_STREAM_END_EVENT)
		return conf_fail(x, conf_line(x), "only one YAML document is allowed");
	return 0;
}

/*
 * First pass: the whole stream must be well-formed YAML within the nesting
 * cap before any key is looked at, so that a syntax error is reported as one
 * even when an earlier value would also be refused.
 */
static int conf_scan(struct conf_ctx *x)
{
	int depth = 0;
	int err;

	do {
		err = conf_next(x);
		if (err)
			return err;
		if (x->ev.type == YAML_MAPPING_START_EVENT ||
		    x->ev.type == YAML_SEQUENCE_START_EVENT) {
			if (++depth > CONF_MAX_DEPTH)
				return conf_fail(x, conf_line(x), "nested deeper than %d levels",
						 CONF_MAX_DEPTH);
		} else if (x->ev.type == YAML_MAPPING_END_EVENT ||
			   x->ev.type == YAML_SEQUENCE_END_EVENT) {
			depth--;
		}
	} while (x->ev.type != YAML_STREAM_END_EVENT);
	return 0;
}

static int conf_run(struct conf_ctx *x, const struct conf_key *table, void *base, bool scan)
{
	int ret;

	if (!yaml_parser_initialize(&x->yp))
		return -ENOMEM;
	yaml_parser_set_input_string(&x->yp, (const unsigned char *)x->buf, x->len);
	ret = scan ? conf_scan(x) : conf_parse_stream(x, table, base);
	if (x->have_ev) {
		yaml_event_delete(&x->ev);
		x->have_ev = false;
	}
	yaml_parser_delete(&x->yp);
	return ret;
}

int conf_parse_buffer(const struct conf_key *table, void *base, const char *name, const char *buf,
		      size_t len, char *err, size_t errlen)
{
	struct conf_ctx x = {.name = name, .buf = buf, .len = len, .err = err, .errlen = errlen};
	int ret;

	if (err && errlen)
		err[0] = '\0';
	if (len > CONF_MAX_SIZE) {
		conf_errf(err, errlen, "%s: larger than %u bytes", name, CONF_MAX_SIZE);
		return -EFBIG;
	}
	ret = conf_run(&x, table, base, true);
	if (!ret)
		ret = conf_run(&x, table, base, false);
	if (ret == -ENOMEM && !x.failed)
		conf_errf(err, errlen, "%s: out of memory", name);
	return ret;
}

int conf_parse_file(const struct conf_key *table, void *base, const char *path, char *err,
		    size_t errlen)
{
	char ebuf[128];
	char *buf = NULL;
	size_t len = 0;
	bool parsed = false;
	struct stat st;
	int fd, ret = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	if (S_ISDIR(st.st_mode)) {
		ret = -EISDIR;
		goto out;
	}
	if (S_ISREG(st.st_mode) && st.st_size > (off_t)CONF_MAX_SIZE) {
		ret = -EFBIG;
		goto out;
	}
	/* One byte more than the cap tells a file at the cap from a larger one. */
	buf = malloc(CONF_MAX_SIZE + 1);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	while (len <= CONF_MAX_SIZE) {
		ssize_t n = read(fd, buf + len, CONF_MAX_SIZE + 1 - len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	if (len > CONF_MAX_SIZE) {
		ret = -EFBIG;
		goto out;
	}
	/* From here on conf_parse_buffer() writes the message. */
	parsed = true;
	ret = conf_parse_buffer(table, base, path, buf, len, err, errlen);
out:
	if (!parsed && ret == -EFBIG)
		conf_errf(err, errlen, "%s: larger than %u bytes", path, CONF_MAX_SIZE);
	else if (!parsed && ret)
		conf_errf(err, errlen, "%s: %s", path, strerror_r(-ret, ebuf, sizeof(ebuf)));
	if (fd >= 0)
		close(fd);
	free(buf);
	return ret;
}

/* ------------------------------------------------------------ dump */

/* libyaml's printable set: everything else needs an escape in a double-quoted scalar. */
static bool conf_yaml_printable(uint32_t c)
{
	return c == 0x85 || (c >= 0xa0 && c <= 0xd7ff) ||
	       (c >= 0xe000 && c <= 0xfffd && c != 0xfeff) || (c >= 0x10000 && c <= 0x10ffff);
}

/* Decode one UTF-8 sequence at s; 0 when it is not valid UTF-8. */
static size_t conf_utf8(const unsigned char *s, uint32_t *cp)
{
	size_t n, i;
	uint32_t c;

	if (s[0] >= 0xc2 && s[0] <= 0xdf) {
		n = 2;
		c = s[0] & 0x1f;
	} else if (s[0] >= 0xe0 && s[0] <= 0xef) {
		n = 3;
		c = s[0] & 0x0f;
	} else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
		n = 4;
		c = s[0] & 0x07;
	} else {
		return 0;
	}
	for (i = 1; i < n; i++) {
		if ((s[i] & 0xc0) != 0x80)
			return 0;
		c = (c << 6) | (s[i] & 0x3f);
	}
	if ((n == 3 && (c < 0x800 || (c >= 0xd800 && c <= 0xdfff))) ||
	    (n == 4 && (c < 0x10000 || c > 0x10ffff)))
		return 0;
	*cp = c;
	return n;
}

static void conf_dump_quoted(FILE *f, const char *str)
{
	const unsigned char *s = (const unsigned char *)str;
	uint32_t cp;
	size_t n;

	fputc('"', f);
	while (*s) {
		if (*s == '"' || *s == '\\') {
			fprintf(f, "\\%c", *s);
			s++;
		} else if (*s == '\n') {
			fputs("\\n", f);
			s++;
		} else if (*s == '\t') {
			fputs("\\t", f);
			s++;
		} else if (*s < 0x20 || *s == 0x7f) {
			fprintf(f, "\\x%02x", *s);
			s++;
		} else if (*s < 0x80) {
			fputc(*s, f);
			s++;
		} else if ((n = conf_utf8(s, &cp)) != 0) {
			/* NEL, LS and PS are line breaks to a YAML reader. */
			if (conf_yaml_printable(cp) && cp != 0x85 && cp != 0x2028 && cp != 0x2029)
				fwrite(s, 1, n, f);
			else if (cp <= 0xffff)
				fprintf(f, "\\u%04x", (unsigned int)cp);
			else
				fprintf(f, "\\U%08x", (unsigned int)cp);
			s += n;
		} else {
			/* Not UTF-8 (a host name, say): the closest YAML can say. */
			fprintf(f, "\\x%02x", *s);
			s++;
		}
	}
	fputc('"', f);
}

static void conf_dump_table(const struct conf_key *table, const void *base, FILE *f, int indent)
{
	const char *b = base;
	const char *s;
	void *arr;
	size_t n, i;

	for (const struct conf_key *k = table; k->name; k++) {
		if (k->type == CONF_T_EXTERN)
			continue; /* the program dumps what it parsed */
		fprintf(f, "%*s%s:", indent, "", k->name);
		switch (k->type) {
		case CONF_T_STRING:
			memcpy(&s, b + k->offset, sizeof(s));
			fputc(' ', f);
			if (s)
				conf_dump_quoted(f, s);
			else
				fputs("null", f);
			fputc('\n', f);
			break;
		case CONF_T_BOOL:
			fprintf(f, " %s\n", *(const bool *)(b + k->offset) ? "true" : "false");
			break;
		case CONF_T_UINT32:
		case CONF_T_SIZE:
		case CONF_T_DURATION:
			fprintf(f, " %u\n", (unsigned int)*(const uint32_t *)(b + k->offset));
			break;
		case CONF_T_SECTION:
			fputc('\n', f);
			conf_dump_table(k->sub, base, f, indent + 2);
			break;
		case CONF_T_MAP:
			arr = conf_get_ptr(base, k->offset);
			n = arr ? conf_count(base, k) : 0;
			fputs(n ? "\n" : " {}\n", f);
			for (i = 0; i < n; i++) {
				fprintf(f, "%*s", indent + 2, "");
				conf_dump_quoted(f, *conf_pair_str(arr, k, i, k->key_offset));
				fputs(": ", f);
				conf_dump_quoted(f, *conf_pair_str(arr, k, i, k->value_offset));
				fputc('\n', f);
			}
			break;
		case CONF_T_STRLIST:
			arr = conf_get_ptr(base, k->offset);
			n = arr ? conf_count(base, k) : 0;
			fputs(n ? "\n" : " []\n", f);
			for (i = 0; i < n; i++) {
				fprintf(f, "%*s- ", indent + 2, "");
				conf_dump_quoted(f, ((char **)arr)[i]);
				fputc('\n', f);
			}
			break;
		default:
			fputs(" null\n", f);
			break;
		}
	}
}

int conf_dump(const struct conf_key *table, const void *base, FILE *f)
{
	conf_dump_table(table, base, f, 0);
	return ferror(f) ? -EIO : 0;
}

/* ------------------------------------------------------------ checks */

int conf_check_abs_path(const char *s, char *why, size_t whylen)
{
	if (s[0] != '/') {
		snprintf(why, whylen, "must be an absolute path");
		return -EINVAL;
	}
	return 0;
}

int conf_check_nonempty(const char *s, char *why, size_t whylen)
{
	if (!s[0]) {
		snprintf(why, whylen, "must not be empty");
		return -EINVAL;
	}
	return 0;
}
