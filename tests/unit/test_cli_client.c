/*
 * The collector client: times on the command line (RFC 3339 and "2d ago"),
 * where the collector is (flags over environment over the config file),
 * query strings, the line splitter, and HTTP against a small canned server
 * forked on loopback (answers, error messages, size caps, no server).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "../../cli/cli.h"

/* 2026-11-22T10:13:19.123Z */
#define T0 1795342399123000000LL
#define S  1000000000LL

/* ------------------------------------------------------------ times */

static void test_rfc3339(void **state)
{
	int64_t ns = 0;

	assert_int_equal(cli_parse_rfc3339("2026-11-22T10:13:19.123Z", &ns), 0);
	assert_int_equal(ns, T0);
	assert_int_equal(cli_parse_rfc3339("2026-11-22t10:13:19.123z", &ns), 0);
	assert_int_equal(ns, T0);
	assert_int_equal(cli_parse_rfc3339("2026-11-22 10:13:19.123456789Z", &ns), 0);
	assert_int_equal(ns, T0 + 456789);
	assert_int_equal(cli_parse_rfc3339("2026-11-22T12:13:19.123+02:00", &ns), 0);
	assert_int_equal(ns, T0);
	assert_int_equal(cli_parse_rfc3339("2026-11-22T05:43:19.123-04:30", &ns), 0);
	assert_int_equal(ns, T0);
	assert_int_equal(cli_parse_rfc3339("2026-11-22T10:13:19Z", &ns), 0);
	assert_int_equal(ns, T0 - 123000000);
	assert_int_equal(cli_parse_rfc3339("2026-11-22", &ns), 0);
	assert_int_equal(ns, T0 - (10 * 3600 + 13 * 60 + 19) * S - 123000000);
	assert_int_equal(cli_parse_rfc3339("2024-02-29T00:00:00Z", &ns), 0);
	assert_int_equal(cli_parse_rfc3339("1970-01-01T00:00:00Z", &ns), 0);
	assert_int_equal(ns, 0);

	ns = 42;
	assert_int_equal(cli_parse_rfc3339("", &ns), -EINVAL);
	assert_int_equal(cli_parse_rfc3339("2026-11-22T10:13:19", &ns), -EINVAL); /* no zone */
	assert_int_equal(cli_parse_rfc3339("2026-11-22T10:13Z", &ns), -EINVAL);
	assert_int_equal(cli_parse_rfc3339("2026-13-01T00:00:00Z", &ns), -EINVAL);
	assert_int_equal(cli_parse_rfc3339("2025-02-29T00:00:00Z", &ns), -EINVAL);
	assert_int_equal(cli_parse_rfc3339("2026-11-22T24:00:00Z", &ns), -EINVAL);
	assert_int_equal(cli_parse_rfc3339("2026-11-22T10:13:19.Z", &ns), -EINVAL);
	assert_int_equal(cli_parse_rfc3339("2026-11-22T10:13:19+0200", &ns), -EINVAL);
	assert_int_equal(cli_parse_rfc3339("2026-11-22T10:13:19Zx", &ns), -EINVAL);
	assert_int_equal(cli_parse_rfc3339("1969-12-31T23:59:59Z", &ns), -EINVAL);
	assert_int_equal(cli_parse_rfc3339("1970-01-01T00:00:00+01:00", &ns), -EINVAL);
	assert_int_equal(cli_parse_rfc3339("2026-1-22T10:13:19Z", &ns), -EINVAL);
	assert_int_equal(ns, 42);
}

