/* agent/config.c and the lib/conf.c parser under it. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "conf.h"
#include "../../agent/config.h"

/* The last temporary config file, which error messages name. */
static char tc_path[64];

static void tc_write(const char *text, size_t len)
{
	int fd;

	snprintf(tc_path, sizeof(tc_path), "/tmp/sessrec-test-conf-XXXXXX");
	fd = mkstemp(tc_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

/* Load text through a real file, as the agent does. */
static int tc_load_len(const char *text, size_t len, struct agent_config **c, char *err,
		       size_t errlen)
{
	int ret;

	tc_write(text, len);
	ret = agent_config_load(tc_path, c, err, errlen);
	assert_int_equal(unlink(tc_path), 0);
	return ret;
}

static int tc_load(const char *text, struct agent_config **c, char *err, size_t errlen)
{
	return tc_load_len(text, strlen(text), c, err, errlen);
}

static struct agent_config *tc_load_ok(const char *text)
{
	struct agent_config *c = NULL;
	char err[512];
	int ret;

	ret = tc_load(text, &c, err, sizeof(err));
	if (ret)
		fail_msg("unexpected error %d: %s\n--- yaml:\n%s", ret, err, text);
	assert_non_null(c);
	assert_string_equal(err, "");
	return c;
}

/* The file must be refused with exactly "FILE:line: msg", and *out left alone. */
static void tc_load_fail(const char *text, int line, const char *msg)
{
	struct agent_config *sentinel = (struct agent_config *)&tc_path;
	struct agent_config *c = sentinel;
	char err[512], want[512];
	int ret;

	ret = tc_load(text, &c, err, sizeof(err));
	snprintf(want, sizeof(want), "%s:%d: %s", tc_path, line, msg);
	if (ret != -EINVAL || strcmp(err, want) != 0)
		fail_msg("ret %d\n got: %s\nwant: %s\n--- yaml:\n%s", ret, err, want, text);
	assert_ptr_equal(c, sentinel);
	assert_null(strchr(err, '\n'));
}

static void tc_expect_defaults(const struct agent_config *c)
{
	char host[HOST_NAME_MAX + 1] = "";

	assert_int_equal(gethostname(host, sizeof(host)), 0);
	assert_string_equal(c->node_name, host);
	assert_string_equal(c->data_dir, "/var/lib/sessrec");
	assert_string_equal(c->audit_log, "/var/log/sessrec/audit.log");
	assert_string_equal(c->socket, "/run/sessrec/agent.sock");
	assert_null(c->socket_group);
	assert_string_equal(c->metrics_listen, "127.0.0.1:9464");
	assert_string_equal(c->log_level, "info");
	assert_null(c->labels);
	assert_int_equal(c->n_labels, 0);
	assert_int_equal(c->part_size, 1024 * 1024);
	assert_int_equal(c->part_interval, 5);
	assert_true(c->er.enabled);
	assert_int_equal(c->er.command_buffer_size, 8);
	assert_int_equal(c->er.disk_buffer_size, 128);
	assert_int_equal(c->er.network_buffer_size, 8);
	assert_int_equal(c->er.terminal_buffer_size, 1024);
	assert_string_equal(c->er.cgroup_path, "/cgroup2");
	assert_string_equal(c->er.root_path, "sessrec");
	assert_string_equal(c->er.pin_path, "/sys/fs/bpf/sessrec");
	assert_null(c->collector.url);
	assert_null(c->collector.ca_file);
	assert_null(c->collector.cert_file);
	assert_null(c->collector.key_file);
	assert_string_equal(c->collector.mode, "async");
	assert_int_equal(c->collector.sync_grace_period, 30);
	assert_false(agent_config_has_collector(c));
	assert_false(agent_config_sync(c));
}

/* ------------------------------------------------------------ defaults */

static void test_defaults(void **state)
{
	struct agent_config *c = NULL;
	char err[128] = "junk";

	assert_int_equal(agent_config_defaults(&c), 0);
	tc_expect_defaults(c);
	agent_config_free(c);

	c = NULL;
	assert_int_equal(agent_config_load(NULL, &c, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	tc_expect_defaults(c);
	agent_config_free(c);
	agent_config_free(NULL);
}

static void test_empty_file(void **state)
{
	static const char *const empty[] = {
	    "",
	    "\n\n",
	    "# nothing but a comment\n   \n# and another\n",
	    "---\n",
	    "---\n...\n",
	    "~\n",
	    "enhanced_recording:\nlabels:\n",
	};

	for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
		struct agent_config *c = tc_load_ok(empty[i]);

		tc_expect_defaults(c);
		agent_config_free(c);
	}
}

/* ------------------------------------------------------------ valid files */

static const char tc_full[] = "# every key, none at its default\n"
			      "node_name: node-7.example.com\n"
			      "data_dir: /srv/sessrec\n"
			      "audit_log: /srv/log/audit.log\n"
			      "socket: /run/sr/agent.sock\n"
			      "socket_group: sessrec\n"
			      "metrics_listen: \"[::1]:9100\"\n"
			      "log_level: debug\n"
			      "labels:\n"
			      "  env: prod\n"
			      "  team/owner: sre-core\n"
			      "  k8s.io_zone-a: \"eu west 1\"\n"
			      "part_size: 2MiB\n"
			      "part_interval: 1m\n"
			      "enhanced_recording:\n"
			      "  enabled: no\n"
			      "  command_buffer_size: 16\n"
			      "  disk_buffer_size: 256\n"
			      "  network_buffer_size: 32\n"
			      "  terminal_buffer_size: 65536\n"
			      "  cgroup_path: /sys/fs/cgroup\n"
			      "  root_path: system.slice/sessrec\n"
			      "collector:\n"
			      "  url: https://collector.example:8443/sessrec\n"
			      "  ca_file: /etc/sessrec/ca.crt\n"
			      "  cert_file: /etc/sessrec/node.crt\n"
			      "  key_file: /etc/sessrec/node.key\n"
			      "  mode: sync\n"
			      "  sync_grace_period: 2m\n";

static void tc_expect_full(const struct agent_config *c)
{
	assert_string_equal(c->node_name, "node-7.example.com");
	assert_string_equal(c->data_dir, "/srv/sessrec");
	assert_string_equal(c->audit_log, "/srv/log/audit.log");
	assert_string_equal(c->socket, "/run/sr/agent.sock");
	assert_string_equal(c->socket_group, "sessrec");
	assert_string_equal(c->metrics_listen, "[::1]:9100");
	assert_string_equal(c->log_level, "debug");
	assert_int_equal(c->n_labels, 3);
	assert_string_equal(c->labels[0].key, "env");
	assert_string_equal(c->labels[0].value, "prod");
	assert_string_equal(c->labels[1].key, "team/owner");
	assert_string_equal(c->labels[1].value, "sre-core");
	assert_string_equal(c->labels[2].key, "k8s.io_zone-a");
	assert_string_equal(c->labels[2].value, "eu west 1");
	assert_int_equal(c->part_size, 2 * 1024 * 1024);
	assert_int_equal(c->part_interval, 60);
	assert_false(c->er.enabled);
	assert_int_equal(c->er.command_buffer_size, 16);
	assert_int_equal(c->er.disk_buffer_size, 256);
	assert_int_equal(c->er.network_buffer_size, 32);
	assert_int_equal(c->er.terminal_buffer_size, 65536);
	assert_string_equal(c->er.cgroup_path, "/sys/fs/cgroup");
	assert_string_equal(c->er.root_path, "system.slice/sessrec");
	assert_string_equal(c->collector.url, "https://collector.example:8443/sessrec");
	assert_string_equal(c->collector.ca_file, "/etc/sessrec/ca.crt");
	assert_string_equal(c->collector.cert_file, "/etc/sessrec/node.crt");
	assert_string_equal(c->collector.key_file, "/etc/sessrec/node.key");
	assert_string_equal(c->collector.mode, "sync");
	assert_int_equal(c->collector.sync_grace_period, 120);
	assert_true(agent_config_has_collector(c));
	assert_true(agent_config_sync(c));
}

static void test_full_file(void **state)
{
	struct agent_config *c = tc_load_ok(tc_full);

	tc_expect_full(c);
	agent_config_free(c);
}

/* A partial file keeps the defaults of everything it does not name. */
static void test_partial_file(void **state)
{
	struct agent_config *c = tc_load_ok("enhanced_recording:\n  disk_buffer_size: 64\n");

	assert_int_equal(c->er.disk_buffer_size, 64);
	assert_true(c->er.enabled);
	assert_int_equal(c->er.command_buffer_size, 8);
	assert_string_equal(c->er.cgroup_path, "/cgroup2");
	assert_string_equal(c->data_dir, "/var/lib/sessrec");
	agent_config_free(c);
}

static void test_scalar_forms(void **state)
{
	struct agent_config *c;

	c = tc_load_ok("part_size: 4096\npart_interval: 3600\nenhanced_recording: {enabled: "
		       "TRUE}\n");
	assert_int_equal(c->part_size, 4096);
	assert_int_equal(c->part_interval, 3600);
	assert_true(c->er.enabled);
	agent_config_free(c);

	c = tc_load_ok("part_size: 32M\npart_interval: 1h\nenhanced_recording:\n  enabled: off\n");
	assert_int_equal(c->part_size, 32u << 20);
	assert_int_equal(c->part_interval, 3600);
	assert_false(c->er.enabled);
	agent_config_free(c);

	c = tc_load_ok("part_size: 16 KiB\npart_interval: 30s\n");
	assert_int_equal(c->part_size, 16384);
	assert_int_equal(c->part_interval, 30);
	agent_config_free(c);

	/* A quoted number is still a number; flow style works like block style. */
	c = tc_load_ok("{part_size: \"8K\", enhanced_recording: {disk_buffer_size: '1'}}");
	assert_int_equal(c->part_size, 8192);
	assert_int_equal(c->er.disk_buffer_size, 1);
	agent_config_free(c);

	/* Strings: any scalar, a bare number included; "" turns metrics off. */
	c = tc_load_ok("node_name: 12345\nmetrics_listen: \"\"\nsocket_group: ~\n");
	assert_string_equal(c->node_name, "12345");
	assert_string_equal(c->metrics_listen, "");
	assert_null(c->socket_group);
	agent_config_free(c);

	c = tc_load_ok("socket_group: 1001\nmetrics_listen: localhost:1\n");
	assert_string_equal(c->socket_group, "1001");
	assert_string_equal(c->metrics_listen, "localhost:1");
	agent_config_free(c);
}

/* ------------------------------------------------------------ errors */

struct tc_case {
	const char *yaml;
	int line;
	const char *msg;
};

static void tc_run_cases(const struct tc_case *cases, size_t n)
{
	for (size_t i = 0; i < n; i++)
		tc_load_fail(cases[i].yaml, cases[i].line, cases[i].msg);
}

#define TC_RUN(cases) tc_run_cases(cases, sizeof(cases) / sizeof(cases[0]))

static void test_unknown_keys(void **state)
{
	static const struct tc_case cases[] = {
	    {"data_dir: /x\nbufer_size: 3\n", 2, "unknown key 'bufer_size'"},
	    {"enhanced_recording:\n  enabled: true\n\n  bufer_size: 8\n", 4,
	     "unknown key 'bufer_size' in enhanced_recording"},
	    {"Data_Dir: /x\n", 1, "unknown key 'Data_Dir'"},
	    {"collector:\n  url: http://127.0.0.1:1\n  urll: x\n", 3,
	     "unknown key 'urll' in collector"},
	    {"\"a\\nb\": 1\n", 1, "unknown key 'a?b'"},
	    {"xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx: 1\n", 1,
	     "unknown key 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...'"},
	    {"[a, b]: 1\n", 1, "expected a key, got a list"},
	    {"~: 1\n", 1, "expected a key, got an empty value"},
	};

	TC_RUN(cases);
}

static void test_wrong_types(void **state)
{
	static const struct tc_case cases[] = {
	    {"enhanced_recording:\n  disk_buffer_size: lots\n", 2,
	     "expected a number for 'disk_buffer_size' in enhanced_recording, got 'lots'"},
	    {"enhanced_recording:\n  disk_buffer_size: 0x10\n", 2,
	     "expected a number for 'disk_buffer_size' in enhanced_recording, got '0x10'"},
	    {"enhanced_recording:\n  disk_buffer_size: -1\n", 2,
	     "expected a number for 'disk_buffer_size' in enhanced_recording, got '-1'"},
	    {"enhanced_recording:\n  disk_buffer_size: 8 KiB\n", 2,
	     "expected a number for 'disk_buffer_size' in enhanced_recording, got '8 KiB'"},
	    {"enhanced_recording:\n  disk_buffer_size:\n", 2,
	     "expected a number for 'disk_buffer_size' in enhanced_recording, got an empty value"},
	    {"enhanced_recording:\n  enabled: maybe\n", 2,
	     "expected true or false for 'enabled' in enhanced_recording, got 'maybe'"},
	    {"part_size: 1MB\n", 1,
	     "expected a size (bytes, or with K, M or G) for 'part_size', got '1MB'"},
	    {"part_interval: [1, 2]\n", 1,
	     "expected a duration (seconds, or with s, m or h) for 'part_interval', got a list"},
	    {"part_interval: 5d\n", 1,
	     "expected a duration (seconds, or with s, m or h) for 'part_interval', got '5d'"},
	    {"data_dir:\n", 1, "expected a string for 'data_dir', got an empty value"},
	    {"data_dir: ~\n", 1, "expected a string for 'data_dir', got an empty value"},
	    {"data_dir:\n  a: b\n", 2, "expected a string for 'data_dir', got a mapping"},
	    {"log_level: [info]\n", 1, "expected a string for 'log_level', got a list"},
	    {"labels: [a, b]\n", 1, "expected a mapping of strings for 'labels', got a list"},
	    {"labels: env=prod\n", 1, "expected a mapping of strings for 'labels', got 'env=prod'"},
	    {"labels:\n  env:\n    x: y\n", 3,
	     "expected a string for 'env' in labels, got a mapping"},
	    {"labels:\n  env: [a]\n", 2, "expected a string for 'env' in labels, got a list"},
	    {"enhanced_recording: 5\n", 1, "expected a mapping for 'enhanced_recording', got '5'"},
	    {"enhanced_recording:\n  - enabled\n", 2,
	     "expected a mapping for 'enhanced_recording', got a list"},
	};

	TC_RUN(cases);
}

static void test_out_of_range(void **state)
{
	static const struct tc_case cases[] = {
	    {"part_size: 1024\n", 1, "'part_size' must be between 4096 and 33554432, got 1024"},
	    {"part_size: 0\n", 1, "'part_size' must be between 4096 and 33554432, got 0"},
	    {"part_size: 128MiB\n", 1, "'part_size' must be between 4096 and 33554432, got 128MiB"},
	    {"part_size: 4G\n", 1, "'part_size' must be between 4096 and 33554432, got 4G"},
	    {"part_size: 99999999999999999999999\n", 1,
	     "'part_size' must be between 4096 and 33554432, got 99999999999999999999999"},
	    {"part_size: 18446744073709551615G\n", 1,
	     "'part_size' must be between 4096 and 33554432, got 18446744073709551615G"},
	    {"part_interval: 0\n", 1, "'part_interval' must be between 1 and 3600, got 0"},
	    {"part_interval: 3601\n", 1, "'part_interval' must be between 1 and 3600, got 3601"},
	    {"part_interval: 2h\n", 1, "'part_interval' must be between 1 and 3600, got 2h"},
	    {"\n\nenhanced_recording:\n  disk_buffer_size: 100\n", 4,
	     "'disk_buffer_size' in enhanced_recording must be a power of two, got 100"},
	    {"enhanced_recording:\n  command_buffer_size: 0\n", 2,
	     "'command_buffer_size' in enhanced_recording must be between 1 and 65536, got 0"},
	    {"enhanced_recording:\n  terminal_buffer_size: 131072\n", 2,
	     "'terminal_buffer_size' in enhanced_recording must be between 1 and 65536, got "
	     "131072"},
	    {"enhanced_recording:\n  network_buffer_size: 4294967296\n", 2,
	     "'network_buffer_size' in enhanced_recording must be between 1 and 65536, got "
	     "4294967296"},
	};

	TC_RUN(cases);
}

static void test_bad_values(void **state)
{
	char longsock[256];
	static const struct tc_case cases[] = {
	    {"log_level: verbose\n", 1,
	     "invalid value 'verbose' for 'log_level', expected one of: error, warn, info, debug"},
	    {"log_level: INFO\n", 1,
	     "invalid value 'INFO' for 'log_level', expected one of: error, warn, info, debug"},
	    {"data_dir: var/lib/sessrec\n", 1,
	     "invalid value for 'data_dir': must be an absolute path"},
	    {"audit_log: \"\"\n", 1, "invalid value for 'audit_log': must be an absolute path"},
	    {"enhanced_recording:\n  cgroup_path: cgroup2\n", 2,
	     "invalid value for 'cgroup_path' in enhanced_recording: must be an absolute path"},
	    {"enhanced_recording:\n  pin_path: /tmp/pins\n", 2,
	     "invalid value for 'pin_path' in enhanced_recording: must be /sys/fs/bpf/NAME"},
	    {"enhanced_recording:\n  pin_path: /sys/fs/bpf/a/b\n", 2,
	     "invalid value for 'pin_path' in enhanced_recording: must be /sys/fs/bpf/NAME"},
	    {"node_name: \"\"\n", 1, "invalid value for 'node_name': must be 1 to 253 characters"},
	    {"node_name: a b\n", 1,
	     "invalid value for 'node_name': must not contain spaces or control characters"},
	    {"socket_group: \"\"\n", 1,
	     "invalid value for 'socket_group': must be a group name or id"},
	};
	static const char *const bad_root[] = {
	    "..", "../x", "a/../b", "a/..", "/sessrec", "", ".", "./a", "a//b", "a/",
	};
	static const char *const bad_listen[] = {
	    "9464",
	    ":9464",
	    "host:",
	    "host:0",
	    "host:65536",
	    "host:http",
	    "::1:9464",
	    "[::1]9464",
	    "[]:9464",
	    "a b:1",
	    "[::1:9464",
	    "[[::1]]:9464",
	    "host:99999999999999999999",
	};
	static const char *const good_root[] = {"a", "a/b", "sessrec.slice", "...", "a/.b"};
	static const char *const good_listen[] = {"", "0.0.0.0:1", "[::]:65535", "metrics.local:9"};
	char yaml[512];

	TC_RUN(cases);
	for (size_t i = 0; i < sizeof(bad_root) / sizeof(bad_root[0]); i++) {
		snprintf(yaml, sizeof(yaml), "enhanced_recording:\n  root_path: \"%s\"\n",
			 bad_root[i]);
		tc_load_fail(yaml, 2,
			     "invalid value for 'root_path' in enhanced_recording: must be a "
			     "relative path below cgroup_path (no leading /, no . or ..)");
	}
	for (size_t i = 0; i < sizeof(good_root) / sizeof(good_root[0]); i++) {
		struct agent_config *c;

		snprintf(yaml, sizeof(yaml), "enhanced_recording:\n  root_path: \"%s\"\n",
			 good_root[i]);
		c = tc_load_ok(yaml);
		assert_string_equal(c->er.root_path, good_root[i]);
		agent_config_free(c);
	}
	for (size_t i = 0; i < sizeof(bad_listen) / sizeof(bad_listen[0]); i++) {
		snprintf(yaml, sizeof(yaml), "\nmetrics_listen: \"%s\"\n", bad_listen[i]);
		tc_load_fail(yaml, 2,
			     "invalid value for 'metrics_listen': must be host:port (IPv6 as "
			     "[addr]:port), or \"\" to disable");
	}
	for (size_t i = 0; i < sizeof(good_listen) / sizeof(good_listen[0]); i++) {
		struct agent_config *c;

		snprintf(yaml, sizeof(yaml), "metrics_listen: \"%s\"\n", good_listen[i]);
		c = tc_load_ok(yaml);
		assert_string_equal(c->metrics_listen, good_listen[i]);
		agent_config_free(c);
	}

	/* sun_path holds 107 bytes and the NUL */
	memset(longsock, 'a', sizeof(longsock));
	longsock[0] = '/';
	longsock[108] = '\0';
	snprintf(yaml, sizeof(yaml), "socket: %s\n", longsock);
	tc_load_fail(yaml, 1,
		     "invalid value for 'socket': longer than 107 bytes, the limit for a Unix "
		     "socket");
	longsock[107] = '\0';
	snprintf(yaml, sizeof(yaml), "socket: %s\n", longsock);
	{
		struct agent_config *c = tc_load_ok(yaml);

		assert_int_equal(strlen(c->socket), 107);
		agent_config_free(c);
	}
}

static void test_duplicates(void **state)
{
	static const struct tc_case cases[] = {
	    {"part_size: 8192\ndata_dir: /x\npart_size: 8192\n", 3,
	     "duplicate key 'part_size' (first at line 1)"},
	    {"enhanced_recording:\n  enabled: true\n  enabled: false\n", 3,
	     "duplicate key 'enabled' in enhanced_recording (first at line 2)"},
	    {"enhanced_recording:\n  enabled: true\nenhanced_recording:\n  enabled: true\n", 3,
	     "duplicate key 'enhanced_recording' (first at line 1)"},
	    {"labels:\n  env: a\n  team: b\n  env: c\n", 4,
	     "duplicate key 'env' in labels (first at line 2)"},
	    {"{part_size: 8192, part_size: 8192}\n", 1,
	     "duplicate key 'part_size' (first at line 1)"},
	};

	TC_RUN(cases);
}

static void test_yaml_syntax(void **state)
{
	static const struct tc_case cases[] = {
	    /* the value "info bad" alone would be refused too: syntax comes first */
	    {"data_dir: /x\nlog_level: info\n  bad: 1\n", 3,
	     "invalid YAML: mapping values are not allowed in this context"},
	    {"data_dir: /x\nlog_level: info\n bad\n", 2,
	     "invalid value 'info bad' for 'log_level', expected one of: error, warn, info, debug"},
	    {"data_dir: /x\nenhanced_recording:\n\tenabled: true\n", 3,
	     "invalid YAML: found character that cannot start any token (while scanning for the "
	     "next token at line 3)"},
	    {"data_dir: \"/x\nlog_level: info\n", 3,
	     "invalid YAML: found unexpected end of stream (while scanning a quoted scalar at "
	     "line 1)"},
	    {"labels: {a: b\nlog_level: info\n", 2,
	     "invalid YAML: did not find expected ',' or '}' (while parsing a flow mapping at "
	     "line 1)"},
	    {"data_dir: /x\n- item\n", 2,
	     "invalid YAML: did not find expected key (while parsing a block mapping at line 1)"},
	    {"node_name: ok\nlog_level: \xff\n", 2, "invalid YAML: invalid leading UTF-8 octet"},
	    {"part_size: 8192\n---\npart_size: 8192\n", 2, "only one YAML document is allowed"},
	    {"labels: &l\n  a: b\nnode_name: *l\n", 3, "YAML aliases are not supported"},
	    {"node_name: \"a\\0b\"\n", 1, "NUL character in a value"},
	};

	TC_RUN(cases);
}

static void test_top_level(void **state)
{
	static const struct tc_case cases[] = {
	    {"- a\n- b\n", 1, "the top level must be a mapping, got a list"},
	    {"# comment\nhello\n", 2, "the top level must be a mapping, got 'hello'"},
	    {"42\n", 1, "the top level must be a mapping, got '42'"},
	    {"\"\"\n", 1, "the top level must be a mapping, got ''"},
	};

	TC_RUN(cases);
}

static void test_labels(void **state)
{
	char yaml[1024], key64[65], val256[257];
	struct agent_config *c;

	c = tc_load_ok("labels:\n  a: \"\"\n  b:\n  A-Z_a.z/0-9: 'x: y # z'\n  n: 1\n");
	assert_int_equal(c->n_labels, 4);
	assert_string_equal(c->labels[0].key, "a");
	assert_string_equal(c->labels[0].value, "");
	assert_string_equal(c->labels[1].key, "b");
	assert_string_equal(c->labels[1].value, "");
	assert_string_equal(c->labels[2].key, "A-Z_a.z/0-9");
	assert_string_equal(c->labels[2].value, "x: y # z");
	assert_string_equal(c->labels[3].value, "1");
	agent_config_free(c);

	c = tc_load_ok("labels: {}\n");
	assert_int_equal(c->n_labels, 0);
	assert_null(c->labels);
	agent_config_free(c);

	memset(key64, 'k', sizeof(key64));
	key64[63] = '\0';
	memset(val256, 'v', sizeof(val256));
	val256[255] = '\0';
	snprintf(yaml, sizeof(yaml), "labels:\n  %s: %s\n", key64, val256);
	c = tc_load_ok(yaml);
	assert_int_equal(strlen(c->labels[0].key), 63);
	assert_int_equal(strlen(c->labels[0].value), 255);
	agent_config_free(c);

	key64[63] = 'k';
	key64[64] = '\0';
	snprintf(yaml, sizeof(yaml), "labels:\n  ok: 1\n  %s: v\n", key64);
	tc_load_fail(
	    yaml, 3,
	    "invalid key 'kkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkkk' in "
	    "labels: must be 1 to 63 characters");
	val256[255] = 'v';
	val256[256] = '\0';
	snprintf(yaml, sizeof(yaml), "labels:\n  env: %s\n", val256);
	tc_load_fail(yaml, 2, "invalid value for 'env' in labels: longer than 255 characters");

	tc_load_fail("labels:\n  \"\": x\n", 2,
		     "invalid key '' in labels: must be 1 to 63 characters");
	tc_load_fail("labels:\n  \"my key\": x\n", 2,
		     "invalid key 'my key' in labels: may only contain A-Z a-z 0-9 _ . / -");
	tc_load_fail("labels:\n  \"k=v\": x\n", 2,
		     "invalid key 'k=v' in labels: may only contain A-Z a-z 0-9 _ . / -");
	tc_load_fail("labels:\n  \"\xc3\xa9quipe\": x\n", 2,
		     "invalid key '\xc3\xa9quipe' in labels: may only contain A-Z a-z 0-9 _ . / -");
	tc_load_fail("labels:\n  env: \"a\\nb\"\n", 2,
		     "invalid value for 'env' in labels: must not contain control characters");
	tc_load_fail("labels:\n  [x]: y\n", 2, "expected a key in labels, got a list");
}

static void test_too_many_labels(void **state)
{
	size_t cap = 16 + 129 * 16;
	char *yaml = malloc(cap);
	size_t off;
	struct agent_config *c;

	assert_non_null(yaml);
	off = (size_t)snprintf(yaml, cap, "labels:\n");
	for (int i = 0; i < 128; i++)
		off += (size_t)snprintf(yaml + off, cap - off, "  k%d: v\n", i);
	c = tc_load_ok(yaml);
	assert_int_equal(c->n_labels, 128);
	assert_string_equal(c->labels[127].key, "k127");
	agent_config_free(c);
	snprintf(yaml + off, cap - off, "  k128: v\n");
	tc_load_fail(yaml, 130, "too many entries in labels (at most 128)");
	free(yaml);
}

/* ------------------------------------------------------------ dump */

static char *tc_dump(const struct agent_config *c)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	assert_non_null(f);
	agent_config_dump(c, f);
	assert_int_equal(fclose(f), 0);
	return buf;
}

static void tc_expect_same(const struct agent_config *a, const struct agent_config *b)
{
	assert_string_equal(a->node_name, b->node_name);
	assert_string_equal(a->data_dir, b->data_dir);
	assert_string_equal(a->audit_log, b->audit_log);
	assert_string_equal(a->socket, b->socket);
	if (a->socket_group || b->socket_group)
		assert_string_equal(a->socket_group, b->socket_group);
	assert_string_equal(a->metrics_listen, b->metrics_listen);
	assert_string_equal(a->log_level, b->log_level);
	assert_int_equal(a->n_labels, b->n_labels);
	for (size_t i = 0; i < a->n_labels; i++) {
		assert_string_equal(a->labels[i].key, b->labels[i].key);
		assert_string_equal(a->labels[i].value, b->labels[i].value);
	}
	assert_int_equal(a->part_size, b->part_size);
	assert_int_equal(a->part_interval, b->part_interval);
	assert_int_equal(a->er.enabled, b->er.enabled);
	assert_int_equal(a->er.command_buffer_size, b->er.command_buffer_size);
	assert_int_equal(a->er.disk_buffer_size, b->er.disk_buffer_size);
	assert_int_equal(a->er.network_buffer_size, b->er.network_buffer_size);
	assert_int_equal(a->er.terminal_buffer_size, b->er.terminal_buffer_size);
	assert_string_equal(a->er.cgroup_path, b->er.cgroup_path);
	assert_string_equal(a->er.root_path, b->er.root_path);
}

static void tc_round_trip(const struct agent_config *c)
{
	struct agent_config *back;
	char *y1, *y2;

	y1 = tc_dump(c);
	back = tc_load_ok(y1);
	tc_expect_same(c, back);
	y2 = tc_dump(back);
	assert_string_equal(y1, y2);
	free(y1);
	free(y2);
	agent_config_free(back);
}

static void test_dump_round_trip(void **state)
{
	struct agent_config *c;
	char *y;

	assert_int_equal(agent_config_defaults(&c), 0);
	y = tc_dump(c);
	assert_non_null(strstr(y, "\nsocket_group: null\n"));
	assert_non_null(strstr(y, "\nlabels: {}\n"));
	assert_non_null(strstr(y, "\npart_size: 1048576\n"));
	assert_non_null(strstr(y, "\nenhanced_recording:\n  enabled: true\n"));
	free(y);
	tc_round_trip(c);
	agent_config_free(c);

	c = tc_load_ok(tc_full);
	tc_round_trip(c);
	agent_config_free(c);

	/* Strings YAML would read as something else unless quoted. */
	c = tc_load_ok("node_name: \"h\\u00e9t\\u00e9ro\\\"q\\\\b\\u2028#\"\n"
		       "socket_group: \"yes\"\n"
		       "metrics_listen: \"\"\n"
		       "labels:\n"
		       "  a: \"null\"\n"
		       "  b: \"~\"\n"
		       "  c: \"- x: y # z\"\n"
		       "  d: \"  lead and trail  \"\n"
		       "  e: \"'\\u00e9\\U0001F600\\u0085\\u00a0'\"\n"
		       "  f: \"\"\n"
		       "  g: \"123\"\n"
		       "  h: \"\\x80\\ufeff\"\n");
	assert_string_equal(c->socket_group, "yes");
	assert_string_equal(c->labels[7].value, "\xc2\x80\xef\xbb\xbf");
	tc_round_trip(c);
	agent_config_free(c);
}

/* ------------------------------------------------------------ files */

static void test_huge_file(void **state)
{
	size_t len = CONF_MAX_SIZE + 1;
	char *big = malloc(len);
	struct agent_config *c = NULL;
	char err[256], want[256];

	assert_non_null(big);
	/* all comments: valid YAML, refused for its size alone */
	memset(big, '#', len);
	for (size_t i = 79; i < len; i += 80)
		big[i] = '\n';
	big[len - 1] = '\n';
	assert_int_equal(tc_load_len(big, len, &c, err, sizeof(err)), -EFBIG);
	assert_null(c);
	snprintf(want, sizeof(want), "%s: larger than 1048576 bytes", tc_path);
	assert_string_equal(err, want);

	/* at the cap exactly: read and accepted */
	big[len - 2] = '\n';
	assert_int_equal(tc_load_len(big, len - 1, &c, err, sizeof(err)), 0);
	tc_expect_defaults(c);
	agent_config_free(c);

	/* the buffer API has the same cap */
	assert_int_equal(conf_parse_buffer(NULL, NULL, "mem.yaml", big, len, err, sizeof(err)),
			 -EFBIG);
	assert_string_equal(err, "mem.yaml: larger than 1048576 bytes");
	free(big);
}

static void test_unreadable(void **state)
{
	struct agent_config *c = NULL;
	char err[256];

	assert_int_equal(agent_config_load("/nonexistent/sessrec/agent.yaml", &c, err, sizeof(err)),
			 -ENOENT);
	assert_null(c);
	assert_string_equal(err, "/nonexistent/sessrec/agent.yaml: No such file or directory");

	assert_int_equal(agent_config_load("/tmp", &c, err, sizeof(err)), -EISDIR);
	assert_string_equal(err, "/tmp: Is a directory");
	assert_null(c);
}

/* No err buffer, or a tiny one, is fine: the message is cut, never overrun. */
static void test_small_err_buffer(void **state)
{
	struct agent_config *c = NULL;
	char err[8];

	assert_int_equal(tc_load("bogus: 1\n", &c, NULL, 0), -EINVAL);
	memset(err, 'x', sizeof(err));
	assert_int_equal(tc_load("bogus: 1\n", &c, err, sizeof(err)), -EINVAL);
	assert_int_equal(strlen(err), sizeof(err) - 1);
	assert_memory_equal(err, "/tmp/se", 7);
	assert_int_equal(agent_config_load("/nonexistent", &c, err, 1), -ENOENT);
	assert_string_equal(err, "");
	assert_null(c);
}

/*
 * deploy/agent.yaml shows every key at its default: as shipped (all comments)
 * and with every "#key: value" line uncommented, it must load as the defaults.
 */
static void test_example_file(void **state)
{
	static const char *const paths[] = {"deploy/agent.yaml", "../../deploy/agent.yaml"};
	struct agent_config *c = NULL;
	char *text = NULL, *out, *o;
	const char *found = NULL;
	char err[512];
	int keys = 0;

	for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]) && !found; i++) {
		if (access(paths[i], R_OK) == 0)
			found = paths[i];
	}
	if (!found)
		skip();
	assert_int_equal(agent_config_load(found, &c, err, sizeof(err)), 0);
	tc_expect_defaults(c);
	agent_config_free(c);

	{
		FILE *f = fopen(found, "r");
		long n;

		assert_non_null(f);
		assert_int_equal(fseek(f, 0, SEEK_END), 0);
		n = ftell(f);
		assert_true(n > 0 && n < 65536);
		assert_int_equal(fseek(f, 0, SEEK_SET), 0);
		text = calloc(1, (size_t)n + 1);
		assert_non_null(text);
		assert_int_equal(fread(text, 1, (size_t)n, f), (size_t)n);
		assert_int_equal(fclose(f), 0);
	}
	out = calloc(1, strlen(text) + 1);
	assert_non_null(out);
	o = out;
	for (const char *p = text; *p;) {
		const char *eol = strchr(p, '\n');
		size_t len = eol ? (size_t)(eol - p) + 1 : strlen(p);
		size_t ind = strspn(p, " ");

		if (p[ind] == '#' && p[ind + 1] >= 'a' && p[ind + 1] <= 'z') {
			memcpy(o, p, ind);
			memcpy(o + ind, p + ind + 1, len - ind - 1);
			o += len - 1;
			keys++;
		} else {
			memcpy(o, p, len);
			o += len;
		}
		p += len;
	}
	/* every key but node_name, whose default (the host name) cannot be written down */
	assert_int_equal(keys, 25);
	c = tc_load_ok(out);
	tc_expect_defaults(c);
	agent_config_free(c);
	free(out);
	free(text);
}

