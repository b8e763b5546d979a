/* collector.yaml: the table of keys, defaults and checks (lib/conf.h does the parsing). */
#include "collector.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

#define COLLECTOR_MIB (1024u * 1024u)

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
		snprintf(why, whylen, "must be host:port with a port 1-65535 (IPv6 as [addr]:port)");
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
    CONF_END,
};

#undef CC

/* What no single key can say: checked after parsing, named by file only. */
static int collector_config_check(const struct collector_config *c, const char *name, char *err,
				  size_t errlen)
{
	char host[256];
	uint16_t port;

	if (c->insecure_dev_mode &&
	    (collector_listen_split(c->listen, host, sizeof(host), &port) ||
	     !collector_host_is_loopback(host))) {
		snprintf(err, errlen,
			 "%s: insecure_dev_mode needs a loopback listen address (127.0.0.0/8, "
			 "[::1] or localhost), not '%s'",
			 name, c->listen);
		return -EINVAL;
	}
	return 0;
}

int collector_config_load(const char *path, struct collector_config **out, char *err,
			  size_t errlen)
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
	free(c);
}

void collector_config_dump(const struct collector_config *c, FILE *f)
{
	/* The caller checks the stream (ferror/fclose): no return value in this API. */
	(void)conf_dump(collector_config_keys, c, f);
}
