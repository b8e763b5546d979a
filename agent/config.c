#include "config.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>
#include <unistd.h>

#include "conf.h"
#include "rec.h"

#define AGENT_LABEL_KEY_MAX   63
#define AGENT_LABEL_VALUE_MAX 255
#define AGENT_LABELS_MAX      128
#define AGENT_NODE_NAME_MAX   253 /* a DNS name */
#define AGENT_PAGES_MAX	      65536

static const char *const agent_config_log_levels[] = {"error", "warn", "info", "debug", NULL};

static bool agent_config_has_ctl(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return true;
	}
	return false;
}

static int agent_config_check_node_name(const char *s, char *why, size_t whylen)
{
	if (!s[0] || strlen(s) > AGENT_NODE_NAME_MAX) {
		snprintf(why, whylen, "must be 1 to %d characters", AGENT_NODE_NAME_MAX);
		return -EINVAL;
	}
	if (agent_config_has_ctl(s) || strchr(s, ' ')) {
		snprintf(why, whylen, "must not contain spaces or control characters");
		return -EINVAL;
	}
	return 0;
}

static int agent_config_check_socket(const char *s, char *why, size_t whylen)
{
	struct sockaddr_un sun;

	if (conf_check_abs_path(s, why, whylen))
		return -EINVAL;
	if (strlen(s) >= sizeof(sun.sun_path)) {
		snprintf(why, whylen, "longer than %zu bytes, the limit for a Unix socket",
			 sizeof(sun.sun_path) - 1);
		return -EINVAL;
	}
	return 0;
}

static int agent_config_check_group(const char *s, char *why, size_t whylen)
{
	if (!s[0] || agent_config_has_ctl(s) || strpbrk(s, " :")) {
		snprintf(why, whylen, "must be a group name or id");
		return -EINVAL;
	}
	return 0;
}

/* "" (metrics off), host:port or [v6]:port; the host is resolved at bind time. */
static int agent_config_check_listen(const char *s, char *why, size_t whylen)
{
	const char *colon = strrchr(s, ':');
	const char *p;
	unsigned long port = 0;
	size_t hostlen;

	if (!s[0])
		return 0;
	if (!colon || !colon[1])
		goto bad;
	for (p = colon + 1; *p; p++) {
		if (*p < '0' || *p > '9' || port > 65535)
			goto bad;
		port = port * 10 + (unsigned long)(*p - '0');
	}
	if (port == 0 || port > 65535)
		goto bad;
	hostlen = (size_t)(colon - s);
	if (hostlen == 0 || agent_config_has_ctl(s) || strchr(s, ' '))
		goto bad;
	if (s[0] == '[') {
		if (hostlen < 3 || s[hostlen - 1] != ']' || memchr(s + 1, '[', hostlen - 1))
			goto bad;
	} else if (memchr(s, ':', hostlen) || memchr(s, ']', hostlen)) {
		goto bad; /* an IPv6 address needs brackets */
	}
	return 0;
bad:
	snprintf(why, whylen, "must be host:port (IPv6 as [addr]:port), or \"\" to disable");
	return -EINVAL;
}

static int agent_config_check_label_key(const char *s, char *why, size_t whylen)
{
	size_t n = strlen(s);

	if (n == 0 || n > AGENT_LABEL_KEY_MAX) {
		snprintf(why, whylen, "must be 1 to %d characters", AGENT_LABEL_KEY_MAX);
		return -EINVAL;
	}
	if (strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_./-") != n) {
		snprintf(why, whylen, "may only contain A-Z a-z 0-9 _ . / -");
		return -EINVAL;
	}
	return 0;
}

static int agent_config_check_label_value(const char *s, char *why, size_t whylen)
{
	if (strlen(s) > AGENT_LABEL_VALUE_MAX) {
		snprintf(why, whylen, "longer than %d characters", AGENT_LABEL_VALUE_MAX);
		return -EINVAL;
	}
	if (agent_config_has_ctl(s)) {
		snprintf(why, whylen, "must not contain control characters");
		return -EINVAL;
	}
	return 0;
}

/* Joined under cgroup_path, so it must stay below it: "a" or "a/b", never "..". */
/* A directory of its own on a bpffs: /sys/fs/bpf/NAME. */
static int agent_config_check_pin_path(const char *s, char *why, size_t whylen)
{
	const char *name = s + strlen("/sys/fs/bpf/");

	if (strncmp(s, "/sys/fs/bpf/", strlen("/sys/fs/bpf/")) != 0 || !*name ||
	    strchr(name, '/') || strcmp(name, ".") == 0 || strcmp(name, "..") == 0) {
		snprintf(why, whylen, "must be /sys/fs/bpf/NAME");
		return -EINVAL;
	}
	return 0;
}

