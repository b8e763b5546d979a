/*
 * collector/store_local.c: part files and their index, session rows and every
 * filter of session_list with keyset pagination, tokens, the audit log across
 * rotations and after a crash, and several threads at once.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/sha.h>
#include <sqlite3.h>

#include "../../collector/collector.h"
#include "log.h"

#define SID_FMT "00000000-0000-4000-8000-%012x"

static const struct store_ops *ops = &store_local_ops;
static char root[256];
static unsigned int dir_seq;

/* ------------------------------------------------------------ helpers */

struct env {
	char dir[300];
	struct collector_config cfg;
	struct store *st;
};

static void env_open(struct env *e, uint32_t rotate, uint32_t keep)
{
	memset(e, 0, sizeof(*e));
	snprintf(e->dir, sizeof(e->dir), "%s/d%u", root, dir_seq++);
	e->cfg.data_dir = e->dir;
	e->cfg.audit_rotate_size = rotate;
	e->cfg.audit_keep = keep;
	assert_int_equal(ops->open(&e->st, &e->cfg), 0);
}

static void env_reopen(struct env *e)
{
	ops->close(e->st);
	e->st = NULL;
	assert_int_equal(ops->open(&e->st, &e->cfg), 0);
}

static void env_close(struct env *e)
{
	ops->close(e->st);
	e->st = NULL;
}

static void sid_of(char out[40], unsigned int i)
{
	snprintf(out, 40, SID_FMT, i);
}

static char *slurp(const char *path, size_t *len)
{
	struct stat st;
	char *buf;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return NULL;
	assert_int_equal(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	assert_non_null(buf);
	assert_int_equal(read(fd, buf, (size_t)st.st_size), st.st_size);
	buf[st.st_size] = '\0';
	close(fd);
	if (len)
		*len = (size_t)st.st_size;
	return buf;
}

/* dir/rel exists */
static bool exists(const char *dir, const char *rel)
{
	char path[600];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, rel);
	return stat(path, &st) == 0;
}

/* A session row with the fields that the filters look at. */
static void put_session(struct env *e, unsigned int i, const char *user, const char *node,
			const char *kind, const char *status, int64_t start_ns, const char *labels)
{
	struct store_session ss = {0};

	sid_of(ss.sid, i);
	ss.node = (char *)node;
	ss.user = (char *)user;
	ss.login = "root";
	ss.kind = (char *)kind;
	ss.labels_json = (char *)labels;
	ss.initial_command_json = "[\"bash\",\"-l\"]";
	ss.start_ns = start_ns;
	ss.end_ns = start_ns + 1000;
	ss.exit_code = 0;
	ss.cols = 80;
	ss.rows = 24;
	ss.status = (char *)status;
	ss.closed_by = "session";
	assert_int_equal(ops->session_put(e->st, &ss), 0);
}

struct listed {
	char sid[64][40];
	size_t n;
	int stop_at; /* return -ECANCELED from this call (0: never) */
};

static int list_cb(void *ctx, const struct store_session *ss)
{
	struct listed *l = ctx;

	if (l->stop_at && (int)l->n + 1 == l->stop_at)
		return -ECANCELED;
	assert_true(l->n < 64);
	snprintf(l->sid[l->n++], 40, "%s", ss->sid);
	return 0;
}

/* The listed sessions as the numbers of their sids, "3 1 2". */
static const char *list_str(struct env *e, const struct store_filter *f, char *out, size_t len)
{
	struct listed l = {0};
	char *next = NULL;
	size_t i, o = 0;

	assert_int_equal(ops->session_list(e->st, f, list_cb, &l, &next), 0);
	free(next);
	out[0] = '\0';
	for (i = 0; i < l.n; i++)
		o += (size_t)snprintf(out + o, len - o, "%s%u", i ? " " : "",
				      (unsigned int)strtoul(l.sid[i] + 24, NULL, 16));
	return out;
}

#define assert_list(e, f, want)                                                                    \
	do {                                                                                       \
		char got_[512];                                                                    \
		list_str(e, f, got_, sizeof(got_));                                                \
		if (strcmp(got_, want) != 0)                                                       \
			fail_msg("session_list: got \"%s\", want \"%s\"", got_, want);             \
	} while (0)

/* The command index agrees with its documents (FTS5's own check). */
static void fts_check(struct env *e)
{
	char db[600];
	sqlite3 *h;

	snprintf(db, sizeof(db), "%s/index.db", e->dir);
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(sqlite3_exec(h,
				      "INSERT INTO command_text(command_text, rank)"
				      " VALUES ('integrity-check', 1)",
				      NULL, NULL, NULL),
			 SQLITE_OK);
	assert_int_equal(sqlite3_close(h), SQLITE_OK);
}

/* ------------------------------------------------------------ parts */