static void test_relative_time(void **state)
{
	int64_t ns = 0;

	assert_int_equal(cli_parse_time("now", T0, &ns), 0);
	assert_int_equal(ns, T0);
	assert_int_equal(cli_parse_time("90s", T0, &ns), 0);
	assert_int_equal(ns, T0 - 90 * S);
	assert_int_equal(cli_parse_time("15m", T0, &ns), 0);
	assert_int_equal(ns, T0 - 15 * 60 * S);
	assert_int_equal(cli_parse_time("1h", T0, &ns), 0);
	assert_int_equal(ns, T0 - 3600 * S);
	assert_int_equal(cli_parse_time("2d", T0, &ns), 0);
	assert_int_equal(ns, T0 - 2 * 86400 * S);
	assert_int_equal(cli_parse_time("1w", T0, &ns), 0);
	assert_int_equal(ns, T0 - 7 * 86400 * S);
	assert_int_equal(cli_parse_time("1h30m", T0, &ns), 0);
	assert_int_equal(ns, T0 - 5400 * S);
	assert_int_equal(cli_parse_time("0s", T0, &ns), 0);
	assert_int_equal(ns, T0);
	/* RFC 3339 goes through as is */
	assert_int_equal(cli_parse_time("2026-11-22T10:13:19.123Z", 0, &ns), 0);
	assert_int_equal(ns, T0);

	ns = 42;
	assert_int_equal(cli_parse_time("", T0, &ns), -EINVAL);
	assert_int_equal(cli_parse_time("1", T0, &ns), -EINVAL);  /* no unit */
	assert_int_equal(cli_parse_time("h", T0, &ns), -EINVAL);  /* no number */
	assert_int_equal(cli_parse_time("1y", T0, &ns), -EINVAL); /* unknown unit */
	assert_int_equal(cli_parse_time("-1h", T0, &ns), -EINVAL);
	assert_int_equal(cli_parse_time("1h ", T0, &ns), -EINVAL);
	assert_int_equal(cli_parse_time("1 h", T0, &ns), -EINVAL);
	assert_int_equal(cli_parse_time("1H", T0, &ns), -EINVAL);
	assert_int_equal(cli_parse_time("yesterday", T0, &ns), -EINVAL);
	assert_int_equal(cli_parse_time("9999999999s", T0, &ns), -EINVAL); /* overflow */
	assert_int_equal(cli_parse_time("99999999w", T0, &ns), -EINVAL);
	assert_int_equal(cli_parse_time("2d", 3600 * S, &ns), -EINVAL); /* before 1970 */
	assert_int_equal(ns, 42);
}

static void test_duration(void **state)
{
	char b[32];

	cli_fmt_duration(0, b, sizeof(b));
	assert_string_equal(b, "0.0s");
	cli_fmt_duration(12345, b, sizeof(b));
	assert_string_equal(b, "12.3s");
	cli_fmt_duration(59999, b, sizeof(b));
	assert_string_equal(b, "59.9s");
	cli_fmt_duration(60000, b, sizeof(b));
	assert_string_equal(b, "1m00s");
	cli_fmt_duration(245000, b, sizeof(b));
	assert_string_equal(b, "4m05s");
	cli_fmt_duration(3600000 + 180000, b, sizeof(b));
	assert_string_equal(b, "1h03m");
	cli_fmt_duration(3LL * 86400000 + 4 * 3600000, b, sizeof(b));
	assert_string_equal(b, "3d04h");
	cli_fmt_duration(-1, b, sizeof(b));
	assert_string_equal(b, "-");
}

/* ------------------------------------------------------------ where the collector is */

static char tmpdir[] = "/tmp/test_cli_client.XXXXXX";

