/*
 * The collector client: where the collector is (flags, environment, config
 * file) and HTTP GETs on libcurl with a bearer token, TLS verified against
 * the configured CA, size caps on every answer and one-line errors.
 */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <pwd.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "conf.h"

/* ------------------------------------------------------------ settings */

static struct cli_remote cli_global_remote;

bool cli_remote_opt(struct cli_remote *r, int c, const char *arg)
{
	switch (c) {
	case CLI_OPT_URL:
		r->url = arg;
		return true;
	case CLI_OPT_TOKEN:
		r->token = arg;
		return true;
	case CLI_OPT_CA:
		r->ca = arg;
		return true;
	default:
		return false;
	}
}

void cli_remote_set_global(const struct cli_remote *r)
{
	cli_global_remote = *r;
}

static const char *cli_env(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? v : NULL;
}

void cli_remote_env(struct cli_remote *env)
{
	env->url = cli_env("SESSREC_URL");
	env->token = cli_env("SESSREC_TOKEN");
	env->ca = cli_env("SESSREC_CA");
}

static int cli_home(const char **out, char **buf)
{
	struct passwd pw, *res = NULL;
	const char *home = cli_env("HOME");
	long size;
	int err;

	*buf = NULL;
	if (home) {
		*out = home;
		return 0;
	}
	size = sysconf(_SC_GETPW_R_SIZE_MAX);
	if (size <= 0)
		size = 16384;
	*buf = malloc((size_t)size);
	if (!*buf)
		return -ENOMEM;
	err = getpwuid_r(getuid(), &pw, *buf, (size_t)size, &res);
	if (err || !res || !pw.pw_dir || !*pw.pw_dir) {
		free(*buf);
		*buf = NULL;
		return err ? -err : -ENOENT;
	}
	/* pw_dir points into *buf, which the caller frees after use */
	*out = pw.pw_dir;
	return 0;
}

int cli_config_path(char **out)
{
	const char *xdg = cli_env("XDG_CONFIG_HOME"), *home;
	char *pwbuf = NULL;
	int n, err;

	if (xdg && xdg[0] == '/') {
		n = asprintf(out, "%s/sessrec/config.yaml", xdg);
		return n < 0 ? -ENOMEM : 0;
	}
	err = cli_home(&home, &pwbuf);
	if (err)
		return err;
	n = asprintf(out, "%s/.config/sessrec/config.yaml", home);
	free(pwbuf);
	return n < 0 ? -ENOMEM : 0;
}

struct cli_conf_file {
	char *url;
	char *token;
	char *ca;
};

#define CF struct cli_conf_file
static const struct conf_key cli_conf_keys[] = {
    CONF_STRING("url", CF, url, NULL, .flags = CONF_NULLABLE),
    CONF_STRING("token", CF, token, NULL, .flags = CONF_NULLABLE),
    CONF_STRING("ca", CF, ca, NULL, .flags = CONF_NULLABLE),
    CONF_END,
};
#undef CF

static bool cli_has_ctl_or_space(const char *s)
{
	for (; *s; s++) {
		if ((unsigned char)*s <= 0x20 || *s == 0x7f)
			return true;
	}
	return false;
}

/* A CA path from the config file: "~/x" under the home, "x" beside the file. */
static int cli_conf_ca_path(const char *ca, const char *config_path, char **out)
{
	const char *home, *slash;
	char *pwbuf = NULL;
	int n, err;

	if (ca[0] == '/') {
		*out = strdup(ca);
		return *out ? 0 : -ENOMEM;
	}
	if (ca[0] == '~' && ca[1] == '/') {
		err = cli_home(&home, &pwbuf);
		if (err)
			return err;
		n = asprintf(out, "%s/%s", home, ca + 2);
		free(pwbuf);
		return n < 0 ? -ENOMEM : 0;
	}
	slash = strrchr(config_path, '/');
	if (!slash) {
		*out = strdup(ca);
		return *out ? 0 : -ENOMEM;
	}
	n = asprintf(out, "%.*s/%s", (int)(slash - config_path), config_path, ca);
	return n < 0 ? -ENOMEM : 0;
}

static const char *cli_pick(const char *flag, const char *env, const char *file,
			    const char *const names[3], const char **from)
{
	if (flag) {
		*from = names[0];
		return flag;
	}
	if (env) {
		*from = names[1];
		return env;
	}
	*from = file ? names[2] : NULL;
	return file;
}