static void test_parts(void **state)
{
	uint8_t data[3000], sha[32], got_sha[32], *buf = NULL;
	char sid[40], other[40], path[600];
	uint64_t size = 0;
	size_t len = 0;
	struct dirent *de;
	struct env e;
	DIR *d;
	int fd, tmp = 0;

	(void)state;
	env_open(&e, 0, 2);
	assert_true(exists(e.dir, "index.db"));
	assert_true(exists(e.dir, "sessions"));
	assert_true(exists(e.dir, "log/events.log"));

	sid_of(sid, 1);
	sid_of(other, 2);
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7);
	SHA256(data, sizeof(data), sha);
	assert_int_equal(ops->part_stat(e.st, sid, 0, got_sha, &size), -ENOENT);
	assert_int_equal(ops->part_put(e.st, sid, 0, data, sizeof(data), sha), 0);
	assert_int_equal(ops->part_stat(e.st, sid, 0, got_sha, &size), 0);
	assert_memory_equal(got_sha, sha, 32);
	assert_int_equal(size, sizeof(data));
	assert_int_equal(ops->part_get(e.st, sid, 0, &buf, &len), 0);
	assert_int_equal(len, sizeof(data));
	assert_memory_equal(buf, data, len);
	free(buf);

	/* another part 0 is refused and changes nothing */
	data[0] ^= 1;
	assert_int_equal(ops->part_put(e.st, sid, 0, data, sizeof(data), sha), -EEXIST);
	data[0] ^= 1;
	assert_int_equal(ops->part_get(e.st, sid, 0, &buf, &len), 0);
	assert_memory_equal(buf, data, len);
	free(buf);
	assert_int_equal(ops->part_stat(e.st, other, 0, NULL, NULL), -ENOENT);
	assert_int_equal(ops->part_get(e.st, sid, 1, &buf, &len), -ENOENT);
	assert_null(buf);

	/* file layout: sessions/<sid>/<n>.part, no temporary file left */
	snprintf(path, sizeof(path), "%s/sessions/%s/0.part", e.dir, sid);
	assert_non_null(buf = (uint8_t *)slurp(path, &len));
	assert_int_equal(len, sizeof(data));
	free(buf);
	snprintf(path, sizeof(path), "%s/sessions/%s", e.dir, sid);
	assert_non_null(d = opendir(path));
	while ((de = readdir(d)) != NULL)
		tmp += de->d_name[0] == '.' && strcmp(de->d_name, ".") != 0 &&
		       strcmp(de->d_name, "..") != 0;
	closedir(d);
	assert_int_equal(tmp, 0);

	/* a file without a row is a crash's leftover: the next upload replaces it */
	snprintf(path, sizeof(path), "%s/sessions/%s/1.part", e.dir, sid);
	fd = open(path, O_CREAT | O_WRONLY | O_CLOEXEC, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, "junk", 4), 4);
	close(fd);
	assert_int_equal(ops->part_put(e.st, sid, 1, data, 100, sha), 0);
	assert_int_equal(ops->part_get(e.st, sid, 1, &buf, &len), 0);
	assert_int_equal(len, 100);
	assert_memory_equal(buf, data, 100);
	free(buf);

	/* a part file cut short behind the index's back is an I/O error, not data */
	assert_int_equal(truncate(path, 50), 0);
	assert_int_equal(ops->part_get(e.st, sid, 1, &buf, &len), -EIO);
	assert_null(buf);

	/* session ids name directories: nothing else gets near the disk */
	assert_int_equal(ops->part_put(e.st, "../../etc", 0, data, 10, sha), -EINVAL);
	assert_int_equal(ops->part_stat(e.st, "x", 0, NULL, NULL), -EINVAL);
	assert_int_equal(ops->part_put(e.st, sid, 5, data, 0, sha), -EINVAL);

	/* everything survives a restart */
	env_reopen(&e);
	assert_int_equal(ops->part_stat(e.st, sid, 0, got_sha, &size), 0);
	assert_memory_equal(got_sha, sha, 32);
	env_close(&e);
}

/* ------------------------------------------------------------ sessions */

static void test_session_rows(void **state)
{
	struct store_session ss = {0}, got;
	struct env e;

	(void)state;
	env_open(&e, 0, 2);
	sid_of(ss.sid, 7);
	ss.node = "web-1";
	ss.user = "alice";
	ss.login = "root";
	ss.kind = "ssh";
	ss.labels_json = "{\"env\":\"prod\",\"team\":\"ops\"}";
	ss.initial_command_json = "[\"bash\",\"-c\",\"echo \\\"hi\\\"\"]";
	ss.start_ns = 1700000000123456789LL;
	ss.end_ns = 1700000099000000000LL;
	ss.exit_code = -9;
	ss.cols = 132;
	ss.rows = 43;
	ss.events = 1234567;
	ss.commands = 89;
	ss.bytes = 5000000000ULL;
	ss.parts = 77;
	ss.status = "complete";
	ss.closed_by = "completer";
	assert_int_equal(ops->session_put(e.st, &ss), 0);
	assert_int_equal(ops->session_get(e.st, ss.sid, &got), 0);
	assert_string_equal(got.sid, ss.sid);
	assert_string_equal(got.node, "web-1");
	assert_string_equal(got.user, "alice");
	assert_string_equal(got.login, "root");
	assert_string_equal(got.kind, "ssh");
	assert_string_equal(got.labels_json, ss.labels_json);
	assert_string_equal(got.initial_command_json, ss.initial_command_json);
	assert_int_equal(got.start_ns, ss.start_ns);
	assert_int_equal(got.end_ns, ss.end_ns);
	assert_int_equal(got.exit_code, -9);
	assert_int_equal(got.cols, 132);
	assert_int_equal(got.rows, 43);
	assert_int_equal(got.events, 1234567);
	assert_int_equal(got.commands, 89);
	assert_int_equal(got.bytes, 5000000000ULL);
	assert_int_equal(got.parts, 77);
	assert_string_equal(got.status, "complete");
	assert_string_equal(got.closed_by, "completer");
	store_session_clear(&got);
	store_session_clear(NULL);

	/* replace: the labels index follows the row */
	ss.labels_json = "{\"env\":\"dev\"}";
	ss.status = "uploading";
	ss.node = NULL; /* NULL strings read back as "" */
	assert_int_equal(ops->session_put(e.st, &ss), 0);
	assert_int_equal(ops->session_get(e.st, ss.sid, &got), 0);
	assert_string_equal(got.node, "");
	assert_string_equal(got.status, "uploading");
	store_session_clear(&got);
	{
		const char *prod[] = {"env=prod"}, *dev[] = {"env=dev"};
		struct store_filter f = {.labels = prod, .n_labels = 1};

		assert_list(&e, &f, "");
		f.labels = dev;
		assert_list(&e, &f, "7");
	}

	/* refused: malformed JSON, labels that are not an object, unknown status, bad sid */
	ss.labels_json = "{\"env\":";
	assert_int_equal(ops->session_put(e.st, &ss), -EINVAL);
	ss.labels_json = "[1]";
	assert_int_equal(ops->session_put(e.st, &ss), -EINVAL);
	ss.labels_json = NULL;
	ss.initial_command_json = "{}";
	assert_int_equal(ops->session_put(e.st, &ss), -EINVAL);
	ss.initial_command_json = NULL;
	ss.status = "done";
	assert_int_equal(ops->session_put(e.st, &ss), -EINVAL);
	ss.status = "complete";
	memcpy(ss.sid, "not-a-uuid", 11);
	assert_int_equal(ops->session_put(e.st, &ss), -EINVAL);
	assert_int_equal(ops->session_get(e.st, "not-a-uuid", &got), -EINVAL);
	sid_of(ss.sid, 8);
	assert_int_equal(ops->session_get(e.st, ss.sid, &got), -ENOENT);
	/* the refused puts changed nothing */
	sid_of(ss.sid, 7);
	assert_int_equal(ops->session_get(e.st, ss.sid, &got), 0);
	assert_string_equal(got.labels_json, "{\"env\":\"dev\"}");
	store_session_clear(&got);
	env_close(&e);
}