static int setup_dir(void **state)
{
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown_dir(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

static char *write_config(const char *name, const char *yaml, mode_t mode)
{
	char *path = NULL;
	FILE *f;

	assert_true(asprintf(&path, "%s/%s", tmpdir, name) > 0);
	f = fopen(path, "w");
	assert_non_null(f);
	fputs(yaml, f);
	assert_int_equal(fclose(f), 0);
	assert_int_equal(chmod(path, mode), 0);
	return path;
}

static void test_precedence(void **state)
{
	char *cfg = write_config("config.yaml",
				 "url: https://file.example:8443/\n"
				 "token: file-token\n"
				 "ca: certs/ca.crt\n",
				 0600);
	struct cli_remote none = {0};
	struct cli_remote env = {.url = "https://env.example", .token = "env-token"};
	struct cli_remote flags = {.url = "https://flag.example///", .ca = "/flag/ca.crt"};
	struct cli_conn c;
	char err[256], want[512];

	/* the file alone; a relative ca is beside the file; trailing '/' cut */
	assert_int_equal(cli_conn_resolve(&c, &none, &none, cfg, err, sizeof(err)), 0);
	assert_string_equal(c.url, "https://file.example:8443");
	assert_string_equal(c.token, "file-token");
	snprintf(want, sizeof(want), "%s/certs/ca.crt", tmpdir);
	assert_string_equal(c.ca, want);
	assert_string_equal(c.url_from, "the config file");
	assert_string_equal(c.token_from, "the config file");
	cli_conn_free(&c);

	/* the environment over the file, field by field */
	assert_int_equal(cli_conn_resolve(&c, &none, &env, cfg, err, sizeof(err)), 0);
	assert_string_equal(c.url, "https://env.example");
	assert_string_equal(c.url_from, "SESSREC_URL");
	assert_string_equal(c.token, "env-token");
	assert_string_equal(c.token_from, "SESSREC_TOKEN");
	assert_string_equal(c.ca, want);
	cli_conn_free(&c);

	/* flags over both */
	assert_int_equal(cli_conn_resolve(&c, &flags, &env, cfg, err, sizeof(err)), 0);
	assert_string_equal(c.url, "https://flag.example");
	assert_string_equal(c.url_from, "--url");
	assert_string_equal(c.token, "env-token");
	assert_string_equal(c.ca, "/flag/ca.crt");
	assert_string_equal(c.ca_from, "--ca");
	cli_conn_free(&c);

	/* no file at all is fine when the rest is given; no token is allowed */
	assert_int_equal(
	    cli_conn_resolve(&c, &flags, &none, "/nonexistent/config.yaml", err, sizeof(err)), 0);
	assert_string_equal(c.url, "https://flag.example");
	assert_null(c.token);
	assert_null(c.token_from);
	cli_conn_free(&c);
	assert_int_equal(cli_conn_resolve(&c, &flags, &none, NULL, err, sizeof(err)), 0);
	cli_conn_free(&c);
	free(cfg);
}

static void test_config_file(void **state)
{
	struct cli_remote none = {0}, all = {.url = "http://127.0.0.1:1", .token = "t", .ca = "c"};
	struct cli_conn c;
	char err[256];
	char *bad = write_config("bad.yaml", "url: https://x\nbogus: 1\n", 0600);
	char *empty = write_config("empty.yaml", "# nothing\n", 0600);
	char *ftp = write_config("ftp.yaml", "url: ftp://x\n", 0600);
	char *home = write_config("home.yaml", "url: https://x\nca: ~/ca.pem\n", 0600);

	/* a bad file: one line naming file and line */
	assert_int_equal(cli_conn_resolve(&c, &none, &none, bad, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "bad.yaml:2"));
	assert_non_null(strstr(err, "bogus"));
	/* ... not read when flags and environment give everything */
	assert_int_equal(cli_conn_resolve(&c, &all, &none, bad, err, sizeof(err)), 0);
	cli_conn_free(&c);

	/* nowhere a URL */
	assert_int_equal(cli_conn_resolve(&c, &none, &none, empty, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "SESSREC_URL"));
	assert_int_equal(cli_conn_resolve(&c, &none, &none, ftp, err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "the config file"));

	/* tokens with spaces or control characters would break the header */
	{
		struct cli_remote t1 = {.url = "https://x", .token = "a b"};
		struct cli_remote t2 = {.url = "https://x", .token = "a\r\nX-Evil: 1"};

		assert_int_equal(cli_conn_resolve(&c, &t1, &none, NULL, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "--token"));
		assert_int_equal(cli_conn_resolve(&c, &none, &t2, NULL, err, sizeof(err)), -EINVAL);
		assert_non_null(strstr(err, "SESSREC_TOKEN"));
	}

	/* ~/ in the file's ca is the home folder */
	assert_int_equal(setenv("HOME", "/home/tester", 1), 0);
	assert_int_equal(cli_conn_resolve(&c, &none, &none, home, err, sizeof(err)), 0);
	assert_string_equal(c.ca, "/home/tester/ca.pem");
	cli_conn_free(&c);
	free(bad);
	free(empty);
	free(ftp);
	free(home);
}

static void test_env_and_path(void **state)
{
	struct cli_remote env;
	char *path = NULL;

	assert_int_equal(setenv("SESSREC_URL", "https://e", 1), 0);
	assert_int_equal(setenv("SESSREC_TOKEN", "", 1), 0); /* empty: unset */
	assert_int_equal(unsetenv("SESSREC_CA"), 0);
	cli_remote_env(&env);
	assert_string_equal(env.url, "https://e");
	assert_null(env.token);
	assert_null(env.ca);

	assert_int_equal(unsetenv("XDG_CONFIG_HOME"), 0);
	assert_int_equal(setenv("HOME", "/home/tester", 1), 0);
	assert_int_equal(cli_config_path(&path), 0);
	assert_string_equal(path, "/home/tester/.config/sessrec/config.yaml");
	free(path);
	assert_int_equal(setenv("XDG_CONFIG_HOME", "/xdg", 1), 0);
	assert_int_equal(cli_config_path(&path), 0);
	assert_string_equal(path, "/xdg/sessrec/config.yaml");
	free(path);
	assert_int_equal(unsetenv("XDG_CONFIG_HOME"), 0);
	assert_int_equal(unsetenv("SESSREC_URL"), 0);
	assert_int_equal(unsetenv("SESSREC_TOKEN"), 0);
}

/* ------------------------------------------------------------ queries and lines */

static void test_query(void **state)
{
	struct cli_buf b = {0};

	cli_buf_adds(&b, "/v1/sessions");
	cli_query_add(&b, "user", "alice");
	cli_query_add(&b, "label", "env=prod x&y");
	cli_query_add(&b, "command", "rm -rf /tmp/ä~._-");
	assert_int_equal(b.err, 0);
	assert_string_equal(b.p, "/v1/sessions?user=alice&label=env%3Dprod%20x%26y"
				 "&command=rm%20-rf%20%2Ftmp%2F%C3%A4~._-");
	cli_buf_free(&b);
	cli_query_add(&b, "a", "");
	assert_string_equal(b.p, "?a=");
	cli_buf_free(&b);
}

struct collected {
	char lines[8][32];
	size_t n;
	int fail_at;
};

static int collect(void *ctx, char *line, size_t len)
{
	struct collected *c = ctx;

	assert_int_equal(strlen(line), len);
	if ((int)c->n == c->fail_at)
		return -EPIPE;
	assert_true(c->n < 8);
	snprintf(c->lines[c->n++], sizeof(c->lines[0]), "%s", line);
	return 0;
}

static void test_lines(void **state)
{
	struct collected got = {.fail_at = -1};
	struct cli_lines l = {.max = 10, .cb = collect, .ctx = &got};

	assert_int_equal(cli_lines_feed(&l, "ab", 2), 0);
	assert_int_equal(cli_lines_feed(&l, "c\nd\r", 4), 0);
	assert_int_equal(cli_lines_feed(&l, "\n\n", 2), 0);
	assert_int_equal(cli_lines_feed(&l, "tail", 4), 0);
	assert_int_equal(cli_lines_end(&l), 0);
	assert_int_equal(got.n, 4);
	assert_string_equal(got.lines[0], "abc");
	assert_string_equal(got.lines[1], "d"); /* \r\n as well as \n */
	assert_string_equal(got.lines[2], "");	/* keep-alives reach the callback */
	assert_string_equal(got.lines[3], "tail");
	assert_int_equal(cli_lines_end(&l), 0); /* nothing left */
	assert_int_equal(got.n, 4);

	/* a line over max, even across feeds */
	assert_int_equal(cli_lines_feed(&l, "0123456", 7), 0);
	assert_int_equal(cli_lines_feed(&l, "789x", 4), -E2BIG);
	cli_lines_free(&l);

	/* a callback error stops the feed */
	memset(&got, 0, sizeof(got));
	got.fail_at = 1;
	l = (struct cli_lines){.max = 10, .cb = collect, .ctx = &got};
	assert_int_equal(cli_lines_feed(&l, "a\nb\nc\n", 6), -EPIPE);
	assert_int_equal(got.n, 1);
	cli_lines_free(&l);
}

/* ------------------------------------------------------------ HTTP */

static pid_t server_pid;
static int server_port;

struct route {
	const char *path;
	const char *response; /* NULL: echo the request's path and Authorization */
};

static const struct route routes[] = {
    {"/v1/sessions", "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
		     "Connection: close\r\n\r\n{\"sessions\":[],\"next_cursor\":null}"},
    {"/echo", NULL},
    {"/notjson", "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n<html>"},
    {"/401", "HTTP/1.1 401 Unauthorized\r\nConnection: close\r\n\r\n"
	     "{\"error\":\"unknown or revoked token\"}"},
    {"/404", "HTTP/1.1 404 Not Found\r\nConnection: close\r\n\r\n"
	     "{\"error\":\"session not found\\u001b[31m\"}"},
    {"/502", "HTTP/1.1 502 Bad Gateway\r\nConnection: close\r\n\r\nupstream down\r\nmore"},
    {"/302", "HTTP/1.1 302 Found\r\nLocation: http://evil.example/\r\nConnection: close\r\n\r\n"},
    {"/lines", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
	       "3\r\none\r\n5\r\n\ntwo\n\r\n4\r\n\nthr\r\n3\r\nee\n\r\n0\r\n\r\n"},
    {"/cut", "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"
	     "4\r\none\n\r\n"},
    {"/big", "HTTP/1.1 200 OK\r\nContent-Length: 64\r\nConnection: close\r\n\r\n"
	     "0123456789012345678901234567890123456789012345678901234567890123"},
};

static void server_serve(int fd)
{
	char req[4096] = "", path[256], *auth, resp[1024];
	size_t len = 0;
	ssize_t n;

	while (len < sizeof(req) - 1 && !strstr(req, "\r\n\r\n")) {
		n = read(fd, req + len, sizeof(req) - 1 - len);
		if (n <= 0)
			return;
		len += (size_t)n;
		req[len] = '\0';
	}
	if (sscanf(req, "GET %255s ", path) != 1)
		return;
	for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); i++) {
		size_t rl = strlen(routes[i].path);

		if (strncmp(path, routes[i].path, rl) != 0 || (path[rl] && path[rl] != '?'))
			continue;
		if (routes[i].response) {
			n = write(fd, routes[i].response, strlen(routes[i].response));
		} else {
			auth = strstr(req, "Authorization: ");
			if (auth)
				auth[strcspn(auth, "\r")] = '\0';
			snprintf(resp, sizeof(resp),
				 "HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n"
				 "{\"path\":\"%s\",\"auth\":\"%s\"}",
				 path, auth ? auth : "");
			n = write(fd, resp, strlen(resp));
		}
		(void)n;
		return;
	}
}