static int agent_config_check_root_path(const char *s, char *why, size_t whylen)
{
	const char *p = s;

	if (!s[0] || s[0] == '/' || agent_config_has_ctl(s))
		goto bad;
	while (*p) {
		size_t n = strcspn(p, "/");

		if (n == 0 || (n == 1 && p[0] == '.') || (n == 2 && p[0] == '.' && p[1] == '.'))
			goto bad;
		p += n;
		if (*p == '/' && !*++p)
			goto bad; /* trailing slash */
	}
	return 0;
bad:
	snprintf(why, whylen,
		 "must be a relative path below cgroup_path (no leading /, no . or ..)");
	return -EINVAL;
}

static bool agent_config_loopback(const char *host, size_t len)
{
	char buf[64];
	struct in6_addr a6;
	struct in_addr a4;

	if (len == 0 || len >= sizeof(buf))
		return false;
	memcpy(buf, host, len);
	buf[len] = '\0';
	if (strcmp(buf, "localhost") == 0)
		return true;
	if (inet_pton(AF_INET, buf, &a4) == 1)
		return (ntohl(a4.s_addr) >> 24) == 127;
	return inet_pton(AF_INET6, buf, &a6) == 1 && IN6_IS_ADDR_LOOPBACK(&a6);
}

/*
 * https://host[:port][/prefix]. Plain http only to a collector on this
 * machine's loopback (its insecure_dev_mode): recordings never cross a network
 * in the clear. "" means no collector.
 */
static int agent_config_check_url(const char *s, char *why, size_t whylen)
{
	const char *host, *end, *name, *rest;
	size_t namelen;
	bool tls;

	if (!s[0])
		return 0;
	if (strncmp(s, "https://", 8) == 0) {
		tls = true;
		host = s + 8;
	} else if (strncmp(s, "http://", 7) == 0) {
		tls = false;
		host = s + 7;
	} else {
		snprintf(why, whylen,
			 "must start with https:// (http:// only for a collector on loopback)");
		return -EINVAL;
	}
	if (agent_config_has_ctl(s) || strpbrk(s, " \"<>\\^`{|}?#")) {
		snprintf(why, whylen, "must be a plain URL: no spaces, query or fragment");
		return -EINVAL;
	}
	end = host + strcspn(host, "/");
	if (memchr(host, '@', (size_t)(end - host))) {
		snprintf(why, whylen, "must not carry a user name or password");
		return -EINVAL;
	}
	if (host[0] == '[') {
		const char *close = memchr(host, ']', (size_t)(end - host));

		if (!close)
			goto bad_host;
		name = host + 1;
		namelen = (size_t)(close - name);
		rest = close + 1;
	} else {
		const char *colon = memchr(host, ':', (size_t)(end - host));

		name = host;
		rest = colon ? colon : end;
		namelen = (size_t)(rest - name);
	}
	if (namelen == 0)
		goto bad_host;
	if (rest != end) {
		unsigned long port = 0;
		const char *p = rest + 1;

		if (*rest != ':' || p == end || end - p > 5)
			goto bad_host;
		for (; p < end; p++) {
			if (*p < '0' || *p > '9')
				goto bad_host;
			port = port * 10 + (unsigned long)(*p - '0');
		}
		if (port == 0 || port > 65535)
			goto bad_host;
	}
	if (!tls && !agent_config_loopback(name, namelen)) {
		snprintf(why, whylen,
			 "http:// is only allowed for a collector on loopback (127.0.0.1, [::1], "
			 "localhost): use https://");
		return -EINVAL;
	}
	return 0;
bad_host:
	snprintf(why, whylen, "must be https://host[:port][/path] (IPv6 as [addr])");
	return -EINVAL;
}

static const char *const agent_config_modes[] = {"async", "sync", NULL};

#define AC struct agent_config

static const struct conf_key agent_config_er_keys[] = {
    CONF_BOOL("enabled", AC, er.enabled, true),
    CONF_UINT32("command_buffer_size", AC, er.command_buffer_size, 8, 1, AGENT_PAGES_MAX,
		.flags = CONF_POW2),
    CONF_UINT32("disk_buffer_size", AC, er.disk_buffer_size, 128, 1, AGENT_PAGES_MAX,
		.flags = CONF_POW2),
    CONF_UINT32("network_buffer_size", AC, er.network_buffer_size, 8, 1, AGENT_PAGES_MAX,
		.flags = CONF_POW2),
    CONF_UINT32("terminal_buffer_size", AC, er.terminal_buffer_size, 1024, 1, AGENT_PAGES_MAX,
		.flags = CONF_POW2),
    CONF_STRING("cgroup_path", AC, er.cgroup_path, "/cgroup2", .check = conf_check_abs_path),
    CONF_STRING("root_path", AC, er.root_path, "sessrec", .check = agent_config_check_root_path),
    CONF_STRING("pin_path", AC, er.pin_path, "/sys/fs/bpf/sessrec",
		.check = agent_config_check_pin_path),
    CONF_END,
};

