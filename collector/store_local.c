/*
 * The embedded storage backend ("local"): everything under data_dir.
 *
 *   sessions/<sid>/<n>.part   recording parts as uploaded; a part is written to a
 *                             temporary file, fsync'd, renamed, and the directory
 *                             fsync'd before its row goes into the index
 *   index.db                  SQLite (WAL): sessions, labels, parts, events,
 *                             tokens, and every central audit line
 *   log/events.log            the central audit log as JSON lines, rotated by size
 *                             to events.log.1 .. events.log.<audit_keep>
 *
 * The index is the commit point: a part, a session or an audit line exists once
 * its row is committed (synchronous=FULL, so a commit is on disk). A part file
 * without a row is a leftover of a crash and is replaced by the next upload.
 * The rows of concurrent uploads share a transaction and its fsync (store_batch).
 *
 * Audit lines are rows of the index too: their id is the cursor of audit_read,
 * which therefore continues across rotations of events.log. An append writes
 * and fdatasyncs the file while it holds the index's write lock and records the
 * file's committed size with the rows, so that at open a tail the index never
 * committed (a crash between the two) is cut off again. Lines are keyed by
 * their (sid, uid): appending an event that is already in the log is a no-op,
 * which makes a retried session completion harmless.
 *
 * SQLite connections come from a pool, one per thread at a time; callbacks run
 * after the connection went back, so they may call into the store again.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include <sqlite3.h>

#include "collector.h"
#include "log.h"
#include "util.h"

#define STORE_SCHEMA_VERSION 2
#define STORE_BUSY_MS	     15000 /* wait this long for another writer */
#define STORE_LIST_DEFAULT   100
#define STORE_LIST_MAX	     1000
#define STORE_LABELS_MAX     32
#define STORE_AUDIT_DEFAULT  1000
#define STORE_AUDIT_MAX	     10000
#define STORE_PART_MAX	     ((64u << 20) + 112u) /* a part's largest body plus its header */
#define STORE_STRIPES	     64			  /* part locks, by session */
#define STORE_SQL_MAX	     8192
#define STORE_ARGS_MAX	     (16 + STORE_LABELS_MAX * 2)
#define STORE_CAND_MAX	     5000	  /* a filter's sessions bound as a list up to this many */
#define STORE_CHUNK	     (256u << 10) /* audit bytes written per write() */
#define STORE_STMTS	     24		  /* statements kept prepared per connection */

/* A statement prepared once per connection, keyed by the address of its SQL (a literal). */
struct store_stmt {
	const char *sql;
	sqlite3_stmt *st;
};

struct store_conn {
	sqlite3 *db;
	struct store_conn *next;
	struct store_stmt stmts[STORE_STMTS];
	size_t n_stmts;
};

struct store {
	char *dir;
	char db_path[PATH_MAX];
	char sessions_dir[PATH_MAX];
	char log_dir[PATH_MAX];
	char log_path[PATH_MAX];
	uint32_t rotate_size;
	uint32_t keep;

	pthread_mutex_t pool_lock;
	struct store_conn *idle;

	/* Check, rename and index a part as one step per session. */
	pthread_mutex_t part_lock[STORE_STRIPES];

	pthread_mutex_t audit_lock; /* audit_fd */
	int audit_fd;

	/* Group commit of the writes of uploads (store_batch). */
	pthread_mutex_t batch_lock;
	pthread_cond_t batch_cond;
	struct store_wreq *batch_head, **batch_tail; /* waiting for the next batch */
	bool batch_running;
};

/* A write waiting for its batch: fn runs in the batch's transaction, in its own savepoint. */
struct store_wreq {
	int (*fn)(struct store_conn *c, void *arg);
	void *arg;
	int err;
	bool done;
	struct store_wreq *next;
};

/* ------------------------------------------------------------ SQLite helpers */

static int store_errno(int rc)
{
	switch (rc & 0xff) {
	case SQLITE_OK:
	case SQLITE_ROW:
	case SQLITE_DONE:
		return 0;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_CONSTRAINT:
		return -EEXIST;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_READONLY:
		return -EROFS;
	case SQLITE_PERM:
	case SQLITE_AUTH:
	case SQLITE_CANTOPEN:
		return -EACCES;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EBADMSG;
	case SQLITE_TOOBIG:
		return -E2BIG;
	case SQLITE_ERROR:
	case SQLITE_MISMATCH:
	case SQLITE_RANGE:
		return -EINVAL; /* e.g. malformed JSON handed to json_each() */
	default:
		return -EIO;
	}
}

/*
 * Log a failed SQLite call and map it. A constraint is an answer, not a
 * failure; a plain SQL error of a prepared statement comes from the values
 * (malformed JSON handed in): the caller's mistake, told at warning level.
 */
static int store_fail(sqlite3 *db, int rc, const char *what)
{
	const char *msg = db ? sqlite3_errmsg(db) : sqlite3_errstr(rc);

	if ((rc & 0xff) == SQLITE_ERROR && strcmp(what, "prepare") != 0)
		log_warn("index.db: %s: %s", what, msg);
	else if ((rc & 0xff) != SQLITE_CONSTRAINT)
		log_error("index.db: %s: %s", what, msg);
	return store_errno(rc);
}

/*
 * A statement with a sticky error: binds after a failure are no-ops and the
 * failure comes out of the next step, so call sites read as a list of values.
 */
struct store_q {
	sqlite3 *db;
	sqlite3_stmt *st;
	int rc;
	int n;	     /* parameters bound so far */
	bool cached; /* the connection's: reset when done, not finalized */
};

static int store_q_prep(struct store_q *q, struct store_conn *c, const char *sql)
{
	int rc;

	q->db = c->db;
	q->st = NULL;
	q->rc = SQLITE_OK;
	q->n = 0;
	q->cached = false;
	rc = sqlite3_prepare_v2(c->db, sql, -1, &q->st, NULL);
	if (rc != SQLITE_OK)
		return store_fail(c->db, rc, "prepare");
	return 0;
}

/*
 * store_q_prep for the statements of every upload: sql must be a string
 * literal, whose address keys the connection's prepared copy, so that it is
 * parsed once per connection instead of once per call.
 */
static int store_q_prep_lit(struct store_q *q, struct store_conn *c, const char *sql)
{
	struct store_stmt *e;
	size_t i;
	int rc;

	for (i = 0; i < c->n_stmts; i++) {
		if (c->stmts[i].sql == sql) {
			q->db = c->db;
			q->st = c->stmts[i].st;
			q->rc = SQLITE_OK;
			q->n = 0;
			q->cached = true;
			return 0;
		}
	}
	if (c->n_stmts == STORE_STMTS)
		return store_q_prep(q, c, sql);
	q->db = c->db;
	q->st = NULL;
	q->rc = SQLITE_OK;
	q->n = 0;
	q->cached = false;
	rc = sqlite3_prepare_v3(c->db, sql, -1, SQLITE_PREPARE_PERSISTENT, &q->st, NULL);
	if (rc != SQLITE_OK)
		return store_fail(c->db, rc, "prepare");
	e = &c->stmts[c->n_stmts++];
	e->sql = sql;
	e->st = q->st;
	q->cached = true;
	return 0;
}

static void store_q_bound(struct store_q *q, int rc)
{
	if (rc != SQLITE_OK && q->rc == SQLITE_OK)
		q->rc = rc;
}

/* NULL binds SQL NULL. The text must live until the statement is stepped. */
static void store_q_text(struct store_q *q, const char *s)
{
	if (q->rc != SQLITE_OK)
		return;
	q->n++;
	store_q_bound(q, s ? sqlite3_bind_text(q->st, q->n, s, -1, SQLITE_STATIC)
			   : sqlite3_bind_null(q->st, q->n));
}

static void store_q_int(struct store_q *q, int64_t v)
{
	if (q->rc != SQLITE_OK)
		return;
	q->n++;
	store_q_bound(q, sqlite3_bind_int64(q->st, q->n, v));
}

static void store_q_blob(struct store_q *q, const void *p, int len)
{
	if (q->rc != SQLITE_OK)
		return;
	q->n++;
	store_q_bound(q, sqlite3_bind_blob(q->st, q->n, p, len, SQLITE_STATIC));
}

/* 1 with a row, 0 when done, or -errno. */
static int store_q_step(struct store_q *q, const char *what)
{
	int rc;

	if (q->rc != SQLITE_OK)
		return store_fail(q->db, q->rc, what);
	rc = sqlite3_step(q->st);
	if (rc == SQLITE_ROW)
		return 1;
	if (rc == SQLITE_DONE)
		return 0;
	return store_fail(q->db, rc, what);
}

/* Ready for the next set of values. */
static void store_q_reset(struct store_q *q)
{
	/* reset returns the last step's error, which that step already reported */
	(void)sqlite3_reset(q->st);
	(void)sqlite3_clear_bindings(q->st);
	q->rc = SQLITE_OK;
	q->n = 0;
}

static void store_q_done(struct store_q *q)
{
	/* finalize and reset repeat the last step's error, already reported */
	if (q->cached) {
		/* reset ends the statement's read transaction; bound texts may be freed next */
		(void)sqlite3_reset(q->st);
		(void)sqlite3_clear_bindings(q->st);
	} else {
		(void)sqlite3_finalize(q->st);
	}
	q->st = NULL;
	q->cached = false;
}

/* Run a statement that returns no rows of interest. */
static int store_exec(struct store_conn *c, const char *sql, const char *what)
{
	char *msg = NULL;
	int rc = sqlite3_exec(c->db, sql, NULL, NULL, &msg);

	if (rc != SQLITE_OK) {
		log_error("index.db: %s: %s", what, msg ? msg : sqlite3_errstr(rc));
		sqlite3_free(msg);
		return store_errno(rc);
	}
	return 0;
}

/* A write transaction takes the write lock at once: no deadlock upgrading a reader. */
static int store_begin(struct store_conn *c)
{
	return store_exec(c, "BEGIN IMMEDIATE", "begin");
}

static int store_commit(struct store_conn *c)
{
	return store_exec(c, "COMMIT", "commit");
}

/* End an open transaction. false when the connection is not fit for reuse. */
static bool store_rollback(struct store_conn *c)
{
	if (sqlite3_get_autocommit(c->db))
		return true; /* none open, or SQLite rolled back itself (e.g. SQLITE_FULL) */
	return store_exec(c, "ROLLBACK", "rollback") == 0;
}

/* A column as a malloc'd string ("" for NULL). */
static int store_col_dup(sqlite3_stmt *st, int col, char **out)
{
	const unsigned char *t = sqlite3_column_text(st, col);

	*out = strdup(t ? (const char *)t : "");
	return *out ? 0 : -ENOMEM;
}

/* ------------------------------------------------------------ connections */