static bool cli_url_ok(const char *url)
{
	return (strncasecmp(url, "https://", 8) == 0 && url[8]) ||
	       (strncasecmp(url, "http://", 7) == 0 && url[7]);
}

int cli_conn_resolve(struct cli_conn *out, const struct cli_remote *flags,
		     const struct cli_remote *env, const char *config_path, char *err,
		     size_t errlen)
{
	static const char *const url_names[] = {"--url", "SESSREC_URL", "the config file"};
	static const char *const token_names[] = {"--token", "SESSREC_TOKEN", "the config file"};
	static const char *const ca_names[] = {"--ca", "SESSREC_CA", "the config file"};
	struct cli_conf_file file = {0};
	struct cli_conn c = {0};
	const char *url, *token, *ca;
	bool need_file;
	size_t n;
	int ret = -ENOMEM;

	memset(out, 0, sizeof(*out));
	err[0] = '\0';
	need_file =
	    !(flags->url || env->url) || !(flags->token || env->token) || !(flags->ca || env->ca);
	if (need_file && config_path) {
		ret = conf_parse_file(cli_conf_keys, &file, config_path, err, errlen);
		if (ret == -ENOENT) {
			err[0] = '\0';
		} else if (ret) {
			if (!err[0])
				snprintf(err, errlen, "%s: %s", config_path, strerror(-ret));
			ret = -EINVAL;
			goto out;
		} else {
			c.config_path = strdup(config_path);
			if (!c.config_path) {
				ret = -ENOMEM;
				goto out;
			}
		}
	}
	url = cli_pick(flags->url, env->url, file.url, url_names, &c.url_from);
	token = cli_pick(flags->token, env->token, file.token, token_names, &c.token_from);
	ca = cli_pick(flags->ca, env->ca, file.ca, ca_names, &c.ca_from);

	ret = -EINVAL;
	if (!url || !*url) {
		snprintf(err, errlen,
			 "no collector given: pass --url, set SESSREC_URL or put url: in %s",
			 config_path ? config_path : "~/.config/sessrec/config.yaml");
		goto out;
	}
	if (!cli_url_ok(url) || cli_has_ctl_or_space(url)) {
		snprintf(err, errlen,
			 "the URL from %s must be https://HOST[:PORT] (or http:// for a "
			 "local collector in insecure_dev_mode)",
			 c.url_from);
		goto out;
	}
	if (token && (!*token || cli_has_ctl_or_space(token))) {
		snprintf(err, errlen,
			 "the token from %s is empty or holds spaces or control "
			 "characters",
			 c.token_from);
		goto out;
	}
	ret = -ENOMEM;
	c.url = strdup(url);
	if (!c.url)
		goto out;
	for (n = strlen(c.url); n > 0 && c.url[n - 1] == '/'; n--)
		c.url[n - 1] = '\0';
	if (token) {
		c.token = strdup(token);
		if (!c.token)
			goto out;
	}
	if (ca && *ca) {
		if (c.ca_from == ca_names[2])
			ret = cli_conf_ca_path(ca, config_path, &c.ca);
		else
			ret = (c.ca = strdup(ca)) ? 0 : -ENOMEM;
		if (ret)
			goto out;
	}
	if (token && c.token_from == token_names[2]) {
		struct stat st;

		/* ssh's rule for private keys: a token others can read is not a secret */
		if (stat(config_path, &st) == 0 && (st.st_mode & 077))
			fprintf(stderr,
				"%s: warning: %s holds a token and others can read it (chmod 600 "
				"it)\n",
				CLI_PROG, config_path);
	}
	*out = c;
	memset(&c, 0, sizeof(c));
	ret = 0;
out:
	if (file.token)
		explicit_bzero(file.token, strlen(file.token));
	conf_free(cli_conf_keys, &file);
	cli_conn_free(&c);
	return ret;
}

void cli_conn_free(struct cli_conn *c)
{
	if (!c)
		return;
	if (c->token)
		explicit_bzero(c->token, strlen(c->token));
	free(c->url);
	free(c->token);
	free(c->ca);
	free(c->config_path);
	memset(c, 0, sizeof(*c));
}