static void put_events(struct env *e, unsigned int i, const char *path, const char *argv,
		       const char *addr)
{
	struct store_event ev[3] = {
	    {.ei = 1,
	     .time_ns = 1,
	     .type = "session.command",
	     .program = "x",
	     .path = path,
	     .argv = argv},
	    {.ei = 2, .time_ns = 2, .type = "session.disk", .program = "x", .path = "/tmp/vim"},
	    {.ei = 3,
	     .time_ns = 3,
	     .type = "session.network",
	     .program = "x",
	     .addr = addr,
	     .port = 443},
	};
	char sid[40];

	sid_of(sid, i);
	assert_int_equal(ops->events_put(e->st, sid, ev, addr ? 3 : 2), 0);
}

static void test_list_filters(void **state)
{
	const char *prod[] = {"env=prod"}, *prod_ops[] = {"env=prod", "team=ops"};
	const char *eq[] = {"expr=a=b"}, *bad[] = {"noequals"}, *empty_key[] = {"=v"};
	const int64_t T = 1700000000000000000LL;
	struct store_filter f;
	struct env e;
	char *next = NULL;

	(void)state;
	env_open(&e, 0, 2);
	put_session(&e, 1, "alice", "web-1", "ssh", "complete", T + 1, "{\"env\":\"prod\"}");
	put_session(&e, 2, "bob", "web-1", "ssh", "complete", T + 2,
		    "{\"env\":\"prod\",\"team\":\"ops\"}");
	put_session(&e, 3, "alice", "web-2", "k8s", "uploading", T + 3, "{\"env\":\"dev\"}");
	put_session(&e, 4, "carol", "db-1", "local", "complete", T + 4,
		    "{\"team\":\"ops\",\"expr\":\"a=b\"}");
	put_session(&e, 5, "alice", "web-1", "ssh", "complete", T + 5,
		    "{\"env\":\"prod\",\"team\":\"ops\"}");
	put_session(&e, 6, "bob", "db-1", "ssh", "uploading", T + 6, "{}");
	put_events(&e, 1, "/usr/bin/vim", "vim /etc/hosts", "10.0.0.5");
	put_events(&e, 2, "/usr/bin/curl", "curl https://example.com", "2001:db8::1");
	put_events(&e, 4, "/usr/bin/psql", "psql -h db", NULL);
	put_events(&e, 5, "/bin/ls", "ls -la /root", "10.0.0.5");

	memset(&f, 0, sizeof(f));
	assert_list(&e, &f, "6 5 4 3 2 1"); /* newest first */
	assert_list(&e, NULL, "6 5 4 3 2 1");
	f.user = "alice";
	assert_list(&e, &f, "5 3 1");
	f.node = "web-1";
	assert_list(&e, &f, "5 1");
	memset(&f, 0, sizeof(f));
	f.kind = "ssh";
	assert_list(&e, &f, "6 5 2 1");
	f.status = "uploading";
	assert_list(&e, &f, "6");
	memset(&f, 0, sizeof(f));
	f.status = "complete";
	assert_list(&e, &f, "5 4 2 1");
	memset(&f, 0, sizeof(f));
	f.from_ns = T + 2;
	f.to_ns = T + 4; /* both ends included */
	assert_list(&e, &f, "4 3 2");
	f.to_ns = 0;
	assert_list(&e, &f, "6 5 4 3 2");

	memset(&f, 0, sizeof(f));
	f.labels = prod;
	f.n_labels = 1;
	assert_list(&e, &f, "5 2 1");
	f.labels = prod_ops; /* all must match */
	f.n_labels = 2;
	assert_list(&e, &f, "5 2");
	f.labels = eq; /* the value may hold '=' */
	f.n_labels = 1;
	assert_list(&e, &f, "4");
	f.labels = bad;
	assert_int_equal(ops->session_list(e.st, &f, list_cb, &(struct listed){0}, &next), -EINVAL);
	f.labels = empty_key;
	assert_int_equal(ops->session_list(e.st, &f, list_cb, &(struct listed){0}, &next), -EINVAL);
	assert_null(next);

	/* a command: substring of the path or of argv, exact bytes */
	memset(&f, 0, sizeof(f));
	f.command = "vim";
	assert_list(&e, &f, "1"); /* not 2: /tmp/vim is a disk event */
	f.command = "/usr/bin/";
	assert_list(&e, &f, "4 2 1");
	f.command = "-la /ro";
	assert_list(&e, &f, "5");
	f.command = "VIM";
	assert_list(&e, &f, "");
	f.command = "%";
	assert_list(&e, &f, "");

	/* a destination address: exact */
	memset(&f, 0, sizeof(f));
	f.addr = "10.0.0.5";
	assert_list(&e, &f, "5 1");
	f.addr = "10.0.0";
	assert_list(&e, &f, "");
	f.addr = "2001:db8::1";
	assert_list(&e, &f, "2");

	/* together */
	memset(&f, 0, sizeof(f));
	f.user = "alice";
	f.labels = prod;
	f.n_labels = 1;
	f.command = "ls";
	f.addr = "10.0.0.5";
	assert_list(&e, &f, "5");

	/* up to 32 labels, of any length */
	{
		static char json[600], kv[500];
		const char *many[33];

		memset(kv, 0, sizeof(kv));
		memcpy(kv, "long=", 5);
		memset(kv + 5, 'x', 400);
		snprintf(json, sizeof(json), "{\"long\":\"%s\"}", kv + 5);
		put_session(&e, 7, "dave", "n", "ssh", "complete", T + 7, json);
		for (int i = 0; i < 33; i++)
			many[i] = kv;
		memset(&f, 0, sizeof(f));
		f.labels = many;
		f.n_labels = 32;
		assert_list(&e, &f, "7");
		f.n_labels = 33;
		assert_int_equal(ops->session_list(e.st, &f, NULL, NULL, &next), -EINVAL);
		memset(&f, 0, sizeof(f));
		f.user = "alice";
		f.labels = prod;
		f.n_labels = 1;
		f.command = "ls";
	}

	/* events_put replaces a session's events */
	put_events(&e, 5, "/bin/cat", "cat /etc/motd", NULL);
	f.addr = NULL;
	f.command = "ls";
	assert_list(&e, &f, "");
	f.command = "motd";
	assert_list(&e, &f, "5");
	f.command = "ls"; /* too short for the trigram index: read */
	f.user = NULL;
	f.labels = NULL;
	f.n_labels = 0;
	assert_list(&e, &f, "");
	f.command = "sq"; /* psql */
	assert_list(&e, &f, "4");
	f.command = "/psql\npsql"; /* path and argv are never one string */
	assert_list(&e, &f, "");
	put_events(&e, 6, "/bin/echo", "echo \"quoted\" \\ ' \"\" *", NULL);
	f.command = "\"quoted\" \\ ' \"\"";
	assert_list(&e, &f, "6");
	f.command = "*";
	assert_list(&e, &f, "6");
	fts_check(&e);
	assert_int_equal(ops->events_put(e.st, "bad", NULL, 0), -EINVAL);
	assert_int_equal(ops->events_put(e.st, "00000000-0000-4000-8000-000000000005",
					 &(struct store_event){.ei = 1}, 1),
			 -EINVAL);
	env_close(&e);
}