static const char store_schema[] =
    "CREATE TABLE IF NOT EXISTS sessions ("
    " sid TEXT PRIMARY KEY NOT NULL,"
    " node TEXT NOT NULL DEFAULT '',"
    " \"user\" TEXT NOT NULL DEFAULT '',"
    " login TEXT NOT NULL DEFAULT '',"
    " kind TEXT NOT NULL DEFAULT '',"
    " labels TEXT NOT NULL DEFAULT '{}',"
    " initial_command TEXT NOT NULL DEFAULT '[]',"
    " start_ns INTEGER NOT NULL DEFAULT 0,"
    " end_ns INTEGER NOT NULL DEFAULT 0,"
    " exit_code INTEGER NOT NULL DEFAULT -1,"
    " cols INTEGER NOT NULL DEFAULT 0,"
    " \"rows\" INTEGER NOT NULL DEFAULT 0,"
    " events INTEGER NOT NULL DEFAULT 0,"
    " commands INTEGER NOT NULL DEFAULT 0,"
    " bytes INTEGER NOT NULL DEFAULT 0,"
    " parts INTEGER NOT NULL DEFAULT 0,"
    " status TEXT NOT NULL DEFAULT 'uploading',"
    " closed_by TEXT NOT NULL DEFAULT '');"
    /* Newest first, optionally within one user, node, kind or status: an index range. */
    "CREATE INDEX IF NOT EXISTS sessions_by_start ON sessions(start_ns, sid);"
    "CREATE INDEX IF NOT EXISTS sessions_by_user ON sessions(\"user\", start_ns, sid);"
    "CREATE INDEX IF NOT EXISTS sessions_by_node ON sessions(node, start_ns, sid);"
    "CREATE INDEX IF NOT EXISTS sessions_by_kind ON sessions(kind, start_ns, sid);"
    "CREATE INDEX IF NOT EXISTS sessions_by_status ON sessions(status, start_ns, sid);"
    "CREATE TABLE IF NOT EXISTS labels ("
    " sid TEXT NOT NULL, key TEXT NOT NULL, value TEXT NOT NULL,"
    " PRIMARY KEY (sid, key)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS labels_by_pair ON labels(key, value, sid);"
    "CREATE TABLE IF NOT EXISTS parts ("
    " sid TEXT NOT NULL, n INTEGER NOT NULL, sha256 BLOB NOT NULL, size INTEGER NOT NULL,"
    " PRIMARY KEY (sid, n)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS events ("
    " sid TEXT NOT NULL, ei INTEGER NOT NULL, time_ns INTEGER NOT NULL, type TEXT NOT NULL,"
    " program TEXT, path TEXT, argv TEXT, addr TEXT, port INTEGER, return_code INTEGER,"
    " PRIMARY KEY (sid, ei)) WITHOUT ROWID;"
    "CREATE INDEX IF NOT EXISTS events_by_addr ON events(addr, sid) WHERE addr IS NOT NULL;"
    /*
     * "ran a command containing X": the paths and argvs of a session's commands
     * as one document (one per line), indexed by trigrams, so that a substring
     * is found without reading every command of every session.
     */
    "CREATE TABLE IF NOT EXISTS command_docs ("
    " doc INTEGER PRIMARY KEY, sid TEXT NOT NULL UNIQUE, text TEXT NOT NULL);"
    "CREATE VIRTUAL TABLE IF NOT EXISTS command_text USING fts5(text, content = 'command_docs',"
    " content_rowid = 'doc', tokenize = 'trigram case_sensitive 1');"
    "CREATE TABLE IF NOT EXISTS tokens ("
    " id TEXT PRIMARY KEY NOT NULL, \"user\" TEXT NOT NULL, role TEXT NOT NULL,"
    " hash BLOB NOT NULL UNIQUE, created_ns INTEGER NOT NULL,"
    " revoked INTEGER NOT NULL DEFAULT 0);"
    /* AUTOINCREMENT: an id (a reader's cursor) is never handed out twice. */
    "CREATE TABLE IF NOT EXISTS audit ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, sid TEXT, uid TEXT, line TEXT NOT NULL);"
    "CREATE UNIQUE INDEX IF NOT EXISTS audit_by_event ON audit(sid, uid);"
    "CREATE TABLE IF NOT EXISTS audit_file ("
    " id INTEGER PRIMARY KEY CHECK (id = 1), ino INTEGER NOT NULL, size INTEGER NOT NULL);"
    /* Version 2: inference resources, summary jobs, token spending, summaries. */
    "CREATE TABLE IF NOT EXISTS resources ("
    " kind TEXT NOT NULL, name TEXT NOT NULL, json TEXT NOT NULL,"
    " created_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL,"
    " PRIMARY KEY (kind, name)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS meta ("
    " key TEXT PRIMARY KEY NOT NULL, value TEXT NOT NULL) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS jobs ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, sid TEXT NOT NULL, model TEXT NOT NULL,"
    " policy TEXT NOT NULL DEFAULT '', origin TEXT NOT NULL, status TEXT NOT NULL,"
    " attempts INTEGER NOT NULL DEFAULT 0, next_at INTEGER NOT NULL DEFAULT 0,"
    " created_ns INTEGER NOT NULL, updated_ns INTEGER NOT NULL,"
    " error TEXT NOT NULL DEFAULT '', requested_by TEXT NOT NULL DEFAULT '');"
    /* at most one automatic job, hence one automatic summary, per session */
    "CREATE UNIQUE INDEX IF NOT EXISTS jobs_auto ON jobs(sid) WHERE origin = 'auto';"
    "CREATE INDEX IF NOT EXISTS jobs_due ON jobs(status, next_at, id);"
    "CREATE INDEX IF NOT EXISTS jobs_by_sid ON jobs(sid, id);"
    "CREATE TABLE IF NOT EXISTS usage ("
    " model TEXT NOT NULL, day TEXT NOT NULL, tokens_in INTEGER NOT NULL DEFAULT 0,"
    " tokens_out INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (model, day)) WITHOUT ROWID;"
    "CREATE TABLE IF NOT EXISTS summaries ("
    " id INTEGER PRIMARY KEY AUTOINCREMENT, sid TEXT NOT NULL,"
    " job_id INTEGER NOT NULL DEFAULT 0, origin TEXT NOT NULL DEFAULT '',"
    " model_name TEXT NOT NULL, provider TEXT NOT NULL DEFAULT '',"
    " model_id TEXT NOT NULL DEFAULT '', title TEXT NOT NULL DEFAULT '',"
    " short_description TEXT NOT NULL DEFAULT '',"
    " detailed_description TEXT NOT NULL DEFAULT '', risk_level TEXT NOT NULL DEFAULT '',"
    " risk_score INTEGER NOT NULL DEFAULT 0, risk_reasons TEXT NOT NULL DEFAULT '[]',"
    " commands_of_interest TEXT NOT NULL DEFAULT '[]', needs_review INTEGER NOT NULL DEFAULT 0,"
    " tokens_in INTEGER NOT NULL DEFAULT 0, tokens_out INTEGER NOT NULL DEFAULT 0,"
    " chunks INTEGER NOT NULL DEFAULT 0, transcript_bytes INTEGER NOT NULL DEFAULT 0,"
    " raw_bytes INTEGER NOT NULL DEFAULT 0, started_ns INTEGER NOT NULL DEFAULT 0,"
    " finished_ns INTEGER NOT NULL DEFAULT 0, success INTEGER NOT NULL,"
    " error_code TEXT NOT NULL DEFAULT '', error TEXT NOT NULL DEFAULT '');"
    "CREATE INDEX IF NOT EXISTS summaries_by_sid ON summaries(sid, id);"
    "CREATE INDEX IF NOT EXISTS summaries_by_risk ON summaries(risk_level, sid)"
    " WHERE success = 1;";

static void store_conn_close(struct store_conn *c)
{
	size_t i;

	if (!c)
		return;
	for (i = 0; i < c->n_stmts; i++)
		(void)sqlite3_finalize(c->stmts[i].st);
	if (sqlite3_close_v2(c->db) != SQLITE_OK)
		log_warn("index.db: close: %s", sqlite3_errmsg(c->db));
	free(c);
}

static int store_conn_open(struct store *s, struct store_conn **out)
{
	struct store_conn *c = calloc(1, sizeof(*c));
	int rc, err;

	*out = NULL;
	if (!c)
		return -ENOMEM;
	rc =
	    sqlite3_open_v2(s->db_path, &c->db,
			    SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, NULL);
	if (rc != SQLITE_OK) {
		err = store_fail(c->db, rc, s->db_path);
		goto out;
	}
	rc = sqlite3_busy_timeout(c->db, STORE_BUSY_MS);
	if (rc != SQLITE_OK) {
		err = store_fail(c->db, rc, "busy_timeout");
		goto out;
	}
	/* FULL: a commit is on disk when it returns, also in WAL mode (a 2xx means durable). */
	err = store_exec(c, "PRAGMA synchronous=FULL; PRAGMA temp_store=MEMORY", "pragmas");
out:
	if (err) {
		store_conn_close(c); /* a failed open leaves a handle to close, too */
		return err;
	}
	*out = c;
	return 0;
}

static int store_conn_get(struct store *s, struct store_conn **out)
{
	struct store_conn *c;

	pthread_mutex_lock(&s->pool_lock);
	c = s->idle;
	if (c)
		s->idle = c->next;
	pthread_mutex_unlock(&s->pool_lock);
	if (c) {
		c->next = NULL;
		*out = c;
		return 0;
	}
	return store_conn_open(s, out);
}

static void store_conn_put(struct store *s, struct store_conn *c)
{
	if (!c)
		return;
	/* A transaction left open by a failed path must not leak into the next user. */
	if (!store_rollback(c)) {
		store_conn_close(c);
		return;
	}
	pthread_mutex_lock(&s->pool_lock);
	c->next = s->idle;
	s->idle = c;
	pthread_mutex_unlock(&s->pool_lock);
}

/* ------------------------------------------------------------ group commit */

/* A statement of a batch (a literal, kept prepared): 0 or -errno. */
static int store_lit(struct store_conn *c, const char *sql, const char *what)
{
	struct store_q q = {0};
	int err;

	err = store_q_prep_lit(&q, c, sql);
	if (!err)
		err = store_q_step(&q, what);
	store_q_done(&q);
	return err < 0 ? err : 0;
}

/* Run the writes of a batch (list) as one transaction; each gets its own answer. */
static void store_batch_run(struct store *s, struct store_wreq *list)
{
	struct store_conn *c = NULL;
	struct store_wreq *w;
	int err;

	err = store_conn_get(s, &c);
	if (!err)
		err = store_begin(c);
	for (w = list; w && !err; w = w->next) {
		err = store_lit(c, "SAVEPOINT store_batch", "savepoint");
		if (err)
			break;
		w->err = w->fn(c, w->arg);
		if (w->err && sqlite3_get_autocommit(c->db)) {
			/* SQLite gave up the whole transaction (e.g. disk full): nothing is kept */
			err = w->err;
			break;
		}
		if (w->err)
			err = store_lit(c, "ROLLBACK TO store_batch", "savepoint");
		if (!err)
			err = store_lit(c, "RELEASE store_batch", "savepoint");
	}
	if (!err)
		err = store_commit(c);
	if (err) {
		/* nothing of the batch is committed: each write fails, with its own error if any */
		for (w = list; w; w = w->next) {
			if (!w->err)
				w->err = err;
		}
	}
	store_conn_put(s, c);
}

/*
 * Group commit: a write of an upload (a part's row, a session's row) waits in
 * a queue; whoever finds no batch running takes everything queued and runs it
 * as one transaction, each write in its own savepoint (one that fails is rolled
 * back alone), with one COMMIT. synchronous=FULL: the commit is on disk when it
 * returns, so every write of the batch is durable when store_batch returns 0,
 * as it was with a transaction of its own; concurrent uploads share the fsync
 * of the WAL, and wait on each other here rather than in SQLite's busy sleeps.
 * fn must not call into the store.
 */
static int store_batch(struct store *s, int (*fn)(struct store_conn *c, void *arg), void *arg)
{
	struct store_wreq me = {.fn = fn, .arg = arg};
	struct store_wreq *list;

	pthread_mutex_lock(&s->batch_lock);
	*s->batch_tail = &me;
	s->batch_tail = &me.next;
	while (!me.done) {
		if (s->batch_running) {
			pthread_cond_wait(&s->batch_cond, &s->batch_lock);
			continue;
		}
		s->batch_running = true;
		list = s->batch_head;
		s->batch_head = NULL;
		s->batch_tail = &s->batch_head;
		pthread_mutex_unlock(&s->batch_lock);
		store_batch_run(s, list);
		pthread_mutex_lock(&s->batch_lock);
		for (; list; list = list->next)
			list->done = true;
		s->batch_running = false;
		pthread_cond_broadcast(&s->batch_cond);
	}
	pthread_mutex_unlock(&s->batch_lock);
	return me.err;
}

static int store_schema_init(struct store_conn *c)
{
	struct store_q q = {0};
	int64_t version = 0;
	int err;

	/* WAL: readers never wait for the writer. Persistent in the file once set. */
	err = store_q_prep(&q, c, "PRAGMA journal_mode=WAL");
	if (err)
		return err;
	err = store_q_step(&q, "journal_mode");
	if (err == 1 && strcmp((const char *)sqlite3_column_text(q.st, 0), "wal") != 0)
		log_warn("index.db: WAL mode not available here (%s): readers may wait for writers",
			 (const char *)sqlite3_column_text(q.st, 0));
	store_q_done(&q);
	if (err < 0)
		return err;

	err = store_begin(c);
	if (err)
		return err;
	err = store_q_prep(&q, c, "PRAGMA user_version");
	if (err)
		goto out;
	err = store_q_step(&q, "user_version");
	if (err == 1)
		version = sqlite3_column_int64(q.st, 0);
	store_q_done(&q);
	if (err < 0)
		goto out;
	if (version > STORE_SCHEMA_VERSION) {
		log_error("index.db: schema version %" PRId64
			  " is newer than this collector's (%d)",
			  version, STORE_SCHEMA_VERSION);
		err = -EPROTO;
		goto out;
	}
	err = store_exec(c, store_schema, "create schema");
	if (err)
		goto out;
	err = store_exec(c, "PRAGMA user_version=2", "user_version");
	if (err)
		goto out;
	err = store_commit(c);
out:
	/* on failure the caller closes the connection, which rolls back */
	return err;
}

/* ------------------------------------------------------------ files */

static int store_fsync_dir(const char *dir)
{
	int fd, err = 0;

	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		err = -errno;
	if (close(fd) < 0 && !err)
		err = -errno;
	return err;
}

