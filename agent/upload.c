/*
 * The uploader: one thread that moves recordings from the spool
 * (<data_dir>/recordings) to the collector (docs/api.md), so that the event
 * loop never waits for the network.
 *
 * A work item is a session. An async item is a finished recording: its parts
 * are read back from the file and PUT one by one from the first one the
 * collector has not acknowledged (<sid>.up says which, so a restart resumes),
 * then the session is completed and the file deleted: a part is only ever
 * deleted after the collector acknowledged it. A sync item streams a running
 * session: the writer's on_part hands each part over as soon as it is on disk
 * (a copy while memory allows, else it is read back from the file), and the
 * session is completed once it ended.
 *
 * Failures: no answer, 5xx and 429 are retried with capped exponential backoff
 * and jitter; 409 means the collector's view differs from ours: start over
 * from part 0 once (parts it holds answer 200); any other 4xx is permanent for
 * that session: logged once, written to <sid>.up, the recording stays for an
 * operator. While the collector does not answer and sessions wait, a cheap
 * GET /healthz every few seconds notices its return, which wakes every item.
 */
#include <curl/curl.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "audit.h"
#include "log.h"
#include "util.h"

#define UPLOAD_BACKOFF_BASE_MS 1000u
#define UPLOAD_BACKOFF_CAP_MS  60000u		   /* async: the spool holds it */
#define UPLOAD_SYNC_CAP_MS     5000u		   /* sync: a running session waits */
#define UPLOAD_PROBE_NS	       (5 * 1000000000LL)  /* GET /healthz while waiting */
#define UPLOAD_STALL_NS	       (10 * 1000000000LL) /* no answer this long: unreachable */
#define UPLOAD_MEM_MAX	       (64u << 20)	   /* sync part copies held at most */
#define UPLOAD_RESP_MAX	       4096		   /* response bytes kept for messages */
#define UPLOAD_STATE_MAX       4096		   /* <sid>.up */
#define UPLOAD_CONNECT_TIMEOUT 10L
#define UPLOAD_TIMEOUT	       300L

static const char *const upload_err_names[AGENT_UPLOAD_ERR_MAX] = {
    "connect", "tls", "timeout", "server_error", "throttled", "conflict", "refused", "local",
};

struct upload_part {
	uint32_t index;
	uint8_t *buf;
	size_t len;
	struct upload_part *next;
};

/*
 * Fields marked (L) are shared and only touched under u->lock; the others
 * belong to the uploader thread alone.
 */
struct upload_item {
	char sid[40];
	bool sync;	  /* streamed while the session runs */
	bool ended;	  /* (L) no part will be added: complete once all are acknowledged */
	uint32_t written; /* (L) parts known to be on disk */
	struct upload_part *parts, *parts_tail; /* (L) copies of parts, in index order */
	bool loaded;				/* <sid>.up read (async: and the file scanned) */
	bool restarted;				/* a 409 made it start over from part 0 once */
	bool try_complete; /* a 409 after starting over: maybe the session is complete already */
	uint32_t acked;	   /* parts the collector acknowledged */
	uint64_t off;	   /* file offset of part acked, when off_ok */
	bool off_ok;
	char *body; /* the complete request, once built */
	uint32_t body_parts;
	unsigned int attempts;
	int64_t next_try; /* CLOCK_MONOTONIC ns */
	struct upload_item *next;
};

struct agent_upload {
	char *base; /* the url without trailing slashes */
	char *ca_file, *cert_file, *key_file;
	char *node;
	char *rec_dir;
	struct agent_metrics *m;
	CURL *curl;
	struct curl_slist *hdr_bin, *hdr_json;
	char user_agent[64];

	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;
	pthread_cond_t wake;
	struct upload_item *items; /* (L) */
	size_t mem;		   /* (L) bytes of part copies */
	bool stop;		   /* (L), read atomically by the transfer callback */

	int64_t down_since;	/* atomic: UTC ns, 0 while the collector answers */
	int64_t inflight_since; /* atomic: UTC ns a request started, 0: none */
	int64_t last_request;	/* mono ns */
	char resp[UPLOAD_RESP_MAX + 1];
	size_t resp_len;
};

enum upload_outcome {
	UPLOAD_PROGRESS, /* a step done: go on at once */
	UPLOAD_WAIT,	 /* nothing to do until a producer adds something */
	UPLOAD_BACKOFF,	 /* try the same step again later */
	UPLOAD_DONE,	 /* completed (or given up): forget the item */
};

/* ------------------------------------------------------------ pure helpers */

uint32_t agent_upload_backoff_ms(unsigned int attempt, uint32_t cap_ms, uint32_t rnd)
{
	uint64_t ms = UPLOAD_BACKOFF_BASE_MS, delta;

	if (attempt == 0)
		attempt = 1;
	for (unsigned int i = 1; i < attempt && ms < cap_ms; i++)
		ms *= 2;
	if (ms > cap_ms)
		ms = cap_ms;
	/* +-20%, spread evenly by rnd: nodes that lost the collector together do not return
	 * together */
	delta = ms / 5;
	return (uint32_t)(ms - delta + (2 * delta * (uint64_t)rnd) / UINT32_MAX);
}

enum agent_upload_verdict agent_upload_classify(long status)
{
	if (status >= 200 && status < 300)
		return AGENT_UPLOAD_OK;
	if (status == 409)
		return AGENT_UPLOAD_CONFLICT;
	if (status == 429 || status >= 500 || status < 100)
		return AGENT_UPLOAD_RETRY;
	return AGENT_UPLOAD_REFUSED;
}

/* A decimal number in s[0..n) into *v (at most max). 0 or -EBADMSG. */
static int upload_parse_num(const char *s, size_t n, uint64_t max, uint64_t *v)
{
	uint64_t x = 0;

	if (n == 0 || n > 20)
		return -EBADMSG;
	for (size_t i = 0; i < n; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -EBADMSG;
		if (x > (max - (uint64_t)(s[i] - '0')) / 10)
			return -EBADMSG;
		x = x * 10 + (uint64_t)(s[i] - '0');
	}
	*v = x;
	return 0;
}