static int setup_server(void **state)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	int ls = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (ls < 0 || bind(ls, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(ls, 16) != 0 ||
	    getsockname(ls, (struct sockaddr *)&sa, &sl) != 0)
		return -1;
	server_port = ntohs(sa.sin_port);
	server_pid = fork();
	if (server_pid < 0)
		return -1;
	if (server_pid == 0) {
		for (;;) {
			int fd = accept(ls, NULL, NULL);

			if (fd < 0)
				_exit(0);
			server_serve(fd);
			shutdown(fd, SHUT_RDWR);
			close(fd);
		}
	}
	close(ls);
	return 0;
}

static int teardown_server(void **state)
{
	int st;

	kill(server_pid, SIGTERM);
	waitpid(server_pid, &st, 0);
	return 0;
}

static struct cli_client *open_client(const char *token)
{
	char url[64];
	struct cli_remote r = {.url = url, .token = token};
	struct cli_client *c = NULL;

	snprintf(url, sizeof(url), "http://127.0.0.1:%d/", server_port);
	/* no config file may get in the way */
	setenv("XDG_CONFIG_HOME", tmpdir, 1);
	assert_int_equal(cli_client_open(&c, &r), 0);
	cli_client_quiet(c, true);
	return c;
}

static void test_http_json(void **state)
{
	struct cli_client *c = open_client("s3cret");
	json_t *o = NULL;

	assert_int_equal(cli_client_get_json(c, "/v1/sessions?user=a", &o), 0);
	assert_true(json_is_array(json_object_get(o, "sessions")));
	json_decref(o);

	/* the token goes out as a bearer token; the path as given */
	assert_int_equal(cli_client_get_json(c, "/echo?x=%20y", &o), 0);
	assert_string_equal(json_string_value(json_object_get(o, "auth")),
			    "Authorization: Bearer s3cret");
	assert_string_equal(json_string_value(json_object_get(o, "path")), "/echo?x=%20y");
	json_decref(o);

	assert_int_equal(cli_client_get_json(c, "/notjson", &o), -EBADMSG);
	assert_null(o);
	assert_non_null(strstr(cli_client_error(c), "not JSON"));
	cli_client_close(c);

	/* without a token: no Authorization header at all */
	c = open_client(NULL);
	assert_int_equal(cli_client_get_json(c, "/echo", &o), 0);
	assert_string_equal(json_string_value(json_object_get(o, "auth")), "");
	json_decref(o);
	cli_client_close(c);
}