static int store_path(char *out, size_t len, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int store_path(char *out, size_t len, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(out, len, fmt, ap);
	va_end(ap);
	return n < 0 || (size_t)n >= len ? -ENAMETOOLONG : 0;
}

static pthread_mutex_t *store_part_lock(struct store *s, const char *sid)
{
	uint32_t h = 2166136261u; /* FNV-1a */

	for (; *sid; sid++)
		h = (h ^ (uint8_t)*sid) * 16777619u;
	return &s->part_lock[h % STORE_STRIPES];
}

/* ------------------------------------------------------------ audit log file */

/* Open (creating) events.log for appending. */
static int store_audit_open_file(struct store *s)
{
	int fd = open(s->log_path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);

	if (fd < 0) {
		log_error("%s: cannot open: %s", s->log_path, strerror(errno));
		return -errno;
	}
	if (s->audit_fd >= 0)
		close(s->audit_fd);
	s->audit_fd = fd;
	return 0;
}

/*
 * The descriptor still names log/events.log (an operator's logrotate may have
 * moved it): reopen when not. Fills the file's identity and size.
 */
static int store_audit_current(struct store *s, struct stat *fst)
{
	struct stat pst;
	int err;

	if (s->audit_fd < 0 || stat(s->log_path, &pst) < 0 || fstat(s->audit_fd, fst) < 0 ||
	    pst.st_ino != fst->st_ino || pst.st_dev != fst->st_dev) {
		err = store_audit_open_file(s);
		if (err)
			return err;
	}
	if (fstat(s->audit_fd, fst) < 0)
		return -errno;
	return 0;
}

/* events.log -> events.log.1 -> ... -> events.log.<keep> (dropped), and a new events.log. */
static int store_audit_rotate(struct store *s)
{
	char from[PATH_MAX], to[PATH_MAX];
	uint32_t i;
	int err;

	if (s->keep == 0) {
		if (unlink(s->log_path) < 0 && errno != ENOENT)
			return -errno;
	} else {
		err = store_path(to, sizeof(to), "%s.%u", s->log_path, s->keep);
		if (err)
			return err;
		if (unlink(to) < 0 && errno != ENOENT)
			return -errno;
		for (i = s->keep - 1; i >= 1; i--) {
			err = store_path(from, sizeof(from), "%s.%u", s->log_path, i);
			if (!err)
				err = store_path(to, sizeof(to), "%s.%u", s->log_path, i + 1);
			if (err)
				return err;
			if (rename(from, to) < 0 && errno != ENOENT)
				return -errno;
		}
		err = store_path(to, sizeof(to), "%s.1", s->log_path);
		if (err)
			return err;
		if (rename(s->log_path, to) < 0)
			return -errno;
	}
	err = store_audit_open_file(s);
	if (err)
		return err;
	return store_fsync_dir(s->log_dir);
}

/*
 * At open: events.log must hold exactly what the index committed. A longer file
 * holds lines of an append that crashed before its commit (never acknowledged,
 * and still in the caller's retry): cut them off. Runs under the write lock, so
 * an append of another process is never half-way.
 */
static int store_audit_reconcile(struct store *s, struct store_conn *c)
{
	struct store_q q = {0};
	struct stat fst, rst;
	char rotated[PATH_MAX];
	int64_t ino = -1, size = -1;
	int err;

	err = store_begin(c);
	if (err)
		return err;
	err = store_audit_open_file(s);
	if (err)
		goto out;
	if (fstat(s->audit_fd, &fst) < 0) {
		err = -errno;
		goto out;
	}
	err = store_q_prep(&q, c, "SELECT ino, size FROM audit_file WHERE id = 1");
	if (err)
		goto out;
	err = store_q_step(&q, "audit_file");
	if (err == 1) {
		ino = sqlite3_column_int64(q.st, 0);
		size = sqlite3_column_int64(q.st, 1);
	}
	store_q_done(&q);
	if (err < 0)
		goto out;

	if (ino == (int64_t)fst.st_ino && fst.st_size > size) {
		log_warn("%s: dropping %" PRId64 " bytes of audit lines that were never committed",
			 s->log_path, (int64_t)fst.st_size - size);
		if (ftruncate(s->audit_fd, size) < 0 || fdatasync(s->audit_fd) < 0) {
			err = -errno;
			goto out;
		}
	} else if (ino >= 0 && ino != (int64_t)fst.st_ino && fst.st_size > 0) {
		/* A rotation whose append never committed: the new file holds only that. */
		err = store_path(rotated, sizeof(rotated), "%s.1", s->log_path);
		if (err)
			goto out;
		if (stat(rotated, &rst) == 0 && (int64_t)rst.st_ino == ino) {
			log_warn("%s: dropping %" PRId64
				 " bytes of audit lines that were never committed",
				 s->log_path, (int64_t)fst.st_size);
			if (ftruncate(s->audit_fd, 0) < 0 || fdatasync(s->audit_fd) < 0) {
				err = -errno;
				goto out;
			}
		}
	}
	if (fstat(s->audit_fd, &fst) < 0) {
		err = -errno;
		goto out;
	}
	err =
	    store_q_prep(&q, c,
			 "INSERT INTO audit_file(id, ino, size) VALUES (1, ?, ?)"
			 " ON CONFLICT(id) DO UPDATE SET ino = excluded.ino, size = excluded.size");
	if (err)
		goto out;
	store_q_int(&q, (int64_t)fst.st_ino);
	store_q_int(&q, (int64_t)fst.st_size);
	err = store_q_step(&q, "audit_file");
	store_q_done(&q);
	if (err < 0)
		goto out;
	err = store_commit(c);
out:
	/* on failure the caller closes the connection, which rolls back */
	return err;
}

/* ------------------------------------------------------------ open / close */

/* Make path readable by the collector's user only (mode: 0700 or 0600); it may not exist. */
static int store_chmod_private(const char *path, mode_t mode)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return errno == ENOENT ? 0 : -errno;
	if ((st.st_mode & 0777) == mode)
		return 0;
	if (chmod(path, mode) < 0) {
		log_error("%s: cannot make it private (mode %o): %s", path, (unsigned int)mode,
			  strerror(errno));
		return -errno;
	}
	log_info("%s: mode %o -> %o (the index holds inference secrets)", path,
		 (unsigned int)(st.st_mode & 0777), (unsigned int)mode);
	return 0;
}

/*
 * The index holds the values of inference secrets: data_dir is 0700 and
 * index.db (and SQLite's -wal and -shm, which take its mode) 0600, created
 * so before SQLite ever opens it.
 */
static int store_private(struct store *s)
{
	static const char *const sfx[] = {"-wal", "-shm"};
	char path[PATH_MAX];
	int fd, err;

	err = store_chmod_private(s->dir, 0700);
	if (err)
		return err;
	fd = open(s->db_path, O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		err = -errno;
		log_error("%s: %s", s->db_path, strerror(errno));
		return err;
	}
	close(fd);
	err = store_chmod_private(s->db_path, 0600);
	for (size_t i = 0; i < sizeof(sfx) / sizeof(sfx[0]) && !err; i++) {
		err = store_path(path, sizeof(path), "%s%s", s->db_path, sfx[i]);
		if (!err)
			err = store_chmod_private(path, 0600);
	}
	return err;
}

static void store_local_close(struct store *s);

static int store_local_open(struct store **out, const struct collector_config *cfg)
{
	struct store_conn *c = NULL;
	struct store *s = NULL;
	size_t i;
	int err;

	*out = NULL;
	if (!cfg || !cfg->data_dir || !*cfg->data_dir)
		return -EINVAL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return -ENOMEM;
	s->audit_fd = -1;
	pthread_mutex_init(&s->pool_lock, NULL);
	pthread_mutex_init(&s->audit_lock, NULL);
	pthread_mutex_init(&s->batch_lock, NULL);
	pthread_cond_init(&s->batch_cond, NULL);
	s->batch_tail = &s->batch_head;
	for (i = 0; i < STORE_STRIPES; i++)
		pthread_mutex_init(&s->part_lock[i], NULL);
	s->rotate_size = cfg->audit_rotate_size ? cfg->audit_rotate_size : (64u << 20);
	s->keep = cfg->audit_keep;
	s->dir = strdup(cfg->data_dir);
	if (!s->dir) {
		err = -ENOMEM;
		goto out;
	}
	err = store_path(s->db_path, sizeof(s->db_path), "%s/index.db", s->dir);
	if (!err)
		err = store_path(s->sessions_dir, sizeof(s->sessions_dir), "%s/sessions", s->dir);
	if (!err)
		err = store_path(s->log_dir, sizeof(s->log_dir), "%s/log", s->dir);
	if (!err)
		err = store_path(s->log_path, sizeof(s->log_path), "%s/log/events.log", s->dir);
	if (err) {
		log_error("%s: data_dir path too long", s->dir);
		goto out;
	}
	err = util_mkdir_p(s->dir, 0700);
	if (!err)
		err = util_mkdir_p(s->sessions_dir, 0750);
	if (!err)
		err = util_mkdir_p(s->log_dir, 0750);
	if (err) {
		log_error("%s: cannot create: %s", s->dir, strerror(-err));
		goto out;
	}
	err = store_private(s);
	if (err)
		goto out;
	err = store_conn_open(s, &c);
	if (err)
		goto out;
	err = store_schema_init(c);
	if (err)
		goto out;
	err = store_audit_reconcile(s, c);
	if (err)
		goto out;
	store_conn_put(s, c);
	c = NULL;
out:
	if (err) {
		store_conn_close(c);
		store_local_close(s);
		return err;
	}
	*out = s;
	return 0;
}

static void store_local_close(struct store *s)
{
	struct store_conn *c;
	size_t i;

	if (!s)
		return;
	while ((c = s->idle) != NULL) {
		s->idle = c->next;
		store_conn_close(c);
	}
	if (s->audit_fd >= 0 && close(s->audit_fd) < 0)
		log_warn("%s: close: %s", s->log_path, strerror(errno));
	pthread_mutex_destroy(&s->pool_lock);
	pthread_mutex_destroy(&s->audit_lock);
	pthread_mutex_destroy(&s->batch_lock);
	pthread_cond_destroy(&s->batch_cond);
	for (i = 0; i < STORE_STRIPES; i++)
		pthread_mutex_destroy(&s->part_lock[i]);
	free(s->dir);
	free(s);
}

/* ------------------------------------------------------------ parts */

static int store_local_part_stat(struct store *s, const char *sid, uint32_t n, uint8_t sha256[32],
				 uint64_t *size)
{
	struct store_conn *c = NULL;
	struct store_q q = {0};
	const void *h;
	int err;

	if (!util_is_uuid(sid))
		return -EINVAL;
	err = store_conn_get(s, &c);
	if (err)
		return err;
	err = store_q_prep_lit(&q, c, "SELECT sha256, size FROM parts WHERE sid = ? AND n = ?");
	if (err)
		goto out;
	store_q_text(&q, sid);
	store_q_int(&q, n);
	err = store_q_step(&q, "part_stat");
	if (err == 0) {
		err = -ENOENT;
	} else if (err == 1) {
		h = sqlite3_column_blob(q.st, 0);
		if (!h || sqlite3_column_bytes(q.st, 0) != 32) {
			log_error("index.db: part %u of %s: bad sha256 column", n, sid);
			err = -EBADMSG;
			goto out;
		}
		if (sha256)
			memcpy(sha256, h, 32);
		if (size)
			*size = (uint64_t)sqlite3_column_int64(q.st, 1);
		err = 0;
	}
out:
	store_q_done(&q);
	store_conn_put(s, c);
	return err;
}

/* Create sessions/<sid>/ (durably: its parent is fsync'd when it was new). */
static int store_session_dir(struct store *s, const char *sid, char *dir, size_t dirlen)
{
	int err = store_path(dir, dirlen, "%s/%s", s->sessions_dir, sid);

	if (err)
		return err;
	if (mkdir(dir, 0750) == 0)
		return store_fsync_dir(s->sessions_dir);
	return errno == EEXIST ? 0 : -errno;
}

/*
 * Write buf to a new temporary file in dir, fsync'd. Its pages then leave the
 * page cache: a part is written once and read once or twice later (completion,
 * replay), so caching it only grows the cache (a container's memory limit
 * counts it) and makes the next parts land in fresh pages; dropped clean pages
 * are reused at once instead (in a VM whose balloon reclaims free memory,
 * writing into never-used pages cost the collector ~1.7 s of CPU per GiB).
 */
