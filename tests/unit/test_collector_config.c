/* collector/config.c: collector.yaml, its defaults, checks and the listen helpers. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../collector/collector.h"
#include "util.h"

/* The last temporary config file, which error messages name. */
static char tc_path[64];

static void tc_write(const char *text)
{
	size_t len = strlen(text);
	int fd;

	snprintf(tc_path, sizeof(tc_path), "/tmp/sessrec-test-cconf-XXXXXX");
	fd = mkstemp(tc_path);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, len), (ssize_t)len);
	assert_int_equal(close(fd), 0);
}

static int tc_load(const char *text, struct collector_config **c, char *err, size_t errlen)
{
	int ret;

	tc_write(text);
	ret = collector_config_load(tc_path, c, err, errlen);
	assert_int_equal(unlink(tc_path), 0);
	return ret;
}

static struct collector_config *tc_load_ok(const char *text)
{
	struct collector_config *c = NULL;
	char err[512];
	int ret;

	ret = tc_load(text, &c, err, sizeof(err));
	if (ret)
		fail_msg("unexpected error %d: %s\n--- yaml:\n%s", ret, err, text);
	assert_non_null(c);
	assert_string_equal(err, "");
	return c;
}

/*
 * The file must be refused with one line "FILE:LINE: ..." (line 0: "FILE: ...")
 * containing msg, and *out must be left alone.
 */
static void tc_load_fail(const char *text, int line, const char *msg)
{
	struct collector_config *sentinel = (struct collector_config *)&tc_path;
	struct collector_config *c = sentinel;
	char err[512], want[128];
	int ret;

	ret = tc_load(text, &c, err, sizeof(err));
	if (line)
		snprintf(want, sizeof(want), "%s:%d: ", tc_path, line);
	else
		snprintf(want, sizeof(want), "%s: ", tc_path);
	if (ret != -EINVAL || strncmp(err, want, strlen(want)) != 0 || !strstr(err, msg))
		fail_msg("ret %d\n got: %s\nwant: %s...%s\n--- yaml:\n%s", ret, err, want, msg,
			 text);
	assert_ptr_equal(c, sentinel);
	assert_null(strchr(err, '\n'));
}

static void tc_expect_defaults(const struct collector_config *c)
{
	assert_string_equal(c->listen, "127.0.0.1:8443");
	assert_string_equal(c->data_dir, "/var/lib/sessrec/collector");
	assert_string_equal(c->log_level, "info");
	assert_false(c->insecure_dev_mode);
	assert_string_equal(c->tls.cert_file, "/etc/sessrec/tls/server.crt");
	assert_string_equal(c->tls.key_file, "/etc/sessrec/tls/server.key");
	assert_string_equal(c->tls.client_ca_file, "/etc/sessrec/tls/ca.crt");
	assert_int_equal(c->audit_rotate_size, 64u << 20);
	assert_int_equal(c->audit_keep, 10);
	assert_int_equal(c->max_part_size, 40u << 20);
	assert_int_equal(c->max_connections, 256);
	assert_int_equal(c->request_timeout, 60);
	assert_string_equal(c->store, "local");
	assert_int_equal(c->summary_workers, 2);
	assert_int_equal(c->n_users, 0);
	assert_null(collector_config_user(c, "alice"));
}

/* ------------------------------------------------------------ defaults */

static void test_defaults(void **state)
{
	struct collector_config *c = NULL;
	char err[64] = "junk";

	(void)state;
	assert_int_equal(collector_config_load(NULL, &c, err, sizeof(err)), 0);
	assert_string_equal(err, "");
	tc_expect_defaults(c);
	collector_config_free(c);
	collector_config_free(NULL);

	/* err may be left out */
	c = NULL;
	assert_int_equal(collector_config_load(NULL, &c, NULL, 0), 0);
	collector_config_free(c);
}