static void test_http_errors(void **state)
{
	struct cli_client *c = open_client("s3cret");
	json_t *o = NULL;

	assert_int_equal(cli_client_get_json(c, "/401", &o), -EREMOTEIO);
	assert_string_equal(cli_client_error(c),
			    "collector: unknown or revoked token (HTTP 401: the token from --token "
			    "was not accepted; set SESSREC_TOKEN to a valid one)");
	/* the server's message, with its control characters defused */
	assert_int_equal(cli_client_get_json(c, "/404", &o), -EREMOTEIO);
	assert_string_equal(cli_client_error(c), "collector: session not found?[31m (HTTP 404)");
	/* not JSON: its first line */
	assert_int_equal(cli_client_get_json(c, "/502", &o), -EREMOTEIO);
	assert_string_equal(cli_client_error(c), "collector: upstream down (HTTP 502)");
	/* redirects are not followed (they would carry the token away) */
	assert_int_equal(cli_client_get_json(c, "/302", &o), -EREMOTEIO);
	assert_string_equal(cli_client_error(c), "collector: unexpected redirect (HTTP 302)");
	assert_null(o);
	cli_client_close(c);

	c = open_client(NULL);
	assert_int_equal(cli_client_get_json(c, "/401", &o), -EREMOTEIO);
	assert_non_null(strstr(cli_client_error(c), "no token; set SESSREC_TOKEN"));
	cli_client_close(c);
}