static int store_write_tmp(const char *dir, uint32_t n, const uint8_t *buf, size_t len, char *tmp,
			   size_t tmplen)
{
	int fd, err, rc;

	err = store_path(tmp, tmplen, "%s/.%u.part.XXXXXX", dir, n);
	if (err)
		return err;
	fd = mkostemp(tmp, O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = util_write_all(fd, buf, len);
	if (!err && fsync(fd) < 0)
		err = -errno;
	if (!err) {
		rc = posix_fadvise(fd, 0, 0, POSIX_FADV_DONTNEED);
		if (rc)
			log_debug("%s: fadvise: %s (the part stays cached)", tmp, strerror(rc));
	}
	if (close(fd) < 0 && !err)
		err = -errno;
	if (err)
		unlink(tmp);
	return err;
}

/* A part's row: in a batch (store_batch). */
struct store_part_row {
	const char *sid;
	uint32_t n;
	const uint8_t *sha256;
	size_t size;
};

static int store_part_row(struct store_conn *c, void *arg)
{
	const struct store_part_row *r = arg;
	struct store_q q = {0};
	int err;

	err =
	    store_q_prep_lit(&q, c, "INSERT INTO parts(sid, n, sha256, size) VALUES (?, ?, ?, ?)");
	if (err)
		return err;
	store_q_text(&q, r->sid);
	store_q_int(&q, r->n);
	store_q_blob(&q, r->sha256, 32);
	store_q_int(&q, (int64_t)r->size);
	err = store_q_step(&q, "part_put");
	store_q_done(&q);
	return err < 0 ? err : 0;
}

static int store_local_part_put(struct store *s, const char *sid, uint32_t n, const uint8_t *buf,
				size_t len, const uint8_t sha256[32])
{
	struct store_part_row row = {.sid = sid, .n = n, .sha256 = sha256, .size = len};
	char dir[PATH_MAX], tmp[PATH_MAX], path[PATH_MAX];
	pthread_mutex_t *lock = NULL;
	struct store_conn *c = NULL;
	struct store_q q = {0};
	bool have_tmp = false;
	int err;

	if (!util_is_uuid(sid) || !buf || len == 0 || len > STORE_PART_MAX || !sha256)
		return -EINVAL;
	err = store_session_dir(s, sid, dir, sizeof(dir));
	if (!err)
		err = store_path(path, sizeof(path), "%s/%u.part", dir, n);
	if (!err)
		err = store_write_tmp(dir, n, buf, len, tmp, sizeof(tmp));
	if (err) {
		log_error("%s/%s: part %u: %s", s->sessions_dir, sid, n, strerror(-err));
		return err;
	}
	have_tmp = true;
	err = store_conn_get(s, &c);
	if (err)
		goto out;

	/* The file goes in place only while no row says another part n is there. */
	lock = store_part_lock(s, sid);
	pthread_mutex_lock(lock);
	err = store_q_prep_lit(&q, c, "SELECT 1 FROM parts WHERE sid = ? AND n = ?");
	if (err)
		goto out;
	store_q_text(&q, sid);
	store_q_int(&q, n);
	err = store_q_step(&q, "part_put");
	store_q_done(&q);
	if (err == 1)
		err = -EEXIST;
	if (err)
		goto out;
	if (rename(tmp, path) < 0) {
		err = -errno;
		log_error("%s: %s", path, strerror(errno));
		goto out;
	}
	have_tmp = false;
	/* the batch runs on a connection of its own */
	store_conn_put(s, c);
	c = NULL;
	err = store_fsync_dir(dir);
	if (err) {
		log_error("%s: fsync: %s", dir, strerror(-err));
		goto out;
	}
	err = store_batch(s, store_part_row, &row);
out:
	if (lock)
		pthread_mutex_unlock(lock);
	if (have_tmp)
		unlink(tmp);
	store_conn_put(s, c);
	return err < 0 ? err : 0;
}

static int store_local_part_get(struct store *s, const char *sid, uint32_t n, uint8_t **buf,
				size_t *len)
{
	char path[PATH_MAX];
	uint8_t *p = NULL;
	struct stat st;
	uint64_t size = 0;
	int fd = -1, err;

	*buf = NULL;
	*len = 0;
	err = store_local_part_stat(s, sid, n, NULL, &size);
	if (err)
		return err;
	err = store_path(path, sizeof(path), "%s/%s/%u.part", s->sessions_dir, sid, n);
	if (err)
		return err;
	if (size == 0 || size > STORE_PART_MAX) {
		err = -EBADMSG;
		goto out;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		err = -errno;
		goto out;
	}
	/* The index says how long the part was when it was acknowledged. */
	if ((uint64_t)st.st_size != size) {
		err = -EIO;
		log_error("%s: %" PRId64 " bytes, the index says %" PRIu64, path,
			  (int64_t)st.st_size, size);
		goto out;
	}
	p = malloc(size);
	if (!p) {
		err = -ENOMEM;
		goto out;
	}
	err = util_read_all(fd, p, size);
	if (err)
		goto out;
	*buf = p;
	*len = size;
	p = NULL;
out:
	if (err && err != -EIO)
		log_error("%s: %s", path, strerror(-err));
	if (fd >= 0)
		close(fd);
	free(p);
	return err;
}

/* ------------------------------------------------------------ sessions */

#define STORE_SESSION_COLS                                                                         \
	"sid, node, \"user\", login, kind, labels, initial_command, start_ns, end_ns, exit_code, " \
	"cols, \"rows\", events, commands, bytes, parts, status, closed_by"
/* What a session row is read as (FROM sessions s): the columns and its risk level. */
#define STORE_RISK_OF_S                                                                            \
	"(SELECT m.risk_level FROM summaries m WHERE m.sid = s.sid AND m.success = 1"              \
	" ORDER BY m.id DESC LIMIT 1)"
#define STORE_SESSION_SEL STORE_SESSION_COLS ", " STORE_RISK_OF_S

static const char *store_str(const char *s, const char *dflt)
{
	return s ? s : dflt;
}

/* A session's row and its labels: in a batch (store_batch). */
struct store_session_w {
	const struct store_session *ss;
	const char *labels, *cmd; /* the JSON texts, defaults applied */
};

static int store_session_write(struct store_conn *c, void *arg)
{
	const struct store_session_w *w = arg;
	struct store_q q = {0};
	int err;

	/* Both JSON texts must be what they claim (json_type fails on malformed JSON). */
	err =
	    store_q_prep_lit(&q, c, "SELECT json_type(?1) = 'object' AND json_type(?2) = 'array'");
	if (err)
		return err;
	store_q_text(&q, w->labels);
	store_q_text(&q, w->cmd);
	err = store_q_step(&q, "session_put");
	if (err == 1)
		err = sqlite3_column_int(q.st, 0) ? 0 : -EINVAL;
	else if (err == 0)
		err = -EIO;
	store_q_done(&q);
	if (err)
		return err;

	err = store_q_prep_lit(&q, c,
			       "INSERT INTO sessions(" STORE_SESSION_COLS ")"
			       " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
			       " ON CONFLICT(sid) DO UPDATE SET node = excluded.node,"
			       " \"user\" = excluded.\"user\", login = excluded.login,"
			       " kind = excluded.kind, labels = excluded.labels,"
			       " initial_command = excluded.initial_command,"
			       " start_ns = excluded.start_ns, end_ns = excluded.end_ns,"
			       " exit_code = excluded.exit_code, cols = excluded.cols,"
			       " \"rows\" = excluded.\"rows\", events = excluded.events,"
			       " commands = excluded.commands, bytes = excluded.bytes,"
			       " parts = excluded.parts, status = excluded.status,"
			       " closed_by = excluded.closed_by");
	if (err)
		return err;
	store_q_text(&q, w->ss->sid);
	store_q_text(&q, store_str(w->ss->node, ""));
	store_q_text(&q, store_str(w->ss->user, ""));
	store_q_text(&q, store_str(w->ss->login, ""));
	store_q_text(&q, store_str(w->ss->kind, ""));
	store_q_text(&q, w->labels);
	store_q_text(&q, w->cmd);
	store_q_int(&q, w->ss->start_ns);
	store_q_int(&q, w->ss->end_ns);
	store_q_int(&q, w->ss->exit_code);
	store_q_int(&q, w->ss->cols);
	store_q_int(&q, w->ss->rows);
	store_q_int(&q, w->ss->events > INT64_MAX ? INT64_MAX : (int64_t)w->ss->events);
	store_q_int(&q, w->ss->commands > INT64_MAX ? INT64_MAX : (int64_t)w->ss->commands);
	store_q_int(&q, w->ss->bytes > INT64_MAX ? INT64_MAX : (int64_t)w->ss->bytes);
	store_q_int(&q, w->ss->parts);
	store_q_text(&q, w->ss->status);
	store_q_text(&q, store_str(w->ss->closed_by, ""));
	err = store_q_step(&q, "session_put");
	store_q_done(&q);
	if (err < 0)
		return err;

	err = store_q_prep_lit(&q, c, "DELETE FROM labels WHERE sid = ?");
	if (err)
		return err;
	store_q_text(&q, w->ss->sid);
	err = store_q_step(&q, "session_put labels");
	store_q_done(&q);
	if (err < 0)
		return err;
	/* Scalars only: a label is a string (numbers are kept as their text). */
	err = store_q_prep_lit(
	    &q, c,
	    "INSERT INTO labels(sid, key, value) SELECT ?1, key, CAST(value AS TEXT)"
	    " FROM json_each(?2) WHERE type NOT IN ('object', 'array', 'null')");
	if (err)
		return err;
	store_q_text(&q, w->ss->sid);
	store_q_text(&q, w->labels);
	err = store_q_step(&q, "session_put labels");
	store_q_done(&q);
	return err < 0 ? err : 0;
}

static int store_local_session_put(struct store *s, const struct store_session *ss)
{
	struct store_session_w w = {.ss = ss};

	if (!ss || !util_is_uuid(ss->sid) || !ss->status ||
	    (strcmp(ss->status, "uploading") != 0 && strcmp(ss->status, "complete") != 0))
		return -EINVAL;
	w.labels = ss->labels_json && *ss->labels_json ? ss->labels_json : "{}";
	w.cmd =
	    ss->initial_command_json && *ss->initial_command_json ? ss->initial_command_json : "[]";
	return store_batch(s, store_session_write, &w);
}

/* Fill *out from a row selected with STORE_SESSION_SEL. */
static int store_session_row(sqlite3_stmt *st, struct store_session *out)
{
	const unsigned char *sid = sqlite3_column_text(st, 0);
	const unsigned char *risk = sqlite3_column_text(st, 18);
	int err;

	memset(out, 0, sizeof(*out));
	snprintf(out->sid, sizeof(out->sid), "%s", sid ? (const char *)sid : "");
	snprintf(out->risk_level, sizeof(out->risk_level), "%s", risk ? (const char *)risk : "");
	err = store_col_dup(st, 1, &out->node);
	if (!err)
		err = store_col_dup(st, 2, &out->user);
	if (!err)
		err = store_col_dup(st, 3, &out->login);
	if (!err)
		err = store_col_dup(st, 4, &out->kind);
	if (!err)
		err = store_col_dup(st, 5, &out->labels_json);
	if (!err)
		err = store_col_dup(st, 6, &out->initial_command_json);
	if (!err)
		err = store_col_dup(st, 16, &out->status);
	if (!err)
		err = store_col_dup(st, 17, &out->closed_by);
	if (err) {
		store_session_clear(out);
		return err;
	}
	out->start_ns = sqlite3_column_int64(st, 7);
	out->end_ns = sqlite3_column_int64(st, 8);
	out->exit_code = (int32_t)sqlite3_column_int64(st, 9);
	out->cols = (uint32_t)sqlite3_column_int64(st, 10);
	out->rows = (uint32_t)sqlite3_column_int64(st, 11);
	out->events = (uint64_t)sqlite3_column_int64(st, 12);
	out->commands = (uint64_t)sqlite3_column_int64(st, 13);
	out->bytes = (uint64_t)sqlite3_column_int64(st, 14);
	out->parts = (uint32_t)sqlite3_column_int64(st, 15);
	return 0;
}

static int store_local_session_get(struct store *s, const char *sid, struct store_session *out)
{
	struct store_conn *c = NULL;
	struct store_q q = {0};
	int err;

	memset(out, 0, sizeof(*out));
	if (!util_is_uuid(sid))
		return -EINVAL;
	err = store_conn_get(s, &c);
	if (err)
		return err;
	err =
	    store_q_prep_lit(&q, c, "SELECT " STORE_SESSION_SEL " FROM sessions s WHERE s.sid = ?");
	if (err)
		goto out;
	store_q_text(&q, sid);
	err = store_q_step(&q, "session_get");
	if (err == 0)
		err = -ENOENT;
	else if (err == 1)
		err = store_session_row(q.st, out);
out:
	store_q_done(&q);
	store_conn_put(s, c);
	return err;
}

/* The cursor of a page: where the previous page's last row was. */
static int store_cursor_parse(const char *cur, int64_t *start_ns, char sid[40])
{
	char *end;
	long long v;

	errno = 0;
	v = strtoll(cur, &end, 10);
	if (errno || end == cur || *end != '_' || v < 0 || !util_is_uuid(end + 1))
		return -EINVAL;
	*start_ns = v;
	snprintf(sid, 40, "%s", end + 1);
	return 0;
}

static int store_cursor_make(const struct store_session *ss, char **out)
{
	if (asprintf(out, "%" PRId64 "_%s", ss->start_ns, ss->sid) < 0) {
		*out = NULL;
		return -ENOMEM;
	}
	return 0;
}

/* A query built from fixed fragments; every value goes in as a bound parameter. */
struct store_sql {
	char text[STORE_SQL_MAX];
	size_t len;
	struct {
		const char *s; /* NULL: the integer */
		int64_t i;
	} args[STORE_ARGS_MAX];
	int n;
	int err;
};

static void store_sql_add(struct store_sql *b, const char *frag)
{
	size_t n = strlen(frag);

	if (b->err)
		return;
	if (b->len + n >= sizeof(b->text)) {
		b->err = -E2BIG;
		return;
	}
	memcpy(b->text + b->len, frag, n + 1);
	b->len += n;
}

static void store_sql_arg(struct store_sql *b, const char *s, int64_t i)
{
	if (b->err)
		return;
	if (b->n == STORE_ARGS_MAX) {
		b->err = -E2BIG;
		return;
	}
	b->args[b->n].s = s;
	b->args[b->n].i = i;
	b->n++;
}

/* "AND <frag>" with one text value, when the value is given. */
static void store_sql_eq(struct store_sql *b, const char *frag, const char *v)
{
	if (!v || !*v)
		return;
	store_sql_add(b, frag);
	store_sql_arg(b, v, 0);
}

/* A listing being planned: the query and the values it points to. */
struct store_list {
	struct store_sql sql;
	char *owned[STORE_LABELS_MAX * 2 + 4]; /* keys, sid lists: freed at the end */
	size_t n_owned;
	char cur_sid[40];
	int64_t cur_start;
	bool empty; /* a filter matches no session at all */
};

static int store_list_own(struct store_list *L, char *p)
{
	if (!p)
		return -ENOMEM;
	if (L->n_owned == sizeof(L->owned) / sizeof(L->owned[0])) {
		free(p);
		return -E2BIG;
	}
	L->owned[L->n_owned++] = p;
	return 0;
}

/*
 * A filter on a set of sessions (a label, an address, a command). The index
 * says first how many sessions match, up to a bound: few, and the query starts
 * from their list (a few lookups and a small sort); many, and it walks the
 * sessions newest first checking each (exists), which meets a page of
 * matches soon. Without this, a rare label or address meant a walk over every
 * session. inner selects sids with parameters a and b (b may be NULL); NULL
 * inner: no such index for this value, check each.
 */
static int store_list_set(struct store_list *L, struct store_conn *c, const char *inner,
			  const char *a, const char *b, const char *exists, const char *ea,
			  const char *eb)
{
	struct store_q q = {0};
	char sql[512];
	int64_t n = 0;
	char *list = NULL;
	int err;

	if (!inner)
		goto check_each;
	err = store_path(sql, sizeof(sql),
			 "SELECT count(*), json_group_array(sid) FROM (%s LIMIT %d)", inner,
			 STORE_CAND_MAX + 1);
	if (err)
		return err;
	err = store_q_prep(&q, c, sql);
	if (err)
		return err;
	store_q_text(&q, a);
	if (b)
		store_q_text(&q, b);
	err = store_q_step(&q, "session_list");
	if (err == 1) {
		n = sqlite3_column_int64(q.st, 0);
		if (n > 0 && n <= STORE_CAND_MAX)
			err = store_col_dup(q.st, 1, &list);
		else
			err = 0;
	} else if (err == 0) {
		err = -EIO;
	}
	store_q_done(&q);
	if (err)
		return err;
	if (n == 0) {
		L->empty = true;
		return 0;
	}
	if (n <= STORE_CAND_MAX) {
		err = store_list_own(L, list);
		if (err)
			return err;
		store_sql_add(&L->sql, " AND s.sid IN (SELECT value FROM json_each(?))");
		store_sql_arg(&L->sql, list, 0);
		return 0;
	}
check_each:
	store_sql_add(&L->sql, exists);
	store_sql_arg(&L->sql, ea, 0);
	if (eb)
		store_sql_arg(&L->sql, eb, 0);
	return 0;
}

/* Unicode characters in UTF-8 text (the trigram index needs three). */
static size_t store_utf8_chars(const char *s)
{
	size_t n = 0;

	for (; *s; s++)
		n += ((uint8_t)*s & 0xc0) != 0x80;
	return n;
}

/* s as one FTS5 phrase: in double quotes, inner ones doubled. */
static char *store_phrase(const char *s)
{
	size_t n = strlen(s), i, o = 0;
	char *p = malloc(2 * n + 3);

	if (!p)
		return NULL;
	p[o++] = '"';
	for (i = 0; i < n; i++) {
		if (s[i] == '"')
			p[o++] = '"';
		p[o++] = s[i];
	}
	p[o++] = '"';
	p[o] = '\0';
	return p;
}

static int store_list_command(struct store_list *L, struct store_conn *c, const char *cmd)
{
	static const char each[] = " AND EXISTS (SELECT 1 FROM command_docs d WHERE d.sid = s.sid"
				   " AND instr(d.text, ?) > 0)";
	char *phrase;
	int err;

	/* path and argv are lines of the document: no match can hold a newline */
	if (strchr(cmd, '\n')) {
		L->empty = true;
		return 0;
	}
	/* under three characters no trigram helps: the documents themselves are read */
	if (store_utf8_chars(cmd) < 3)
		return store_list_set(L, c, "SELECT sid FROM command_docs WHERE instr(text, ?) > 0",
				      cmd, NULL, each, cmd, NULL);
	phrase = store_phrase(cmd);
	err = store_list_own(L, phrase);
	if (err)
		return err;
	return store_list_set(L, c,
			      "SELECT d.sid FROM command_text t JOIN command_docs d"
			      " ON d.doc = t.rowid WHERE command_text MATCH ?",
			      phrase, NULL, each, cmd, NULL);
}

static int store_list_plan(struct store_list *L, struct store_conn *c, const struct store_filter *f,
			   uint32_t limit)
{
	struct store_sql *b = &L->sql;
	/* an index on kind or status selects thousands: the user's or node's is better */
	bool narrow = (f->user && *f->user) || (f->node && *f->node);
	size_t i;
	int err = 0;

	if (f->n_labels > STORE_LABELS_MAX || (f->n_labels && !f->labels))
		return -EINVAL;
	if (f->cursor && *f->cursor) {
		err = store_cursor_parse(f->cursor, &L->cur_start, L->cur_sid);
		if (err)
			return err;
	}
	store_sql_add(b, "SELECT " STORE_SESSION_SEL " FROM sessions s WHERE 1");
	store_sql_eq(b, " AND s.\"user\" = ?", f->user);
	store_sql_eq(b, " AND s.node = ?", f->node);
	store_sql_eq(b, narrow ? " AND +s.kind = ?" : " AND s.kind = ?", f->kind);
	store_sql_eq(b, narrow ? " AND +s.status = ?" : " AND s.status = ?", f->status);
	if (f->from_ns) {
		store_sql_add(b, " AND s.start_ns >= ?");
		store_sql_arg(b, NULL, f->from_ns);
	}
	if (f->to_ns) {
		store_sql_add(b, " AND s.start_ns <= ?");
		store_sql_arg(b, NULL, f->to_ns);
	}
	for (i = 0; i < f->n_labels && !err && !L->empty; i++) {
		const char *kv = f->labels[i], *eq = kv ? strchr(kv, '=') : NULL;
		char *key;

		if (!eq || eq == kv)
			return -EINVAL;
		key = strndup(kv, (size_t)(eq - kv));
		err = store_list_own(L, key);
		if (!err)
			err = store_list_set(
			    L, c, "SELECT sid FROM labels WHERE key = ? AND value = ?", key, eq + 1,
			    " AND EXISTS (SELECT 1 FROM labels l WHERE l.sid = s.sid"
			    " AND l.key = ? AND l.value = ?)",
			    key, eq + 1);
	}
	if (!err && !L->empty && f->command && *f->command)
		err = store_list_command(L, c, f->command);
	if (!err && !L->empty && f->risk && *f->risk) {
		/* the sessions ever rated so, then the latest rating of each must be it */
		err = store_list_set(L, c,
				     "SELECT DISTINCT sid FROM summaries WHERE risk_level = ?"
				     " AND success = 1",
				     f->risk, NULL,
				     " AND EXISTS (SELECT 1 FROM summaries m WHERE m.sid = s.sid"
				     " AND m.success = 1 AND m.risk_level = ?)",
				     f->risk, NULL);
		if (!err && !L->empty) {
			store_sql_add(b, " AND " STORE_RISK_OF_S " = ?");
			store_sql_arg(b, f->risk, 0);
		}
	}
	if (!err && !L->empty && f->addr && *f->addr)
		err = store_list_set(L, c, "SELECT DISTINCT sid FROM events WHERE addr = ?",
				     f->addr, NULL,
				     " AND EXISTS (SELECT 1 FROM events e WHERE e.addr = ?"
				     " AND e.sid = s.sid)",
				     f->addr, NULL);
	if (err)
		return err;
	if (f->cursor && *f->cursor) {
		store_sql_add(b, " AND (s.start_ns, s.sid) < (?, ?)");
		store_sql_arg(b, NULL, L->cur_start);
		store_sql_arg(b, L->cur_sid, 0);
	}
	store_sql_add(b, " ORDER BY s.start_ns DESC, s.sid DESC LIMIT ?");
	store_sql_arg(b, NULL, (int64_t)limit + 1); /* one more: is there a next page? */
	return b->err;
}

static int store_local_session_list(struct store *s, const struct store_filter *f,
				    int (*cb)(void *ctx, const struct store_session *ss), void *ctx,
				    char **next_cursor)
{
	static const struct store_filter none;
	struct store_session *rows = NULL;
	struct store_list *L = NULL;
	struct store_conn *c = NULL;
	struct store_q q = {0};
	uint32_t limit;
	size_t n = 0, i;
	int err;

	if (next_cursor)
		*next_cursor = NULL;
	if (!f)
		f = &none;
	limit = f->limit ? f->limit : STORE_LIST_DEFAULT;
	if (limit > STORE_LIST_MAX)
		limit = STORE_LIST_MAX;
	L = calloc(1, sizeof(*L));
	rows = calloc((size_t)limit + 1, sizeof(*rows));
	if (!L || !rows) {
		err = -ENOMEM;
		goto out;
	}
	err = store_conn_get(s, &c);
	if (err)
		goto out;
	/* one snapshot for the planning reads and the query */
	err = store_exec(c, "BEGIN", "begin");
	if (err)
		goto out;
	err = store_list_plan(L, c, f, limit);
	if (err || L->empty)
		goto out;
	err = store_q_prep(&q, c, L->sql.text);
	if (err)
		goto out;
	for (i = 0; i < (size_t)L->sql.n; i++) {
		if (L->sql.args[i].s)
			store_q_text(&q, L->sql.args[i].s);
		else
			store_q_int(&q, L->sql.args[i].i);
	}
	while (n <= limit && (err = store_q_step(&q, "session_list")) == 1) {
		err = store_session_row(q.st, &rows[n]);
		if (err)
			break;
		n++;
	}
	store_q_done(&q);
	store_conn_put(s, c);
	c = NULL;
	if (err < 0)
		goto out;
	err = 0;
	for (i = 0; i < n && i < limit && !err; i++)
		err = cb ? cb(ctx, &rows[i]) : 0;
	if (!err && n > limit && next_cursor)
		err = store_cursor_make(&rows[limit - 1], next_cursor);
out:
	store_q_done(&q);
	store_conn_put(s, c);
	for (i = 0; rows && i < n; i++)
		store_session_clear(&rows[i]);
	for (i = 0; L && i < L->n_owned; i++)
		free(L->owned[i]);
	free(rows);
	free(L);
	return err;
}

/* The text the command index holds for a session: path and argv of each command. */
static int store_command_text(const struct store_event *ev, size_t n, char **out)
{
	size_t len = 0, i, a, b;
	char *p;

	*out = NULL;
	for (i = 0; i < n; i++)
		if (strcmp(ev[i].type, "session.command") == 0)
			len += strlen(store_str(ev[i].path, "")) +
			       strlen(store_str(ev[i].argv, "")) + 2;
	p = malloc(len + 1);
	if (!p)
		return -ENOMEM;
	len = 0;
	for (i = 0; i < n; i++) {
		if (strcmp(ev[i].type, "session.command") != 0)
			continue;
		a = strlen(store_str(ev[i].path, ""));
		b = strlen(store_str(ev[i].argv, ""));
		memcpy(p + len, store_str(ev[i].path, ""), a);
		p[len + a] = '\n';
		memcpy(p + len + a + 1, store_str(ev[i].argv, ""), b);
		p[len + a + 1 + b] = '\n';
		len += a + b + 2;
	}
	p[len] = '\0';
	*out = p;
	return 0;
}

/*
 * Replace a session's document in the command index (inside the caller's
 * transaction). The trigram index is an external-content table over
 * command_docs: an old document leaves it only when named with its exact text.
 */
static int store_command_index(struct store_conn *c, const char *sid, const char *text)
{
	struct store_q q = {0};
	char *old = NULL;
	int64_t doc = 0;
	int err;

	err = store_q_prep(&q, c, "SELECT doc, text FROM command_docs WHERE sid = ?");
	if (err)
		return err;
	store_q_text(&q, sid);
	err = store_q_step(&q, "command index");
	if (err == 1) {
		doc = sqlite3_column_int64(q.st, 0);
		err = store_col_dup(q.st, 1, &old);
	}
	store_q_done(&q);
	if (err < 0)
		goto out;
	if (old) {
		err = store_q_prep(&q, c,
				   "INSERT INTO command_text(command_text, rowid, text)"
				   " VALUES ('delete', ?, ?)");
		if (err)
			goto out;
		store_q_int(&q, doc);
		store_q_text(&q, old);
		err = store_q_step(&q, "command index");
		store_q_done(&q);
		if (err < 0)
			goto out;
		err = store_q_prep(&q, c, "UPDATE command_docs SET text = ? WHERE doc = ?");
		if (err)
			goto out;
		store_q_text(&q, text);
		store_q_int(&q, doc);
	} else {
		err = store_q_prep(&q, c, "INSERT INTO command_docs(sid, text) VALUES (?, ?)");
		if (err)
			goto out;
		store_q_text(&q, sid);
		store_q_text(&q, text);
	}
	err = store_q_step(&q, "command index");
	store_q_done(&q);
	if (err < 0)
		goto out;
	if (!old)
		doc = sqlite3_last_insert_rowid(c->db);
	err = store_q_prep(&q, c, "INSERT INTO command_text(rowid, text) VALUES (?, ?)");
	if (err)
		goto out;
	store_q_int(&q, doc);
	store_q_text(&q, text);
	err = store_q_step(&q, "command index");
	store_q_done(&q);
out:
	free(old);
	return err < 0 ? err : 0;
}

static int store_local_events_put(struct store *s, const char *sid, const struct store_event *ev,
				  size_t n)
{
	struct store_conn *c = NULL;
	struct store_q q = {0};
	char *text = NULL;
	size_t i;
	int err;

	if (!util_is_uuid(sid) || (n && !ev))
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!ev[i].type || ev[i].ei > INT64_MAX)
			return -EINVAL;
	err = store_command_text(ev, n, &text);
	if (err)
		return err;
	err = store_conn_get(s, &c);
	if (err) {
		free(text);
		return err;
	}
	err = store_begin(c);
	if (err)
		goto out;
	err = store_q_prep(&q, c, "DELETE FROM events WHERE sid = ?");
	if (err)
		goto out;
	store_q_text(&q, sid);
	err = store_q_step(&q, "events_put");
	store_q_done(&q);
	if (err < 0)
		goto out;
	err = store_q_prep(&q, c,
			   "INSERT INTO events(sid, ei, time_ns, type, program, path, argv, addr,"
			   " port, return_code) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
	if (err)
		goto out;
	for (i = 0; i < n && !err; i++) {
		const struct store_event *e = &ev[i];

		store_q_reset(&q);
		store_q_text(&q, sid);
		store_q_int(&q, (int64_t)e->ei);
		store_q_int(&q, e->time_ns);
		store_q_text(&q, e->type);
		store_q_text(&q, e->program);
		store_q_text(&q, e->path);
		store_q_text(&q, e->argv);
		store_q_text(&q, e->addr && *e->addr ? e->addr : NULL);
		store_q_int(&q, e->port);
		store_q_int(&q, e->return_code);
		err = store_q_step(&q, "events_put");
	}
	store_q_done(&q);
	if (err < 0)
		goto out;
	err = store_command_index(c, sid, text);
	if (err)
		goto out;
	err = store_commit(c);
out:
	store_conn_put(s, c);
	free(text);
	return err;
}

/* ------------------------------------------------------------ audit */

/* Write bytes of lines marked new, each with its newline, in chunks. */
static int store_audit_write(int fd, const char *const *lines, const bool *fresh, size_t n)
{
	char *chunk = malloc(STORE_CHUNK);
	size_t used = 0, i, len;
	int err = 0;

	if (!chunk)
		return -ENOMEM;
	for (i = 0; i < n && !err; i++) {
		if (!fresh[i])
			continue;
		len = strlen(lines[i]);
		if (used + len + 1 > STORE_CHUNK && used) {
			err = util_write_all(fd, chunk, used);
			used = 0;
		}
		if (err)
			break;
		if (len + 1 > STORE_CHUNK) {
			err = util_write_all(fd, lines[i], len);
			if (!err)
				err = util_write_all(fd, "\n", 1);
			continue;
		}
		memcpy(chunk + used, lines[i], len);
		chunk[used + len] = '\n';
		used += len + 1;
	}
	if (!err && used)
		err = util_write_all(fd, chunk, used);
	free(chunk);
	return err;
}

static int store_local_audit_append(struct store *s, const char *const *lines, size_t n)
{
	struct store_conn *c = NULL;
	struct store_q q = {0};
	bool *fresh = NULL, locked = false, wrote = false;
	uint64_t bytes = 0;
	struct stat st = {0};
	off_t before = 0;
	size_t i;
	int err;

	if (n == 0)
		return 0;
	if (!lines)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!lines[i] || !*lines[i] || strchr(lines[i], '\n'))
			return -EINVAL;
	fresh = calloc(n, sizeof(*fresh));
	if (!fresh)
		return -ENOMEM;
	err = store_conn_get(s, &c);
	if (err)
		goto out;
	pthread_mutex_lock(&s->audit_lock);
	locked = true;
	err = store_begin(c);
	if (err)
		goto out;
	err = store_q_prep(
	    &q, c,
	    "INSERT INTO audit(sid, uid, line) VALUES (NULLIF(json_extract(?1, '$.sid'),"
	    " ''), NULLIF(json_extract(?1, '$.uid'), ''), ?1) ON CONFLICT DO NOTHING");
	if (err)
		goto out;
	for (i = 0; i < n && !err; i++) {
		store_q_reset(&q);
		store_q_text(&q, lines[i]);
		err = store_q_step(&q, "audit_append");
		if (err == 0 && sqlite3_changes(c->db) == 1) {
			fresh[i] = true;
			bytes += strlen(lines[i]) + 1;
		}
	}
	store_q_done(&q);
	if (err < 0)
		goto out;
	if (bytes == 0) {
		err = store_commit(c); /* every line was in the log already */
		goto out;
	}

	err = store_audit_current(s, &st);
	if (err)
		goto out;
	if (st.st_size > 0 && (uint64_t)st.st_size + bytes > s->rotate_size) {
		err = store_audit_rotate(s);
		if (!err && fstat(s->audit_fd, &st) < 0)
			err = -errno;
		if (err) {
			log_error("%s: rotate: %s", s->log_path, strerror(-err));
			goto out;
		}
	}
	before = st.st_size;
	wrote = true;
	err = store_audit_write(s->audit_fd, lines, fresh, n);
	if (!err && fdatasync(s->audit_fd) < 0)
		err = -errno;
	if (err) {
		log_error("%s: write: %s", s->log_path, strerror(-err));
		goto out;
	}
	err = store_q_prep(&q, c, "UPDATE audit_file SET ino = ?, size = ? WHERE id = 1");
	if (err)
		goto out;
	store_q_int(&q, (int64_t)st.st_ino);
	store_q_int(&q, (int64_t)(before + (off_t)bytes));
	err = store_q_step(&q, "audit_append");
	store_q_done(&q);
	if (err < 0)
		goto out;
	err = store_commit(c);
	if (!err)
		wrote = false;
out:
	if (err && wrote && ftruncate(s->audit_fd, before) < 0)
		log_error("%s: cannot cut off uncommitted lines: %s (cut at next start)",
			  s->log_path, strerror(errno));
	if (locked)
		pthread_mutex_unlock(&s->audit_lock);
	store_conn_put(s, c); /* rolls back what was not committed */
	free(fresh);
	return err < 0 ? err : 0;
}