static void test_list_pages(void **state)
{
	const int64_t T = 1700000000000000000LL;
	struct store_filter f = {0};
	char seen[130][40], *next = NULL, *prev = NULL;
	struct listed l;
	struct env e;
	size_t total = 0, pages = 0, i;

	(void)state;
	env_open(&e, 0, 2);
	/* 120 sessions, four per start time: the sid breaks the ties */
	for (i = 0; i < 120; i++)
		put_session(&e, (unsigned int)(i * 37 % 1000), i % 2 ? "alice" : "bob", "n", "ssh",
			    "complete", T + (int64_t)(i / 4), "{}");

	/* default limit 100, then the rest */
	memset(&l, 0, sizeof(l));
	assert_int_equal(ops->session_list(e.st, &f, NULL, NULL, &next), 0);
	assert_non_null(next);
	f.cursor = next;
	f.limit = 5000; /* capped at 1000 */
	assert_int_equal(ops->session_list(e.st, &f, list_cb, &l, &prev), 0);
	assert_null(prev);
	assert_int_equal(l.n, 20);
	free(next);
	next = NULL;

	/* pages of 7: every session once, in order, then no cursor */
	f.limit = 7;
	do {
		memset(&l, 0, sizeof(l));
		free(prev);
		prev = next;
		f.cursor = prev;
		next = NULL;
		assert_int_equal(ops->session_list(e.st, &f, list_cb, &l, &next), 0);
		assert_true(l.n == 7 || (!next && l.n == 120 % 7));
		for (i = 0; i < l.n; i++)
			snprintf(seen[total++], 40, "%s", l.sid[i]);
		pages++;
	} while (next);
	free(prev);
	assert_int_equal(total, 120);
	assert_int_equal(pages, 18);
	for (i = 1; i < total; i++) {
		struct store_session a, b;

		assert_int_equal(ops->session_get(e.st, seen[i - 1], &a), 0);
		assert_int_equal(ops->session_get(e.st, seen[i], &b), 0);
		assert_true(a.start_ns > b.start_ns ||
			    (a.start_ns == b.start_ns && strcmp(a.sid, b.sid) > 0));
		store_session_clear(&a);
		store_session_clear(&b);
	}

	/* an exact page: the cursor comes only when more rows exist */
	memset(&f, 0, sizeof(f));
	f.user = "alice";
	f.limit = 60;
	memset(&l, 0, sizeof(l));
	assert_int_equal(ops->session_list(e.st, &f, NULL, NULL, &next), 0);
	assert_null(next);

	/* bad cursors */
	f.cursor = "garbage";
	assert_int_equal(ops->session_list(e.st, &f, list_cb, &l, &next), -EINVAL);
	f.cursor = "-5_00000000-0000-4000-8000-000000000001";
	assert_int_equal(ops->session_list(e.st, &f, list_cb, &l, &next), -EINVAL);
	f.cursor = "5_../../x";
	assert_int_equal(ops->session_list(e.st, &f, list_cb, &l, &next), -EINVAL);

	/* the callback's error stops the listing and comes back */
	memset(&f, 0, sizeof(f));
	memset(&l, 0, sizeof(l));
	l.stop_at = 3;
	f.limit = 10;
	assert_int_equal(ops->session_list(e.st, &f, list_cb, &l, &next), -ECANCELED);
	assert_int_equal(l.n, 2);
	assert_null(next);
	env_close(&e);
}