int agent_upload_state_parse(const char *buf, size_t len, struct agent_upload_state *st)
{
	const char *p = buf, *end = buf + len;
	uint64_t v;

	memset(st, 0, sizeof(*st));
	if (memchr(buf, '\0', len))
		return -EBADMSG;
	while (p < end) {
		const char *eol = memchr(p, '\n', (size_t)(end - p));
		size_t n = eol ? (size_t)(eol - p) : (size_t)(end - p);
		const char *line = p, *sp, *val;
		size_t klen, vlen;

		p += n + (eol ? 1 : 0);
		if (n && line[n - 1] == '\r')
			n--;
		if (n == 0 || line[0] == '#')
			continue;
		sp = memchr(line, ' ', n);
		klen = sp ? (size_t)(sp - line) : n;
		val = sp ? sp + 1 : line + n;
		vlen = (size_t)(line + n - val);
		if (klen == 5 && memcmp(line, "acked", 5) == 0) {
			if (upload_parse_num(val, vlen, UINT32_MAX, &v))
				goto bad;
			st->acked = (uint32_t)v;
		} else if (klen == 6 && memcmp(line, "failed", 6) == 0) {
			const char *e = val + vlen, *rs;
			bool neg = vlen && *val == '-';
			size_t k;

			if (neg)
				val++;
			rs = memchr(val, ' ', (size_t)(e - val));
			if (upload_parse_num(val, (size_t)((rs ? rs : e) - val), 99999, &v) ||
			    v == 0)
				goto bad;
			st->failed_status = neg ? -(int)v : (int)v;
			st->failed[0] = '\0';
			if (rs) {
				k = (size_t)(e - rs - 1);
				if (k >= sizeof(st->failed))
					k = sizeof(st->failed) - 1;
				memcpy(st->failed, rs + 1, k);
				st->failed[k] = '\0';
			}
		}
		/* other keys: from a newer agent, ignored */
	}
	return 0;
bad:
	memset(st, 0, sizeof(*st));
	return -EBADMSG;
}

int agent_upload_state_format(const struct agent_upload_state *st, char *buf, size_t len)
{
	char reason[sizeof(st->failed)];
	int n;

	snprintf(reason, sizeof(reason), "%s", st->failed);
	for (char *c = reason; *c; c++) {
		if ((unsigned char)*c < 0x20 || *c == 0x7f)
			*c = ' '; /* one line, always */
	}
	if (st->failed_status)
		n = snprintf(buf, len,
			     "# sessrec-agent upload state: delete this file to try again\n"
			     "acked %" PRIu32 "\nfailed %d %s\n",
			     st->acked, st->failed_status, reason);
	else
		n = snprintf(buf, len,
			     "# sessrec-agent upload state: parts the collector acknowledged\n"
			     "acked %" PRIu32 "\n",
			     st->acked);
	return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}

int agent_upload_state_load(const char *path, struct agent_upload_state *st)
{
	char *buf = NULL;
	size_t len = 0;
	int err;

	memset(st, 0, sizeof(*st));
	err = util_read_file(path, UPLOAD_STATE_MAX, &buf, &len);
	if (err == -ENOENT)
		return 0;
	if (err)
		return err;
	err = agent_upload_state_parse(buf, len, st);
	free(buf);
	return err;
}

int agent_upload_state_save(const char *path, const struct agent_upload_state *st)
{
	char tmp[PATH_MAX], text[512];
	int fd, err;

	err = agent_upload_state_format(st, text, sizeof(text));
	if (err)
		return err;
	if (snprintf(tmp, sizeof(tmp), "%s.tmp", path) >= (int)sizeof(tmp))
		return -ENAMETOOLONG;
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return -errno;
	err = util_write_all(fd, text, strlen(text));
	/* Never ahead of the truth on disk: the count is only ever read back after a crash. */
	if (!err && fsync(fd) < 0)
		err = -errno;
	if (close(fd) < 0 && !err)
		err = -errno;
	if (!err && rename(tmp, path) < 0)
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

int agent_upload_complete_body(const char *path, const char *sid, const char *node, char **body,
			       uint32_t *parts, char *why, size_t whylen)
{
	struct rec_reader *r = NULL;
	Sessrec__Event *ev = NULL, *start = NULL, *last = NULL;
	json_t *root = NULL, *end = NULL;
	char *line = NULL;
	const char *closed_by = "session";
	int err;

	*body = NULL;
	snprintf(why, whylen, "%s", "");
	err = rec_reader_open(&r, path);
	if (err) {
		snprintf(why, whylen, "cannot open %s: %s", path, strerror(-err));
		return err;
	}
	err = rec_reader_expect_sid(r, sid);
	if (err)
		goto out;
	while ((err = rec_reader_next(r, &ev)) == 1) {
		if (!start) {
			start = ev;
			continue;
		}
		if (last)
			sessrec__event__free_unpacked(last, NULL);
		last = ev;
	}
	if (err < 0) {
		snprintf(why, whylen, "%s", rec_reader_error(r));
		err = err == -ENOMEM ? err : -EBADMSG;
		goto out;
	}
	if (!rec_reader_final(r)) {
		snprintf(why, whylen, "not final: the recording is not finished");
		err = -EAGAIN;
		goto out;
	}
	if (last && last->body_case == SESSREC__EVENT__BODY_END) {
		const Sessrec__SessionStart *st = start->start;
		struct audit_ctx ctx = {
		    .sid = sid,
		    .server_id = st->server_id,
		    .server_hostname = st->server_hostname,
		    .login = st->login,
		    .user = st->user,
		    .session_start_ns = start->time_ns,
		};

		err = audit_format(last, &ctx, &line);
		if (err)
			goto out;
		end = json_loads(line, 0, NULL);
		if (last->end->reason && strcmp(last->end->reason, AGENT_REASON_COMPLETER) == 0)
			closed_by = "completer";
	} else {
		end = json_object(); /* a final recording without session.end: nothing to add */
	}
	if (!end) {
		err = -ENOMEM;
		goto out;
	}
	if (json_object_set_new(end, "closed_by", json_string(closed_by))) {
		err = -ENOMEM;
		goto out;
	}
	root = json_pack("{s:I,s:s,s:s,s:O}", "parts", (json_int_t)rec_reader_parts(r), "node",
			 node, "closed_by", closed_by, "end", end);
	*body = root ? json_dumps(root, JSON_COMPACT) : NULL;
	err = *body ? 0 : -ENOMEM;
	if (!err && parts)
		*parts = rec_reader_parts(r);
out:
	if (err && !why[0])
		snprintf(why, whylen, "%s", strerror(-err));
	json_decref(root);
	json_decref(end);
	free(line);
	if (start)
		sessrec__event__free_unpacked(start, NULL);
	if (last)
		sessrec__event__free_unpacked(last, NULL);
	rec_reader_close(r);
	return err;
}

/* ------------------------------------------------------------ files */

static void upload_path(const struct agent_upload *u, const char *sid, const char *ext, char *out,
			size_t len)
{
	snprintf(out, len, "%s/%s.%s", u->rec_dir, sid, ext);
}

static int upload_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	size_t n = 0;

	while (n < len) {
		ssize_t k = pread(fd, (uint8_t *)buf + n, len - n, (off_t)(off + n));

		if (k < 0 && errno == EINTR)
			continue;
		if (k < 0)
			return -errno;
		if (k == 0)
			return -EIO;
		n += (size_t)k;
	}
	return 0;
}

