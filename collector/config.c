/* collector.yaml: the table of keys, defaults and checks (lib/conf.h does the parsing). */
#include "collector.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <yaml.h>

#include "conf.h"
#include "util.h"

#define COLLECTOR_MIB	      (1024u * 1024u)
#define COLLECTOR_USERS_MAX   10000 /* users: entries */
#define COLLECTOR_USER_LIST   256   /* roles, traits, values of a trait */
#define COLLECTOR_USER_STRMAX 1024  /* bytes of a role, trait key or value */

static const char *const collector_config_log_levels[] = {"error", "warn", "info", "debug", NULL};
/* Backends that exist; store_find() is the authority at start, this is for early errors. */
static const char *const collector_config_stores[] = {"local", NULL};

int collector_listen_split(const char *listen, char *host, size_t hostlen, uint16_t *port)
{
	const char *colon = strrchr(listen, ':');
	const char *h = listen, *p;
	unsigned long v = 0;
	size_t n;

	if (!colon || !colon[1] || colon[1] == '0')
		return -EINVAL;
	for (p = colon + 1; *p; p++) {
		if (*p < '0' || *p > '9' || p - colon > 5)
			return -EINVAL;
		v = v * 10 + (unsigned long)(*p - '0');
	}
	if (v == 0 || v > 65535)
		return -EINVAL;
	n = (size_t)(colon - listen);
	if (n && listen[0] == '[') {
		if (n < 3 || listen[n - 1] != ']')
			return -EINVAL;
		h = listen + 1;
		n -= 2;
		if (memchr(h, '[', n) || memchr(h, ']', n))
			return -EINVAL;
	} else if (memchr(listen, ':', n) || memchr(listen, '[', n) || memchr(listen, ']', n)) {
		return -EINVAL; /* an IPv6 address needs brackets */
	}
	if (n == 0 || n >= hostlen)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		if ((unsigned char)h[i] <= 0x20 || h[i] == 0x7f || h[i] == '/')
			return -EINVAL;
	}
	memcpy(host, h, n);
	host[n] = '\0';
	*port = (uint16_t)v;
	return 0;
}