static void test_empty_file(void **state)
{
	static const char *const empty[] = {"", "\n", "# only a comment\n", "---\n", "tls:\n"};

	(void)state;
	for (size_t i = 0; i < sizeof(empty) / sizeof(empty[0]); i++) {
		struct collector_config *c = tc_load_ok(empty[i]);

		tc_expect_defaults(c);
		collector_config_free(c);
	}
}

/* ------------------------------------------------------------ valid files */

static const char tc_full[] = "# every key, none at its default\n"
			      "listen: \"[::]:9443\"\n"
			      "data_dir: /srv/collector\n"
			      "log_level: debug\n"
			      "insecure_dev_mode: no\n"
			      "tls:\n"
			      "  cert_file: /etc/pki/s.pem\n"
			      "  key_file: /etc/pki/s.key\n"
			      "  client_ca_file: /etc/pki/ca.pem\n"
			      "audit_rotate_size: 1MiB\n"
			      "audit_keep: 0\n"
			      "max_part_size: 8M\n"
			      "max_connections: 1000\n"
			      "request_timeout: 2m\n"
			      "store: local\n";

static void tc_expect_full(const struct collector_config *c)
{
	assert_string_equal(c->listen, "[::]:9443");
	assert_string_equal(c->data_dir, "/srv/collector");
	assert_string_equal(c->log_level, "debug");
	assert_false(c->insecure_dev_mode);
	assert_string_equal(c->tls.cert_file, "/etc/pki/s.pem");
	assert_string_equal(c->tls.key_file, "/etc/pki/s.key");
	assert_string_equal(c->tls.client_ca_file, "/etc/pki/ca.pem");
	assert_int_equal(c->audit_rotate_size, 1u << 20);
	assert_int_equal(c->audit_keep, 0);
	assert_int_equal(c->max_part_size, 8u << 20);
	assert_int_equal(c->max_connections, 1000);
	assert_int_equal(c->request_timeout, 120);
	assert_string_equal(c->store, "local");
}

static void test_full(void **state)
{
	struct collector_config *c = tc_load_ok(tc_full);

	(void)state;
	tc_expect_full(c);
	collector_config_free(c);
}

/* What --check-config prints loads back to the same configuration. */
static void test_dump_roundtrip(void **state)
{
	struct collector_config *c = tc_load_ok(tc_full), *d;
	char *buf = NULL;
	size_t len = 0;
	FILE *f = open_memstream(&buf, &len);

	(void)state;
	assert_non_null(f);
	collector_config_dump(c, f);
	assert_int_equal(fclose(f), 0);
	d = tc_load_ok(buf);
	tc_expect_full(d);
	collector_config_free(d);
	collector_config_free(c);
	free(buf);
}

static void test_dev_mode_loopback(void **state)
{
	static const char *const ok[] = {
	    "insecure_dev_mode: true\nlisten: 127.0.0.1:20080\n",
	    "insecure_dev_mode: true\nlisten: 127.9.8.7:20080\n",
	    "insecure_dev_mode: true\nlisten: \"[::1]:20080\"\n",
	    "insecure_dev_mode: true\nlisten: localhost:20080\n",
	    "insecure_dev_mode: true\n", /* the default listen is loopback */
	};

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		struct collector_config *c = tc_load_ok(ok[i]);

		assert_true(c->insecure_dev_mode);
		collector_config_free(c);
	}
}

/* ------------------------------------------------------------ refused files */