struct store_audit_row {
	uint64_t id;
	char *line;
};

static int store_local_audit_read(struct store *s, uint64_t cursor, uint32_t limit,
				  int (*cb)(void *ctx, uint64_t cursor, const char *line),
				  void *ctx, uint64_t *next)
{
	struct store_audit_row *rows = NULL;
	struct store_conn *c = NULL;
	struct store_q q = {0};
	size_t n = 0, i;
	int err;

	if (next)
		*next = cursor;
	if (cursor > INT64_MAX)
		return -EINVAL;
	limit = limit ? limit : STORE_AUDIT_DEFAULT;
	if (limit > STORE_AUDIT_MAX)
		limit = STORE_AUDIT_MAX;
	rows = calloc(limit, sizeof(*rows));
	if (!rows)
		return -ENOMEM;
	err = store_conn_get(s, &c);
	if (err)
		goto out;
	err = store_q_prep(&q, c, "SELECT id, line FROM audit WHERE id > ? ORDER BY id LIMIT ?");
	if (err)
		goto out;
	store_q_int(&q, (int64_t)cursor);
	store_q_int(&q, limit);
	while (n < limit && (err = store_q_step(&q, "audit_read")) == 1) {
		rows[n].id = (uint64_t)sqlite3_column_int64(q.st, 0);
		err = store_col_dup(q.st, 1, &rows[n].line);
		if (err)
			break;
		n++;
	}
	store_q_done(&q);
	store_conn_put(s, c);
	c = NULL;
	if (err < 0)
		goto out;
	err = 0;
	for (i = 0; i < n && !err; i++) {
		err = cb ? cb(ctx, rows[i].id, rows[i].line) : 0;
		if (!err && next)
			*next = rows[i].id;
	}
out:
	store_q_done(&q);
	store_conn_put(s, c);
	for (i = 0; i < n; i++)
		free(rows[i].line);
	free(rows);
	return err;
}