/*
 * More sessions match a filter than a list holds (5000): the listing checks
 * each session instead, with the same answer. Rows are made straight in the
 * index, as the store would have made them, to keep the test fast.
 */
static void test_list_many(void **state)
{
	const char *bulk[] = {"bulk=yes"}, *odd[] = {"odd=1"};
	struct store_filter f = {0};
	char db[600], *next = NULL;
	struct listed l = {0};
	struct env e;
	sqlite3 *h;

	(void)state;
	env_open(&e, 0, 2);
	snprintf(db, sizeof(db), "%s/index.db", e.dir);
	assert_int_equal(sqlite3_open(db, &h), SQLITE_OK);
	assert_int_equal(
	    sqlite3_exec(
		h,
		"WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 6000)"
		" INSERT INTO sessions(sid, \"user\", start_ns, status)"
		" SELECT printf('00000000-0000-4000-8000-%012x', i), 'u', 1000 + i, 'complete'"
		" FROM n;"
		"INSERT INTO labels(sid, key, value) SELECT sid, 'bulk', 'yes' FROM sessions;"
		"INSERT INTO labels(sid, key, value) SELECT sid, 'odd', '1' FROM sessions"
		" WHERE start_ns % 2 = 1;"
		"INSERT INTO events(sid, ei, time_ns, type, addr) SELECT sid, 1, 0,"
		" 'session.network', '192.0.2.1' FROM sessions;"
		"INSERT INTO command_docs(sid, text) SELECT sid, '/bin/ls' || char(10) ||"
		" 'ls -la /srv' || char(10) FROM sessions;"
		"INSERT INTO command_text(rowid, text) SELECT doc, text FROM command_docs;",
		NULL, NULL, NULL),
	    SQLITE_OK);
	assert_int_equal(sqlite3_close(h), SQLITE_OK);

	f.limit = 3;
	f.labels = bulk;
	f.n_labels = 1;
	assert_list(&e, &f, "6000 5999 5998");
	f.labels = odd; /* 3000: a list */
	assert_list(&e, &f, "5999 5997 5995");
	f.labels = bulk;
	f.command = "ls -la"; /* through the index, too many: checked one by one */
	f.addr = "192.0.2.1";
	assert_list(&e, &f, "6000 5999 5998");
	f.command = "ls"; /* read, too many */
	assert_list(&e, &f, "6000 5999 5998");
	f.command = "/srv";
	f.labels = odd;
	f.cursor = "6997_00000000-0000-4000-8000-00000000176d"; /* after 5997 */
	assert_list(&e, &f, "5995 5993 5991");
	f.cursor = NULL;
	f.command = "/srvx";
	assert_list(&e, &f, "");

	/* and pages across the whole set */
	memset(&f, 0, sizeof(f));
	f.labels = bulk;
	f.n_labels = 1;
	f.limit = 1000;
	f.addr = "192.0.2.1";
	for (int page = 0; page < 6; page++) {
		char *cur = next;

		next = NULL;
		memset(&l, 0, sizeof(l));
		f.cursor = cur;
		assert_int_equal(ops->session_list(e.st, &f, NULL, NULL, &next), 0);
		free(cur);
		assert_true(page == 5 ? next == NULL : next != NULL);
	}
	fts_check(&e);
	env_close(&e);
}

/* ------------------------------------------------------------ tokens */

struct tok_seen {
	int n, revoked;
	char ids[8][32];
};

static int tok_cb(void *ctx, const char *id, const char *user, const char *role, int64_t created_ns,
		  bool revoked)
{
	struct tok_seen *t = ctx;

	assert_true(t->n < 8);
	assert_non_null(user);
	assert_non_null(role);
	assert_true(created_ns > 0);
	snprintf(t->ids[t->n++], 32, "%s", id);
	t->revoked += revoked;
	return 0;
}