/*
 * Part index of the recording at path, header and body, malloc'd. *off is its
 * offset when *off_ok, else found by walking the headers from the start (and
 * set). Only parts the writer has finished are asked for, so nothing moves
 * under us while the session goes on writing behind them.
 */
static int upload_read_part(const char *path, uint32_t index, uint64_t *off, bool *off_ok,
			    uint8_t **out, size_t *outlen, char *why, size_t whylen)
{
	uint8_t hdr[REC_HDR_SIZE], *buf = NULL;
	struct rec_part_hdr h;
	const char *bad = NULL;
	uint64_t at = *off_ok ? *off : 0;
	uint32_t i = *off_ok ? index : 0;
	int fd, err;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		snprintf(why, whylen, "cannot open %s: %s", path, strerror(errno));
		return err;
	}
	for (;; i++) {
		err = upload_pread_all(fd, hdr, sizeof(hdr), at);
		if (!err && rec_hdr_decode(hdr, &h, &bad) != 0)
			err = -EBADMSG;
		if (!err && h.index != i) {
			bad = "part index out of sequence";
			err = -EBADMSG;
		}
		if (err) {
			snprintf(why, whylen, "%s: part %" PRIu32 " at byte %" PRIu64 ": %s", path,
				 i, at, bad ? bad : strerror(-err));
			goto out;
		}
		if (i == index)
			break;
		at += REC_HDR_SIZE + (uint64_t)h.body_size;
	}
	buf = malloc(REC_HDR_SIZE + (size_t)h.body_size);
	if (!buf) {
		err = -ENOMEM;
		snprintf(why, whylen, "out of memory for part %" PRIu32, index);
		goto out;
	}
	memcpy(buf, hdr, REC_HDR_SIZE);
	err = upload_pread_all(fd, buf + REC_HDR_SIZE, h.body_size, at + REC_HDR_SIZE);
	if (err) {
		snprintf(why, whylen, "%s: part %" PRIu32 ": body: %s", path, index,
			 strerror(-err));
		free(buf);
		goto out;
	}
	*off = at;
	*off_ok = true;
	*out = buf;
	*outlen = REC_HDR_SIZE + (size_t)h.body_size;
out:
	close(fd);
	return err;
}

/* ------------------------------------------------------------ HTTP */

static size_t upload_on_data(char *ptr, size_t size, size_t nmemb, void *ctx)
{
	struct agent_upload *u = ctx;
	size_t n = size * nmemb, room = UPLOAD_RESP_MAX - u->resp_len;

	memcpy(u->resp + u->resp_len, ptr, n < room ? n : room);
	u->resp_len += n < room ? n : room;
	u->resp[u->resp_len] = '\0';
	return n;
}

static int upload_on_progress(void *ctx, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
			      curl_off_t ulnow)
{
	struct agent_upload *u = ctx;

	(void)dltotal;
	(void)dlnow;
	(void)ultotal;
	(void)ulnow;
	return __atomic_load_n(&u->stop, __ATOMIC_RELAXED) ? 1 : 0; /* stopping: abort */
}

static void upload_reach(struct agent_upload *u, bool ok, int64_t started, const char *why)
{
	int64_t since = __atomic_load_n(&u->down_since, __ATOMIC_RELAXED);

	if (ok) {
		if (since) {
			log_info("collector %s answers again (unreachable for %" PRId64 " s)",
				 u->base, (int64_t)((util_now_ns() - since) / 1000000000LL));
			__atomic_store_n(&u->down_since, 0, __ATOMIC_RELAXED);
			/* every waiting session goes at once, not at the end of its backoff */
			pthread_mutex_lock(&u->lock);
			for (struct upload_item *it = u->items; it; it = it->next) {
				it->next_try = 0;
				it->attempts = 0;
			}
			pthread_mutex_unlock(&u->lock);
		}
		METRIC_SET(u->m->collector_up, 1);
		return;
	}
	if (!since) {
		log_warn("collector %s unreachable: %s; uploads are retried with backoff, "
			 "recordings wait in %s",
			 u->base, why, u->rec_dir);
		__atomic_store_n(&u->down_since, started, __ATOMIC_RELAXED);
	}
	METRIC_SET(u->m->collector_up, 0);
}

static enum agent_upload_err upload_curl_reason(CURLcode rc)
{
	switch (rc) {
	case CURLE_OPERATION_TIMEDOUT:
		return AGENT_UPLOAD_ERR_TIMEOUT;
	case CURLE_SSL_CONNECT_ERROR:
	case CURLE_PEER_FAILED_VERIFICATION:
	case CURLE_SSL_CERTPROBLEM:
	case CURLE_SSL_CIPHER:
	case CURLE_SSL_CACERT_BADFILE:
	case CURLE_SSL_ENGINE_NOTFOUND:
	case CURLE_SSL_ENGINE_SETFAILED:
	case CURLE_SSL_ISSUER_ERROR:
	case CURLE_SSL_CRL_BADFILE:
	case CURLE_SSL_SHUTDOWN_FAILED:
	case CURLE_USE_SSL_FAILED:
		return AGENT_UPLOAD_ERR_TLS;
	default:
		return AGENT_UPLOAD_ERR_CONNECT;
	}
}

/* The collector's one-line reason ({"error": "..."}), or the start of the body. */
static void upload_resp_why(struct agent_upload *u, long status, char *why, size_t whylen)
{
	json_t *j = json_loadb(u->resp, u->resp_len, 0, NULL);
	const char *e = j ? json_string_value(json_object_get(j, "error")) : NULL;

	if (e)
		snprintf(why, whylen, "HTTP %ld: %s", status, e);
	else
		snprintf(why, whylen, "HTTP %ld%s%.120s", status, u->resp_len ? ": " : "", u->resp);
	for (char *c = why; *c; c++) {
		if ((unsigned char)*c < 0x20)
			*c = ' ';
	}
	json_decref(j);
}