/* ------------------------------------------------------------ tokens */

static int store_local_token_put(struct store *s, const char *id, const char *user,
				 const char *role, const uint8_t hash[32])
{
	struct store_conn *c = NULL;
	struct store_q q = {0};
	int err;

	if (!id || !*id || !user || !*user || !role || !*role || !hash)
		return -EINVAL;
	err = store_conn_get(s, &c);
	if (err)
		return err;
	err = store_q_prep(&q, c,
			   "INSERT INTO tokens(id, \"user\", role, hash, created_ns, revoked)"
			   " VALUES (?, ?, ?, ?, ?, 0)");
	if (err)
		goto out;
	store_q_text(&q, id);
	store_q_text(&q, user);
	store_q_text(&q, role);
	store_q_blob(&q, hash, 32);
	store_q_int(&q, util_now_ns());
	err = store_q_step(&q, "token_put");
out:
	store_q_done(&q);
	store_conn_put(s, c);
	return err < 0 ? err : 0;
}

static int store_copy(char *out, size_t outlen, const unsigned char *s)
{
	int n = snprintf(out, outlen, "%s", s ? (const char *)s : "");

	return n < 0 || (size_t)n >= outlen ? -ERANGE : 0;
}

static int store_local_token_find(struct store *s, const uint8_t hash[32], char *user,
				  size_t userlen, char *role, size_t rolelen)
{
	struct store_conn *c = NULL;
	struct store_q q = {0};
	int err;

	if (!hash || !user || !role)
		return -EINVAL;
	err = store_conn_get(s, &c);
	if (err)
		return err;
	err = store_q_prep_lit(&q, c,
			       "SELECT \"user\", role FROM tokens WHERE hash = ? AND revoked = 0");
	if (err)
		goto out;
	store_q_blob(&q, hash, 32);
	err = store_q_step(&q, "token_find");
	if (err == 0) {
		err = -ENOENT;
	} else if (err == 1) {
		err = store_copy(user, userlen, sqlite3_column_text(q.st, 0));
		if (!err)
			err = store_copy(role, rolelen, sqlite3_column_text(q.st, 1));
	}
out:
	store_q_done(&q);
	store_conn_put(s, c);
	return err;
}

static int store_local_token_list(struct store *s,
				  int (*cb)(void *ctx, const char *id, const char *user,
					    const char *role, int64_t created_ns, bool revoked),
				  void *ctx)
{
	struct store_conn *c = NULL;
	struct store_q q = {0};
	int err;

	err = store_conn_get(s, &c);
	if (err)
		return err;
	err = store_q_prep(&q, c,
			   "SELECT id, \"user\", role, created_ns, revoked FROM tokens"
			   " ORDER BY created_ns, id");
	if (err)
		goto out;
	/* Few rows, no slow consumer: the callback runs on the open statement. */
	while ((err = store_q_step(&q, "token_list")) == 1) {
		err = cb ? cb(ctx, (const char *)sqlite3_column_text(q.st, 0),
			      (const char *)sqlite3_column_text(q.st, 1),
			      (const char *)sqlite3_column_text(q.st, 2),
			      sqlite3_column_int64(q.st, 3), sqlite3_column_int(q.st, 4) != 0)
			 : 0;
		if (err)
			break;
	}
out:
	store_q_done(&q);
	store_conn_put(s, c);
	return err < 0 ? err : 0;
}

/* Revoke the token with this id, or the one token whose id starts with it. */
static int store_local_token_revoke(struct store *s, const char *id_or_prefix)
{
	struct store_conn *c = NULL;
	struct store_q q = {0};
	char *id = NULL;
	int err, found = 0;

	if (!id_or_prefix || !*id_or_prefix)
		return -EINVAL;
	err = store_conn_get(s, &c);
	if (err)
		return err;
	err = store_begin(c);
	if (err)
		goto out;
	err = store_q_prep(&q, c,
			   "SELECT id FROM tokens WHERE id = ?1 UNION ALL"
			   " SELECT id FROM (SELECT id FROM tokens WHERE id <> ?1"
			   " AND substr(id, 1, length(?1)) = ?1 LIMIT 2)");
	if (err)
		goto out;
	store_q_text(&q, id_or_prefix);
	while ((err = store_q_step(&q, "token_revoke")) == 1) {
		const unsigned char *t = sqlite3_column_text(q.st, 0);

		if (found == 0) {
			id = strdup(t ? (const char *)t : "");
			if (!id) {
				err = -ENOMEM;
				break;
			}
		}
		found++;
		/* an exact id wins over prefixes */
		if (strcmp(id, id_or_prefix) == 0)
			break;
	}
	store_q_done(&q);
	if (err < 0)
		goto out;
	if (found == 0) {
		err = -ENOENT;
		goto out;
	}
	if (found > 1 && strcmp(id, id_or_prefix) != 0) {
		err = -ENOTUNIQ;
		goto out;
	}
	err = store_q_prep(&q, c, "UPDATE tokens SET revoked = 1 WHERE id = ?");
	if (err)
		goto out;
	store_q_text(&q, id);
	err = store_q_step(&q, "token_revoke");
	store_q_done(&q);
	if (err < 0)
		goto out;
	err = store_commit(c);
out:
	store_conn_put(s, c);
	free(id);
	return err;
}

/* ------------------------------------------------------------ inference resources */

static bool store_res_ok(const struct store_resource *r)
{
	return r && r->kind[0] && r->name && *r->name && r->json && *r->json;
}

static int store_local_resource_put(struct store *s, const struct store_resource *r, size_t n,
				    bool replace, size_t *conflict)
{
	struct store_conn *c = NULL;
	struct store_q q = {0};
	int64_t now = util_now_ns();
	size_t i;
	int err;

	if (n && !r)
		return -EINVAL;
	for (i = 0; i < n; i++)
		if (!store_res_ok(&r[i]))
			return -EINVAL;
	err = store_conn_get(s, &c);
	if (err)
		return err;
	err = store_begin(c);
	if (err)
		goto out;
	for (i = 0; i < n && !replace; i++) {
		err = store_q_prep(&q, c, "SELECT 1 FROM resources WHERE kind = ? AND name = ?");
		if (err)
			goto out;
		store_q_text(&q, r[i].kind);
		store_q_text(&q, r[i].name);
		err = store_q_step(&q, "resource_put");
		store_q_done(&q);
		if (err == 1) {
			if (conflict)
				*conflict = i;
			err = -EEXIST;
		}
		if (err)
			goto out;
	}
	err = store_q_prep(&q, c,
			   "INSERT INTO resources(kind, name, json, created_ns, updated_ns)"
			   " VALUES (?, ?, ?, ?, ?) ON CONFLICT(kind, name) DO UPDATE SET"
			   " json = excluded.json, updated_ns = excluded.updated_ns");
	if (err)
		goto out;
	for (i = 0; i < n && !err; i++) {
		store_q_reset(&q);
		store_q_text(&q, r[i].kind);
		store_q_text(&q, r[i].name);
		store_q_text(&q, r[i].json);
		store_q_int(&q, now);
		store_q_int(&q, now);
		err = store_q_step(&q, "resource_put");
	}
	store_q_done(&q);
	if (err < 0)
		goto out;
	err = store_commit(c);
out:
	store_q_done(&q);
	store_conn_put(s, c);
	return err < 0 ? err : 0;
}

static int store_resource_row(sqlite3_stmt *st, struct store_resource *out)
{
	const unsigned char *kind = sqlite3_column_text(st, 0);
	int err;

	memset(out, 0, sizeof(*out));
	snprintf(out->kind, sizeof(out->kind), "%s", kind ? (const char *)kind : "");
	err = store_col_dup(st, 1, &out->name);
	if (!err)
		err = store_col_dup(st, 2, &out->json);
	out->created_ns = sqlite3_column_int64(st, 3);
	out->updated_ns = sqlite3_column_int64(st, 4);
	if (err)
		store_resource_clear(out);
	return err;
}