static void test_tokens(void **state)
{
	uint8_t h1[32], h2[32], h3[32], h4[32];
	char user[64], role[16], tiny[3];
	struct tok_seen seen = {0};
	struct env e;

	(void)state;
	env_open(&e, 0, 2);
	SHA256((const uint8_t *)"one", 3, h1);
	SHA256((const uint8_t *)"two", 3, h2);
	SHA256((const uint8_t *)"three", 5, h3);
	SHA256((const uint8_t *)"four", 4, h4);
	assert_int_equal(ops->token_put(e.st, "tok-aaa1", "alice", "access", h1), 0);
	assert_int_equal(ops->token_put(e.st, "tok-aaa2", "bob", "auditor", h2), 0);
	assert_int_equal(ops->token_put(e.st, "tok-bbb1", "carol", "editor", h3), 0);
	assert_int_equal(ops->token_put(e.st, "tok-ccc1", "dave", "access", h1), -EEXIST);
	assert_int_equal(ops->token_put(e.st, "tok-aaa1", "dave", "access", h4), -EEXIST);
	assert_int_equal(ops->token_put(e.st, "", "dave", "access", h4), -EINVAL);

	assert_int_equal(ops->token_find(e.st, h2, user, sizeof(user), role, sizeof(role)), 0);
	assert_string_equal(user, "bob");
	assert_string_equal(role, "auditor");
	assert_int_equal(ops->token_find(e.st, h4, user, sizeof(user), role, sizeof(role)),
			 -ENOENT);
	assert_int_equal(ops->token_find(e.st, h3, tiny, sizeof(tiny), role, sizeof(role)),
			 -ERANGE);

	/* revoke by id or by a prefix that names one token */
	assert_int_equal(ops->token_revoke(e.st, "tok-aaa"), -ENOTUNIQ);
	assert_int_equal(ops->token_revoke(e.st, "tok-zzz"), -ENOENT);
	assert_int_equal(ops->token_revoke(e.st, ""), -EINVAL);
	assert_int_equal(ops->token_revoke(e.st, "tok-b"), 0);
	assert_int_equal(ops->token_find(e.st, h3, user, sizeof(user), role, sizeof(role)),
			 -ENOENT);
	assert_int_equal(ops->token_revoke(e.st, "tok-aaa1"), 0);
	assert_int_equal(ops->token_revoke(e.st, "tok-aaa1"), 0); /* again: harmless */
	assert_int_equal(ops->token_find(e.st, h1, user, sizeof(user), role, sizeof(role)),
			 -ENOENT);
	assert_int_equal(ops->token_find(e.st, h2, user, sizeof(user), role, sizeof(role)), 0);
	/* a revoked token still has its id: the prefix stays ambiguous */
	assert_int_equal(ops->token_revoke(e.st, "tok-aaa"), -ENOTUNIQ);

	env_reopen(&e);
	assert_int_equal(ops->token_list(e.st, tok_cb, &seen), 0);
	assert_int_equal(seen.n, 3);
	assert_int_equal(seen.revoked, 2);
	assert_string_equal(seen.ids[0], "tok-aaa1"); /* in creation order */
	assert_string_equal(seen.ids[2], "tok-bbb1");
	env_close(&e);
}

/* ------------------------------------------------------------ audit */

struct audit_seen {
	uint64_t last;
	size_t n;
	char *lines[200];
	uint64_t ids[200];
};

static int audit_cb(void *ctx, uint64_t cursor, const char *line)
{
	struct audit_seen *a = ctx;

	assert_true(cursor > a->last);
	assert_true(a->n < 200);
	a->last = cursor;
	a->ids[a->n] = cursor;
	a->lines[a->n++] = strdup(line);
	return 0;
}

static void audit_seen_free(struct audit_seen *a)
{
	for (size_t i = 0; i < a->n; i++)
		free(a->lines[i]);
	memset(a, 0, sizeof(*a));
}

/* Everything after cursor, read in pages of `page`. */
static void read_all(struct env *e, uint64_t cursor, uint32_t page, struct audit_seen *a)
{
	uint64_t next = cursor;
	size_t before;

	a->last = cursor;
	do {
		before = a->n;
		cursor = next;
		assert_int_equal(ops->audit_read(e->st, cursor, page, audit_cb, a, &next), 0);
		if (a->n > before)
			assert_int_equal(next, a->ids[a->n - 1]);
		else
			assert_int_equal(next, cursor);
	} while (a->n > before);
}

static char *audit_line(char *buf, size_t len, unsigned int i)
{
	snprintf(buf, len,
		 "{\"event\":\"session.command\",\"code\":\"T4000I\",\"ei\":%u,\"uid\":"
		 "\"u-%04u\",\"sid\":\"00000000-0000-4000-8000-000000000001\",\"path\":\"/bin/x\"}",
		 i, i);
	return buf;
}

/* The concatenation of events.log.keep .. events.log.1, events.log. */
static char *log_files(struct env *e, uint32_t keep)
{
	char path[600], *all = calloc(1, 1), *part;
	size_t len = 0, n;

	assert_non_null(all);
	for (uint32_t i = keep + 1; i-- > 0;) {
		if (i)
			snprintf(path, sizeof(path), "%s/log/events.log.%u", e->dir, i);
		else
			snprintf(path, sizeof(path), "%s/log/events.log", e->dir);
		part = slurp(path, &n);
		if (!part)
			continue;
		all = realloc(all, len + n + 1);
		assert_non_null(all);
		memcpy(all + len, part, n + 1);
		len += n;
		free(part);
	}
	return all;
}