bool collector_host_is_loopback(const char *host)
{
	struct in_addr a4;
	struct in6_addr a6;

	if (strcmp(host, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, host, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	if (inet_pton(AF_INET6, host, &a6) == 1)
		return IN6_IS_ADDR_LOOPBACK(&a6);
	return false;
}

static int collector_config_check_listen(const char *s, char *why, size_t whylen)
{
	char host[256];
	uint16_t port;

	if (collector_listen_split(s, host, sizeof(host), &port)) {
		snprintf(why, whylen,
			 "must be host:port with a port 1-65535 (IPv6 as [addr]:port)");
		return -EINVAL;
	}
	return 0;
}

#define CC struct collector_config

static const struct conf_key collector_config_tls_keys[] = {
    CONF_STRING("cert_file", CC, tls.cert_file, "/etc/sessrec/tls/server.crt",
		.check = conf_check_abs_path),
    CONF_STRING("key_file", CC, tls.key_file, "/etc/sessrec/tls/server.key",
		.check = conf_check_abs_path),
    CONF_STRING("client_ca_file", CC, tls.client_ca_file, "/etc/sessrec/tls/ca.crt",
		.check = conf_check_abs_path),
    CONF_END,
};

static const struct conf_key collector_config_keys[] = {
    CONF_STRING("listen", CC, listen, "127.0.0.1:8443", .check = collector_config_check_listen),
    CONF_STRING("data_dir", CC, data_dir, "/var/lib/sessrec/collector",
		.check = conf_check_abs_path),
    CONF_STRING("log_level", CC, log_level, "info", .choices = collector_config_log_levels),
    CONF_BOOL("insecure_dev_mode", CC, insecure_dev_mode, false),
    CONF_SECTION("tls", collector_config_tls_keys),
    CONF_SIZE("audit_rotate_size", CC, audit_rotate_size, 64 * COLLECTOR_MIB, 64u << 10, 0),
    CONF_UINT32("audit_keep", CC, audit_keep, 10, 0, 100000),
    /* A part is at most REC_PART_SIZE_MAX raw bytes; gzip can make it slightly larger. */
    CONF_SIZE("max_part_size", CC, max_part_size, 40 * COLLECTOR_MIB, 4u << 10,
	      1024 * COLLECTOR_MIB),
    CONF_UINT32("max_connections", CC, max_connections, 256, 1, 65536),
    CONF_DURATION("request_timeout", CC, request_timeout, 60, 1, 3600),
    CONF_STRING("store", CC, store, "local", .choices = collector_config_stores),
    CONF_UINT32("summary_workers", CC, summary_workers, 2, 1, 64),
    /* name -> {roles: [...], traits: {k: [...]}}: read by collector_config_users */
    CONF_EXTERN("users"),
    CONF_END,
};

#undef CC

/* What no single key can say: checked after parsing, named by file only. */
static int collector_config_check(const struct collector_config *c, const char *name, char *err,
				  size_t errlen)
{
	char host[256];
	uint16_t port;

	if (c->insecure_dev_mode && (collector_listen_split(c->listen, host, sizeof(host), &port) ||
				     !collector_host_is_loopback(host))) {
		snprintf(err, errlen,
			 "%s: insecure_dev_mode needs a loopback listen address (127.0.0.0/8, "
			 "[::1] or localhost), not '%s'",
			 name, c->listen);
		return -EINVAL;
	}
	return 0;
}

/* ------------------------------------------------------------ users */

/* Where a problem is: "FILE:LINE: users.alice.roles: " */
struct collector_users_ctx {
	const char *path;
	yaml_document_t *doc;
	char *err;
	size_t errlen;
};

static int collector_users_fail(const struct collector_users_ctx *x, const yaml_node_t *n,
				const char *fmt, ...) __attribute__((format(printf, 3, 4)));

static int collector_users_fail(const struct collector_users_ctx *x, const yaml_node_t *n,
				const char *fmt, ...)
{
	char msg[384];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	for (char *p = msg; *p; p++) {
		if ((unsigned char)*p < 0x20 || *p == 0x7f)
			*p = '?';
	}
	snprintf(x->err, x->errlen, "%s:%zu: %s", x->path, (size_t)n->start_mark.line + 1, msg);
	return -EINVAL;
}

static bool collector_yaml_null(const yaml_node_t *n)
{
	const char *s = (const char *)n->data.scalar.value;

	if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
		return false;
	return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
	       !strcmp(s, "NULL");
}

/* A scalar usable as a role, a trait key or value, or a user name. */
static int collector_users_str(const struct collector_users_ctx *x, const yaml_node_t *n,
			       const char *where, char **out)
{
	const char *s;

	*out = NULL;
	if (n->type != YAML_SCALAR_NODE || collector_yaml_null(n))
		return collector_users_fail(x, n, "%s: expected a string", where);
	s = (const char *)n->data.scalar.value;
	if (n->data.scalar.length == 0 || n->data.scalar.length > COLLECTOR_USER_STRMAX ||
	    strlen(s) != n->data.scalar.length)
		return collector_users_fail(x, n, "%s: expected 1 to %d bytes of text", where,
					    COLLECTOR_USER_STRMAX);
	*out = strdup(s);
	return *out ? 0 : -ENOMEM;
}

/* A list of strings, or one string as a list of one; null is an empty list. */
static int collector_users_list(const struct collector_users_ctx *x, const yaml_node_t *n,
				const char *where, char ***out, size_t *count)
{
	yaml_node_item_t *it;
	size_t len, i;
	int err = 0;

	*out = NULL;
	*count = 0;
	if (collector_yaml_null(n))
		return 0;
	if (n->type == YAML_SCALAR_NODE) {
		*out = calloc(1, sizeof(**out));
		if (!*out)
			return -ENOMEM;
		err = collector_users_str(x, n, where, &(*out)[0]);
		if (err) {
			free(*out);
			*out = NULL;
			return err;
		}
		*count = 1;
		return 0;
	}
	if (n->type != YAML_SEQUENCE_NODE)
		return collector_users_fail(x, n, "%s: expected a list of strings", where);
	len = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
	if (len > COLLECTOR_USER_LIST)
		return collector_users_fail(x, n, "%s: more than %d entries", where,
					    COLLECTOR_USER_LIST);
	if (!len)
		return 0;
	*out = calloc(len, sizeof(**out));
	if (!*out)
		return -ENOMEM;
	for (i = 0, it = n->data.sequence.items.start; i < len; i++, it++) {
		err =
		    collector_users_str(x, yaml_document_get_node(x->doc, *it), where, &(*out)[i]);
		if (err)
			break;
		*count = i + 1;
	}
	return err;
}

static void collector_user_clear(struct collector_user *u)
{
	size_t i, j;

	if (!u)
		return;
	free(u->name);
	for (i = 0; i < u->n_roles; i++)
		free(u->roles[i]);
	free(u->roles);
	for (i = 0; i < u->n_traits; i++) {
		free(u->traits[i].key);
		for (j = 0; j < u->traits[i].n_values; j++)
			free(u->traits[i].values[j]);
		free(u->traits[i].values);
	}
	free(u->traits);
	memset(u, 0, sizeof(*u));
}

static int collector_user_traits(const struct collector_users_ctx *x, const yaml_node_t *n,
				 struct collector_user *u)
{
	yaml_node_pair_t *pr;
	char where[160];
	size_t len, i, j;
	int err = 0;

	if (collector_yaml_null(n))
		return 0;
	if (n->type != YAML_MAPPING_NODE)
		return collector_users_fail(x, n, "users.%.64s.traits: expected a mapping of lists",
					    u->name);
	len = (size_t)(n->data.mapping.pairs.top - n->data.mapping.pairs.start);
	if (len > COLLECTOR_USER_LIST)
		return collector_users_fail(x, n, "users.%.64s.traits: more than %d traits",
					    u->name, COLLECTOR_USER_LIST);
	if (!len)
		return 0;
	u->traits = calloc(len, sizeof(*u->traits));
	if (!u->traits)
		return -ENOMEM;
	for (i = 0, pr = n->data.mapping.pairs.start; i < len && !err; i++, pr++) {
		struct collector_trait *t = &u->traits[i];
		const yaml_node_t *k = yaml_document_get_node(x->doc, pr->key);

		snprintf(where, sizeof(where), "users.%.64s.traits: a key", u->name);
		err = collector_users_str(x, k, where, &t->key);
		if (err)
			break;
		u->n_traits = i + 1;
		for (j = 0; j < i; j++) {
			if (strcmp(u->traits[j].key, t->key) == 0)
				return collector_users_fail(x, k,
							    "users.%.64s.traits: duplicate key "
							    "'%.64s'",
							    u->name, t->key);
		}
		snprintf(where, sizeof(where), "users.%.64s.traits.%.64s", u->name, t->key);
		err = collector_users_list(x, yaml_document_get_node(x->doc, pr->value), where,
					   &t->values, &t->n_values);
	}
	return err;
}

static int collector_user_parse(const struct collector_users_ctx *x, const yaml_node_t *n,
				struct collector_user *u)
{
	yaml_node_pair_t *pr;
	bool seen_roles = false, seen_traits = false;
	char where[128];
	int err = 0;

	if (collector_yaml_null(n))
		return 0; /* a user without roles or traits */
	if (n->type != YAML_MAPPING_NODE)
		return collector_users_fail(
		    x, n, "users.%.64s: expected a mapping with roles and traits", u->name);
	for (pr = n->data.mapping.pairs.start; pr < n->data.mapping.pairs.top && !err; pr++) {
		const yaml_node_t *k = yaml_document_get_node(x->doc, pr->key);
		const yaml_node_t *v = yaml_document_get_node(x->doc, pr->value);
		const char *key =
		    k->type == YAML_SCALAR_NODE ? (const char *)k->data.scalar.value : "";

		if (strcmp(key, "roles") == 0 && !seen_roles) {
			seen_roles = true;
			snprintf(where, sizeof(where), "users.%.64s.roles", u->name);
			err = collector_users_list(x, v, where, &u->roles, &u->n_roles);
		} else if (strcmp(key, "traits") == 0 && !seen_traits) {
			seen_traits = true;
			err = collector_user_traits(x, v, u);
		} else if (strcmp(key, "roles") == 0 || strcmp(key, "traits") == 0) {
			err = collector_users_fail(x, k, "users.%.64s: duplicate key '%s'", u->name,
						   key);
		} else {
			err = collector_users_fail(x, k,
						   "users.%.64s: unknown key '%.64s' (roles or "
						   "traits)",
						   u->name, key);
		}
	}
	return err;
}

/*
 * The users: section, which conf.c skips (a mapping of mappings of lists is
 * beyond its tables). The file was read and checked by conf_parse_file just
 * before: its syntax is sound and it holds no aliases.
 */
static int collector_config_users(struct collector_config *c, const char *path, char *err,
				  size_t errlen)
{
	struct collector_users_ctx x = {.path = path, .err = err, .errlen = errlen};
	yaml_parser_t yp;
	yaml_document_t doc;
	yaml_node_t *root, *users = NULL;
	yaml_node_pair_t *pr;
	bool have_parser = false, have_doc = false;
	char *buf = NULL;
	size_t len = 0, n, i, j;
	int ret;

	ret = util_read_file(path, CONF_MAX_SIZE, &buf, &len);
	if (ret) {
		snprintf(err, errlen, "%s: %s", path, strerror(-ret));
		goto out;
	}
	ret = -ENOMEM;
	if (!yaml_parser_initialize(&yp))
		goto out;
	have_parser = true;
	yaml_parser_set_input_string(&yp, (const unsigned char *)buf, len);
	if (!yaml_parser_load(&yp, &doc)) {
		snprintf(err, errlen, "%s:%zu: invalid YAML", path,
			 (size_t)yp.problem_mark.line + 1);
		ret = -EINVAL;
		goto out;
	}
	have_doc = true;
	x.doc = &doc;
	ret = 0;
	root = yaml_document_get_root_node(&doc);
	if (!root || root->type != YAML_MAPPING_NODE)
		goto out;
	for (pr = root->data.mapping.pairs.start; pr < root->data.mapping.pairs.top; pr++) {
		yaml_node_t *k = yaml_document_get_node(&doc, pr->key);

		if (k && k->type == YAML_SCALAR_NODE &&
		    strcmp((const char *)k->data.scalar.value, "users") == 0)
			users = yaml_document_get_node(&doc, pr->value);
	}
	if (!users || collector_yaml_null(users))
		goto out;
	if (users->type != YAML_MAPPING_NODE) {
		ret = collector_users_fail(&x, users,
					   "users: expected a mapping of user names to their "
					   "roles and traits");
		goto out;
	}
	n = (size_t)(users->data.mapping.pairs.top - users->data.mapping.pairs.start);
	if (n > COLLECTOR_USERS_MAX) {
		ret = collector_users_fail(&x, users, "users: more than %d users",
					   COLLECTOR_USERS_MAX);
		goto out;
	}
	if (!n)
		goto out;
	ret = -ENOMEM;
	c->users = calloc(n, sizeof(*c->users));
	if (!c->users)
		goto out;
	ret = 0;
	for (i = 0, pr = users->data.mapping.pairs.start; i < n && !ret; i++, pr++) {
		yaml_node_t *k = yaml_document_get_node(&doc, pr->key);
		struct collector_user *u = &c->users[i];

		ret = collector_users_str(&x, k, "users: a user name", &u->name);
		if (ret)
			break;
		c->n_users = i + 1;
		if (!collector_token_user_valid(u->name)) {
			ret = collector_users_fail(&x, k,
						   "users: '%.64s' is not a user name (1-128 "
						   "characters, no spaces or quotes)",
						   u->name);
			break;
		}
		for (j = 0; j < i; j++) {
			if (strcmp(c->users[j].name, u->name) == 0) {
				ret = collector_users_fail(&x, k, "users: duplicate user '%.64s'",
							   u->name);
				break;
			}
		}
		if (!ret)
			ret = collector_user_parse(&x, yaml_document_get_node(&doc, pr->value), u);
	}
out:
	if (ret == -ENOMEM && !err[0])
		snprintf(err, errlen, "%s: out of memory", path);
	if (have_doc)
		yaml_document_delete(&doc);
	if (have_parser)
		yaml_parser_delete(&yp);
	free(buf);
	return ret;
}

const struct collector_user *collector_config_user(const struct collector_config *c,
						   const char *name)
{
	size_t i;

	if (!c || !name)
		return NULL;
	for (i = 0; i < c->n_users; i++) {
		if (strcmp(c->users[i].name, name) == 0)
			return &c->users[i];
	}
	return NULL;
}

/* A string as a YAML double-quoted scalar (JSON's escapes are YAML's too). */
static void collector_dump_str(FILE *f, const char *s)
{
	json_t *j = json_string(s);
	char *t = j ? json_dumps(j, JSON_ENCODE_ANY) : NULL;

	fputs(t ? t : "\"\"", f);
	free(t);
	json_decref(j);
}

static void collector_dump_list(FILE *f, char *const *v, size_t n)
{
	fputc('[', f);
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputs(", ", f);
		collector_dump_str(f, v[i]);
	}
	fputc(']', f);
}

static void collector_config_dump_users(const struct collector_config *c, FILE *f)
{
	size_t i, j;

	fputs(c->n_users ? "users:\n" : "users: {}\n", f);
	for (i = 0; i < c->n_users; i++) {
		const struct collector_user *u = &c->users[i];

		fputs("  ", f);
		collector_dump_str(f, u->name);
		fputs(":\n    roles: ", f);
		collector_dump_list(f, u->roles, u->n_roles);
		fputs(u->n_traits ? "\n    traits:\n" : "\n    traits: {}\n", f);
		for (j = 0; j < u->n_traits; j++) {
			fputs("      ", f);
			collector_dump_str(f, u->traits[j].key);
			fputs(": ", f);
			collector_dump_list(f, u->traits[j].values, u->traits[j].n_values);
			fputc('\n', f);
		}
	}
}

int collector_config_load(const char *path, struct collector_config **out, char *err, size_t errlen)
{
	struct collector_config *c;
	char dummy[8];
	int ret;

	if (!err || !errlen) {
		err = dummy;
		errlen = sizeof(dummy);
	}
	err[0] = '\0';
	c = calloc(1, sizeof(*c));
	if (!c) {
		snprintf(err, errlen, "%s: out of memory", path ? path : "defaults");
		return -ENOMEM;
	}
	ret = conf_defaults(collector_config_keys, c);
	if (ret) {
		snprintf(err, errlen, "%s: out of memory", path ? path : "defaults");
		goto out;
	}
	if (path) {
		ret = conf_parse_file(collector_config_keys, c, path, err, errlen);
		if (ret)
			goto out;
		ret = collector_config_users(c, path, err, errlen);
		if (ret)
			goto out;
	}
	ret = collector_config_check(c, path ? path : "defaults", err, errlen);
	if (ret)
		goto out;
	/* Only a fully valid config leaves here; *out is untouched otherwise. */
	*out = c;
	c = NULL;
out:
	collector_config_free(c);
	return ret;
}

void collector_config_free(struct collector_config *c)
{
	if (!c)
		return;
	conf_free(collector_config_keys, c);
	for (size_t i = 0; i < c->n_users; i++)
		collector_user_clear(&c->users[i]);
	free(c->users);
	free(c);
}

void collector_config_dump(const struct collector_config *c, FILE *f)
{
	/* The caller checks the stream (ferror/fclose): no return value in this API. */
	(void)conf_dump(collector_config_keys, c, f);
	collector_config_dump_users(c, f);
}