static int store_local_resource_get(struct store *s, const char *kind, const char *name,
				    struct store_resource *out)
{
	struct store_conn *c = NULL;
	struct store_q q = {0};
	int err;

	memset(out, 0, sizeof(*out));
	if (!kind || !name)
		return -EINVAL;
	err = store_conn_get(s, &c);
	if (err)
		return err;
	err = store_q_prep(&q, c,
			   "SELECT kind, name, json, created_ns, updated_ns FROM resources"
			   " WHERE kind = ? AND name = ?");
	if (err)
		goto out;
	store_q_text(&q, kind);
	store_q_text(&q, name);
	err = store_q_step(&q, "resource_get");
	if (err == 0)
		err = -ENOENT;
	else if (err == 1)
		err = store_resource_row(q.st, out);
out:
	store_q_done(&q);
	store_conn_put(s, c);
	return err;
}

static int store_local_resource_list(struct store *s, const char *kind,
				     int (*cb)(void *ctx, const struct store_resource *r),
				     void *ctx)
{
	struct store_resource *rows = NULL, *tmp;
	struct store_conn *c = NULL;
	struct store_q q = {0};
	size_t n = 0, cap = 0, i;
	int err;

	err = store_conn_get(s, &c);
	if (err)
		return err;
	err = store_q_prep(&q, c,
			   "SELECT kind, name, json, created_ns, updated_ns FROM resources"
			   " WHERE ?1 IS NULL OR kind = ?1 ORDER BY kind, name");
	if (err)
		goto out;
	store_q_text(&q, kind);
	while ((err = store_q_step(&q, "resource_list")) == 1) {
		if (n == cap) {
			cap = cap ? cap * 2 : 16;
			tmp = realloc(rows, cap * sizeof(*rows));
			if (!tmp) {
				err = -ENOMEM;
				break;
			}
			rows = tmp;
		}
		err = store_resource_row(q.st, &rows[n]);
		if (err)
			break;
		n++;
	}
	store_q_done(&q);
	store_conn_put(s, c);
	c = NULL;
	if (err < 0)
		goto out;
	err = 0;
	/* after the connection went back: the callback may use the store */
	for (i = 0; i < n && !err; i++)
		err = cb ? cb(ctx, &rows[i]) : 0;
out:
	store_q_done(&q);
	store_conn_put(s, c);
	for (i = 0; i < n; i++)
		store_resource_clear(&rows[i]);
	free(rows);
	return err;
}

/* A statement that changes rows: -ENOENT when it changed none. */
static int store_change(struct store *s, const char *sql, const char *what, const char *a,
			const char *b, int64_t i1, int64_t i2)
{
	struct store_conn *c = NULL;
	struct store_q q = {0};
	int err;

	err = store_conn_get(s, &c);
	if (err)
		return err;
	err = store_q_prep(&q, c, sql);
	if (err)
		goto out;
	if (a)
		store_q_text(&q, a);
	if (b)
		store_q_text(&q, b);
	if (i1 >= 0)
		store_q_int(&q, i1);
	if (i2 >= 0)
		store_q_int(&q, i2);
	err = store_q_step(&q, what);
	if (err == 0 && sqlite3_changes(c->db) == 0)
		err = -ENOENT;
out:
	store_q_done(&q);
	store_conn_put(s, c);
	return err < 0 ? err : 0;
}

static int store_local_resource_delete(struct store *s, const char *kind, const char *name)
{
	if (!kind || !name)
		return -EINVAL;
	return store_change(s, "DELETE FROM resources WHERE kind = ? AND name = ?",
			    "resource_delete", kind, name, -1, -1);
}

static int store_local_meta_get(struct store *s, const char *key, char **value)
{
	struct store_conn *c = NULL;
	struct store_q q = {0};
	int err;

	*value = NULL;
	if (!key)
		return -EINVAL;
	err = store_conn_get(s, &c);
	if (err)
		return err;
	err = store_q_prep(&q, c, "SELECT value FROM meta WHERE key = ?");
	if (err)
		goto out;
	store_q_text(&q, key);
	err = store_q_step(&q, "meta_get");
	if (err == 0)
		err = -ENOENT;
	else if (err == 1)
		err = store_col_dup(q.st, 0, value);
out:
	store_q_done(&q);
	store_conn_put(s, c);
	return err;
}

static int store_local_meta_set(struct store *s, const char *key, const char *value)
{
	if (!key || !value)
		return -EINVAL;
	return store_change(s,
			    "INSERT INTO meta(key, value) VALUES (?, ?)"
			    " ON CONFLICT(key) DO UPDATE SET value = excluded.value",
			    "meta_set", key, value, -1, -1);
}

/* ------------------------------------------------------------ summary jobs */

static const char *const store_job_statuses[] = {"pending", "running", "done", "failed",
						 "budget_exceeded"};

static bool store_job_status_ok(const char *st)
{
	for (size_t i = 0; i < sizeof(store_job_statuses) / sizeof(store_job_statuses[0]); i++)
		if (st && strcmp(st, store_job_statuses[i]) == 0)
			return true;
	return false;
}

#define STORE_JOB_COLS                                                                             \
	"id, sid, model, policy, origin, status, attempts, next_at, created_ns, updated_ns, "      \
	"error, requested_by"

static int store_job_row(sqlite3_stmt *st, struct store_job *out)
{
	const unsigned char *t;
	int err;

	memset(out, 0, sizeof(*out));
	out->id = sqlite3_column_int64(st, 0);
	t = sqlite3_column_text(st, 1);
	snprintf(out->sid, sizeof(out->sid), "%s", t ? (const char *)t : "");
	t = sqlite3_column_text(st, 4);
	snprintf(out->origin, sizeof(out->origin), "%s", t ? (const char *)t : "");
	t = sqlite3_column_text(st, 5);
	snprintf(out->status, sizeof(out->status), "%s", t ? (const char *)t : "");
	out->attempts = (uint32_t)sqlite3_column_int64(st, 6);
	out->next_at_ns = sqlite3_column_int64(st, 7);
	out->created_ns = sqlite3_column_int64(st, 8);
	out->updated_ns = sqlite3_column_int64(st, 9);
	err = store_col_dup(st, 2, &out->model);
	if (!err)
		err = store_col_dup(st, 3, &out->policy);
	if (!err)
		err = store_col_dup(st, 10, &out->error);
	if (!err)
		err = store_col_dup(st, 11, &out->requested_by);
	if (err)
		store_job_clear(out);
	return err;
}

static int store_local_job_add(struct store *s, const struct store_job *j, int64_t *id)
{
	struct store_conn *c = NULL;
	struct store_q q = {0};
	int64_t now = util_now_ns();
	int err;

	if (!j || !util_is_uuid(j->sid) || !j->model || !*j->model ||
	    (strcmp(j->origin, "auto") != 0 && strcmp(j->origin, "manual") != 0))
		return -EINVAL;
	err = store_conn_get(s, &c);
	if (err)
		return err;
	err = store_q_prep(&q, c,
			   "INSERT INTO jobs(sid, model, policy, origin, status, attempts, next_at,"
			   " created_ns, updated_ns, error, requested_by)"
			   " VALUES (?, ?, ?, ?, 'pending', 0, ?, ?, ?, '', ?)");
	if (err)
		goto out;
	store_q_text(&q, j->sid);
	store_q_text(&q, j->model);
	store_q_text(&q, store_str(j->policy, ""));
	store_q_text(&q, j->origin);
	store_q_int(&q, j->next_at_ns);
	store_q_int(&q, now);
	store_q_int(&q, now);
	store_q_text(&q, store_str(j->requested_by, ""));
	err = store_q_step(&q, "job_add");
	if (err == 0 && id)
		*id = sqlite3_last_insert_rowid(c->db);
out:
	store_q_done(&q);
	store_conn_put(s, c);
	return err < 0 ? err : 0;
}

static int store_local_job_claim(struct store *s, int64_t now_ns, struct store_job *out)
{
	struct store_conn *c = NULL;
	struct store_q q = {0};
	int err;

	memset(out, 0, sizeof(*out));
	err = store_conn_get(s, &c);
	if (err)
		return err;
	err = store_begin(c);
	if (err)
		goto out;
	err = store_q_prep(&q, c,
			   "SELECT " STORE_JOB_COLS " FROM jobs WHERE status = 'pending'"
			   " AND next_at <= ? ORDER BY next_at, id LIMIT 1");
	if (err)
		goto out;
	store_q_int(&q, now_ns);
	err = store_q_step(&q, "job_claim");
	if (err == 1)
		err = store_job_row(q.st, out);
	else if (err == 0)
		err = -ENOENT;
	store_q_done(&q);
	if (err)
		goto out;
	err = store_q_prep(&q, c,
			   "UPDATE jobs SET status = 'running', attempts = attempts + 1,"
			   " updated_ns = ? WHERE id = ?");
	if (err)
		goto out;
	store_q_int(&q, util_now_ns());
	store_q_int(&q, out->id);
	err = store_q_step(&q, "job_claim");
	store_q_done(&q);
	if (err < 0)
		goto out;
	err = store_commit(c);
	if (!err) {
		snprintf(out->status, sizeof(out->status), "running");
		out->attempts++;
	}
out:
	if (err)
		store_job_clear(out);
	store_q_done(&q);
	store_conn_put(s, c);
	return err;
}

static int store_local_job_update(struct store *s, int64_t id, const char *status,
				  int64_t next_at_ns, const char *error)
{
	struct store_conn *c = NULL;
	struct store_q q = {0};
	int err;

	if (!store_job_status_ok(status))
		return -EINVAL;
	err = store_conn_get(s, &c);
	if (err)
		return err;
	err = store_q_prep(&q, c,
			   "UPDATE jobs SET status = ?, next_at = ?, error = ?, updated_ns = ?"
			   " WHERE id = ?");
	if (err)
		goto out;
	store_q_text(&q, status);
	store_q_int(&q, next_at_ns);
	store_q_text(&q, store_str(error, ""));
	store_q_int(&q, util_now_ns());
	store_q_int(&q, id);
	err = store_q_step(&q, "job_update");
	if (err == 0 && sqlite3_changes(c->db) == 0)
		err = -ENOENT;
out:
	store_q_done(&q);
	store_conn_put(s, c);
	return err < 0 ? err : 0;
}

static int store_local_job_get(struct store *s, int64_t id, struct store_job *out)
{
	struct store_conn *c = NULL;
	struct store_q q = {0};
	int err;

	memset(out, 0, sizeof(*out));
	err = store_conn_get(s, &c);
	if (err)
		return err;
	err = store_q_prep(&q, c, "SELECT " STORE_JOB_COLS " FROM jobs WHERE id = ?");
	if (err)
		goto out;
	store_q_int(&q, id);
	err = store_q_step(&q, "job_get");
	if (err == 0)
		err = -ENOENT;
	else if (err == 1)
		err = store_job_row(q.st, out);
out:
	store_q_done(&q);
	store_conn_put(s, c);
	return err;
}

static int store_local_job_list(struct store *s, const char *sid, const char *status,
				uint32_t limit, int (*cb)(void *ctx, const struct store_job *j),
				void *ctx)
{
	struct store_job *rows = NULL;
	struct store_conn *c = NULL;
	struct store_q q = {0};
	size_t n = 0, i;
	int err;

	limit = limit ? limit : STORE_LIST_DEFAULT;
	if (limit > STORE_LIST_MAX)
		limit = STORE_LIST_MAX;
	rows = calloc(limit, sizeof(*rows));
	if (!rows)
		return -ENOMEM;
	err = store_conn_get(s, &c);
	if (err)
		goto out;
	err = store_q_prep(&q, c,
			   "SELECT " STORE_JOB_COLS " FROM jobs WHERE (?1 IS NULL OR sid = ?1)"
			   " AND (?2 IS NULL OR status = ?2) ORDER BY id DESC LIMIT ?3");
	if (err)
		goto out;
	store_q_text(&q, sid);
	store_q_text(&q, status);
	store_q_int(&q, limit);
	while (n < limit && (err = store_q_step(&q, "job_list")) == 1) {
		err = store_job_row(q.st, &rows[n]);
		if (err)
			break;
		n++;
	}
	store_q_done(&q);
	store_conn_put(s, c);
	c = NULL;
	if (err < 0)
		goto out;
	err = 0;
	for (i = 0; i < n && !err; i++)
		err = cb ? cb(ctx, &rows[i]) : 0;
out:
	store_q_done(&q);
	store_conn_put(s, c);
	for (i = 0; i < n; i++)
		store_job_clear(&rows[i]);
	free(rows);
	return err;
}

static int store_local_job_counts(struct store *s,
				  int (*cb)(void *ctx, const char *model, const char *status,
					    uint64_t n),
				  void *ctx)
{
	struct store_conn *c = NULL;
	struct store_q q = {0};
	int err;

	err = store_conn_get(s, &c);
	if (err)
		return err;
	err = store_q_prep(&q, c,
			   "SELECT model, status, count(*) FROM jobs"
			   " WHERE status IN ('pending', 'running', 'budget_exceeded')"
			   " GROUP BY model, status");
	if (err)
		goto out;
	/* a few rows; the callback only counts */
	while ((err = store_q_step(&q, "job_counts")) == 1) {
		err = cb ? cb(ctx, (const char *)sqlite3_column_text(q.st, 0),
			      (const char *)sqlite3_column_text(q.st, 1),
			      (uint64_t)sqlite3_column_int64(q.st, 2))
			 : 0;
		if (err)
			break;
	}
out:
	store_q_done(&q);
	store_conn_put(s, c);
	return err < 0 ? err : 0;
}