/* ------------------------------------------------------------ HTTP */

struct cli_client {
	CURL *curl;
	struct curl_slist *headers;
	struct cli_conn conn;
	bool quiet;
	char errbuf[CURL_ERROR_SIZE];
	char msg[512]; /* the last error, for cli_client_error */
};

enum cli_sink {
	CLI_SINK_MEM,
	CLI_SINK_LINES,
	CLI_SINK_FD,
};

/* One request in progress (a GET unless method says otherwise). */
struct cli_xfer {
	struct cli_client *c;
	const char *path;
	const char *method; /* NULL: GET */
	const char *body;   /* POST: what to send */
	size_t body_len;
	const char *content_type; /* of body */
	enum cli_sink kind;
	long status; /* known once the body starts */
	struct cli_buf mem;
	size_t cap;
	struct cli_lines lines;
	int fd;
	uint64_t written, fcap;
	struct cli_buf errbody; /* the body of an error answer, capped */
	bool follow;
	time_t last_data; /* CLOCK_MONOTONIC seconds of the last byte (follow) */
	int err;	  /* what stopped the transfer on our side */
	bool cb_err;	  /* err came from the caller's callback: no message */
};

static void cli_client_fail(struct cli_client *c, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void cli_client_fail(struct cli_client *c, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(c->msg, sizeof(c->msg), fmt, ap);
	va_end(ap);
	if (!c->quiet)
		cli_err("%s", c->msg);
}

static bool cli_loopback_host(const char *host)
{
	return strcasecmp(host, "localhost") == 0 || strncmp(host, "127.", 4) == 0 ||
	       strcmp(host, "::1") == 0 || strcmp(host, "[::1]") == 0;
}

/* A bearer token in clear text over the network would be anyone's. */
static int cli_client_check_plain(const struct cli_conn *conn, char *why, size_t whylen)
{
	CURLU *u = NULL;
	char *scheme = NULL, *host = NULL;
	int ret = -EINVAL;

	u = curl_url();
	if (!u) {
		ret = -ENOMEM;
		goto out;
	}
	if (curl_url_set(u, CURLUPART_URL, conn->url, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_SCHEME, &scheme, 0) != CURLUE_OK ||
	    curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK) {
		snprintf(why, whylen, "the URL from %s does not parse: %s", conn->url_from,
			 conn->url);
		goto out;
	}
	if (strcasecmp(scheme, "http") == 0 && conn->token && !cli_loopback_host(host)) {
		snprintf(why, whylen,
			 "refusing to send the token in clear text to %s: use https:// (plain "
			 "http:// is only for a collector on this machine in insecure_dev_mode)",
			 host);
		goto out;
	}
	ret = 0;
out:
	curl_free(scheme);
	curl_free(host);
	curl_url_cleanup(u);
	return ret;
}

#define CLI_SETOPT(c, opt, val)                                                                    \
	do {                                                                                       \
		if (curl_easy_setopt((c), (opt), (val)) != CURLE_OK)                               \
			goto setopt_failed;                                                        \
	} while (0)

int cli_client_open(struct cli_client **out, const struct cli_remote *flags)
{
	struct cli_remote merged = cli_global_remote, env;
	struct cli_client *c = NULL;
	char *config_path = NULL, *auth = NULL;
	char why[512];
	struct curl_slist *h;
	static bool global_done;
	int ret;

	*out = NULL;
	if (flags->url)
		merged.url = flags->url;
	if (flags->token)
		merged.token = flags->token;
	if (flags->ca)
		merged.ca = flags->ca;
	cli_remote_env(&env);
	ret = cli_config_path(&config_path);
	if (ret && ret != -ENOENT) {
		cli_err("cannot find the home folder: %s", strerror(-ret));
		goto out;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		ret = -ENOMEM;
		cli_err("out of memory");
		goto out;
	}
	ret = cli_conn_resolve(&c->conn, &merged, &env, config_path, why, sizeof(why));
	if (ret) {
		cli_err("%s", ret == -ENOMEM ? "out of memory" : why);
		goto out;
	}
	ret = cli_client_check_plain(&c->conn, why, sizeof(why));
	if (ret) {
		cli_err("%s", ret == -ENOMEM ? "out of memory" : why);
		goto out;
	}
	if (c->conn.ca && access(c->conn.ca, R_OK) != 0) {
		ret = -errno;
		cli_err("the CA file %s (from %s): %s", c->conn.ca, c->conn.ca_from,
			strerror(-ret));
		goto out;
	}
	if (!global_done) {
		if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
			ret = -ENOMEM;
			cli_err("cannot initialise libcurl");
			goto out;
		}
		global_done = true;
	}
	ret = -ENOMEM;
	c->curl = curl_easy_init();
	if (!c->curl) {
		cli_err("cannot initialise libcurl");
		goto out;
	}
	h = curl_slist_append(NULL, "Accept: application/json, application/x-ndjson, */*");
	if (!h)
		goto nomem;
	c->headers = h;
	if (c->conn.token) {
		if (asprintf(&auth, "Authorization: Bearer %s", c->conn.token) < 0) {
			auth = NULL;
			goto nomem;
		}
		h = curl_slist_append(c->headers, auth);
		if (!h)
			goto nomem;
		c->headers = h;
	}
	CLI_SETOPT(c->curl, CURLOPT_HTTPHEADER, c->headers);
	CLI_SETOPT(c->curl, CURLOPT_USERAGENT, CLI_PROG "/" SESSREC_VERSION);
	CLI_SETOPT(c->curl, CURLOPT_ERRORBUFFER, c->errbuf);
	CLI_SETOPT(c->curl, CURLOPT_NOSIGNAL, 1L);
	CLI_SETOPT(c->curl, CURLOPT_CONNECTTIMEOUT, 15L);
	/* Redirects would carry the token elsewhere: the API never sends one. */
	CLI_SETOPT(c->curl, CURLOPT_FOLLOWLOCATION, 0L);
	CLI_SETOPT(c->curl, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
	CLI_SETOPT(c->curl, CURLOPT_ACCEPT_ENCODING, "");
	CLI_SETOPT(c->curl, CURLOPT_SSL_VERIFYPEER, 1L);
	CLI_SETOPT(c->curl, CURLOPT_SSL_VERIFYHOST, 2L);
#if LIBCURL_VERSION_NUM >= 0x075500
	CLI_SETOPT(c->curl, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	CLI_SETOPT(c->curl, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	if (c->conn.ca)
		CLI_SETOPT(c->curl, CURLOPT_CAINFO, c->conn.ca);
	*out = c;
	c = NULL;
	ret = 0;
	goto out;
setopt_failed:
	cli_err("libcurl lacks a needed option (built without TLS?)");
	ret = -ENOTSUP;
	goto out;
nomem:
	cli_err("out of memory");
out:
	if (auth) {
		explicit_bzero(auth, strlen(auth));
		free(auth);
	}
	free(config_path);
	cli_client_close(c);
	return ret;
}

void cli_client_close(struct cli_client *c)
{
	if (!c)
		return;
	if (c->curl)
		curl_easy_cleanup(c->curl);
	/* the Authorization header holds the token */
	for (struct curl_slist *h = c->headers; h; h = h->next)
		explicit_bzero(h->data, strlen(h->data));
	curl_slist_free_all(c->headers);
	cli_conn_free(&c->conn);
	free(c);
}

const char *cli_client_url(const struct cli_client *c)
{
	return c->conn.url;
}

void cli_client_quiet(struct cli_client *c, bool quiet)
{
	c->quiet = quiet;
}

const char *cli_client_error(const struct cli_client *c)
{
	return c->msg;
}

static time_t cli_mono_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec;
}

static size_t cli_xfer_write(char *data, size_t size, size_t nmemb, void *ud)
{
	struct cli_xfer *x = ud;
	size_t n = size * nmemb;
	int err = 0;

	if (!x->status &&
	    curl_easy_getinfo(x->c->curl, CURLINFO_RESPONSE_CODE, &x->status) != CURLE_OK)
		x->status = 0;
	if (x->follow)
		x->last_data = cli_mono_s();
	if (x->status < 200 || x->status >= 300) {
		if (x->errbody.len < CLI_ERRBODY_MAX)
			cli_buf_add(&x->errbody, data,
				    n < CLI_ERRBODY_MAX - x->errbody.len
					? n
					: CLI_ERRBODY_MAX - x->errbody.len);
		return n;
	}
	switch (x->kind) {
	case CLI_SINK_MEM:
		if (n > x->cap - x->mem.len)
			err = -EFBIG;
		else
			err = cli_buf_add(&x->mem, data, n);
		break;
	case CLI_SINK_LINES:
		err = cli_lines_feed(&x->lines, data, n);
		if (err && err != -E2BIG && err != -ENOMEM)
			x->cb_err = true;
		break;
	case CLI_SINK_FD:
		if (n > x->fcap - x->written)
			err = -EFBIG;
		else
			err = util_write_all(x->fd, data, n);
		x->written += n;
		break;
	}
	if (err) {
		x->err = err;
		return 0; /* curl stops with CURLE_WRITE_ERROR */
	}
	return n;
}

/* Follow mode: the collector writes a newline every 15 s; silence means a dead link. */
static int cli_xfer_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			     curl_off_t ulnow)
{
	struct cli_xfer *x = ud;

	if (x->last_data && cli_mono_s() - x->last_data > CLI_FOLLOW_IDLE_S) {
		x->err = -ETIMEDOUT;
		return 1;
	}
	return 0;
}

/* Keep what a terminal may show: no control characters, at most max bytes. */
static void cli_clean_msg(char *s, size_t max)
{
	size_t n = strlen(s);

	if (n > max) {
		n = max;
		while (n > 0 && ((unsigned char)s[n] & 0xc0) == 0x80)
			n--; /* not in the middle of a UTF-8 sequence */
		s[n] = '\0';
	}
	for (; *s; s++) {
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			*s = '?';
	}
}

static void cli_client_http_error(struct cli_client *c, const struct cli_xfer *x, long status)
{
	char msg[320] = "";
	json_t *o = NULL, *e;

	if (x->errbody.len) {
		o = json_loadb(x->errbody.p, x->errbody.len, 0, NULL);
		e = json_object_get(o, "error");
		if (json_is_string(e))
			snprintf(msg, sizeof(msg), "%s", json_string_value(e));
		else if (!o)
			snprintf(msg, sizeof(msg), "%.*s", (int)strcspn(x->errbody.p, "\r\n"),
				 x->errbody.p);
		json_decref(o);
	}
	cli_clean_msg(msg, 300);
	if (!msg[0])
		snprintf(msg, sizeof(msg), "%s",
			 status >= 300 && status < 400 ? "unexpected redirect" : "no reason given");
	if (status == 401 && c->conn.token)
		cli_client_fail(c,
				"collector: %s (HTTP 401: the token from %s was not accepted; set "
				"SESSREC_TOKEN to a valid one)",
				msg, c->conn.token_from);
	else if (status == 401)
		cli_client_fail(c,
				"collector: %s (HTTP 401: no token; set SESSREC_TOKEN or pass "
				"--token)",
				msg);
	else
		cli_client_fail(c, "collector: %s (HTTP %ld)", msg, status);
}

static bool cli_tls_error(CURLcode res)
{
	return res == CURLE_PEER_FAILED_VERIFICATION || res == CURLE_SSL_CACERT_BADFILE;
}

static const char *cli_xfer_method(const struct cli_xfer *x)
{
	return x->method ? x->method : "GET";
}

/* The method, body and headers of this request on the reused handle. */
static int cli_xfer_setup(struct cli_client *c, struct cli_xfer *x, struct curl_slist **extra)
{
	struct curl_slist *h = NULL, *n;
	CURL *e = c->curl;
	char *ct = NULL;

	*extra = NULL;
	if (!x->method || strcmp(x->method, "GET") == 0)
		return curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) == CURLE_OK &&
			       curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, (char *)NULL) ==
				   CURLE_OK &&
			       curl_easy_setopt(e, CURLOPT_HTTPHEADER, c->headers) == CURLE_OK
			   ? 0
			   : -ENOTSUP;
	if (strcmp(x->method, "POST") == 0) {
		if (curl_easy_setopt(e, CURLOPT_POST, 1L) != CURLE_OK ||
		    curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)x->body_len) !=
			CURLE_OK ||
		    curl_easy_setopt(e, CURLOPT_POSTFIELDS, x->body ? x->body : "") != CURLE_OK ||
		    curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, (char *)NULL) != CURLE_OK)
			return -ENOTSUP;
	} else if (curl_easy_setopt(e, CURLOPT_HTTPGET, 1L) != CURLE_OK ||
		   curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, x->method) != CURLE_OK) {
		return -ENOTSUP;
	}
	/* the shared headers, then this body's type (copies: the list is ours to free) */
	for (struct curl_slist *i = c->headers; i; i = i->next) {
		n = curl_slist_append(h, i->data);
		if (!n)
			goto nomem;
		h = n;
	}
	if (asprintf(&ct, "Content-Type: %s",
		     x->content_type ? x->content_type : "application/json") < 0) {
		ct = NULL;
		goto nomem;
	}
	n = curl_slist_append(h, ct);
	free(ct);
	if (!n)
		goto nomem;
	h = n;
	*extra = h;
	return curl_easy_setopt(e, CURLOPT_HTTPHEADER, h) == CURLE_OK ? 0 : -ENOTSUP;