/* ------------------------------------------------------------ conf.h directly */

struct tc_gen {
	char *name;
	char *opt;
	char **items;
	size_t n_items;
	bool flag;
	uint32_t size;
	uint32_t secs;
	struct {
		uint32_t count;
		struct {
			char *deep;
		} inner;
	} outer;
};

#define TG struct tc_gen
static const struct conf_key tc_gen_inner[] = {
    CONF_STRING("deep", TG, outer.inner.deep, "d"),
    CONF_END,
};
static const struct conf_key tc_gen_outer[] = {
    CONF_UINT32("count", TG, outer.count, 3, 0, 0),
    CONF_SECTION("inner", tc_gen_inner),
    CONF_END,
};
static const struct conf_key tc_gen_keys[] = {
    CONF_STRING("name", TG, name, "n", .check = conf_check_nonempty),
    CONF_STRING("opt", TG, opt, NULL, .flags = CONF_NULLABLE),
    CONF_STRLIST("items", TG, items, n_items, .check = conf_check_abs_path, .max_items = 3),
    CONF_BOOL("flag", TG, flag, false),
    CONF_SIZE("size", TG, size, 0, 0, 0),
    CONF_DURATION("secs", TG, secs, 0, 0, 0),
    CONF_SECTION("outer", tc_gen_outer),
    CONF_END,
};
/* Refers to itself: only the depth cap ends it. */
static const struct conf_key tc_gen_loop[] = {
    CONF_SECTION("d", tc_gen_loop),
    CONF_END,
};
#undef TG