/*
 * One request with a body (or none). Returns the verdict; *status is the HTTP
 * status (0 when no answer came) and why one line saying what happened.
 */
static enum agent_upload_verdict upload_request(struct agent_upload *u, const char *method,
						const char *path, const void *body, size_t len,
						bool json, long *status, char *why, size_t whylen)
{
	char url[PATH_MAX + 256], errbuf[CURL_ERROR_SIZE] = "";
	enum agent_upload_verdict v;
	int64_t started = util_now_ns();
	CURLcode rc;
	CURL *c = u->curl;

	*status = 0;
	snprintf(url, sizeof(url), "%s%s", u->base, path);
	u->resp_len = 0;
	u->resp[0] = '\0';
	curl_easy_reset(c); /* keeps the connection and TLS session caches */
	curl_easy_setopt(c, CURLOPT_URL, url);
	curl_easy_setopt(c, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_1_1);
#if LIBCURL_VERSION_NUM >= 0x075500
	curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "http,https");
#else
	curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
	curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
	curl_easy_setopt(c, CURLOPT_FOLLOWLOCATION, 0L);
	curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT, UPLOAD_CONNECT_TIMEOUT);
	curl_easy_setopt(c, CURLOPT_TIMEOUT, UPLOAD_TIMEOUT);
	/* a stalled transfer is a dead collector long before the overall timeout */
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_LIMIT, 1024L);
	curl_easy_setopt(c, CURLOPT_LOW_SPEED_TIME, 30L);
	curl_easy_setopt(c, CURLOPT_USERAGENT, u->user_agent);
	curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
	curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, upload_on_data);
	curl_easy_setopt(c, CURLOPT_WRITEDATA, u);
	curl_easy_setopt(c, CURLOPT_NOPROGRESS, 0L);
	curl_easy_setopt(c, CURLOPT_XFERINFOFUNCTION, upload_on_progress);
	curl_easy_setopt(c, CURLOPT_XFERINFODATA, u);
	if (u->ca_file)
		curl_easy_setopt(c, CURLOPT_CAINFO, u->ca_file);
	if (u->cert_file)
		curl_easy_setopt(c, CURLOPT_SSLCERT, u->cert_file);
	if (u->key_file)
		curl_easy_setopt(c, CURLOPT_SSLKEY, u->key_file);
	if (strcmp(method, "GET") != 0) {
		curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
		curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
		curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)len);
		curl_easy_setopt(c, CURLOPT_HTTPHEADER, json ? u->hdr_json : u->hdr_bin);
	}
	__atomic_store_n(&u->inflight_since, started, __ATOMIC_RELAXED);
	rc = curl_easy_perform(c);
	__atomic_store_n(&u->inflight_since, 0, __ATOMIC_RELAXED);
	u->last_request = (int64_t)util_mono_ns();
	if (rc != CURLE_OK) {
		if (rc == CURLE_ABORTED_BY_CALLBACK) {
			snprintf(why, whylen, "stopping");
			return AGENT_UPLOAD_RETRY;
		}
		snprintf(why, whylen, "%s %s: %s", method, url,
			 errbuf[0] ? errbuf : curl_easy_strerror(rc));
		METRIC_ADD(u->m->upload_errors[upload_curl_reason(rc)], 1);
		upload_reach(u, false, started, why);
		return AGENT_UPLOAD_RETRY;
	}
	curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
	v = agent_upload_classify(*status);
	if (v == AGENT_UPLOAD_OK) {
		snprintf(why, whylen, "HTTP %ld", *status);
		METRIC_SET(u->m->upload_last_ok, (uint64_t)(util_now_ns() / 1000000000LL));
	} else {
		upload_resp_why(u, *status, why, whylen);
	}
	switch (v) {
	case AGENT_UPLOAD_RETRY:
		METRIC_ADD(u->m->upload_errors[*status == 429 ? AGENT_UPLOAD_ERR_THROTTLED
							      : AGENT_UPLOAD_ERR_SERVER],
			   1);
		/* a collector that cannot store is as good as gone for a sync session */
		upload_reach(u, false, started, why);
		break;
	case AGENT_UPLOAD_CONFLICT:
		METRIC_ADD(u->m->upload_errors[AGENT_UPLOAD_ERR_CONFLICT], 1);
		upload_reach(u, true, started, why);
		break;
	case AGENT_UPLOAD_REFUSED:
		METRIC_ADD(u->m->upload_errors[AGENT_UPLOAD_ERR_REFUSED], 1);
		upload_reach(u, true, started, why);
		break;
	case AGENT_UPLOAD_OK:
		upload_reach(u, true, started, why);
		break;
	}
	return v;
}

/* ------------------------------------------------------------ items */

static struct upload_item *upload_find(struct agent_upload *u, const char *sid)
{
	for (struct upload_item *it = u->items; it; it = it->next)
		if (strcmp(it->sid, sid) == 0)
			return it;
	return NULL;
}

static struct upload_item *upload_add(struct agent_upload *u, const char *sid, bool sync)
{
	struct upload_item *it = calloc(1, sizeof(*it)), **pp;

	if (!it)
		return NULL;
	snprintf(it->sid, sizeof(it->sid), "%s", sid);
	it->sync = sync;
	/* in arrival order: the oldest recording goes first */
	for (pp = &u->items; *pp; pp = &(*pp)->next)
		;
	*pp = it;
	return it;
}

/* Drop the copies of parts the collector has (under the lock). */
static void upload_prune(struct agent_upload *u, struct upload_item *it)
{
	while (it->parts && it->parts->index < it->acked) {
		struct upload_part *p = it->parts;

		it->parts = p->next;
		if (!it->parts)
			it->parts_tail = NULL;
		u->mem -= p->len;
		free(p->buf);
		free(p);
	}
}

static void upload_free(struct agent_upload *u, struct upload_item *it)
{
	it->acked = UINT32_MAX;
	upload_prune(u, it);
	free(it->body);
	free(it);
}

static void upload_remove(struct agent_upload *u, struct upload_item *it)
{
	for (struct upload_item **pp = &u->items; *pp; pp = &(*pp)->next) {
		if (*pp == it) {
			*pp = it->next;
			break;
		}
	}
	upload_free(u, it);
}

