/*
 * Ingest: a part is checked against its own header and against the stored
 * chain before it is stored, so that a complete session is always a sound
 * recording; completing a session reads the recording once to index it and to
 * append its audit lines to the central log.
 *
 * Uploads and completions of one session are serialised (a lock per stripe of
 * session ids), so that the check-then-store steps and the read-modify-write
 * of the session row never interleave. Every step is idempotent: after a crash
 * anywhere, the node's retry finishes the work (a stored part answers 200, the
 * audit store ignores lines it holds already, the session row is rewritten).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <openssl/evp.h>

#include "audit.h"
#include "collector.h"
#include "log.h"
#include "rec.h"
#include "util.h"

#define INGEST_LOCKS	    64
#define INGEST_UPLOAD_EI    2147483647 /* Teleport's SessionUploadIndex: after every event */
#define INGEST_NONE	    SIZE_MAX   /* no string */
#define INGEST_CODE_UPLOAD  "T2005I"
#define INGEST_EVENT_UPLOAD "session.upload"
#define INGEST_CLOSED_MAX   16
#define INGEST_HASH_CHUNK   (16u << 10) /* bytes hashed into both digests at a time */

static pthread_mutex_t ingest_locks[INGEST_LOCKS];
static pthread_once_t ingest_locks_once = PTHREAD_ONCE_INIT;

/* Who hears of completed sessions (the summarizer's policy matching). */
static pthread_mutex_t ingest_hook_lock = PTHREAD_MUTEX_INITIALIZER;
static collector_complete_hook ingest_hook;
static void *ingest_hook_ctx;

void collector_set_complete_hook(collector_complete_hook fn, void *ctx)
{
	pthread_mutex_lock(&ingest_hook_lock);
	ingest_hook = fn;
	ingest_hook_ctx = ctx;
	pthread_mutex_unlock(&ingest_hook_lock);
}

static void ingest_notify(const struct store_session *row, const char *end_line)
{
	collector_complete_hook fn;
	void *ctx;

	pthread_mutex_lock(&ingest_hook_lock);
	fn = ingest_hook;
	ctx = ingest_hook_ctx;
	pthread_mutex_unlock(&ingest_hook_lock);
	if (fn)
		fn(ctx, row, end_line);
}

static void ingest_locks_init(void)
{
	size_t i;

	for (i = 0; i < INGEST_LOCKS; i++)
		pthread_mutex_init(&ingest_locks[i], NULL);
}

static pthread_mutex_t *ingest_lock(const char *sid)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	pthread_once(&ingest_locks_once, ingest_locks_init);
	for (; *sid; sid++)
		h = (h ^ (uint8_t)*sid) * 16777619u;
	return &ingest_locks[h % INGEST_LOCKS];
}

/* ------------------------------------------------------------ answers */

struct ingest_reply {
	int *status;
	char *why;
	size_t whylen;
};

/* A decided answer (2xx or 4xx): the function returns 0. */
__attribute__((format(printf, 3, 4))) static int ingest_say(const struct ingest_reply *r, int code,
							    const char *fmt, ...)
{
	va_list ap;

	*r->status = code;
	if (r->why && r->whylen) {
		va_start(ap, fmt);
		vsnprintf(r->why, r->whylen, fmt, ap);
		va_end(ap);
	}
	return 0;
}

/* The store or the machine failed: 5xx, logged, and the error returned. */
static int ingest_fail(const struct ingest_reply *r, const char *sid, int err, const char *what)
{
	int code = err == -ENOSPC ? 507 : err == -EBUSY ? 503 : 500;

	log_error("session %s: %s: %s", sid, what, strerror(-err));
	ingest_say(r, code, "%s: %s", what, strerror(-err));
	return err;
}

/* What the caller gets back: an error exactly when the answer is a 5xx. */
static int ingest_result(const struct ingest_reply *r, int err)
{
	if (*r->status < 500)
		return 0;
	return err < 0 ? err : -EIO;
}