static int tc_gen_parse(const char *yaml, struct tc_gen *g, char *err, size_t errlen)
{
	memset(g, 0, sizeof(*g));
	assert_int_equal(conf_defaults(tc_gen_keys, g), 0);
	return conf_parse_buffer(tc_gen_keys, g, "gen.yaml", yaml, strlen(yaml), err, errlen);
}

static void test_conf_generic(void **state)
{
	struct tc_gen g, back;
	char err[256];
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	assert_int_equal(tc_gen_parse("", &g, err, sizeof(err)), 0);
	assert_string_equal(g.name, "n");
	assert_null(g.opt);
	assert_null(g.items);
	assert_int_equal(g.outer.count, 3);
	assert_string_equal(g.outer.inner.deep, "d");
	conf_free(tc_gen_keys, &g);
	assert_null(g.name);
	assert_null(g.outer.inner.deep);

	assert_int_equal(tc_gen_parse("name: x\nopt: y\nitems: [/a, \"/b c\"]\nflag: Yes\n"
				      "size: 3G\nsecs: 90m\nouter:\n  count: 4294967295\n"
				      "  inner:\n    deep: z\n",
				      &g, err, sizeof(err)),
			 0);
	assert_string_equal(g.opt, "y");
	assert_int_equal(g.n_items, 2);
	assert_string_equal(g.items[1], "/b c");
	assert_true(g.flag);
	assert_int_equal(g.size, 3u << 30);
	assert_int_equal(g.secs, 5400);
	assert_int_equal(g.outer.count, UINT32_MAX);
	assert_string_equal(g.outer.inner.deep, "z");

	f = open_memstream(&buf, &len);
	assert_non_null(f);
	assert_int_equal(conf_dump(tc_gen_keys, &g, f), 0);
	assert_int_equal(fclose(f), 0);
	assert_string_equal(buf, "name: \"x\"\nopt: \"y\"\nitems:\n  - \"/a\"\n  - \"/b c\"\n"
				 "flag: true\nsize: 3221225472\nsecs: 5400\nouter:\n  count: "
				 "4294967295\n  inner:\n    deep: \"z\"\n");
	assert_int_equal(tc_gen_parse(buf, &back, err, sizeof(err)), 0);
	assert_int_equal(back.n_items, 2);
	assert_string_equal(back.items[0], "/a");
	assert_int_equal(back.size, g.size);
	assert_string_equal(back.outer.inner.deep, "z");
	conf_free(tc_gen_keys, &back);
	free(buf);

	/* a later empty value clears a list; null clears a nullable string */
	assert_int_equal(conf_parse_buffer(tc_gen_keys, &g, "gen.yaml", "items:\nopt: null\n", 17,
					   err, sizeof(err)),
			 0);
	assert_null(g.items);
	assert_int_equal(g.n_items, 0);
	assert_null(g.opt);
	conf_free(tc_gen_keys, &g);
	conf_free(tc_gen_keys, NULL);

	assert_int_equal(tc_gen_parse("outer:\n  inner:\n    deeper: 1\n", &g, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "gen.yaml:3: unknown key 'deeper' in outer.inner");
	conf_free(tc_gen_keys, &g);
	assert_int_equal(tc_gen_parse("outer:\n  count: 4294967296\n", &g, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "gen.yaml:2: 'count' in outer must be between 0 and 4294967295, "
				 "got 4294967296");
	conf_free(tc_gen_keys, &g);
	assert_int_equal(tc_gen_parse("items: [/a, b]\n", &g, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "gen.yaml:1: invalid item in 'items': must be an absolute path");
	conf_free(tc_gen_keys, &g);
	assert_int_equal(tc_gen_parse("items:\n  - /a\n  - [x]\n", &g, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "gen.yaml:3: expected a string in 'items', got a list");
	conf_free(tc_gen_keys, &g);
	assert_int_equal(tc_gen_parse("items: [/a, /b, /c, /d]\n", &g, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "gen.yaml:1: too many entries in 'items' (at most 3)");
	conf_free(tc_gen_keys, &g);
	assert_int_equal(tc_gen_parse("items: /a\n", &g, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "gen.yaml:1: expected a list of strings for 'items', got '/a'");
	conf_free(tc_gen_keys, &g);
	assert_int_equal(tc_gen_parse("name: \"\"\n", &g, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "gen.yaml:1: invalid value for 'name': must not be empty");
	conf_free(tc_gen_keys, &g);
	assert_int_equal(tc_gen_parse("name:\n", &g, err, sizeof(err)), -EINVAL);
	assert_string_equal(err, "gen.yaml:1: expected a string for 'name', got an empty value");
	conf_free(tc_gen_keys, &g);

	/* a name with a newline still gives one line */
	assert_int_equal(conf_parse_buffer(tc_gen_keys, &g, "a\nb", "x: 1", 4, err, sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "a?b:1: unknown key 'x'");
}

static void test_conf_depth(void **state)
{
	char yaml[1024] = "";
	char err[256];
	size_t off = 0;
	int dummy = 0;

	/* line i opens mapping i+1: CONF_MAX_DEPTH of them are fine */
	for (int i = 0; i < CONF_MAX_DEPTH; i++)
		off += (size_t)snprintf(yaml + off, sizeof(yaml) - off, "%*sd:\n", 2 * i, "");
	assert_int_equal(
	    conf_parse_buffer(tc_gen_loop, &dummy, "loop.yaml", yaml, off, err, sizeof(err)), 0);
	off +=
	    (size_t)snprintf(yaml + off, sizeof(yaml) - off, "%*sd: ~\n", 2 * CONF_MAX_DEPTH, "");
	assert_int_equal(
	    conf_parse_buffer(tc_gen_loop, &dummy, "loop.yaml", yaml, off, err, sizeof(err)),
	    -EINVAL);
	assert_string_equal(err, "loop.yaml:17: nested deeper than 16 levels");

	/* the same cap for flow lists, whatever the keys */
	assert_int_equal(conf_parse_buffer(tc_gen_keys, &dummy, "flow.yaml",
					   "a: [[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]", 36, err,
					   sizeof(err)),
			 -EINVAL);
	assert_string_equal(err, "flow.yaml:1: nested deeper than 16 levels");
}

/* ------------------------------------------------------------ robustness */

static const char tc_yaml_chars[] = ":-[]{}#&*!|>'\"%@` \n\t,?~";

/* Mutated copies of a valid file: every outcome is a config or one clean error line. */
static void test_mutations(void **state)
{
	size_t len = sizeof(tc_full) - 1;
	char *buf = malloc(len + 1);
	uint32_t seed = 12345;
	int ok = 0, bad = 0;

	assert_non_null(buf);
	for (int iter = 0; iter < 2000; iter++) {
		struct agent_config *c = NULL;
		char err[512];
		size_t n = len;
		int ret;

		memcpy(buf, tc_full, len);
		for (int m = 0; m < 1 + iter % 4; m++) {
			seed = seed * 1103515245u + 12345u;
			size_t at = (seed >> 8) % len;

			seed = seed * 1103515245u + 12345u;
			switch ((seed >> 16) % 4) {
			case 0:
				buf[at] = (char)(seed >> 24);
				break;
			case 1:
				buf[at] = tc_yaml_chars[(seed >> 20) % (sizeof(tc_yaml_chars) - 1)];
				break;
			case 2:
				n = at; /* truncate */
				break;
			default:
				buf[at] = ' ';
				break;
			}
		}
		if (n > len)
			n = len;
		ret = tc_load_len(buf, n, &c, err, sizeof(err));
		if (ret == 0) {
			assert_non_null(c);
			agent_config_free(c);
			ok++;
		} else {
			assert_int_equal(ret, -EINVAL);
			assert_true(strncmp(err, tc_path, strlen(tc_path)) == 0);
			assert_null(strchr(err, '\n'));
			bad++;
		}
	}
	assert_true(ok > 0 && bad > 0);
	free(buf);
}

/* The collector section: the URL rules, the mode, and what TLS needs. */
static void test_collector(void **state)
{
	static const char *const ok_urls[] = {
	    "https://c:8443",
	    "https://collector.example.com",
	    "https://collector.example.com:443/",
	    "https://10.1.2.3:8443/prefix/v",
	    "https://[2001:db8::1]:8443",
	    "http://127.0.0.1:18080",
	    "http://127.9.9.9",
	    "http://localhost:8080/",
	    "http://[::1]:8080",
	};
	static const char *const bad_urls[] = {
	    "ftp://c:21",
	    "collector:8443",
	    "https://",
	    "https://:8443",
	    "https://c:0",
	    "https://c:65536",
	    "https://c:84x3",
	    "https://c:",
	    "https://[::1:8443",
	    "https://user:pw@c:8443",
	    "https://c:8443/a b",
	    "https://c:8443/?q=1",
	    "http://10.0.0.1:8080",
	    "http://collector.example.com",
	    "http://[2001:db8::1]:80",
	    "http://128.0.0.1",
	};
	struct agent_config *c;
	char yaml[512], err[512];

	for (size_t i = 0; i < sizeof(ok_urls) / sizeof(ok_urls[0]); i++) {
		snprintf(yaml, sizeof(yaml),
			 "collector:\n  url: \"%s\"\n  cert_file: /n.crt\n  key_file: /n.key\n",
			 ok_urls[i]);
		c = tc_load_ok(yaml);
		assert_string_equal(c->collector.url, ok_urls[i]);
		assert_true(agent_config_has_collector(c));
		assert_false(agent_config_sync(c));
		agent_config_free(c);
	}
	for (size_t i = 0; i < sizeof(bad_urls) / sizeof(bad_urls[0]); i++) {
		snprintf(yaml, sizeof(yaml),
			 "collector:\n  url: \"%s\"\n  cert_file: /n.crt\n  key_file: /n.key\n",
			 bad_urls[i]);
		c = NULL;
		if (tc_load(yaml, &c, err, sizeof(err)) != -EINVAL)
			fail_msg("url %s accepted", bad_urls[i]);
		assert_null(c);
		assert_non_null(strstr(err, ":2: invalid value for 'url' in collector: "));
	}

	/* no url, an empty url or null: no collector, whatever else is set */
	c = tc_load_ok("collector:\n  url: \"\"\n  mode: sync\n");
	assert_false(agent_config_has_collector(c));
	assert_false(agent_config_sync(c));
	agent_config_free(c);
	c = tc_load_ok("collector:\n  url: ~\n");
	assert_null(c->collector.url);
	agent_config_free(c);
	c = tc_load_ok("collector:\n");
	assert_null(c->collector.url);
	agent_config_free(c);

	/* plain http on loopback needs no certificate */
	c = tc_load_ok("collector: {url: \"http://127.0.0.1:18080\", mode: sync, "
		       "sync_grace_period: 5}\n");
	assert_true(agent_config_sync(c));
	assert_int_equal(c->collector.sync_grace_period, 5);
	assert_null(c->collector.cert_file);
	agent_config_free(c);

	/* https does: refused without it, naming the file */
	c = NULL;
	assert_int_equal(tc_load("collector:\n  url: https://c:8443\n  cert_file: /n.crt\n", &c,
				 err, sizeof(err)),
			 -EINVAL);
	assert_null(c);
	{
		char want[512];

		snprintf(want, sizeof(want),
			 "%s: collector: cert_file and key_file (the node's client certificate) "
			 "are required with an https url",
			 tc_path);
		assert_string_equal(err, want);
	}

	{
		static const struct tc_case cases[] = {
		    {"collector:\n  mode: both\n", 2,
		     "invalid value 'both' for 'mode' in collector, expected one of: async, sync"},
		    {"collector:\n  sync_grace_period: 0\n", 2,
		     "'sync_grace_period' in collector must be between 1 and 3600, got 0"},
		    {"collector:\n  sync_grace_period: 2h\n", 2,
		     "'sync_grace_period' in collector must be between 1 and 3600, got 2h"},
		    {"collector:\n  ca_file: ca.crt\n", 2,
		     "invalid value for 'ca_file' in collector: must be an absolute path"},
		    {"collector:\n  url: [a]\n", 2,
		     "expected a string for 'url' in collector, got a list"},
		};

		TC_RUN(cases);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),	    cmocka_unit_test(test_empty_file),
	    cmocka_unit_test(test_full_file),	    cmocka_unit_test(test_partial_file),
	    cmocka_unit_test(test_scalar_forms),    cmocka_unit_test(test_unknown_keys),
	    cmocka_unit_test(test_wrong_types),	    cmocka_unit_test(test_out_of_range),
	    cmocka_unit_test(test_bad_values),	    cmocka_unit_test(test_duplicates),
	    cmocka_unit_test(test_yaml_syntax),	    cmocka_unit_test(test_top_level),
	    cmocka_unit_test(test_labels),	    cmocka_unit_test(test_too_many_labels),
	    cmocka_unit_test(test_dump_round_trip), cmocka_unit_test(test_huge_file),
	    cmocka_unit_test(test_unreadable),	    cmocka_unit_test(test_small_err_buffer),
	    cmocka_unit_test(test_example_file),    cmocka_unit_test(test_conf_generic),
	    cmocka_unit_test(test_conf_depth),	    cmocka_unit_test(test_mutations),
	    cmocka_unit_test(test_collector),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