static const struct conf_key agent_config_collector_keys[] = {
    CONF_STRING("url", AC, collector.url, NULL, .flags = CONF_NULLABLE,
		.check = agent_config_check_url),
    CONF_STRING("ca_file", AC, collector.ca_file, NULL, .flags = CONF_NULLABLE,
		.check = conf_check_abs_path),
    CONF_STRING("cert_file", AC, collector.cert_file, NULL, .flags = CONF_NULLABLE,
		.check = conf_check_abs_path),
    CONF_STRING("key_file", AC, collector.key_file, NULL, .flags = CONF_NULLABLE,
		.check = conf_check_abs_path),
    CONF_STRING("mode", AC, collector.mode, "async", .choices = agent_config_modes),
    CONF_DURATION("sync_grace_period", AC, collector.sync_grace_period, 30, 1, 3600),
    CONF_END,
};

static const struct conf_key agent_config_keys[] = {
    /* The default is the host name, set by agent_config_defaults(). */
    CONF_STRING("node_name", AC, node_name, NULL, .check = agent_config_check_node_name),
    CONF_STRING("data_dir", AC, data_dir, "/var/lib/sessrec", .check = conf_check_abs_path),
    CONF_STRING("audit_log", AC, audit_log, "/var/log/sessrec/audit.log",
		.check = conf_check_abs_path),
    CONF_STRING("socket", AC, socket, "/run/sessrec/agent.sock",
		.check = agent_config_check_socket),
    CONF_STRING("socket_group", AC, socket_group, NULL, .flags = CONF_NULLABLE,
		.check = agent_config_check_group),
    CONF_STRING("metrics_listen", AC, metrics_listen, "127.0.0.1:9464",
		.check = agent_config_check_listen),
    CONF_STRING("log_level", AC, log_level, "info", .choices = agent_config_log_levels),
    CONF_MAP("labels", AC, labels, n_labels, struct agent_label, key, value,
	     .check = agent_config_check_label_key, .check_value = agent_config_check_label_value,
	     .max_items = AGENT_LABELS_MAX),
    CONF_SIZE("part_size", AC, part_size, 1u << 20, 4u << 10, REC_PART_SIZE_MAX),
    CONF_DURATION("part_interval", AC, part_interval, 5, 1, 3600),
    CONF_SECTION("enhanced_recording", agent_config_er_keys),
    CONF_SECTION("collector", agent_config_collector_keys),
    CONF_END,
};

#undef AC

static int agent_config_set_hostname(struct agent_config *c)
{
	char host[HOST_NAME_MAX + 1];
	char *s;

	/* Truncation leaves no NUL on some libcs; a node without a name is "localhost". */
	if (gethostname(host, sizeof(host)) < 0 || !host[0])
		snprintf(host, sizeof(host), "localhost");
	host[sizeof(host) - 1] = '\0';
	s = strdup(host);
	if (!s)
		return -ENOMEM;
	free(c->node_name);
	c->node_name = s;
	return 0;
}

int agent_config_defaults(struct agent_config **out)
{
	struct agent_config *c;
	int err;

	c = calloc(1, sizeof(*c));
	if (!c)
		return -ENOMEM;
	err = conf_defaults(agent_config_keys, c);
	if (!err)
		err = agent_config_set_hostname(c);
	if (err) {
		agent_config_free(c);
		return err;
	}
	*out = c;
	return 0;
}

bool agent_config_has_collector(const struct agent_config *c)
{
	return c->collector.url && c->collector.url[0];
}

bool agent_config_sync(const struct agent_config *c)
{
	return agent_config_has_collector(c) && strcmp(c->collector.mode, "sync") == 0;
}

/* What no single key can check: TLS needs the node's certificate. */
static int agent_config_check_collector(const struct agent_config *c, const char *name, char *err,
					size_t errlen)
{
	const struct agent_collector_conf *k = &c->collector;

	if (!agent_config_has_collector(c) || strncmp(k->url, "https://", 8) != 0)
		return 0;
	if (!k->cert_file || !k->key_file) {
		if (err && errlen)
			snprintf(err, errlen,
				 "%s: collector: cert_file and key_file (the node's client "
				 "certificate) are required with an https url",
				 name);
		return -EINVAL;
	}
	return 0;
}

int agent_config_load(const char *path, struct agent_config **out, char *err, size_t errlen)
{
	struct agent_config *c = NULL;
	int ret;

	if (err && errlen)
		err[0] = '\0';
	ret = agent_config_defaults(&c);
	if (ret) {
		if (err && errlen)
			snprintf(err, errlen, "%s: out of memory", path ? path : "defaults");
		goto out;
	}
	if (path) {
		ret = conf_parse_file(agent_config_keys, c, path, err, errlen);
		if (ret)
			goto out;
	}
	ret = agent_config_check_collector(c, path ? path : "defaults", err, errlen);
	if (ret)
		goto out;
	/* Only a fully valid config leaves here; *out is untouched otherwise. */
	*out = c;
	c = NULL;
out:
	agent_config_free(c);
	return ret;
}

void agent_config_free(struct agent_config *c)
{
	if (!c)
		return;
	conf_free(agent_config_keys, c);
	free(c);
}

void agent_config_dump(const struct agent_config *c, FILE *f)
{
	/* The caller checks the stream (ferror/fclose): no return value in this API. */
	(void)conf_dump(agent_config_keys, c, f);
}