static void test_errors(void **state)
{
	static const struct {
		const char *yaml;
		int line;
		const char *msg;
	} bad[] = {
	    {"lisen: 1.2.3.4:5\n", 1, "unknown key 'lisen'"},
	    {"# c\ntls:\n  ca: /x\n", 3, "unknown key 'ca' in tls"},
	    {"listen: 127.0.0.1\n", 1, "must be host:port"},
	    {"listen: 127.0.0.1:0\n", 1, "must be host:port"},
	    {"listen: 127.0.0.1:65536\n", 1, "must be host:port"},
	    {"listen: 127.0.0.1:080\n", 1, "must be host:port"},
	    {"listen: :8443\n", 1, "must be host:port"},
	    {"listen: \"::1:8443\"\n", 1, "must be host:port"},
	    {"listen: \"[::1:8443\"\n", 1, "must be host:port"},
	    {"listen: \"a b:8443\"\n", 1, "must be host:port"},
	    {"data_dir: relative/dir\n", 1, "must be an absolute path"},
	    {"tls:\n  cert_file: server.crt\n", 2, "must be an absolute path"},
	    {"tls:\n  key_file: \"\"\n", 2, "must be an absolute path"},
	    {"log_level: loud\n", 1, "'loud' for 'log_level'"},
	    {"insecure_dev_mode: maybe\n", 1, "true or false"},
	    {"audit_rotate_size: 1K\n", 1, "'audit_rotate_size' must be between"},
	    {"max_part_size: 1K\n", 1, "'max_part_size' must be between"},
	    {"max_part_size: 2G\n", 1, "'max_part_size' must be between"},
	    {"max_connections: 0\n", 1, "'max_connections' must be between"},
	    {"request_timeout: 0\n", 1, "'request_timeout' must be between"},
	    {"request_timeout: 2h\n", 1, "'request_timeout' must be between"},
	    {"store: s3\n", 1, "'s3' for 'store'"},
	    {"audit_keep: 3\naudit_keep: 4\n", 2, "duplicate key 'audit_keep'"},
	    {"- a\n", 1, "the top level must be a mapping"},
	    {"tls: [1]\n", 1, "a mapping"},
	    /* cross-field: named by file, no line */
	    {"insecure_dev_mode: true\nlisten: 0.0.0.0:8080\n", 0,
	     "insecure_dev_mode needs a loopback listen address"},
	    {"insecure_dev_mode: true\nlisten: \"[::]:8080\"\n", 0,
	     "insecure_dev_mode needs a loopback listen address"},
	    {"insecure_dev_mode: true\nlisten: collector.example.com:8080\n", 0,
	     "not 'collector.example.com:8080'"},
	    {"insecure_dev_mode: true\nlisten: 10.1.2.3:8080\n", 0,
	     "insecure_dev_mode needs a loopback listen address"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		tc_load_fail(bad[i].yaml, bad[i].line, bad[i].msg);
}

static void test_missing_file(void **state)
{
	struct collector_config *c = NULL;
	char err[256];

	(void)state;
	assert_int_equal(collector_config_load("/nonexistent/collector.yaml", &c, err, sizeof(err)),
			 -ENOENT);
	assert_null(c);
	assert_non_null(strstr(err, "/nonexistent/collector.yaml"));
}

/* ------------------------------------------------------------ users (policy filters) */

static const char tc_users[] = "summary_workers: 4\n"
			       "users:\n"
			       "  alice:\n"
			       "    roles: [dev, oncall]\n"
			       "    traits:\n"
			       "      logins: [root, alice]\n"
			       "      team: platform\n" /* one string: a list of one */
			       "      empty: []\n"
			       "  bob:\n"
			       "    roles:\n"
			       "      - intern\n"
			       "  \"carol\": ~\n" /* no roles, no traits */
			       "log_level: warn\n";

static void tc_expect_users(const struct collector_config *c)
{
	const struct collector_user *a, *b, *k;

	assert_int_equal(c->summary_workers, 4);
	assert_string_equal(c->log_level, "warn");
	assert_int_equal(c->n_users, 3);
	a = collector_config_user(c, "alice");
	b = collector_config_user(c, "bob");
	k = collector_config_user(c, "carol");
	assert_non_null(a);
	assert_non_null(b);
	assert_non_null(k);
	assert_null(collector_config_user(c, "dave"));
	assert_null(collector_config_user(c, NULL));
	assert_int_equal(a->n_roles, 2);
	assert_string_equal(a->roles[0], "dev");
	assert_string_equal(a->roles[1], "oncall");
	assert_int_equal(a->n_traits, 3);
	assert_string_equal(a->traits[0].key, "logins");
	assert_int_equal(a->traits[0].n_values, 2);
	assert_string_equal(a->traits[0].values[1], "alice");
	assert_string_equal(a->traits[1].key, "team");
	assert_int_equal(a->traits[1].n_values, 1);
	assert_string_equal(a->traits[1].values[0], "platform");
	assert_int_equal(a->traits[2].n_values, 0);
	assert_int_equal(b->n_roles, 1);
	assert_string_equal(b->roles[0], "intern");
	assert_int_equal(b->n_traits, 0);
	assert_int_equal(k->n_roles, 0);
	assert_int_equal(k->n_traits, 0);
}

static void test_users(void **state)
{
	struct collector_config *c = tc_load_ok(tc_users), *d;
	char *buf = NULL;
	size_t len = 0;
	FILE *f;

	(void)state;
	tc_expect_users(c);
	/* --check-config prints them, and what it prints loads back the same */
	f = open_memstream(&buf, &len);
	assert_non_null(f);
	collector_config_dump(c, f);
	assert_int_equal(fclose(f), 0);
	assert_non_null(strstr(buf, "users:\n  \"alice\":\n    roles: [\"dev\", \"oncall\"]\n"));
	d = tc_load_ok(buf);
	tc_expect_users(d);
	collector_config_free(d);
	collector_config_free(c);
	free(buf);

	/* absent, null or empty: nobody */
	c = tc_load_ok("users:\n");
	assert_int_equal(c->n_users, 0);
	collector_config_free(c);
	c = tc_load_ok("users: {}\n");
	assert_int_equal(c->n_users, 0);
	collector_config_free(c);
}

static void test_users_errors(void **state)
{
	static const struct {
		const char *yaml;
		int line;
		const char *msg;
	} bad[] = {
	    {"users: [alice]\n", 1, "users: expected a mapping of user names"},
	    {"users:\n  alice: [x]\n", 2, "users.alice: expected a mapping with roles and traits"},
	    {"users:\n  alice:\n    role: [x]\n", 3, "users.alice: unknown key 'role'"},
	    {"users:\n  alice:\n    roles: {a: b}\n", 3,
	     "users.alice.roles: expected a list of strings"},
	    {"users:\n  alice:\n    roles: [a, [b]]\n", 3, "users.alice.roles: expected a string"},
	    {"users:\n  alice:\n    roles: [a, \"\"]\n", 3, "users.alice.roles: expected 1 to"},
	    {"users:\n  alice:\n    traits: [a]\n", 3,
	     "users.alice.traits: expected a mapping of lists"},
	    {"users:\n  alice:\n    traits:\n      k: {a: b}\n", 4,
	     "users.alice.traits.k: expected a list of strings"},
	    {"users:\n  alice:\n    traits:\n      k: [a]\n      k: [b]\n", 5, "duplicate key"},
	    {"users:\n  alice:\n    roles: [a]\n    roles: [b]\n", 4,
	     "users.alice: duplicate key 'roles'"},
	    {"users:\n  alice: ~\n  alice: ~\n", 3, "users: duplicate user 'alice'"},
	    {"users:\n  \"a b\": ~\n", 2, "users: 'a b' is not a user name"},
	    {"users:\n  [x]: ~\n", 2, "users: a user name: expected a string"},
	    {"users: {}\nusers: {}\n", 2, "duplicate key 'users'"},
	    {"summary_workers: 0\n", 1, "'summary_workers' must be between"},
	    {"summary_workers: 65\n", 1, "'summary_workers' must be between"},
	};

	(void)state;
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
		tc_load_fail(bad[i].yaml, bad[i].line, bad[i].msg);
}

/*
 * The shipped deploy/collector.yaml loads as it is (all defaults), and with
 * every "#key: value" line uncommented: each documented example is valid.
 */
static void test_deploy_file(void **state)
{
	struct collector_config *c = NULL;
	char err[512], *text, *out, *o;
	const char *p;
	const struct collector_user *a;
	size_t len = 0;
	bool bol = true;

	(void)state;
	assert_int_equal(collector_config_load("deploy/collector.yaml", &c, err, sizeof(err)), 0);
	tc_expect_defaults(c);
	collector_config_free(c);

	assert_int_equal(util_read_file("deploy/collector.yaml", 1 << 20, &text, &len), 0);
	out = o = calloc(1, len + 1);
	assert_non_null(out);
	for (p = text; *p; p++) {
		if (bol) {
			size_t ind = strspn(p, " ");

			/* "#key" and "  #key" are settings; "# prose" stays a comment */
			if (p[ind] == '#' && p[ind + 1] && p[ind + 1] != ' ' &&
			    p[ind + 1] != '\n') {
				memcpy(o, p, ind);
				o += ind;
				p += ind; /* at the '#', skipped by the loop */
				bol = false;
				continue;
			}
		}
		*o++ = *p;
		bol = *p == '\n';
	}
	c = tc_load_ok(out);
	assert_int_equal(c->n_users, 2);
	a = collector_config_user(c, "alice");
	assert_non_null(a);
	assert_int_equal(a->n_roles, 2);
	assert_int_equal(a->n_traits, 2);
	assert_non_null(collector_config_user(c, "bob"));
	collector_config_free(c);
	free(out);
	free(text);
}

/* ------------------------------------------------------------ listen helpers */

static void test_listen_split(void **state)
{
	static const struct {
		const char *in, *host;
		uint16_t port;
	} ok[] = {
	    {"127.0.0.1:8443", "127.0.0.1", 8443},
	    {"[::1]:1", "::1", 1},
	    {"[::]:65535", "::", 65535},
	    {"localhost:20000", "localhost", 20000},
	    {"a.example.com:443", "a.example.com", 443},
	};
	static const char *const bad[] = {
	    "",		"127.0.0.1", "127.0.0.1:", "127.0.0.1:0", "127.0.0.1:65536", ":8443",
	    "::1:8443", "[::1]8443", "[]:8443",	   "[::1:8443",	  "a b:8443",	     "x:12a",
	    "x:-1",	"x:+1",	     "x:0443",	   "x:123456",
	};
	char host[256], small[4];
	uint16_t port;

	(void)state;
	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		port = 0;
		assert_int_equal(collector_listen_split(ok[i].in, host, sizeof(host), &port), 0);
		assert_string_equal(host, ok[i].host);
		assert_int_equal(port, ok[i].port);
	}
	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		if (collector_listen_split(bad[i], host, sizeof(host), &port) != -EINVAL)
			fail_msg("'%s' accepted", bad[i]);
	}
	/* a host that does not fit the buffer is refused, not cut */
	assert_int_equal(collector_listen_split("abcd:1", small, sizeof(small), &port), -EINVAL);
	assert_int_equal(collector_listen_split("abc:1", small, sizeof(small), &port), 0);
}