static void test_http_lines_and_files(void **state)
{
	struct collected got = {.fail_at = -1};
	struct cli_client *c = open_client("t");
	char path[] = "/tmp/test_cli_client.file.XXXXXX";
	struct stat st;
	int fd;

	assert_int_equal(cli_client_get_lines(c, "/lines", false, collect, &got), 0);
	assert_int_equal(got.n, 4);
	assert_string_equal(got.lines[0], "one");
	assert_string_equal(got.lines[1], "two");
	assert_string_equal(got.lines[2], "");
	assert_string_equal(got.lines[3], "three");

	/* a stream that breaks off: what came is delivered, then the error */
	memset(&got, 0, sizeof(got));
	got.fail_at = -1;
	assert_int_equal(cli_client_get_lines(c, "/cut", false, collect, &got), -ECONNRESET);
	assert_int_equal(got.n, 1);
	assert_non_null(strstr(cli_client_error(c), "lost the connection to the collector at "
						    "http://127.0.0.1:"));

	/* a callback's error is passed on as it is */
	memset(&got, 0, sizeof(got));
	got.fail_at = 0;
	assert_int_equal(cli_client_get_lines(c, "/lines", false, collect, &got), -EPIPE);

	fd = mkstemp(path);
	assert_true(fd >= 0);
	unlink(path);
	assert_int_equal(cli_client_get_file(c, "/big", fd, 64), 0);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 64);
	/* over the cap: refused (by Content-Length, before any byte is written) */
	assert_int_equal(cli_client_get_file(c, "/big", fd, 63), -EFBIG);
	assert_non_null(strstr(cli_client_error(c), "larger than 63 bytes"));
	/* an error answer never lands in the file */
	assert_int_equal(ftruncate(fd, 0), 0);
	assert_int_equal(cli_client_get_file(c, "/404", fd, 1 << 20), -EREMOTEIO);
	assert_int_equal(fstat(fd, &st), 0);
	assert_int_equal(st.st_size, 0);
	close(fd);
	cli_client_close(c);
}