static int ingest_sha256(const void *p, size_t len, uint8_t out[32])
{
	unsigned int n = 0;

	if (EVP_Digest(p, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32)
		return -EIO;
	return 0;
}

/*
 * The SHA-256 of a part's body (which its header names) and of the whole part
 * (what the next part's prev_hash must be), in one walk over the part: each
 * piece goes into both digests while it is in the cache.
 */
static int ingest_part_hashes(const uint8_t *buf, size_t len, uint8_t body[32], uint8_t whole[32])
{
	EVP_MD_CTX *b = EVP_MD_CTX_new(), *w = EVP_MD_CTX_new();
	const EVP_MD *md = EVP_sha256();
	unsigned int nb = 0, nw = 0;
	size_t off, k;
	int err = -EIO;

	if (!b || !w) {
		err = -ENOMEM;
		goto out;
	}
	if (len < REC_HDR_SIZE || EVP_DigestInit_ex(b, md, NULL) != 1 ||
	    EVP_DigestInit_ex(w, md, NULL) != 1 || EVP_DigestUpdate(w, buf, REC_HDR_SIZE) != 1)
		goto out;
	for (off = REC_HDR_SIZE; off < len; off += k) {
		k = len - off < INGEST_HASH_CHUNK ? len - off : INGEST_HASH_CHUNK;
		if (EVP_DigestUpdate(b, buf + off, k) != 1 ||
		    EVP_DigestUpdate(w, buf + off, k) != 1)
			goto out;
	}
	if (EVP_DigestFinal_ex(b, body, &nb) != 1 || EVP_DigestFinal_ex(w, whole, &nw) != 1 ||
	    nb != 32 || nw != 32)
		goto out;
	err = 0;
out:
	EVP_MD_CTX_free(b);
	EVP_MD_CTX_free(w);
	return err;
}

/* ------------------------------------------------------------ session rows */

static int ingest_dup(char **dst, const char *s)
{
	char *p = strdup(s ? s : "");

	if (!p)
		return -ENOMEM;
	free(*dst);
	*dst = p;
	return 0;
}

static const char *ingest_jstr(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

/* A JSON value as compact text, or dflt when absent. */
static int ingest_jdump(json_t *v, const char *dflt, char **out)
{
	char *t = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;

	if (!v)
		return ingest_dup(out, dflt);
	if (!t)
		return -ENOMEM;
	free(*out);
	*out = t;
	return 0;
}

/*
 * The session.start event as its audit line, parsed back: the same field
 * values the audit log shows (invalid UTF-8 replaced, the session's label
 * winning over a node label of the same key), for the row and session.upload.
 */
static int ingest_start_json(const Sessrec__Event *ev, const char *sid, json_t **out)
{
	struct audit_ctx ctx = {.sid = sid};
	json_error_t jerr;
	char *line = NULL;
	json_t *j;
	int err;

	*out = NULL;
	err = audit_format(ev, &ctx, &line);
	if (err)
		return err;
	j = json_loads(line, 0, &jerr);
	free(line);
	if (!j || !json_is_object(j)) {
		json_decref(j);
		return -EBADMSG;
	}
	*out = j;
	return 0;
}

/* Fill a session row from session.start (status uploading, end unknown). */
static int ingest_row_from_start(const Sessrec__Event *ev, json_t *startj, const char *sid,
				 struct store_session *ss)
{
	const char *node = ingest_jstr(startj, "server_hostname");
	int err;

	if (!*node)
		node = ingest_jstr(startj, "server_id");
	snprintf(ss->sid, sizeof(ss->sid), "%s", sid);
	err = ingest_dup(&ss->node, node);
	if (!err)
		err = ingest_dup(&ss->user, ingest_jstr(startj, "user"));
	if (!err)
		err = ingest_dup(&ss->login, ingest_jstr(startj, "login"));
	if (!err)
		err = ingest_dup(&ss->kind, ingest_jstr(startj, "kind"));
	if (!err)
		err = ingest_jdump(json_object_get(startj, "labels"), "{}", &ss->labels_json);
	if (!err)
		err = ingest_jdump(json_object_get(startj, "initial_command"), "[]",
				   &ss->initial_command_json);
	if (!err)
		err = ingest_dup(&ss->status, "uploading");
	if (!err)
		err = ingest_dup(&ss->closed_by, "");
	if (err)
		return err;
	ss->start_ns = ev->time_ns;
	ss->end_ns = 0;
	ss->exit_code = -1;
	ss->cols = ev->start->cols;
	ss->rows = ev->start->rows;
	return 0;
}

/*
 * The first event of a part 0 (known to chain to sid). 0 with *ev set, or
 * -EBADMSG with the reader's reason in why.
 */
static int ingest_part0_start(const uint8_t *buf, size_t len, const char *sid, Sessrec__Event **ev,
			      char *why, size_t whylen)
{
	struct rec_reader *r = NULL;
	int err;

	*ev = NULL;
	err = rec_reader_open_mem(&r, buf, len);
	if (err)
		return err;
	err = rec_reader_expect_sid(r, sid);
	if (!err)
		err = rec_reader_next(r, ev);
	if (err == 1 && (*ev)->body_case == SESSREC__EVENT__BODY_START && (*ev)->start) {
		err = 0;
	} else if (err >= 0) {
		/* the reader refuses a part 0 that does not start so; this is belt and braces */
		snprintf(why, whylen, "part 0 does not start with session.start");
		err = -EBADMSG;
	} else {
		snprintf(why, whylen, "%s", rec_reader_error(r));
		if (err != -ENOMEM)
			err = -EBADMSG;
	}
	if (err && *ev) {
		sessrec__event__free_unpacked(*ev, NULL);
		*ev = NULL;
	}
	rec_reader_close(r);
	return err;
}

static int ingest_row_from_event(const Sessrec__Event *ev, const char *sid,
				 struct store_session *ss)
{
	json_t *startj = NULL;
	int err;

	err = ingest_start_json(ev, sid, &startj);
	if (!err)
		err = ingest_row_from_start(ev, startj, sid, ss);
	json_decref(startj);
	return err;
}

/* A new row for sid from a part 0 (which must be sound: it was checked when stored). */
static int ingest_row_from_part0(const uint8_t *buf, size_t len, const char *sid,
				 struct store_session *ss, char *why, size_t whylen)
{
	Sessrec__Event *ev = NULL;
	int err;

	err = ingest_part0_start(buf, len, sid, &ev, why, whylen);
	if (!err)
		err = ingest_row_from_event(ev, sid, ss);
	if (ev)
		sessrec__event__free_unpacked(ev, NULL);
	return err;
}

/*
 * No row for a session with stored parts (a crash between storing a part and
 * writing the row): rebuild it from part 0 and the stored parts.
 */
static int ingest_row_rebuild(struct store *st, const struct store_ops *ops, const char *sid,
			      struct store_session *ss)
{
	char why[256] = "";
	uint8_t *buf = NULL;
	uint64_t size;
	size_t len = 0;
	uint32_t n;
	int err;

	err = ops->part_get(st, sid, 0, &buf, &len);
	if (err)
		return err;
	err = ingest_row_from_part0(buf, len, sid, ss, why, sizeof(why));
	free(buf);
	if (err) {
		log_error("session %s: stored part 0 unreadable: %s", sid, why);
		return err;
	}
	for (n = 0; (err = ops->part_stat(st, sid, n, NULL, &size)) == 0; n++)
		ss->bytes += size;
	if (err != -ENOENT)
		return err;
	ss->parts = n;
	log_warn("session %s: index row rebuilt from its %u stored parts", sid, n);
	return 0;
}

/* ------------------------------------------------------------ part upload */

/*
 * The row after part n (len bytes) was stored, from the row as read under the
 * session's lock (ss; an empty sid when there was none): counts grown,
 * created when missing.
 */
static int ingest_row_grow(struct store *st, const struct store_ops *ops, const char *sid,
			   uint32_t n, size_t len, struct store_session *ss)
{
	int err = 0;

	if (!ss->sid[0]) {
		store_session_clear(ss);
		err = ingest_row_rebuild(st, ops, sid, ss);
	} else if (ss->parts <= n) {
		ss->parts = n + 1;
		ss->bytes += len;
	} else {
		return 0; /* a repeated upload: nothing changed */
	}
	if (!err)
		err = ops->session_put(st, ss);
	return err;
}

/* The row after part n (len bytes) was stored: counts grown, created when missing. */
static int ingest_row_after_part(struct store *st, const struct store_ops *ops, const char *sid,
				 uint32_t n, size_t len)
{
	struct store_session ss = {0};
	int err;

	err = ops->session_get(st, sid, &ss);
	if (err == -ENOENT) {
		store_session_clear(&ss);
		err = 0;
	}
	if (!err)
		err = ingest_row_grow(st, ops, sid, n, len, &ss);
	store_session_clear(&ss);
	return err;
}

int collector_part_upload(struct store *st, const struct store_ops *ops, const char *sid,
			  uint32_t n, const uint8_t *buf, size_t len, int *status, char *why,
			  size_t whylen)
{
	const struct ingest_reply r = {status, why, whylen};
	struct store_session ss = {0};
	struct rec_part_hdr h;
	pthread_mutex_t *lock = NULL;
	uint8_t body[32], hash[32], stored[32];
	const char *reason = NULL;
	char rwhy[256] = "";
	Sessrec__Event *start = NULL;
	uint64_t size = 0;
	int err;

	if (!st || !ops || !sid || !status)
		return -EINVAL;
	ingest_say(&r, 500, "%s", "");
	if (!util_is_uuid(sid))
		return ingest_say(&r, 400, "session id is not a UUID");
	if (!buf || len < REC_HDR_SIZE)
		return ingest_say(&r, 400, "part is %zu bytes, shorter than a part header (%d)",
				  buf ? len : 0, REC_HDR_SIZE);
	if (rec_hdr_decode(buf, &h, &reason) != 0)
		return ingest_say(&r, 400, "part header: %s", reason ? reason : "does not parse");
	if (h.index != n)
		return ingest_say(&r, 400, "the header says part %u, uploaded as part %u", h.index,
				  n);
	if ((uint64_t)h.body_size + REC_HDR_SIZE != len)
		return ingest_say(&r, 400,
				  "part is %zu bytes, its header says %" PRIu64
				  " (truncated or trailing bytes)",
				  len, (uint64_t)h.body_size + REC_HDR_SIZE);
	/* hash: what the next part's prev_hash must be, the whole part, header included */
	err = ingest_part_hashes(buf, len, body, hash);
	if (err)
		return ingest_fail(&r, sid, err, "SHA-256");
	if (memcmp(body, h.body_hash, 32) != 0)
		return ingest_say(&r, 400, "body hash mismatch");

	lock = ingest_lock(sid);
	pthread_mutex_lock(lock);
	err = ops->part_stat(st, sid, n, stored, &size);
	if (err == 0) {
		if (memcmp(stored, hash, 32) != 0) {
			ingest_say(&r, 409, "a different part %u is already stored", n);
			goto out;
		}
		/* the retry of an upload whose answer was lost: make sure the row exists */
		err = ops->session_get(st, sid, &ss);
		if (err == -ENOENT)
			err = ingest_row_after_part(st, ops, sid, n, len);
		if (err) {
			ingest_fail(&r, sid, err, "index");
			goto out;
		}
		ingest_say(&r, 200, "part %u is already stored", n);
		goto out;
	}
	if (err != -ENOENT) {
		ingest_fail(&r, sid, err, "part_stat");
		goto out;
	}
	err = ops->session_get(st, sid, &ss);
	if (err == 0 && ss.status && strcmp(ss.status, "complete") == 0) {
		ingest_say(&r, 409, "session is complete: no more parts");
		goto out;
	}
	if (err && err != -ENOENT) {
		ingest_fail(&r, sid, err, "session_get");
		goto out;
	}
	err = 0;
	if (n == 0) {
		rec_chain_seed(sid, stored);
		if (memcmp(h.prev_hash, stored, 32) != 0) {
			ingest_say(
			    &r, 409,
			    "part 0 does not chain to session %s (a part of another session?)",
			    sid);
			goto out;
		}
		/* Decoded now, so a part 0 that cannot start a recording is never stored. */
		err = ingest_part0_start(buf, len, sid, &start, rwhy, sizeof(rwhy));
		if (err == -ENOMEM) {
			ingest_fail(&r, sid, err, "part 0");
			goto out;
		}
		if (err) {
			err = 0;
			ingest_say(&r, 400, "%s", rwhy);
			goto out;
		}
	} else {
		err = ops->part_stat(st, sid, n - 1, stored, NULL);
		if (err == -ENOENT) {
			err = 0;
			ingest_say(&r, 409, "part %u is missing: upload it first", n - 1);
			goto out;
		}
		if (err) {
			ingest_fail(&r, sid, err, "part_stat");
			goto out;
		}
		if (memcmp(h.prev_hash, stored, 32) != 0) {
			ingest_say(&r, 409, "part %u does not chain to part %u", n, n - 1);
			goto out;
		}
	}

	err = ops->part_put(st, sid, n, buf, len, hash);
	if (err == -EEXIST) {
		/* another collector stored it meanwhile: answer as for a repeat */
		err = ops->part_stat(st, sid, n, stored, NULL);
		if (!err && memcmp(stored, hash, 32) == 0)
			ingest_say(&r, 200, "part %u is already stored", n);
		else if (!err)
			ingest_say(&r, 409, "a different part %u is already stored", n);
		else
			ingest_fail(&r, sid, err, "part_stat");
		goto out;
	}
	if (err) {
		ingest_fail(&r, sid, err, "storing the part");
		goto out;
	}
	if (n == 0 && ss.sid[0] == '\0') {
		err = ingest_row_from_event(start, sid, &ss);
		if (!err) {
			ss.parts = 1;
			ss.bytes = len;
			err = ops->session_put(st, &ss);
		}
	} else {
		/* ss is the row as read above, under the session's lock: still current */
		err = ingest_row_grow(st, ops, sid, n, len, &ss);
	}
	if (err) {
		/* the part is stored: its retry (200) or the completion mends the row */
		ingest_fail(&r, sid, err, "index");
		goto out;
	}
	ingest_say(&r, 201, "part %u stored", n);
out:
	pthread_mutex_unlock(lock);
	if (start)
		sessrec__event__free_unpacked(start, NULL);
	store_session_clear(&ss);
	return ingest_result(&r, err);
}

/* ------------------------------------------------------------ completion: end metadata */

struct ingest_end {
	bool have_exit;
	int32_t exit_code;
	int64_t stop_ns; /* 0: not given */
	char closed_by[INGEST_CLOSED_MAX];
};

static int ingest_digits(const char **p, int n, int *out)
{
	int v = 0;

	while (n--) {
		if (**p < '0' || **p > '9')
			return -EINVAL;
		v = v * 10 + (*(*p)++ - '0');
	}
	*out = v;
	return 0;
}

/* RFC 3339: 2026-11-22T10:13:19[.123456789](Z|+01:00). */
static int ingest_rfc3339(const char *s, int64_t *ns)
{
	int y, mo, d, h, mi, sec, oh = 0, om = 0, sign = 0, digits = 0;
	int64_t frac = 0;
	struct tm tm = {0};
	time_t t;

	if (ingest_digits(&s, 4, &y) || *s++ != '-' || ingest_digits(&s, 2, &mo) || *s++ != '-' ||
	    ingest_digits(&s, 2, &d) || (*s != 'T' && *s != 't' && *s != ' '))
		return -EINVAL;
	s++;
	if (ingest_digits(&s, 2, &h) || *s++ != ':' || ingest_digits(&s, 2, &mi) || *s++ != ':' ||
	    ingest_digits(&s, 2, &sec))
		return -EINVAL;
	if (*s == '.') {
		for (s++; *s >= '0' && *s <= '9'; s++, digits++)
			if (digits < 9)
				frac = frac * 10 + (*s - '0');
		if (digits == 0)
			return -EINVAL;
		for (; digits < 9; digits++)
			frac *= 10;
	}
	if (*s == 'Z' || *s == 'z') {
		s++;
	} else if (*s == '+' || *s == '-') {
		sign = *s++ == '-' ? -1 : 1;
		if (ingest_digits(&s, 2, &oh) || *s++ != ':' || ingest_digits(&s, 2, &om))
			return -EINVAL;
	} else {
		return -EINVAL;
	}
	if (*s || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > 31 || h > 23 || mi > 59 ||
	    sec > 60 || oh > 23 || om > 59)
		return -EINVAL;
	tm.tm_year = y - 1900;
	tm.tm_mon = mo - 1;
	tm.tm_mday = d;
	tm.tm_hour = h;
	tm.tm_min = mi;
	tm.tm_sec = sec;
	t = timegm(&tm);
	if (t == (time_t)-1)
		return -EINVAL;
	t -= (time_t)sign * (oh * 3600 + om * 60);
	if (t < 0)
		return -EINVAL;
	*ns = (int64_t)t * 1000000000LL + frac;
	return 0;
}

/*
 * The "end" object of a completion: session.end fields as the node knows them.
 * Read here: closed_by ("session" or "completer"), exit_code, session_stop
 * (RFC 3339) or session_stop_ns. Other fields are the node's business.
 */
static int ingest_end_parse(const char *text, struct ingest_end *e, char *why, size_t whylen)
{
	json_error_t jerr;
	json_t *j = NULL, *v;
	const char *s;
	int err = -EINVAL;

	memset(e, 0, sizeof(*e));
	snprintf(e->closed_by, sizeof(e->closed_by), "session");
	if (!text || !*text)
		return 0;
	j = json_loads(text, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
	if (!j) {
		snprintf(why, whylen, "end: not JSON: %s", jerr.text);
		return -EINVAL;
	}
	if (json_is_null(j)) {
		err = 0;
		goto out;
	}
	if (!json_is_object(j)) {
		snprintf(why, whylen, "end: not a JSON object");
		goto out;
	}
	v = json_object_get(j, "closed_by");
	if (v) {
		s = json_string_value(v);
		if (!s || (strcmp(s, "session") != 0 && strcmp(s, "completer") != 0)) {
			snprintf(why, whylen,
				 "end.closed_by: \"session\" or \"completer\" expected");
			goto out;
		}
		snprintf(e->closed_by, sizeof(e->closed_by), "%s", s);
	}
	v = json_object_get(j, "exit_code");
	if (v) {
		if (!json_is_integer(v) || json_integer_value(v) < INT32_MIN ||
		    json_integer_value(v) > INT32_MAX) {
			snprintf(why, whylen, "end.exit_code: a 32-bit integer expected");
			goto out;
		}
		e->have_exit = true;
		e->exit_code = (int32_t)json_integer_value(v);
	}
	v = json_object_get(j, "session_stop_ns");
	if (v) {
		if (!json_is_integer(v) || json_integer_value(v) <= 0) {
			snprintf(why, whylen, "end.session_stop_ns: a positive integer expected");
			goto out;
		}
		e->stop_ns = json_integer_value(v);
	}
	v = json_object_get(j, "session_stop");
	if (v && !e->stop_ns) {
		s = json_string_value(v);
		if (!s || ingest_rfc3339(s, &e->stop_ns) != 0) {
			snprintf(why, whylen, "end.session_stop: an RFC 3339 time expected");
			goto out;
		}
	}
	err = 0;
out:
	json_decref(j);
	return err;
}

/* ------------------------------------------------------------ completion: reading */

/*
 * The parts go to the reader through a pipe, written by a thread: the reader
 * checks the whole chain as one recording while memory holds about one part,
 * however long the session was.
 */
struct ingest_feed {
	struct store *st;
	const struct store_ops *ops;
	const char *sid;
	uint32_t parts;
	int fd;
	int err; /* the store's, not the reader's */
	uint32_t failed;
	pthread_t thread;
};

static void *ingest_feed_main(void *arg)
{
	struct ingest_feed *f = arg;
	uint8_t *buf;
	size_t len;
	uint32_t i;
	int err;

	/* SIGPIPE is blocked here (set by the creator): a reader that stopped is EPIPE. */
	for (i = 0; i < f->parts; i++) {
		err = f->ops->part_get(f->st, f->sid, i, &buf, &len);
		if (err) {
			f->err = err;
			f->failed = i;
			break;
		}
		err = util_write_all(f->fd, buf, len);
		free(buf);
		if (err)
			break; /* the reader stopped early: it says why */
	}
	close(f->fd);
	f->fd = -1;
	return NULL;
}

static int ingest_feed_start(struct ingest_feed *f, int *rfd)
{
	sigset_t block, old;
	int p[2], err;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -errno;
	f->fd = p[1];
	sigemptyset(&block);
	sigaddset(&block, SIGPIPE);
	err = -pthread_sigmask(SIG_BLOCK, &block, &old);
	if (!err) {
		err = -pthread_create(&f->thread, NULL, ingest_feed_main, f);
		if (pthread_sigmask(SIG_SETMASK, &old, NULL) != 0 && !err)
			log_warn("ingest: cannot restore the signal mask");
	}
	if (err) {
		close(p[0]);
		close(p[1]);
		f->fd = -1;
		return err;
	}
	*rfd = p[0];
	return 0;
}

/* A growing arena of NUL-terminated strings, addressed by offset. */
struct ingest_text {
	char *p;
	size_t len, cap;
};

/* Room for n bytes and a NUL at *off (left for the caller to fill). */
static int ingest_text_room(struct ingest_text *t, size_t n, size_t *off)
{
	size_t cap;
	char *p;

	if (n > SIZE_MAX / 4 - t->len)
		return -EOVERFLOW;
	if (t->len + n + 1 > t->cap) {
		cap = t->cap ? t->cap : 65536;
		while (cap < t->len + n + 1)
			cap *= 2;
		p = realloc(t->p, cap);
		if (!p)
			return -ENOMEM;
		t->p = p;
		t->cap = cap;
	}
	t->p[t->len + n] = '\0';
	*off = t->len;
	t->len += n + 1;
	return 0;
}

static int ingest_text_add(struct ingest_text *t, const char *s, size_t n, size_t *off)
{
	int err = ingest_text_room(t, n, off);

	if (!err && n)
		memcpy(t->p + *off, s, n);
	return err;
}

static int ingest_text_str(struct ingest_text *t, const char *s, size_t *off)
{
	if (!s) {
		*off = INGEST_NONE;
		return 0;
	}
	return ingest_text_add(t, s, strlen(s), off);
}

/* argv joined by spaces. */
static int ingest_text_argv(struct ingest_text *t, char *const *argv, size_t n, size_t *off)
{
	size_t i, len = 0, o;
	int err;

	for (i = 0; i < n; i++)
		len += (argv[i] ? strlen(argv[i]) : 0) + 1;
	err = ingest_text_room(t, len ? len - 1 : 0, off);
	if (err)
		return err;
	o = *off;
	for (i = 0; i < n; i++) {
		size_t k = argv[i] ? strlen(argv[i]) : 0;

		if (i)
			t->p[o++] = ' ';
		if (k)
			memcpy(t->p + o, argv[i], k);
		o += k;
	}
	return 0;
}

struct ingest_ev {
	uint64_t ei;
	int64_t time_ns;
	const char *type;
	size_t program, path, argv, addr; /* offsets in text, or INGEST_NONE */
	uint32_t port;
	int32_t return_code;
};

/* What one reading of a recording gives. */
struct ingest_index {
	struct ingest_text text;
	struct ingest_ev *ev;
	size_t n_ev, cap_ev;
	size_t *line; /* audit lines: offsets in text */
	size_t n_line, cap_line;

	json_t *startj; /* session.start's audit line, parsed */
	struct store_session row;
	char *server_id, *hostname, *login, *user; /* the audit context */
	int64_t start_ns;

	uint64_t events, commands;
	bool have_end, have_end_line;
	size_t end_line; /* session.end's audit line: its offset in text */
	int64_t end_ns, last_ns;
	int32_t exit_code;
};

static void ingest_index_free(struct ingest_index *x)
{
	free(x->text.p);
	free(x->ev);
	free(x->line);
	json_decref(x->startj);
	store_session_clear(&x->row);
	free(x->server_id);
	free(x->hostname);
	free(x->login);
	free(x->user);
	memset(x, 0, sizeof(*x));
}

static int ingest_grow(void **p, size_t *cap, size_t n, size_t size)
{
	size_t c;
	void *np;

	if (n < *cap)
		return 0;
	c = *cap ? *cap * 2 : 1024;
	if (c > SIZE_MAX / size)
		return -EOVERFLOW;
	np = realloc(*p, c * size);
	if (!np)
		return -ENOMEM;
	*p = np;
	*cap = c;
	return 0;
}

static int ingest_index_start(struct ingest_index *x, const Sessrec__Event *ev, const char *sid)
{
	const Sessrec__SessionStart *s = ev->start;
	int err;

	err = ingest_start_json(ev, sid, &x->startj);
	if (!err)
		err = ingest_row_from_start(ev, x->startj, sid, &x->row);
	if (!err)
		err = ingest_dup(&x->server_id, s->server_id);
	if (!err)
		err = ingest_dup(&x->hostname, s->server_hostname);
	if (!err)
		err = ingest_dup(&x->login, s->login);
	if (!err)
		err = ingest_dup(&x->user, s->user);
	x->start_ns = ev->time_ns;
	return err;
}

/* The searchable part of a command, disk or network event. */
static int ingest_index_event(struct ingest_index *x, const Sessrec__Event *ev)
{
	struct ingest_ev *e;
	int err;

	if (ev->body_case != SESSREC__EVENT__BODY_COMMAND &&
	    ev->body_case != SESSREC__EVENT__BODY_DISK &&
	    ev->body_case != SESSREC__EVENT__BODY_NETWORK)
		return 0;
	err = ingest_grow((void **)&x->ev, &x->cap_ev, x->n_ev, sizeof(*x->ev));
	if (err)
		return err;
	e = &x->ev[x->n_ev];
	e->ei = ev->ei;
	e->time_ns = ev->time_ns;
	e->type = audit_event_name(ev);
	e->program = e->path = e->argv = e->addr = INGEST_NONE;
	e->port = 0;
	switch (ev->body_case) {
	case SESSREC__EVENT__BODY_COMMAND:
		x->commands++;
		err = ingest_text_str(&x->text, ev->command->program, &e->program);
		if (!err)
			err = ingest_text_str(&x->text, ev->command->path, &e->path);
		if (!err)
			err = ingest_text_argv(&x->text, ev->command->argv, ev->command->n_argv,
					       &e->argv);
		e->return_code = ev->command->return_code;
		break;
	case SESSREC__EVENT__BODY_DISK:
		err = ingest_text_str(&x->text, ev->disk->program, &e->program);
		if (!err)
			err = ingest_text_str(&x->text, ev->disk->path, &e->path);
		e->return_code = ev->disk->return_code;
		break;
	default:
		err = ingest_text_str(&x->text, ev->network->program, &e->program);
		if (!err)
			err = ingest_text_str(&x->text, ev->network->dst_addr, &e->addr);
		e->port = ev->network->dst_port;
		e->return_code = ev->network->return_code;
		break;
	}
	if (!err)
		x->n_ev++;
	return err;
}

static bool ingest_has_body(const Sessrec__Event *ev)
{
	switch (ev->body_case) {
	case SESSREC__EVENT__BODY_START:
		return ev->start;
	case SESSREC__EVENT__BODY_END:
		return ev->end;
	case SESSREC__EVENT__BODY_COMMAND:
		return ev->command;
	case SESSREC__EVENT__BODY_DISK:
		return ev->disk;
	case SESSREC__EVENT__BODY_NETWORK:
		return ev->network;
	case SESSREC__EVENT__BODY_PRINT:
		return ev->print;
	case SESSREC__EVENT__BODY_LOST:
		return ev->lost;
	default:
		return false;
	}
}

/*
 * Read the whole recording: the reader checks every part, the chain and the
 * event order. Returns 0, -EBADMSG with the reader's reason in why (damage),
 * or another -errno (the store or the machine).
 */
static int ingest_read(struct store *st, const struct store_ops *ops, const char *sid,
		       uint32_t parts, struct ingest_index *x, char *why, size_t whylen)
{
	struct ingest_feed f = {.st = st, .ops = ops, .sid = sid, .parts = parts, .fd = -1};
	struct audit_ctx ctx = {.sid = sid};
	struct rec_reader *r = NULL;
	Sessrec__Event *ev = NULL;
	char path[64], *line = NULL;
	size_t cap = 0, len = 0, off;
	bool started = false;
	int rfd = -1, err, rerr = 0;

	err = ingest_feed_start(&f, &rfd);
	if (err)
		return err;
	started = true;
	snprintf(path, sizeof(path), "/proc/self/fd/%d", rfd);
	err = rec_reader_open(&r, path);
	close(rfd);
	if (err) {
		snprintf(why, whylen, "%s: %s", path, strerror(-err));
		goto out;
	}
	err = rec_reader_expect_sid(r, sid);
	if (err)
		goto out;
	while ((rerr = rec_reader_next(r, &ev)) == 1) {
		x->events++;
		x->last_ns = ev->time_ns;
		if (!ingest_has_body(ev)) {
			rerr = -EBADMSG;
			snprintf(why, whylen, "event %" PRIu64 ": no body of a known type", ev->ei);
			break;
		}
		if (ev->body_case == SESSREC__EVENT__BODY_START) {
			if (x->startj) {
				rerr = -EBADMSG;
				snprintf(why, whylen, "event %" PRIu64 ": a second session.start",
					 ev->ei);
				break;
			}
			err = ingest_index_start(x, ev, sid);
			if (err)
				break;
			ctx.server_id = x->server_id;
			ctx.server_hostname = x->hostname;
			ctx.login = x->login;
			ctx.user = x->user;
			ctx.session_start_ns = x->start_ns;
		} else if (ev->body_case == SESSREC__EVENT__BODY_END) {
			x->have_end = true;
			x->end_ns =
			    ev->end->session_stop_ns ? ev->end->session_stop_ns : ev->time_ns;
			x->exit_code = ev->end->exit_code;
		}
		err = ingest_index_event(x, ev);
		if (err)
			break;
		err = audit_format_buf(ev, &ctx, &line, &cap, &len);
		if (err == 0) {
			err = ingest_grow((void **)&x->line, &x->cap_line, x->n_line,
					  sizeof(*x->line));
			if (!err)
				err = ingest_text_add(&x->text, line, len, &off);
			if (!err)
				x->line[x->n_line++] = off;
			if (!err && ev->body_case == SESSREC__EVENT__BODY_END) {
				x->have_end_line = true;
				x->end_line = off;
			}
		} else if (err == -ENOENT) {
			err = 0; /* terminal output: recordings only */
		}
		if (err)
			break;
		sessrec__event__free_unpacked(ev, NULL);
		ev = NULL;
	}
	if (err)
		goto out;
	if (rerr == 0 && !x->startj) {
		rerr = -EBADMSG; /* the reader makes sure of it; this is belt and braces */
		snprintf(why, whylen, "no session.start");
	}
	if (rerr < 0) {
		if (!*why)
			snprintf(why, whylen, "%s", rec_reader_error(r));
		err = rerr == -ENOMEM ? rerr : -EBADMSG;
	} else if (!rec_reader_final(r) || rec_reader_parts(r) != parts) {
		snprintf(why, whylen, "the recording ends at part %u without a final part",
			 rec_reader_parts(r));
		err = -EBADMSG;
	}
out:
	if (ev)
		sessrec__event__free_unpacked(ev, NULL);
	free(line);
	/* Closing the read side first: a feeder still writing gets EPIPE and ends. */
	rec_reader_close(r);
	if (started) {
		pthread_join(f.thread, NULL);
		if (f.err) {
			/* the store failed, not the recording: that is the answer */
			snprintf(why, whylen, "reading part %u: %s", f.failed, strerror(-f.err));
			err = f.err == -EBADMSG ? -EIO : f.err;
		}
	}
	return err;
}

/* ------------------------------------------------------------ completion */

/* A UUID (version 8, name-based on SHA-256) that is the same for every try. */
static int ingest_upload_uid(const char *sid, char out[UUID_STR_LEN_])
{
	uint8_t h[32];
	char name[96];
	int err;

	snprintf(name, sizeof(name), "sessrec session.upload %s", sid);
	err = ingest_sha256(name, strlen(name), h);
	if (err)
		return err;
	h[6] = (uint8_t)((h[6] & 0x0f) | 0x80);
	h[8] = (uint8_t)((h[8] & 0x3f) | 0x80);
	snprintf(out, UUID_STR_LEN_,
		 "%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x", h[0], h[1],
		 h[2], h[3], h[4], h[5], h[6], h[7], h[8], h[9], h[10], h[11], h[12], h[13], h[14],
		 h[15]);
	return 0;
}

static int ingest_jset(json_t *o, const char *key, json_t *v)
{
	/* set_new steals v, also when it fails; a NULL v (out of memory) fails it */
	return json_object_set_new(o, key, v) == 0 ? 0 : -ENOMEM;
}

/* The session.upload line (Teleport T2005I) that closes a session's audit trail. */
static int ingest_upload_line(const char *sid, json_t *startj, char **out)
{
	static const char *const common[] = {"server_id", "server_hostname", "login", "user"};
	char uid[UUID_STR_LEN_], now[40], url[96];
	json_t *o = json_object();
	size_t i;
	int err;

	*out = NULL;
	if (!o)
		return -ENOMEM;
	err = ingest_upload_uid(sid, uid);
	if (err)
		goto out;
	util_rfc3339(util_now_ns(), now, sizeof(now));
	snprintf(url, sizeof(url), "/v1/sessions/%s/recording", sid);
	err = ingest_jset(o, "event", json_string(INGEST_EVENT_UPLOAD));
	if (!err)
		err = ingest_jset(o, "code", json_string(INGEST_CODE_UPLOAD));
	if (!err)
		err = ingest_jset(o, "time", json_string(now));
	if (!err)
		err = ingest_jset(o, "ei", json_integer(INGEST_UPLOAD_EI));
	if (!err)
		err = ingest_jset(o, "uid", json_string(uid));
	if (!err)
		err = ingest_jset(o, "sid", json_string(sid));
	for (i = 0; i < sizeof(common) / sizeof(common[0]) && !err; i++)
		err = ingest_jset(o, common[i], json_string(ingest_jstr(startj, common[i])));
	if (!err)
		err = ingest_jset(o, "url", json_string(url));
	if (err)
		goto out;
	*out = json_dumps(o, JSON_COMPACT);
	if (!*out)
		err = -ENOMEM;
out:
	json_decref(o);
	return err;
}

/* Index, audit and mark complete: every step idempotent, the row last. */
static int ingest_commit(struct store *st, const struct store_ops *ops, const char *sid,
			 struct ingest_index *x, const char *upload)
{
	struct store_event *evs = NULL;
	const char **lines = NULL;
	size_t i;
	int err;

	evs = calloc(x->n_ev ? x->n_ev : 1, sizeof(*evs));
	lines = calloc(x->n_line + 1, sizeof(*lines));
	if (!evs || !lines) {
		err = -ENOMEM;
		goto out;
	}
	for (i = 0; i < x->n_ev; i++) {
		const struct ingest_ev *e = &x->ev[i];

		evs[i].ei = e->ei;
		evs[i].time_ns = e->time_ns;
		evs[i].type = e->type;
		evs[i].program = e->program == INGEST_NONE ? NULL : x->text.p + e->program;
		evs[i].path = e->path == INGEST_NONE ? NULL : x->text.p + e->path;
		evs[i].argv = e->argv == INGEST_NONE ? NULL : x->text.p + e->argv;
		evs[i].addr = e->addr == INGEST_NONE ? NULL : x->text.p + e->addr;
		evs[i].port = e->port;
		evs[i].return_code = e->return_code;
	}
	for (i = 0; i < x->n_line; i++)
		lines[i] = x->text.p + x->line[i];
	lines[x->n_line] = upload;

	err = ops->events_put(st, sid, evs, x->n_ev);
	if (err) {
		log_error("session %s: indexing %zu events: %s", sid, x->n_ev, strerror(-err));
		goto out;
	}
	/* One call: the session's lines stay together; lines already there are skipped. */
	err = ops->audit_append(st, lines, x->n_line + 1);
	if (err) {
		log_error("session %s: appending %zu audit lines: %s", sid, x->n_line + 1,
			  strerror(-err));
		goto out;
	}
	err = ops->session_put(st, &x->row);
	if (err)
		log_error("session %s: index row: %s", sid, strerror(-err));
out:
	free(evs);
	free(lines);
	return err;
}

int collector_session_complete(struct store *st, const struct store_ops *ops, const char *sid,
			       const char *node, uint32_t parts, const char *end_json, int *status,
			       char *why, size_t whylen)
{
	const struct ingest_reply r = {status, why, whylen};
	struct ingest_index x = {0};
	struct store_session ss = {0};
	struct ingest_end end;
	struct rec_part_hdr h;
	pthread_mutex_t *lock = NULL;
	char rwhy[320] = "", *upload = NULL;
	const char *reason = NULL;
	uint8_t *last = NULL;
	uint64_t bytes = 0, size;
	size_t lastlen = 0;
	uint32_t i;
	int err;

	if (!st || !ops || !sid || !status)
		return -EINVAL;
	ingest_say(&r, 500, "%s", "");
	if (!util_is_uuid(sid))
		return ingest_say(&r, 400, "session id is not a UUID");
	if (parts == 0)
		return ingest_say(&r, 400, "parts: at least 1 expected");
	if (ingest_end_parse(end_json, &end, rwhy, sizeof(rwhy)) != 0)
		return ingest_say(&r, 400, "%s", rwhy);

	lock = ingest_lock(sid);
	pthread_mutex_lock(lock);
	err = ops->session_get(st, sid, &ss);
	if (err == 0 && ss.status && strcmp(ss.status, "complete") == 0) {
		ingest_say(&r, 200, "session is complete already");
		goto out;
	}
	if (err && err != -ENOENT) {
		ingest_fail(&r, sid, err, "session_get");
		goto out;
	}
	for (i = 0; i < parts; i++) {
		err = ops->part_stat(st, sid, i, NULL, &size);
		if (err == -ENOENT) {
			err = 0;
			ingest_say(&r, 409, "part %u of %u is missing", i, parts);
			goto out;
		}
		if (err) {
			ingest_fail(&r, sid, err, "part_stat");
			goto out;
		}
		bytes += size;
	}
	/* Also a part beyond `parts` means the node and the collector disagree. */
	err = ops->part_stat(st, sid, parts, NULL, NULL);
	if (err == 0) {
		ingest_say(&r, 409, "part %u is stored: the session has more than %u parts", parts,
			   parts);
		goto out;
	}
	if (err != -ENOENT) {
		ingest_fail(&r, sid, err, "part_stat");
		goto out;
	}
	err = ops->part_get(st, sid, parts - 1, &last, &lastlen);
	if (err) {
		ingest_fail(&r, sid, err, "reading the last part");
		goto out;
	}
	if (lastlen < REC_HDR_SIZE || rec_hdr_decode(last, &h, &reason) != 0) {
		err = 0;
		ingest_say(&r, 422, "part %u: %s", parts - 1, reason ? reason : "no header");
		goto out;
	}
	if (!(h.flags & REC_FLAG_FINAL)) {
		ingest_say(&r, 409, "part %u is not final: the recording goes on", parts - 1);
		goto out;
	}

	err = ingest_read(st, ops, sid, parts, &x, rwhy, sizeof(rwhy));
	if (err == -EBADMSG) {
		err = 0;
		log_warn("session %s: recording refused at completion: %s", sid, rwhy);
		ingest_say(&r, 422, "recording: %s", rwhy);
		goto out;
	}
	if (err) {
		ingest_fail(&r, sid, err, *rwhy ? rwhy : "reading the recording");
		goto out;
	}

	if (node && *node)
		err = ingest_dup(&x.row.node, node);
	if (!err)
		err = ingest_dup(&x.row.status, "complete");
	if (!err)
		err = ingest_dup(&x.row.closed_by, end.closed_by);
	if (!err)
		err = ingest_upload_line(sid, x.startj, &upload);
	if (err) {
		ingest_fail(&r, sid, err, "completing");
		goto out;
	}
	if (x.have_end) {
		x.row.end_ns = x.end_ns;
		x.row.exit_code = x.exit_code;
	} else {
		/* the node closed the session for it (a crash): its word, else the last event */
		x.row.end_ns = end.stop_ns ? end.stop_ns : x.last_ns;
		x.row.exit_code = end.have_exit ? end.exit_code : -1;
	}
	x.row.events = x.events;
	x.row.commands = x.commands;
	x.row.bytes = bytes;
	x.row.parts = parts;
	err = ingest_commit(st, ops, sid, &x, upload);
	if (err) {
		ingest_fail(&r, sid, err, "indexing");
		goto out;
	}
	/* Indexed and durable: policies may look at it now (quickly: the node waits). */
	ingest_notify(&x.row, x.have_end_line ? x.text.p + x.end_line : NULL);
	ingest_say(&r, 200, "session complete: %" PRIu64 " events, %" PRIu64 " bytes", x.events,
		   bytes);
out:
	pthread_mutex_unlock(lock);
	free(last);
	free(upload);
	ingest_index_free(&x);
	store_session_clear(&ss);
	return ingest_result(&r, err);
}