nomem:
	for (struct curl_slist *i = h; i; i = i->next)
		explicit_bzero(i->data, strlen(i->data));
	curl_slist_free_all(h);
	return -ENOMEM;
}

static int cli_client_get(struct cli_client *c, struct cli_xfer *x)
{
	struct curl_slist *extra = NULL;
	char *url = NULL;
	long status = 0;
	CURLcode res;
	int ret;

	if (asprintf(&url, "%s%s", c->conn.url, x->path) < 0) {
		url = NULL;
		ret = -ENOMEM;
		cli_client_fail(c, "out of memory");
		goto out;
	}
	c->errbuf[0] = '\0';
	c->msg[0] = '\0';
	ret = cli_xfer_setup(c, x, &extra);
	if (ret) {
		cli_client_fail(c, ret == -ENOMEM ? "out of memory" : "libcurl refused an option");
		goto out;
	}
	if (curl_easy_setopt(c->curl, CURLOPT_URL, url) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_WRITEFUNCTION, cli_xfer_write) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_WRITEDATA, x) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_MAXFILESIZE_LARGE,
			     (curl_off_t)(x->kind == CLI_SINK_FD    ? x->fcap
					  : x->kind == CLI_SINK_MEM ? x->cap
								    : 0)) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_NOPROGRESS, x->follow ? 0L : 1L) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_XFERINFOFUNCTION, cli_xfer_progress) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_XFERINFODATA, x) != CURLE_OK ||
	    /* a stalled answer: less than a byte a second for a minute (follow has its own) */
	    curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_LIMIT, x->follow ? 0L : 1L) != CURLE_OK ||
	    curl_easy_setopt(c->curl, CURLOPT_LOW_SPEED_TIME, x->follow ? 0L : 60L) != CURLE_OK) {
		ret = -ENOTSUP;
		cli_client_fail(c, "libcurl refused an option");
		goto out;
	}
	if (x->follow)
		x->last_data = cli_mono_s();
	res = curl_easy_perform(c->curl);
	if (curl_easy_getinfo(c->curl, CURLINFO_RESPONSE_CODE, &status) != CURLE_OK)
		status = 0;
	if (x->err) {
		ret = x->err;
		if (x->cb_err)
			goto out;
		if (ret == -EFBIG)
			cli_client_fail(
			    c, "the collector's answer to %s %s is larger than %" PRIu64 " bytes",
			    cli_xfer_method(x), x->path,
			    (uint64_t)(x->kind == CLI_SINK_FD ? x->fcap : x->cap));
		else if (ret == -E2BIG)
			cli_client_fail(c,
					"a line of the collector's answer to %s %s is longer "
					"than %u bytes",
					cli_xfer_method(x), x->path, CLI_LINE_MAX);
		else if (ret == -ETIMEDOUT)
			cli_client_fail(c, "the collector at %s sent nothing for %d s", c->conn.url,
					CLI_FOLLOW_IDLE_S);
		else if (x->kind == CLI_SINK_FD)
			cli_client_fail(c, "cannot store the answer to %s %s: %s",
					cli_xfer_method(x), x->path, strerror(-ret));
		else
			cli_client_fail(c, "%s %s: %s", cli_xfer_method(x), x->path,
					strerror(-ret));
		goto out;
	}
	if (res == CURLE_FILESIZE_EXCEEDED) {
		ret = -EFBIG;
		cli_client_fail(c,
				"the collector's answer to %s %s is larger than %" PRIu64 " bytes",
				cli_xfer_method(x), x->path,
				(uint64_t)(x->kind == CLI_SINK_FD ? x->fcap : x->cap));
		goto out;
	}
	if (res != CURLE_OK && status == 0) {
		ret = -ECONNREFUSED;
		cli_client_fail(c, "cannot reach the collector at %s: %s%s", c->conn.url,
				c->errbuf[0] ? c->errbuf : curl_easy_strerror(res),
				cli_tls_error(res) ? " (is --ca/SESSREC_CA the CA that signed the "
						     "collector's certificate?)"
						   : "");
		goto out;
	}
	if (status < 200 || status >= 300) {
		ret = -EREMOTEIO;
		cli_client_http_error(c, x, status);
		goto out;
	}
	if (res != CURLE_OK) {
		ret = -ECONNRESET;
		cli_client_fail(c, "lost the connection to the collector at %s: %s", c->conn.url,
				c->errbuf[0] ? c->errbuf : curl_easy_strerror(res));
		goto out;
	}
	ret = 0;