static void upload_gauges(struct agent_upload *u)
{
	uint64_t n = 0, parts = 0;

	for (struct upload_item *it = u->items; it; it = it->next) {
		n++;
		if (it->loaded && it->written > it->acked)
			parts += it->written - it->acked;
	}
	METRIC_SET(u->m->upload_pending, n);
	METRIC_SET(u->m->upload_pending_parts, parts);
	METRIC_SET(u->m->upload_memory_bytes, u->mem);
}

static void upload_save(struct agent_upload *u, struct upload_item *it, int failed_status,
			const char *failed)
{
	struct agent_upload_state st = {.acked = it->acked, .failed_status = failed_status};
	char path[PATH_MAX];
	int err;

	snprintf(st.failed, sizeof(st.failed), "%s", failed ? failed : "");
	upload_path(u, it->sid, "up", path, sizeof(path));
	err = agent_upload_state_save(path, &st);
	if (err)
		log_warn("session %s: cannot write %s: %s (a restart re-sends acknowledged parts)",
			 it->sid, path, strerror(-err));
}

/* Permanent: say it once, remember it in <sid>.up, keep the recording. */
static enum upload_outcome upload_give_up(struct agent_upload *u, struct upload_item *it,
					  int status, const char *why)
{
	char path[PATH_MAX];

	upload_path(u, it->sid, "rec", path, sizeof(path));
	log_error("session %s: upload refused for good (%s); the recording stays in %s, delete "
		  "%s/%s.up to try again",
		  it->sid, why, path, u->rec_dir, it->sid);
	upload_save(u, it, status ? status : -EIO, why);
	return UPLOAD_DONE;
}

/*
 * 409: the collector's view differs: start over from part 0 once (it answers
 * 200 for what it has). Should a part still conflict after that and the
 * session has ended (try_complete), it may have been completed before (by us,
 * just before a crash): completing again is harmless, so try that last.
 */
static enum upload_outcome upload_conflict(struct agent_upload *u, struct upload_item *it,
					   long status, const char *why, bool try_complete)
{
	if (!it->restarted) {
		log_info("session %s: %s: starting over from part 0", it->sid, why);
		it->restarted = true;
		it->acked = 0;
		it->off = 0;
		it->off_ok = true;
		upload_save(u, it, 0, NULL);
		return UPLOAD_PROGRESS;
	}
	if (try_complete && !it->try_complete) {
		it->try_complete = true;
		return UPLOAD_PROGRESS;
	}
	return upload_give_up(u, it, (int)status, why);
}

static enum upload_outcome upload_load(struct agent_upload *u, struct upload_item *it)
{
	struct agent_upload_state st;
	struct rec_scan_info si;
	char path[PATH_MAX];
	int err;

	upload_path(u, it->sid, "up", path, sizeof(path));
	err = agent_upload_state_load(path, &st);
	if (err)
		log_warn("session %s: %s unreadable (%s): uploading from part 0", it->sid, path,
			 strerror(-err));
	if (st.failed_status) {
		log_debug("session %s: upload was refused before (%s), skipped", it->sid,
			  st.failed);
		return UPLOAD_DONE;
	}
	it->acked = st.acked;
	if (!it->sync) {
		upload_path(u, it->sid, "rec", path, sizeof(path));
		err = rec_scan(path, &si);
		if (err == -ENOENT) {
			log_debug("session %s: %s is gone", it->sid, path);
			return UPLOAD_DONE;
		}
		if (err) {
			METRIC_ADD(u->m->upload_errors[AGENT_UPLOAD_ERR_LOCAL], 1);
			log_warn("session %s: cannot read %s: %s", it->sid, path, strerror(-err));
			return UPLOAD_BACKOFF;
		}
		if (!si.final) {
			log_warn("session %s: %s is not final: left to the upload completer",
				 it->sid, path);
			return UPLOAD_DONE;
		}
		pthread_mutex_lock(&u->lock);
		it->written = si.parts;
		pthread_mutex_unlock(&u->lock);
	}
	pthread_mutex_lock(&u->lock);
	if (it->acked > it->written && !it->sync)
		it->acked = 0; /* a state file from another recording: be safe */
	pthread_mutex_unlock(&u->lock);
	it->loaded = true;
	if (it->acked)
		log_info("session %s: resuming the upload at part %" PRIu32, it->sid, it->acked);
	return UPLOAD_PROGRESS;
}

static enum upload_outcome upload_put(struct agent_upload *u, struct upload_item *it,
				      const uint8_t *copy, size_t copy_len, bool ended)
{
	char path[PATH_MAX], url[128], why[512];
	enum agent_upload_verdict v;
	uint8_t *own = NULL;
	const uint8_t *buf = copy;
	size_t len = copy_len;
	long status;
	int err;

	if (!buf) {
		upload_path(u, it->sid, "rec", path, sizeof(path));
		err = upload_read_part(path, it->acked, &it->off, &it->off_ok, &own, &len, why,
				       sizeof(why));
		if (err == -ENOENT) {
			log_warn("session %s: %s", it->sid, why);
			return UPLOAD_DONE;
		}
		if (err) {
			METRIC_ADD(u->m->upload_errors[AGENT_UPLOAD_ERR_LOCAL], 1);
			return upload_give_up(u, it, err, why);
		}
		buf = own;
	}
	snprintf(url, sizeof(url), "/v1/sessions/%s/parts/%" PRIu32, it->sid, it->acked);
	v = upload_request(u, "PUT", url, buf, len, false, &status, why, sizeof(why));
	free(own);
	switch (v) {
	case AGENT_UPLOAD_OK:
		log_debug("session %s: part %" PRIu32 " acknowledged (%s, %zu bytes)", it->sid,
			  it->acked, why, len);
		METRIC_ADD(u->m->upload_parts, 1);
		METRIC_ADD(u->m->upload_bytes, len);
		it->acked++;
		it->off += len;
		upload_save(u, it, 0, NULL);
		pthread_mutex_lock(&u->lock);
		upload_prune(u, it);
		pthread_mutex_unlock(&u->lock);
		return UPLOAD_PROGRESS;
	case AGENT_UPLOAD_RETRY:
		log_debug("session %s: part %" PRIu32 ": %s", it->sid, it->acked, why);
		return UPLOAD_BACKOFF;
	case AGENT_UPLOAD_CONFLICT:
		return upload_conflict(u, it, status, why, ended);
	case AGENT_UPLOAD_REFUSED:
		break;
	}
	return upload_give_up(u, it, (int)status, why);
}