static void test_loopback(void **state)
{
	static const char *const yes[] = {"localhost", "127.0.0.1", "127.255.255.254", "::1",
					  "0:0:0:0:0:0:0:1"};
	static const char *const no[] = {
	    "0.0.0.0",	   "::", "128.0.0.1",	     "10.0.0.1", "localhost.",
	    "example.com", "",	 "::ffff:127.0.0.1", "[::1]"};

	(void)state;
	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!collector_host_is_loopback(yes[i]))
			fail_msg("'%s' is loopback", yes[i]);
	}
	for (size_t i = 0; i < sizeof(no) / sizeof(no[0]); i++) {
		if (collector_host_is_loopback(no[i]))
			fail_msg("'%s' is not loopback", no[i]);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_defaults),
	    cmocka_unit_test(test_empty_file),
	    cmocka_unit_test(test_full),
	    cmocka_unit_test(test_dump_roundtrip),
	    cmocka_unit_test(test_dev_mode_loopback),
	    cmocka_unit_test(test_errors),
	    cmocka_unit_test(test_missing_file),
	    cmocka_unit_test(test_users),
	    cmocka_unit_test(test_users_errors),
	    cmocka_unit_test(test_deploy_file),
	    cmocka_unit_test(test_listen_split),
	    cmocka_unit_test(test_loopback),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