static int store_local_job_requeue(struct store *s, const char *status, const char *model,
				   int64_t now_ns, uint64_t *n)
{
	struct store_conn *c = NULL;
	struct store_q q = {0};
	int err;

	if (n)
		*n = 0;
	if (!status || (strcmp(status, "running") != 0 && strcmp(status, "budget_exceeded") != 0))
		return -EINVAL;
	err = store_conn_get(s, &c);
	if (err)
		return err;
	err = store_q_prep(&q, c,
			   /* due at once, in their first order (next_at, then id) */
			   "UPDATE jobs SET status = 'pending', next_at = 0, updated_ns = ?1"
			   " WHERE status = ?2 AND (?3 IS NULL OR model = ?3)");
	if (err)
		goto out;
	store_q_int(&q, now_ns);
	store_q_text(&q, status);
	store_q_text(&q, model);
	err = store_q_step(&q, "job_requeue");
	if (err == 0 && n)
		*n = (uint64_t)sqlite3_changes(c->db);
out:
	store_q_done(&q);
	store_conn_put(s, c);
	return err < 0 ? err : 0;
}

/* ------------------------------------------------------------ token spending */

static int store_local_usage_add(struct store *s, const char *model, const char *day,
				 uint64_t tokens_in, uint64_t tokens_out)
{
	struct store_conn *c = NULL;
	struct store_q q = {0};
	int err;

	if (!model || !day || tokens_in > INT64_MAX / 2 || tokens_out > INT64_MAX / 2)
		return -EINVAL;
	err = store_conn_get(s, &c);
	if (err)
		return err;
	err =
	    store_q_prep(&q, c,
			 "INSERT INTO usage(model, day, tokens_in, tokens_out) VALUES (?, ?, ?, ?)"
			 " ON CONFLICT(model, day) DO UPDATE SET"
			 " tokens_in = tokens_in + excluded.tokens_in,"
			 " tokens_out = tokens_out + excluded.tokens_out");
	if (err)
		goto out;
	store_q_text(&q, model);
	store_q_text(&q, day);
	store_q_int(&q, (int64_t)tokens_in);
	store_q_int(&q, (int64_t)tokens_out);
	err = store_q_step(&q, "usage_add");
out:
	store_q_done(&q);
	store_conn_put(s, c);
	return err < 0 ? err : 0;
}

static int store_local_usage_get(struct store *s, const char *model, const char *day,
				 uint64_t *tokens_in, uint64_t *tokens_out)
{
	struct store_conn *c = NULL;
	struct store_q q = {0};
	int err;

	*tokens_in = *tokens_out = 0;
	if (!model || !day)
		return -EINVAL;
	err = store_conn_get(s, &c);
	if (err)
		return err;
	err = store_q_prep(&q, c,
			   "SELECT tokens_in, tokens_out FROM usage WHERE model = ? AND day = ?");
	if (err)
		goto out;
	store_q_text(&q, model);
	store_q_text(&q, day);
	err = store_q_step(&q, "usage_get");
	if (err == 1) {
		*tokens_in = (uint64_t)sqlite3_column_int64(q.st, 0);
		*tokens_out = (uint64_t)sqlite3_column_int64(q.st, 1);
	}
out:
	store_q_done(&q);
	store_conn_put(s, c);
	return err < 0 ? err : 0;
}

/* ------------------------------------------------------------ summaries */

#define STORE_SUMMARY_COLS                                                                         \
	"id, sid, job_id, origin, model_name, provider, model_id, title, short_description, "      \
	"detailed_description, risk_level, risk_score, risk_reasons, commands_of_interest, "       \
	"needs_review, tokens_in, tokens_out, chunks, transcript_bytes, raw_bytes, started_ns, "   \
	"finished_ns, success, error_code, error"

static int store_summary_row(sqlite3_stmt *st, struct store_summary *out)
{
	const unsigned char *t;
	int err;

	memset(out, 0, sizeof(*out));
	out->id = sqlite3_column_int64(st, 0);
	t = sqlite3_column_text(st, 1);
	snprintf(out->sid, sizeof(out->sid), "%s", t ? (const char *)t : "");
	out->job_id = sqlite3_column_int64(st, 2);
	t = sqlite3_column_text(st, 3);
	snprintf(out->origin, sizeof(out->origin), "%s", t ? (const char *)t : "");
	t = sqlite3_column_text(st, 10);
	snprintf(out->risk_level, sizeof(out->risk_level), "%s", t ? (const char *)t : "");
	out->risk_score = (uint32_t)sqlite3_column_int64(st, 11);
	out->needs_review = sqlite3_column_int(st, 14) != 0;
	out->tokens_in = (uint64_t)sqlite3_column_int64(st, 15);
	out->tokens_out = (uint64_t)sqlite3_column_int64(st, 16);
	out->chunks = (uint32_t)sqlite3_column_int64(st, 17);
	out->transcript_bytes = (uint64_t)sqlite3_column_int64(st, 18);
	out->raw_bytes = (uint64_t)sqlite3_column_int64(st, 19);
	out->started_ns = sqlite3_column_int64(st, 20);
	out->finished_ns = sqlite3_column_int64(st, 21);
	out->success = sqlite3_column_int(st, 22) != 0;
	err = store_col_dup(st, 4, &out->model_name);
	if (!err)
		err = store_col_dup(st, 5, &out->provider);
	if (!err)
		err = store_col_dup(st, 6, &out->model_id);
	if (!err)
		err = store_col_dup(st, 7, &out->title);
	if (!err)
		err = store_col_dup(st, 8, &out->short_description);
	if (!err)
		err = store_col_dup(st, 9, &out->detailed_description);
	if (!err)
		err = store_col_dup(st, 12, &out->risk_reasons_json);
	if (!err)
		err = store_col_dup(st, 13, &out->commands_of_interest_json);
	if (!err)
		err = store_col_dup(st, 23, &out->error_code);
	if (!err)
		err = store_col_dup(st, 24, &out->error);
	if (err)
		store_summary_clear(out);
	return err;
}

static int64_t store_u64(uint64_t v)
{
	return v > INT64_MAX ? INT64_MAX : (int64_t)v;
}

static int store_local_summary_put(struct store *s, const struct store_summary *m, int64_t *id)
{
	struct store_conn *c = NULL;
	struct store_q q = {0};
	int64_t sum_id = 0;
	int err;

	if (!m || !util_is_uuid(m->sid) || !m->model_name)
		return -EINVAL;
	err = store_conn_get(s, &c);
	if (err)
		return err;
	err = store_begin(c);
	if (err)
		goto out;
	err = store_q_prep(
	    &q, c,
	    "INSERT INTO summaries(sid, job_id, origin, model_name, provider, model_id,"
	    " title, short_description, detailed_description, risk_level, risk_score,"
	    " risk_reasons, commands_of_interest, needs_review, tokens_in, tokens_out,"
	    " chunks, transcript_bytes, raw_bytes, started_ns, finished_ns, success,"
	    " error_code, error) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?,"
	    " ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)");
	if (err)
		goto out;
	store_q_text(&q, m->sid);
	store_q_int(&q, m->job_id);
	store_q_text(&q, m->origin);
	store_q_text(&q, m->model_name);
	store_q_text(&q, store_str(m->provider, ""));
	store_q_text(&q, store_str(m->model_id, ""));
	store_q_text(&q, store_str(m->title, ""));
	store_q_text(&q, store_str(m->short_description, ""));
	store_q_text(&q, store_str(m->detailed_description, ""));
	store_q_text(&q, m->risk_level);
	store_q_int(&q, m->risk_score);
	store_q_text(&q, store_str(m->risk_reasons_json, "[]"));
	store_q_text(&q, store_str(m->commands_of_interest_json, "[]"));
	store_q_int(&q, m->needs_review);
	store_q_int(&q, store_u64(m->tokens_in));
	store_q_int(&q, store_u64(m->tokens_out));
	store_q_int(&q, m->chunks);
	store_q_int(&q, store_u64(m->transcript_bytes));
	store_q_int(&q, store_u64(m->raw_bytes));
	store_q_int(&q, m->started_ns);
	store_q_int(&q, m->finished_ns);
	store_q_int(&q, m->success);
	store_q_text(&q, store_str(m->error_code, ""));
	store_q_text(&q, store_str(m->error, ""));
	err = store_q_step(&q, "summary_put");
	store_q_done(&q);
	if (err < 0)
		goto out;
	sum_id = sqlite3_last_insert_rowid(c->db);
	if (m->job_id) {
		err = store_q_prep(
		    &q, c, "UPDATE jobs SET status = ?, error = ?, updated_ns = ? WHERE id = ?");
		if (err)
			goto out;
		store_q_text(&q, m->success ? "done" : "failed");
		store_q_text(&q, m->success ? "" : store_str(m->error, ""));
		store_q_int(&q, util_now_ns());
		store_q_int(&q, m->job_id);
		err = store_q_step(&q, "summary_put");
		store_q_done(&q);
		if (err < 0)
			goto out;
	}
	err = store_commit(c);
	if (!err && id)
		*id = sum_id;
out:
	store_q_done(&q);
	store_conn_put(s, c);
	return err < 0 ? err : 0;
}

static int store_local_summary_list(struct store *s, const char *sid,
				    int (*cb)(void *ctx, const struct store_summary *m), void *ctx)
{
	struct store_summary *rows = NULL, *tmp;
	struct store_conn *c = NULL;
	struct store_q q = {0};
	size_t n = 0, cap = 0, i;
	int err;

	if (!util_is_uuid(sid))
		return -EINVAL;
	err = store_conn_get(s, &c);
	if (err)
		return err;
	err = store_q_prep(&q, c,
			   "SELECT " STORE_SUMMARY_COLS " FROM summaries WHERE sid = ?"
			   " ORDER BY id DESC LIMIT 1000");
	if (err)
		goto out;
	store_q_text(&q, sid);
	while ((err = store_q_step(&q, "summary_list")) == 1) {
		if (n == cap) {
			cap = cap ? cap * 2 : 4;
			tmp = realloc(rows, cap * sizeof(*rows));
			if (!tmp) {
				err = -ENOMEM;
				break;
			}
			rows = tmp;
		}
		err = store_summary_row(q.st, &rows[n]);
		if (err)
			break;
		n++;
	}
	store_q_done(&q);
	store_conn_put(s, c);
	c = NULL;
	if (err < 0)
		goto out;
	err = 0;
	for (i = 0; i < n && !err; i++)
		err = cb ? cb(ctx, &rows[i]) : 0;
out:
	store_q_done(&q);
	store_conn_put(s, c);
	for (i = 0; i < n; i++)
		store_summary_clear(&rows[i]);
	free(rows);
	return err;
}

static int store_local_summary_get(struct store *s, const char *sid, struct store_summary *out)
{
	struct store_conn *c = NULL;
	struct store_q q = {0};
	int err;

	memset(out, 0, sizeof(*out));
	if (!util_is_uuid(sid))
		return -EINVAL;
	err = store_conn_get(s, &c);
	if (err)
		return err;
	err = store_q_prep(&q, c,
			   "SELECT " STORE_SUMMARY_COLS " FROM summaries WHERE sid = ?"
			   " ORDER BY id DESC LIMIT 1");
	if (err)
		goto out;
	store_q_text(&q, sid);
	err = store_q_step(&q, "summary_get");
	if (err == 0)
		err = -ENOENT;
	else if (err == 1)
		err = store_summary_row(q.st, out);
out:
	store_q_done(&q);
	store_conn_put(s, c);
	return err;
}

static int store_local_audit_find(struct store *s, const char *sid, const char *event, char **line)
{
	struct store_conn *c = NULL;
	struct store_q q = {0};
	int err;

	*line = NULL;
	if (!util_is_uuid(sid) || !event)
		return -EINVAL;
	err = store_conn_get(s, &c);
	if (err)
		return err;
	/* audit_by_event leads with sid: a session's few lines, newest first */
	err = store_q_prep(&q, c,
			   "SELECT line FROM audit WHERE sid = ? AND"
			   " json_extract(line, '$.event') = ? ORDER BY id DESC LIMIT 1");
	if (err)
		goto out;
	store_q_text(&q, sid);
	store_q_text(&q, event);
	err = store_q_step(&q, "audit_find");
	if (err == 0)
		err = -ENOENT;
	else if (err == 1)
		err = store_col_dup(q.st, 0, line);
out:
	store_q_done(&q);
	store_conn_put(s, c);
	return err;
}

const struct store_ops store_local_ops = {
    .name = "local",
    .open = store_local_open,
    .close = store_local_close,
    .part_stat = store_local_part_stat,
    .part_put = store_local_part_put,
    .part_get = store_local_part_get,
    .session_put = store_local_session_put,
    .session_get = store_local_session_get,
    .session_list = store_local_session_list,
    .events_put = store_local_events_put,
    .audit_append = store_local_audit_append,
    .audit_read = store_local_audit_read,
    .token_put = store_local_token_put,
    .token_find = store_local_token_find,
    .token_list = store_local_token_list,
    .token_revoke = store_local_token_revoke,
    .resource_put = store_local_resource_put,
    .resource_get = store_local_resource_get,
    .resource_list = store_local_resource_list,
    .resource_delete = store_local_resource_delete,
    .meta_get = store_local_meta_get,
    .meta_set = store_local_meta_set,
    .job_add = store_local_job_add,
    .job_claim = store_local_job_claim,
    .job_update = store_local_job_update,
    .job_get = store_local_job_get,
    .job_list = store_local_job_list,
    .job_counts = store_local_job_counts,
    .job_requeue = store_local_job_requeue,
    .usage_add = store_local_usage_add,
    .usage_get = store_local_usage_get,
    .summary_put = store_local_summary_put,
    .summary_get = store_local_summary_get,
    .summary_list = store_local_summary_list,
    .audit_find = store_local_audit_find,
};