out:
	if (extra) {
		/* it holds the token; and the handle must not keep a freed list */
		(void)curl_easy_setopt(c->curl, CURLOPT_HTTPHEADER, c->headers);
		for (struct curl_slist *i = extra; i; i = i->next)
			explicit_bzero(i->data, strlen(i->data));
		curl_slist_free_all(extra);
	}
	free(url);
	return ret;
}

int cli_client_get_json(struct cli_client *c, const char *path, json_t **out)
{
	struct cli_xfer x = {.c = c, .path = path, .kind = CLI_SINK_MEM, .cap = CLI_JSON_MAX};
	json_error_t jerr;
	int ret;

	*out = NULL;
	ret = cli_client_get(c, &x);
	if (ret)
		goto out;
	*out = json_loadb(x.mem.p ? x.mem.p : "", x.mem.len, 0, &jerr);
	if (!*out) {
		ret = -EBADMSG;
		cli_client_fail(c, "the collector's answer to GET %s is not JSON: %s (line %d)",
				path, jerr.text, jerr.line);
	}
out:
	cli_buf_free(&x.mem);
	cli_buf_free(&x.errbody);
	return ret;
}

int cli_client_get_lines(struct cli_client *c, const char *path, bool follow, cli_line_cb cb,
			 void *ctx)
{
	struct cli_xfer x = {
	    .c = c,
	    .path = path,
	    .kind = CLI_SINK_LINES,
	    .follow = follow,
	    .lines = {.max = CLI_LINE_MAX, .cb = cb, .ctx = ctx},
	};
	int ret;

	ret = cli_client_get(c, &x);
	if (ret)
		goto out;
	ret = cli_lines_end(&x.lines);
	if (ret == -E2BIG || ret == -ENOMEM)
		cli_client_fail(c, "GET %s: %s", path, strerror(-ret));
out:
	cli_lines_free(&x.lines);
	cli_buf_free(&x.errbody);
	return ret;
}