static enum upload_outcome upload_complete(struct agent_upload *u, struct upload_item *it)
{
	char path[PATH_MAX], url[128], why[512];
	enum agent_upload_verdict v;
	uint32_t parts = 0;
	long status;
	int err;

	upload_path(u, it->sid, "rec", path, sizeof(path));
	if (!it->body) {
		err = agent_upload_complete_body(path, it->sid, u->node, &it->body, &parts, why,
						 sizeof(why));
		if (err == -EAGAIN || err == -ENOENT) {
			log_warn("session %s: %s: left to the upload completer", it->sid, why);
			return UPLOAD_DONE;
		}
		if (err == -EBADMSG) {
			METRIC_ADD(u->m->upload_errors[AGENT_UPLOAD_ERR_LOCAL], 1);
			return upload_give_up(u, it, -EBADMSG, why);
		}
		if (err) {
			log_warn("session %s: %s", it->sid, why);
			return UPLOAD_BACKOFF;
		}
		it->body_parts = parts;
	}
	if (it->acked < it->body_parts && !it->try_complete) {
		/* more on disk than the stream told us about (a part whose copy was never made) */
		pthread_mutex_lock(&u->lock);
		it->written = it->body_parts;
		pthread_mutex_unlock(&u->lock);
		return UPLOAD_PROGRESS;
	}
	snprintf(url, sizeof(url), "/v1/sessions/%s/complete", it->sid);
	v = upload_request(u, "POST", url, it->body, strlen(it->body), true, &status, why,
			   sizeof(why));
	switch (v) {
	case AGENT_UPLOAD_OK:
		if (unlink(path) < 0 && errno != ENOENT)
			log_warn("session %s: uploaded, but cannot delete %s: %s", it->sid, path,
				 strerror(errno));
		upload_path(u, it->sid, "up", path, sizeof(path));
		if (unlink(path) < 0 && errno != ENOENT)
			log_warn("session %s: cannot delete %s: %s", it->sid, path,
				 strerror(errno));
		METRIC_ADD(u->m->upload_sessions, 1);
		log_info("session %s uploaded to %s: %" PRIu32 " parts", it->sid, u->base,
			 it->body_parts);
		return UPLOAD_DONE;
	case AGENT_UPLOAD_RETRY:
		log_debug("session %s: complete: %s", it->sid, why);
		return UPLOAD_BACKOFF;
	case AGENT_UPLOAD_CONFLICT:
		return upload_conflict(u, it, status, why, false);
	case AGENT_UPLOAD_REFUSED:
		break;
	}
	return upload_give_up(u, it, (int)status, why);
}

/* One step of an item: at most one request. */
static enum upload_outcome upload_step(struct agent_upload *u, struct upload_item *it)
{
	const uint8_t *copy = NULL;
	size_t copy_len = 0;
	uint32_t written;
	bool ended;

	if (!it->loaded)
		return upload_load(u, it);
	pthread_mutex_lock(&u->lock);
	written = it->written;
	ended = it->ended;
	/* producers only append: the copy stays valid until this thread prunes it */
	for (struct upload_part *p = it->parts; p; p = p->next) {
		if (p->index == it->acked) {
			copy = p->buf;
			copy_len = p->len;
			break;
		}
	}
	pthread_mutex_unlock(&u->lock);
	if (it->acked < written && !it->try_complete)
		return upload_put(u, it, copy, copy_len, ended);
	if (ended)
		return upload_complete(u, it);
	return UPLOAD_WAIT;
}

static bool upload_has_work(const struct upload_item *it)
{
	return !it->loaded || it->ended || it->acked < it->written;
}

/* The next item to work on (sync sessions first), or NULL; *wake: the earliest backoff end. */
static struct upload_item *upload_pick(struct agent_upload *u, int64_t now, int64_t *wake,
				       bool *waiting)
{
	struct upload_item *best = NULL;

	*wake = INT64_MAX;
	*waiting = false;
	for (struct upload_item *it = u->items; it; it = it->next) {
		if (!it->ended && it->sync)
			*waiting = true; /* a running sync session depends on the collector */
		if (!upload_has_work(it))
			continue;
		if (it->next_try > now) {
			*waiting = true;
			if (it->next_try < *wake)
				*wake = it->next_try;
			continue;
		}
		if (!best || (it->sync && !best->sync))
			best = it;
	}
	return best;
}

static void upload_wait(struct agent_upload *u, int64_t until)
{
	struct timespec ts;

	if (until == INT64_MAX) {
		pthread_cond_wait(&u->wake, &u->lock);
		return;
	}
	ts.tv_sec = (time_t)(until / 1000000000LL);
	ts.tv_nsec = (long)(until % 1000000000LL);
	pthread_cond_timedwait(&u->wake, &u->lock, &ts);
}

static uint32_t upload_random(void)
{
	uint32_t r = 0;

	if (getrandom(&r, sizeof(r), GRND_NONBLOCK) != sizeof(r))
		r = (uint32_t)util_mono_ns();
	return r;
}

static void *upload_main(void *arg)
{
	struct agent_upload *u = arg;

	pthread_setname_np(pthread_self(), "sessrec-upload");
	pthread_mutex_lock(&u->lock);
	while (!u->stop) {
		int64_t now = (int64_t)util_mono_ns(), wake;
		enum upload_outcome out;
		struct upload_item *it;
		bool waiting;

		it = upload_pick(u, now, &wake, &waiting);
		if (!it) {
			/* sessions wait on the collector: notice its return (or loss) cheaply */
			int64_t probe = u->last_request + UPLOAD_PROBE_NS;

			if (waiting && probe <= now) {
				char why[512];
				long status;

				pthread_mutex_unlock(&u->lock);
				upload_request(u, "GET", "/healthz", NULL, 0, false, &status, why,
					       sizeof(why));
				pthread_mutex_lock(&u->lock);
				continue;
			}
			upload_wait(u, waiting && probe < wake ? probe : wake);
			continue;
		}
		pthread_mutex_unlock(&u->lock);
		out = upload_step(u, it);
		pthread_mutex_lock(&u->lock);
		switch (out) {
		case UPLOAD_PROGRESS:
			it->attempts = 0;
			it->next_try = 0;
			break;
		case UPLOAD_WAIT:
			break;
		case UPLOAD_BACKOFF:
			it->attempts++;
			it->next_try =
			    (int64_t)util_mono_ns() +
			    (int64_t)agent_upload_backoff_ms(
				it->attempts, it->sync ? UPLOAD_SYNC_CAP_MS : UPLOAD_BACKOFF_CAP_MS,
				upload_random()) *
				1000000LL;
			break;
		case UPLOAD_DONE:
			upload_remove(u, it);
			break;
		}
		upload_gauges(u);
	}
	pthread_mutex_unlock(&u->lock);
	return NULL;
}