static void test_audit_rotation(void **state)
{
	char bufs[40][200], *files, want[8192] = "";
	const char *batch[3];
	struct audit_seen a = {0};
	uint64_t next = 0, mark;
	struct env e;
	unsigned int i, k;
	size_t wl = 0;

	(void)state;
	/* about 150 bytes a line: two lines per file, three rotated files kept */
	env_open(&e, 330, 3);
	for (i = 0; i < 30;) {
		for (k = 0; k < 1 + i % 3 && i < 30; k++, i++)
			batch[k] = audit_line(bufs[i], sizeof(bufs[i]), i);
		assert_int_equal(ops->audit_append(e.st, batch, k), 0);
	}
	assert_true(exists(e.dir, "log/events.log.1"));
	assert_true(exists(e.dir, "log/events.log.3"));
	assert_false(exists(e.dir, "log/events.log.4"));

	/* the cursor runs across every rotation: all 30 lines, in order */
	read_all(&e, 0, 4, &a);
	assert_int_equal(a.n, 30);
	for (i = 0; i < 30; i++)
		assert_string_equal(a.lines[i], bufs[i]);
	mark = a.ids[19];

	/* the files hold the newest lines, whole, in order, one per line */
	files = log_files(&e, 3);
	for (i = 0; i < 30; i++) {
		char *at = strstr(files, bufs[i]);

		if (at) {
			assert_true(at == files || at[-1] == '\n');
			assert_int_equal(at[strlen(bufs[i])], '\n');
		}
	}
	assert_non_null(strstr(files, bufs[29]));
	assert_null(strstr(files, bufs[0]));
	for (i = 0; i < 30; i++)
		if (strstr(files, bufs[i]))
			wl += (size_t)snprintf(want + wl, sizeof(want) - wl, "%s\n", bufs[i]);
	assert_string_equal(files, want);
	free(files);
	audit_seen_free(&a);

	/* from a cursor in the middle, after a restart, then new lines */
	env_reopen(&e);
	read_all(&e, mark, 100, &a);
	assert_int_equal(a.n, 10);
	assert_string_equal(a.lines[0], bufs[20]);
	audit_seen_free(&a);
	batch[0] = audit_line(bufs[30], sizeof(bufs[30]), 30);
	assert_int_equal(ops->audit_append(e.st, batch, 1), 0);
	assert_int_equal(ops->audit_read(e.st, mark, 100, audit_cb, &a, &next), 0);
	assert_int_equal(a.n, 11);
	assert_string_equal(a.lines[10], bufs[30]);
	audit_seen_free(&a);

	/* a line already in the log (same sid and uid) is not appended twice */
	batch[0] = bufs[30];
	batch[1] = bufs[5];
	assert_int_equal(ops->audit_append(e.st, batch, 2), 0);
	read_all(&e, 0, 1000, &a);
	assert_int_equal(a.n, 31);
	audit_seen_free(&a);
	files = log_files(&e, 3);
	assert_ptr_equal(strstr(files, bufs[30]), strrchr(files, '{'));
	free(files);

	/* refused whole: a newline inside, not JSON, empty */
	batch[0] = audit_line(bufs[31], sizeof(bufs[31]), 31);
	batch[1] = "{\"event\":\"x\"}\n{\"event\":\"y\"}";
	assert_int_equal(ops->audit_append(e.st, batch, 2), -EINVAL);
	batch[1] = "not json";
	assert_int_equal(ops->audit_append(e.st, batch, 2), -EINVAL);
	batch[1] = "";
	assert_int_equal(ops->audit_append(e.st, batch, 2), -EINVAL);
	assert_int_equal(ops->audit_append(e.st, batch, 0), 0);
	read_all(&e, 0, 1000, &a);
	assert_int_equal(a.n, 31);
	audit_seen_free(&a);
	env_close(&e);
}

static void append_raw(const char *path, const char *s)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0600);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, s, strlen(s)), (ssize_t)strlen(s));
	close(fd);
}

static void test_audit_crash(void **state)
{
	char bufs[4][200], path[600], rotated[600], *text, want[1024];
	const char *batch[2];
	struct env e;

	(void)state;
	env_open(&e, 1 << 20, 2);
	batch[0] = audit_line(bufs[0], sizeof(bufs[0]), 0);
	batch[1] = audit_line(bufs[1], sizeof(bufs[1]), 1);
	assert_int_equal(ops->audit_append(e.st, batch, 2), 0);
	env_close(&e);
	snprintf(want, sizeof(want), "%s\n%s\n", bufs[0], bufs[1]);

	/* lines written but never committed (a crash in between) are cut off at start */
	snprintf(path, sizeof(path), "%s/log/events.log", e.dir);
	append_raw(path, "{\"event\":\"session.command\",\"uid\":\"lost\"}\n{\"event\":\"sess");
	assert_int_equal(ops->open(&e.st, &e.cfg), 0);
	text = slurp(path, NULL);
	assert_string_equal(text, want);
	free(text);

	/* a rotation whose append never committed: the new file holds only that */
	env_close(&e);
	snprintf(rotated, sizeof(rotated), "%s/log/events.log.1", e.dir);
	assert_int_equal(rename(path, rotated), 0);
	append_raw(path, "{\"event\":\"session.command\",\"uid\":\"lost\"}\n");
	assert_int_equal(ops->open(&e.st, &e.cfg), 0);
	text = slurp(path, NULL);
	assert_string_equal(text, "");
	free(text);
	text = slurp(rotated, NULL);
	assert_string_equal(text, want);
	free(text);

	/* and appending goes on where the index says */
	batch[0] = audit_line(bufs[2], sizeof(bufs[2]), 2);
	assert_int_equal(ops->audit_append(e.st, batch, 1), 0);
	text = slurp(path, NULL);
	snprintf(want, sizeof(want), "%s\n", bufs[2]);
	assert_string_equal(text, want);
	free(text);

	/* an operator's logrotate moved the file away: a new one is started */
	assert_int_equal(rename(path, rotated), 0);
	batch[0] = audit_line(bufs[3], sizeof(bufs[3]), 3);
	assert_int_equal(ops->audit_append(e.st, batch, 1), 0);
	text = slurp(path, NULL);
	snprintf(want, sizeof(want), "%s\n", bufs[3]);
	assert_string_equal(text, want);
	free(text);
	env_close(&e);
}