int cli_client_get_file(struct cli_client *c, const char *path, int fd, uint64_t cap)
{
	struct cli_xfer x = {.c = c, .path = path, .kind = CLI_SINK_FD, .fd = fd, .fcap = cap};
	int ret;

	ret = cli_client_get(c, &x);
	cli_buf_free(&x.errbody);
	return ret;
}

int cli_client_send(struct cli_client *c, const char *method, const char *path,
		    const char *content_type, const char *body, size_t len, json_t **out)
{
	struct cli_xfer x = {.c = c,
			     .path = path,
			     .method = method,
			     .body = body,
			     .body_len = len,
			     .content_type = content_type,
			     .kind = CLI_SINK_MEM,
			     .cap = CLI_JSON_MAX};
	json_error_t jerr;
	int ret;

	*out = NULL;
	ret = cli_client_get(c, &x);
	if (ret)
		goto out;
	*out = json_loadb(x.mem.p ? x.mem.p : "", x.mem.len, 0, &jerr);
	if (!*out) {
		ret = -EBADMSG;
		cli_client_fail(c, "the collector's answer to %s %s is not JSON: %s (line %d)",
				method, path, jerr.text, jerr.line);
	}
out:
	cli_buf_free(&x.mem);
	cli_buf_free(&x.errbody);
	return ret;
}