/* ------------------------------------------------------------ API */

static int upload_check_file(const char *what, const char *path)
{
	if (path && access(path, R_OK) != 0) {
		int err = -errno;

		log_error("collector.%s %s: %s", what, path, strerror(errno));
		return err;
	}
	return 0;
}

static char *upload_dup(const char *s)
{
	return s ? strdup(s) : NULL;
}

int agent_upload_start(struct agent_upload **out, const struct agent_upload_opts *o)
{
	const struct agent_collector_conf *k = o->conf;
	struct agent_upload *u;
	pthread_condattr_t ca;
	sigset_t all, old;
	size_t n;
	int err;

	*out = NULL;
	err = upload_check_file("ca_file", k->ca_file);
	if (!err)
		err = upload_check_file("cert_file", k->cert_file);
	if (!err)
		err = upload_check_file("key_file", k->key_file);
	if (err)
		return err;
	if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
		log_error("cannot initialize libcurl");
		return -ENOMEM;
	}
	u = calloc(1, sizeof(*u));
	if (!u) {
		curl_global_cleanup();
		return -ENOMEM;
	}
	pthread_mutex_init(&u->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&u->wake, &ca);
	pthread_condattr_destroy(&ca);
	u->m = o->metrics;
	u->base = upload_dup(k->url);
	u->ca_file = upload_dup(k->ca_file);
	u->cert_file = upload_dup(k->cert_file);
	u->key_file = upload_dup(k->key_file);
	u->node = upload_dup(o->node);
	u->rec_dir = upload_dup(o->rec_dir);
	snprintf(u->user_agent, sizeof(u->user_agent), "sessrec-agent/%s", SESSREC_VERSION);
	u->curl = curl_easy_init();
	u->hdr_bin = curl_slist_append(NULL, "Content-Type: application/octet-stream");
	u->hdr_bin = u->hdr_bin ? curl_slist_append(u->hdr_bin, "Expect:") : NULL;
	u->hdr_json = curl_slist_append(NULL, "Content-Type: application/json");
	u->hdr_json = u->hdr_json ? curl_slist_append(u->hdr_json, "Expect:") : NULL;
	if (!u->base || !u->node || !u->rec_dir || !u->curl || !u->hdr_bin || !u->hdr_json ||
	    (k->ca_file && !u->ca_file) || (k->cert_file && !u->cert_file) ||
	    (k->key_file && !u->key_file)) {
		err = -ENOMEM;
		goto fail;
	}
	n = strlen(u->base);
	while (n > 0 && u->base[n - 1] == '/')
		u->base[--n] = '\0';
	/* the uploader never takes the process's signals: they belong to the event loop */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = -pthread_create(&u->thread, NULL, upload_main, u);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		log_error("cannot start the uploader thread: %s", strerror(-err));
		goto fail;
	}
	u->thread_started = true;
	if (strncmp(u->base, "http://", 7) == 0)
		log_warn("collector %s: plain HTTP, no TLS (only for a development collector on "
			 "loopback)",
			 u->base);
	log_info("uploading recordings to %s (%s mode)", u->base, k->mode);
	*out = u;
	return 0;
fail:
	agent_upload_stop(u);
	return err;
}

void agent_upload_stop(struct agent_upload *u)
{
	if (!u)
		return;
	if (u->thread_started) {
		pthread_mutex_lock(&u->lock);
		__atomic_store_n(&u->stop, true, __ATOMIC_RELAXED);
		pthread_cond_signal(&u->wake);
		pthread_mutex_unlock(&u->lock);
		pthread_join(u->thread, NULL);
	}
	while (u->items) {
		struct upload_item *it = u->items;

		u->items = it->next;
		upload_free(u, it);
	}
	curl_slist_free_all(u->hdr_bin);
	curl_slist_free_all(u->hdr_json);
	if (u->curl)
		curl_easy_cleanup(u->curl);
	pthread_cond_destroy(&u->wake);
	pthread_mutex_destroy(&u->lock);
	free(u->base);
	free(u->ca_file);
	free(u->cert_file);
	free(u->key_file);
	free(u->node);
	free(u->rec_dir);
	free(u);
	curl_global_cleanup();
}

void agent_upload_drain(struct agent_upload *u, int64_t timeout_ns)
{
	const struct timespec pause = {.tv_nsec = 50000000L};
	int64_t end = (int64_t)util_mono_ns() + timeout_ns;
	size_t pending;

	/* the uploader tells no one when it is done: poll, briefly */
	for (;;) {
		pending = 0;
		pthread_mutex_lock(&u->lock);
		for (struct upload_item *it = u->items; it; it = it->next)
			pending++;
		pthread_mutex_unlock(&u->lock);
		if (!pending || agent_upload_down_since(u) || (int64_t)util_mono_ns() >= end)
			break;
		nanosleep(&pause, NULL);
	}
	if (pending)
		log_info("stopping with %zu upload(s) pending: they resume at the next start",
			 pending);
}

int agent_upload_queue(struct agent_upload *u, const char *sid)
{
	struct upload_item *it;
	int err = 0;

	pthread_mutex_lock(&u->lock);
	it = upload_find(u, sid);
	if (!it)
		it = upload_add(u, sid, false);
	if (it) {
		it->ended = true;
		pthread_cond_signal(&u->wake);
	} else {
		err = -ENOMEM;
	}
	pthread_mutex_unlock(&u->lock);
	return err;
}

int agent_upload_sync_open(struct agent_upload *u, const char *sid, uint32_t parts_on_disk)
{
	struct upload_item *it;
	int err = 0;

	pthread_mutex_lock(&u->lock);
	it = upload_find(u, sid);
	if (!it)
		it = upload_add(u, sid, true);
	if (it) {
		if (parts_on_disk > it->written)
			it->written = parts_on_disk;
		pthread_cond_signal(&u->wake);
	} else {
		err = -ENOMEM;
	}
	pthread_mutex_unlock(&u->lock);
	return err;
}