/* ------------------------------------------------------------ threads */

#define THREADS	   8
#define PER_THREAD 6
#define LINES_EACH 10

struct worker {
	struct env *e;
	unsigned int id;
	int err;
};

static void *worker_main(void *arg)
{
	struct worker *w = arg;
	char line[LINES_EACH][200], *next = NULL;
	const char *lines[LINES_EACH];
	uint8_t part[4096], sha[32];
	struct store_session ss = {0};
	struct store_filter f = {0};
	unsigned int k, i, n;
	uint64_t cur;

	for (k = 0; k < PER_THREAD && !w->err; k++) {
		n = w->id * 100 + k;
		sid_of(ss.sid, n);
		for (i = 0; i < 3 && !w->err; i++) {
			memset(part, (int)(n + i), sizeof(part));
			SHA256(part, sizeof(part), sha);
			w->err = ops->part_put(w->e->st, ss.sid, i, part, sizeof(part), sha);
		}
		ss.user = "u";
		ss.status = "complete";
		ss.start_ns = (int64_t)n;
		ss.parts = 3;
		if (!w->err)
			w->err = ops->session_put(w->e->st, &ss);
		for (i = 0; i < LINES_EACH; i++) {
			snprintf(line[i], sizeof(line[i]),
				 "{\"event\":\"session.command\",\"uid\":\"%u-%u\",\"sid\":\"%s\"}",
				 n, i, ss.sid);
			lines[i] = line[i];
		}
		if (!w->err)
			w->err = ops->audit_append(w->e->st, lines, LINES_EACH);
		f.user = "u";
		if (!w->err)
			w->err = ops->session_list(w->e->st, &f, NULL, NULL, &next);
		free(next);
		next = NULL;
		if (!w->err)
			w->err = ops->audit_read(w->e->st, 0, 50, NULL, NULL, &cur);
	}
	return NULL;
}

static int count_cb(void *ctx, uint64_t cursor, const char *line)
{
	(void)cursor;
	(void)line;
	(*(size_t *)ctx)++;
	return 0;
}

static int count_sessions(void *ctx, const struct store_session *ss)
{
	(void)ss;
	(*(size_t *)ctx)++;
	return 0;
}

static void test_threads(void **state)
{
	struct worker w[THREADS];
	pthread_t t[THREADS];
	struct store_filter f = {.limit = 1000};
	uint64_t cur = 0, next = 0;
	size_t lines = 0, sessions = 0;
	struct env e;
	unsigned int i;

	(void)state;
	env_open(&e, 4096, 3);
	for (i = 0; i < THREADS; i++) {
		w[i] = (struct worker){.e = &e, .id = i + 1};
		assert_int_equal(pthread_create(&t[i], NULL, worker_main, &w[i]), 0);
	}
	for (i = 0; i < THREADS; i++) {
		assert_int_equal(pthread_join(t[i], NULL), 0);
		assert_int_equal(w[i].err, 0);
	}
	assert_int_equal(ops->session_list(e.st, &f, count_sessions, &sessions, NULL), 0);
	assert_int_equal(sessions, THREADS * PER_THREAD);
	do {
		cur = next;
		assert_int_equal(ops->audit_read(e.st, cur, 7, count_cb, &lines, &next), 0);
	} while (next != cur);
	assert_int_equal(lines, THREADS * PER_THREAD * LINES_EACH);
	env_close(&e);
}

/* ------------------------------------------------------------ main */

static void test_find(void **state)
{
	(void)state;
	assert_ptr_equal(store_find("local"), &store_local_ops);
	assert_ptr_equal(store_find(NULL), &store_local_ops);
	assert_null(store_find("s3"));
	assert_string_equal(store_local_ops.name, "local");
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
	(void)st;
	(void)flag;
	(void)ftw;
	return remove(path);
}

static int group_setup(void **state)
{
	(void)state;
	log_init("test_collector_store", LOG_LVL_ERROR);
	snprintf(root, sizeof(root), "%s/sessrec-store-XXXXXX",
		 getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	return mkdtemp(root) ? 0 : -1;
}

static int group_teardown(void **state)
{
	(void)state;
	return nftw(root, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_find),	 cmocka_unit_test(test_parts),
	    cmocka_unit_test(test_session_rows), cmocka_unit_test(test_list_filters),
	    cmocka_unit_test(test_list_pages),	 cmocka_unit_test(test_list_many),
	    cmocka_unit_test(test_tokens),	 cmocka_unit_test(test_audit_rotation),
	    cmocka_unit_test(test_audit_crash),	 cmocka_unit_test(test_threads),
	};

	return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