static void test_http_unreachable(void **state)
{
	struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	socklen_t sl = sizeof(sa);
	struct cli_remote r = {0};
	struct cli_client *c = NULL;
	char url[64], want[128];
	json_t *o = NULL;
	int s;

	/* a port that nobody listens on: bind one, then close it */
	s = socket(AF_INET, SOCK_STREAM, 0);
	assert_true(s >= 0);
	assert_int_equal(bind(s, (struct sockaddr *)&sa, sizeof(sa)), 0);
	assert_int_equal(getsockname(s, (struct sockaddr *)&sa, &sl), 0);
	close(s);
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(sa.sin_port));
	r.url = url;
	setenv("XDG_CONFIG_HOME", tmpdir, 1);
	assert_int_equal(cli_client_open(&c, &r), 0);
	cli_client_quiet(c, true);
	assert_int_equal(cli_client_get_json(c, "/v1/sessions", &o), -ECONNREFUSED);
	snprintf(want, sizeof(want), "cannot reach the collector at %s: ", url);
	assert_memory_equal(cli_client_error(c), want, strlen(want));
	cli_client_close(c);

	/* a token is never sent in clear text off this machine */
	r.url = "http://192.0.2.1:8443";
	r.token = "t";
	assert_int_equal(cli_client_open(&c, &r), -EINVAL);
	assert_null(c);
	r.token = NULL;
	assert_int_equal(cli_client_open(&c, &r), 0);
	cli_client_close(c);
	/* a CA file that is not there */
	r.url = "https://127.0.0.1:1";
	r.ca = "/nonexistent/ca.crt";
	assert_int_equal(cli_client_open(&c, &r), -ENOENT);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_rfc3339),
	    cmocka_unit_test(test_relative_time),
	    cmocka_unit_test(test_duration),
	    cmocka_unit_test(test_precedence),
	    cmocka_unit_test(test_config_file),
	    cmocka_unit_test(test_env_and_path),
	    cmocka_unit_test(test_query),
	    cmocka_unit_test(test_lines),
	    cmocka_unit_test_setup_teardown(test_http_json, setup_server, teardown_server),
	    cmocka_unit_test_setup_teardown(test_http_errors, setup_server, teardown_server),
	    cmocka_unit_test_setup_teardown(test_http_lines_and_files, setup_server,
					    teardown_server),
	    cmocka_unit_test(test_http_unreachable),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