int agent_upload_part(struct agent_upload *u, const char *sid, uint32_t index, const uint8_t *part,
		      size_t len, bool final)
{
	struct upload_part *p = NULL;
	struct upload_item *it;
	bool room;

	(void) final; /* the session's end comes from agent_upload_queue */
	pthread_mutex_lock(&u->lock);
	room = u->mem + len <= UPLOAD_MEM_MAX;
	pthread_mutex_unlock(&u->lock);
	/* the copy is made outside the lock; over the cap the uploader reads the file instead */
	if (room) {
		p = calloc(1, sizeof(*p));
		if (p)
			p->buf = malloc(len);
		if (p && p->buf) {
			memcpy(p->buf, part, len);
			p->len = len;
			p->index = index;
		} else if (p) {
			free(p);
			p = NULL;
		}
	}
	pthread_mutex_lock(&u->lock);
	it = upload_find(u, sid);
	if (it && !it->ended) {
		if (index + 1 > it->written)
			it->written = index + 1;
		if (p && (!it->parts_tail || it->parts_tail->index < index)) {
			if (it->parts_tail)
				it->parts_tail->next = p;
			else
				it->parts = p;
			it->parts_tail = p;
			u->mem += p->len;
			p = NULL;
		}
		pthread_cond_signal(&u->wake);
	}
	pthread_mutex_unlock(&u->lock);
	if (p) {
		free(p->buf);
		free(p);
	}
	return 0;
}

bool agent_upload_has(struct agent_upload *u, const char *sid)
{
	bool has;

	pthread_mutex_lock(&u->lock);
	has = upload_find(u, sid) != NULL;
	pthread_mutex_unlock(&u->lock);
	return has;
}

int64_t agent_upload_down_since(struct agent_upload *u)
{
	int64_t since = __atomic_load_n(&u->down_since, __ATOMIC_RELAXED);
	int64_t inflight = __atomic_load_n(&u->inflight_since, __ATOMIC_RELAXED);

	if (since)
		return since;
	/* a request that hangs (a collector stopped, a black-holed route) counts too */
	if (inflight && util_now_ns() - inflight >= UPLOAD_STALL_NS)
		return inflight;
	return 0;
}

/* ------------------------------------------------------------ metrics */

#define LOAD(x) __atomic_load_n(&(x), __ATOMIC_RELAXED)

void agent_upload_metrics(FILE *f, const struct agent_metrics *cm)
{
	struct agent_metrics *m = (struct agent_metrics *)cm;

	fprintf(f,
		"# HELP sessrec_agent_upload_parts_total Recording parts the collector "
		"acknowledged.\n"
		"# TYPE sessrec_agent_upload_parts_total counter\n"
		"sessrec_agent_upload_parts_total %lu\n"
		"# HELP sessrec_agent_upload_bytes_total Bytes of the parts the collector "
		"acknowledged.\n"
		"# TYPE sessrec_agent_upload_bytes_total counter\n"
		"sessrec_agent_upload_bytes_total %lu\n"
		"# HELP sessrec_agent_upload_sessions_total Sessions completed at the collector "
		"(their local recording deleted).\n"
		"# TYPE sessrec_agent_upload_sessions_total counter\n"
		"sessrec_agent_upload_sessions_total %lu\n",
		(unsigned long)LOAD(m->upload_parts), (unsigned long)LOAD(m->upload_bytes),
		(unsigned long)LOAD(m->upload_sessions));
	fprintf(f, "# HELP sessrec_agent_upload_errors_total Upload requests that failed, by "
		   "reason.\n"
		   "# TYPE sessrec_agent_upload_errors_total counter\n");
	for (int e = 0; e < AGENT_UPLOAD_ERR_MAX; e++)
		fprintf(f, "sessrec_agent_upload_errors_total{reason=\"%s\"} %lu\n",
			upload_err_names[e], (unsigned long)LOAD(m->upload_errors[e]));
	fprintf(f,
		"# HELP sessrec_agent_upload_queue_sessions Sessions waiting for upload or being "
		"uploaded.\n"
		"# TYPE sessrec_agent_upload_queue_sessions gauge\n"
		"sessrec_agent_upload_queue_sessions %lu\n"
		"# HELP sessrec_agent_upload_queue_parts Parts on disk that the collector has not "
		"acknowledged yet (of the sessions being uploaded).\n"
		"# TYPE sessrec_agent_upload_queue_parts gauge\n"
		"sessrec_agent_upload_queue_parts %lu\n"
		"# HELP sessrec_agent_upload_memory_bytes Copies of sync parts held for the "
		"uploader.\n"
		"# TYPE sessrec_agent_upload_memory_bytes gauge\n"
		"sessrec_agent_upload_memory_bytes %lu\n"
		"# HELP sessrec_agent_upload_last_success_timestamp_seconds Unix time of the last "
		"request the collector acknowledged (0: none yet).\n"
		"# TYPE sessrec_agent_upload_last_success_timestamp_seconds gauge\n"
		"sessrec_agent_upload_last_success_timestamp_seconds %lu\n"
		"# HELP sessrec_agent_collector_up 1 when the collector answered the last request, "
		"else 0.\n"
		"# TYPE sessrec_agent_collector_up gauge\n"
		"sessrec_agent_collector_up %lu\n"
		"# HELP sessrec_agent_sessions_terminated_total Sync sessions terminated because "
		"the collector was unreachable longer than sync_grace_period.\n"
		"# TYPE sessrec_agent_sessions_terminated_total counter\n"
		"sessrec_agent_sessions_terminated_total %lu\n"
		"# HELP sessrec_agent_sessions_adopted_total Running sessions taken back by a "
		"restarted agent.\n"
		"# TYPE sessrec_agent_sessions_adopted_total counter\n"
		"sessrec_agent_sessions_adopted_total %lu\n"
		"# HELP sessrec_agent_completer_closed_total Recordings left open by a crash and "
		"closed by the upload completer.\n"
		"# TYPE sessrec_agent_completer_closed_total counter\n"
		"sessrec_agent_completer_closed_total %lu\n",
		(unsigned long)LOAD(m->upload_pending),
		(unsigned long)LOAD(m->upload_pending_parts),
		(unsigned long)LOAD(m->upload_memory_bytes), (unsigned long)LOAD(m->upload_last_ok),
		(unsigned long)LOAD(m->collector_up), (unsigned long)LOAD(m->sessions_terminated),
		(unsigned long)LOAD(m->sessions_adopted), (unsigned long)LOAD(m->completer_closed));
}

#undef LOAD
