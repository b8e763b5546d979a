/*
 * Recordings: writer, reader and verifier. Format: docs/recording-format.md.
 *
 * The writer packs events straight into one growing buffer (no allocation per
 * event), deflates the buffer into a part when part_size raw bytes are pending
 * and chains the part to the previous one by SHA-256. The reader trusts no
 * length it reads: every size is capped, and checked against what the input
 * still holds, before anything is allocated.
 */
#include "rec.h"

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <libdeflate.h>
#include <openssl/evp.h>
#include <zlib.h>

#include "util.h"

#define REC_GZIP_WBITS	  (15 + 16) /* deflate window 2^15, gzip wrapper */
#define REC_LEVEL_DEFAULT 6
#define REC_WHY_MAX	  256

/*
 * A part holds less than part_size plus one event; at this size its gzip body stays
 * under REC_PART_RAW_MAX even when incompressible, so every reader accepts it.
 */

/* ------------------------------------------------------------ header */

static void rec_be16_put(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void rec_be32_put(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

static void rec_be64_put(uint8_t *p, uint64_t v)
{
	rec_be32_put(p, (uint32_t)(v >> 32));
	rec_be32_put(p + 4, (uint32_t)v);
}

static uint16_t rec_be16_get(const uint8_t *p)
{
	return (uint16_t)((uint16_t)p[0] << 8 | p[1]);
}

static uint32_t rec_be32_get(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3];
}

static uint64_t rec_be64_get(const uint8_t *p)
{
	return (uint64_t)rec_be32_get(p) << 32 | rec_be32_get(p + 4);
}

/* Field offsets in the 112-byte header (docs/recording-format.md). */
enum {
	REC_OFF_MAGIC = 0,
	REC_OFF_VERSION = 8,
	REC_OFF_FLAGS = 10,
	REC_OFF_INDEX = 12,
	REC_OFF_EVENTS = 16,
	REC_OFF_RAW = 20,
	REC_OFF_BODY = 24,
	REC_OFF_FIRST = 28,
	REC_OFF_LAST = 36,
	REC_OFF_PREV = 44,
	REC_OFF_HASH = 76,
	REC_OFF_RESERVED = 108,
};

_Static_assert(REC_OFF_RESERVED + 4 == REC_HDR_SIZE, "header layout");
_Static_assert(sizeof(REC_MAGIC) - 1 == 8, "magic is 8 bytes");

void rec_hdr_encode(const struct rec_part_hdr *h, uint8_t out[REC_HDR_SIZE])
{
	memcpy(out + REC_OFF_MAGIC, REC_MAGIC, 8);
	rec_be16_put(out + REC_OFF_VERSION, h->version);
	rec_be16_put(out + REC_OFF_FLAGS, h->flags);
	rec_be32_put(out + REC_OFF_INDEX, h->index);
	rec_be32_put(out + REC_OFF_EVENTS, h->events);
	rec_be32_put(out + REC_OFF_RAW, h->raw_size);
	rec_be32_put(out + REC_OFF_BODY, h->body_size);
	rec_be64_put(out + REC_OFF_FIRST, h->first_ei);
	rec_be64_put(out + REC_OFF_LAST, h->last_ei);
	memcpy(out + REC_OFF_PREV, h->prev_hash, 32);
	memcpy(out + REC_OFF_HASH, h->body_hash, 32);
	memset(out + REC_OFF_RESERVED, 0, 4);
}

static int rec_hdr_bad(const char **why, const char *reason)
{
	if (why)
		*why = reason;
	return -EBADMSG;
}

int rec_hdr_decode(const uint8_t in[REC_HDR_SIZE], struct rec_part_hdr *h, const char **why)
{
	static const uint8_t zero[4];

	if (memcmp(in + REC_OFF_MAGIC, REC_MAGIC, 8) != 0)
		return rec_hdr_bad(why, "bad magic: not a recording part");
	h->version = rec_be16_get(in + REC_OFF_VERSION);
	h->flags = rec_be16_get(in + REC_OFF_FLAGS);
	h->index = rec_be32_get(in + REC_OFF_INDEX);
	h->events = rec_be32_get(in + REC_OFF_EVENTS);
	h->raw_size = rec_be32_get(in + REC_OFF_RAW);
	h->body_size = rec_be32_get(in + REC_OFF_BODY);
	h->first_ei = rec_be64_get(in + REC_OFF_FIRST);
	h->last_ei = rec_be64_get(in + REC_OFF_LAST);
	memcpy(h->prev_hash, in + REC_OFF_PREV, 32);
	memcpy(h->body_hash, in + REC_OFF_HASH, 32);

	if (h->version != REC_VERSION)
		return rec_hdr_bad(why, "unsupported format version");
	if (h->flags & ~REC_FLAG_FINAL)
		return rec_hdr_bad(why, "unknown flags set");
	if (memcmp(in + REC_OFF_RESERVED, zero, 4) != 0)
		return rec_hdr_bad(why, "reserved bytes are not zero");
	if (h->raw_size > REC_PART_RAW_MAX)
		return rec_hdr_bad(why, "raw_size over the limit (64 MiB)");
	if (h->body_size > REC_PART_RAW_MAX)
		return rec_hdr_bad(why, "body_size over the limit (64 MiB)");
	/* Every record takes at least its 4-byte length. */
	if (h->events > h->raw_size / 4)
		return rec_hdr_bad(why, "more events than raw_size can hold");
	if (h->events == 0) {
		if (h->raw_size != 0)
			return rec_hdr_bad(why, "raw_size set on a part without events");
		if (h->first_ei != 0 || h->last_ei != 0)
			return rec_hdr_bad(why, "ei range set on a part without events");
		if (!(h->flags & REC_FLAG_FINAL))
			return rec_hdr_bad(why, "part without events that is not final");
	} else if (h->first_ei > h->last_ei || h->last_ei - h->first_ei != h->events - 1u) {
		return rec_hdr_bad(why, "ei range does not match the event count");
	}
	return 0;
}

/* SHA-256 of a followed by b (b may be empty). 0 or -EIO. */
static int rec_sha256(const void *a, size_t alen, const void *b, size_t blen, uint8_t out[32])
{
	EVP_MD_CTX *ctx = EVP_MD_CTX_new();
	unsigned int n = 0;
	int err = -EIO;

	if (!ctx)
		return -ENOMEM;
	if (EVP_DigestInit_ex(ctx, EVP_sha256(), NULL) != 1)
		goto out;
	if (EVP_DigestUpdate(ctx, a, alen) != 1)
		goto out;
	if (blen && EVP_DigestUpdate(ctx, b, blen) != 1)
		goto out;
	if (EVP_DigestFinal_ex(ctx, out, &n) != 1 || n != 32)
		goto out;
	err = 0;
out:
	EVP_MD_CTX_free(ctx);
	return err;
}

void rec_chain_seed(const char *sid, uint8_t out[32])
{
	/* Cannot fail short of a broken libcrypto; a zero seed then matches nothing real. */
	if (rec_sha256(sid, strlen(sid), NULL, 0, out) != 0)
		memset(out, 0, 32);
}

/* Grow *buf to hold at least need bytes (need is bounded by the callers). 0 or -ENOMEM. */
static int rec_buf_reserve(uint8_t **buf, size_t *cap, size_t need)
{
	size_t n = *cap ? *cap : 4096;
	uint8_t *p;

	if (need <= *cap)
		return 0;
	while (n < need)
		n *= 2;
	p = realloc(*buf, n);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = n;
	return 0;
}

/* ------------------------------------------------------------ writer */

struct rec_writer {
	int fd;
	char *sid;
	size_t part_size;
	int level;
	bool no_fsync;
	rec_part_cb on_part;
	void *cb_ctx;

	uint8_t *buf; /* pending records: u32 BE length + packed Event */
	size_t len, cap;
	uint32_t events; /* pending events */
	uint64_t first_ei, last_ei;
	bool started; /* session.start was appended */
	uint64_t next_ei;

	/* Written by whoever commits parts (the pool's thread in async mode): */
	uint8_t prev_hash[32]; /* SHA-256 of the last part written, or the chain seed */
	uint32_t parts;
	uint64_t bytes;
	int err; /* sticky: the file can no longer be extended safely */

	bool final; /* a final part was handed over: no more appends */
	struct rec_pool *pool;
	unsigned int inflight; /* parts queued in the pool, under pool->lock */
};

/* A part to write: the pending records of a writer, detached from it. */
struct rec_job {
	struct rec_writer *w;
	uint8_t *buf;
	size_t len;
	uint32_t events;
	uint64_t first_ei, last_ei;
	bool final;
	bool store; /* the pool is behind: store the part uncompressed */
	struct rec_job *next;
};

struct rec_pool {
	pthread_t thread;
	pthread_mutex_t lock;
	pthread_cond_t work; /* a job was queued, or stop */
	pthread_cond_t done; /* a job finished, or room in the queue */
	struct rec_job *head, *tail;
	size_t queued; /* raw bytes queued */
	size_t max_queued;
	bool stop;
	int nice_err;
};

static int rec_fsync_dir(const char *path)
{
	const char *slash = strrchr(path, '/');
	char dir[PATH_MAX];
	size_t n;
	int fd, err = 0;

	if (!slash) {
		memcpy(dir, ".", 2);
	} else {
		n = slash == path ? 1 : (size_t)(slash - path);
		if (n >= sizeof(dir))
			return -ENAMETOOLONG;
		memcpy(dir, path, n);
		dir[n] = '\0';
	}
	fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		err = -errno;
	if (close(fd) < 0 && !err)
		err = -errno;
	return err;
}

/* A writer with opts applied and no file yet. 0, -EINVAL or -ENOMEM. */
static int rec_writer_new(struct rec_writer **out, const char *sid,
			  const struct rec_writer_opts *opts)
{
	static const struct rec_writer_opts defaults;
	struct rec_writer *w;

	if (!opts)
		opts = &defaults;
	if (!sid || !*sid || opts->compress_level < 0 || opts->compress_level > 9)
		return -EINVAL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return -ENOMEM;
	w->fd = -1;
	w->part_size = opts->part_size ? opts->part_size : REC_PART_DEFAULT;
	if (w->part_size > REC_PART_SIZE_MAX)
		w->part_size = REC_PART_SIZE_MAX;
	w->level = opts->compress_level ? opts->compress_level : REC_LEVEL_DEFAULT;
	w->no_fsync = opts->no_fsync;
	w->on_part = opts->on_part;
	w->cb_ctx = opts->cb_ctx;
	w->pool = opts->pool;
	w->sid = strdup(sid);
	if (!w->sid) {
		free(w);
		return -ENOMEM;
	}
	rec_chain_seed(sid, w->prev_hash);
	*out = w;
	return 0;
}

int rec_writer_open(struct rec_writer **out, const char *path, const char *sid,
		    const struct rec_writer_opts *opts)
{
	struct rec_writer *w = NULL;
	bool created = false;
	int err;

	*out = NULL;
	if (!path)
		return -EINVAL;
	err = rec_writer_new(&w, sid, opts);
	if (err)
		return err;
	w->fd = open(path, O_CREAT | O_EXCL | O_WRONLY | O_CLOEXEC, 0640);
	if (w->fd < 0) {
		err = -errno;
		goto out;
	}
	created = true;
	/* Make the new name durable too, not only the parts written into it. */
	err = w->no_fsync ? 0 : rec_fsync_dir(path);
out:
	if (err) {
		if (created)
			unlink(path);
		rec_writer_abandon(w);
		return err;
	}
	*out = w;
	return 0;
}

int rec_writer_append(struct rec_writer *w, const Sessrec__Event *ev)
{
	size_t size;
	int err;

	if (w->err)
		return w->err;
	if (w->final || !ev)
		return -EINVAL;
	/* Refuse what no reader would accept, so that a bug shows here and not at replay. */
	if (!w->started) {
		if (ev->body_case != SESSREC__EVENT__BODY_START || !ev->start || !ev->start->sid ||
		    strcmp(ev->start->sid, w->sid) != 0)
			return -EINVAL;
	} else if (ev->ei != w->next_ei) {
		return -EINVAL;
	}
	if (ev->ei == UINT64_MAX)
		return -EOVERFLOW;
	size = sessrec__event__get_packed_size(ev);
	if (size > REC_EVENT_MAX)
		return -EMSGSIZE;
	/* w->len < part_size <= REC_PART_SIZE_MAX here, so this cannot overflow. */
	err = rec_buf_reserve(&w->buf, &w->cap, w->len + 4 + size);
	if (err)
		return err;
	rec_be32_put(w->buf + w->len, (uint32_t)size);
	if (sessrec__event__pack(ev, w->buf + w->len + 4) != size)
		return -EINVAL;
	w->len += 4 + size;
	if (w->events == 0)
		w->first_ei = ev->ei;
	w->last_ei = ev->ei;
	w->events++;
	w->started = true;
	w->next_ei = ev->ei + 1;
	if (w->len >= w->part_size)
		return rec_writer_flush(w, false);
	return 0;
}

#define REC_SAMPLE	65536
#define REC_SAMPLE_POOR 60 /* percent: a sample that stays above this has no repeats */

/*
 * Parts are compressed whole, so libdeflate does it (about twice zlib's speed
 * at level 1 with a better ratio, and the same gzip format for every reader).
 * Data without repeats (compressed or random bytes a session prints) costs a
 * deflater its full match search for next to nothing: a sample of it is
 * tried first, and when it stays above REC_SAMPLE_POOR percent the part is
 * stored (level 0: deflate's uncompressed blocks, at memory speed).
 */
static bool rec_poor(struct libdeflate_compressor *c, const uint8_t *raw, size_t len)
{
	uint8_t out[REC_SAMPLE * REC_SAMPLE_POOR / 100];
	size_t n = len < REC_SAMPLE ? len : REC_SAMPLE;

	if (n < 4096)
		return false;
	/* 0: the output did not fit in the poor-ratio budget */
	return libdeflate_deflate_compress(c, raw, n, out, n * REC_SAMPLE_POOR / 100) == 0;
}

/* Deflate the pending records into part (header space left at the front); level 0 stores. */
static int rec_deflate(int level, const uint8_t *raw, size_t rawlen, uint8_t **part,
		       size_t *partlen)
{
	struct libdeflate_compressor *c = libdeflate_alloc_compressor(level);
	uint8_t *buf = NULL;
	size_t bound, n;
	int err;

	if (!c)
		return -ENOMEM;
	if (level > 0 && rec_poor(c, raw, rawlen)) {
		libdeflate_free_compressor(c);
		c = libdeflate_alloc_compressor(0);
		if (!c)
			return -ENOMEM;
	}
	bound = libdeflate_gzip_compress_bound(c, rawlen);
	buf = malloc(REC_HDR_SIZE + bound);
	if (!buf) {
		err = -ENOMEM;
		goto out;
	}
	n = libdeflate_gzip_compress(c, raw, rawlen, buf + REC_HDR_SIZE, bound);
	if (n == 0) {
		err = -EIO; /* cannot happen with the bound's room */
		goto out;
	}
	*partlen = REC_HDR_SIZE + n;
	*part = buf;
	buf = NULL;
	err = 0;
out:
	libdeflate_free_compressor(c);
	free(buf);
	return err;
}

/* Compress, chain, write and fsync one part. Runs on the pool's thread in async mode. */
static int rec_commit(struct rec_writer *w, const struct rec_job *j)
{
	struct rec_part_hdr h = {0};
	uint8_t *part = NULL;
	uint8_t part_hash[32];
	size_t len = 0;
	int err;

	if (w->err)
		return w->err;
	err = rec_deflate(j->store ? 0 : w->level, j->buf, j->len, &part, &len);
	if (err)
		goto out;
	h.version = REC_VERSION;
	h.flags = j->final ? REC_FLAG_FINAL : 0;
	h.index = w->parts;
	h.events = j->events;
	h.raw_size = (uint32_t)j->len;
	h.body_size = (uint32_t)(len - REC_HDR_SIZE);
	h.first_ei = j->events ? j->first_ei : 0;
	h.last_ei = j->events ? j->last_ei : 0;
	memcpy(h.prev_hash, w->prev_hash, 32);
	err = rec_sha256(part + REC_HDR_SIZE, h.body_size, NULL, 0, h.body_hash);
	if (err)
		goto out;
	rec_hdr_encode(&h, part);
	err = rec_sha256(part, len, NULL, 0, part_hash);
	if (err)
		goto out;

	err = util_write_all(w->fd, part, len);
	if (err) {
		/* Cut the partial part off so the file stays a sound (unfinished) recording. */
		if (ftruncate(w->fd, (off_t)w->bytes) < 0)
			err = -errno;
		goto out;
	}
	if (!w->no_fsync && fsync(w->fd) < 0) {
		/* After a failed fsync the page cache state is unknown: stop here. */
		err = -errno;
		goto out;
	}
	memcpy(w->prev_hash, part_hash, 32);
	w->parts++;
	__atomic_add_fetch(&w->bytes, len, __ATOMIC_RELAXED);
	/* The part is on disk whatever the callback says; its error is only reported. */
	if (w->on_part)
		err = w->on_part(w->cb_ctx, h.index, part, len, j->final);
	free(part);
	return err;
out:
	__atomic_store_n(&w->err, err, __ATOMIC_RELAXED);
	free(part);
	return err;
}

static void *rec_pool_main(void *arg)
{
	struct rec_pool *p = arg;

	/*
	 * Compressing is never urgent; draining the kernel's ring buffers is. On a
	 * busy machine the thread that hands parts over must win the CPU, so this
	 * one runs at a lower priority (on Linux, nice applies per thread).
	 */
	if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), 10) < 0)
		p->nice_err = errno;
	pthread_setname_np(pthread_self(), "sessrec-writer");
	pthread_mutex_lock(&p->lock);
	for (;;) {
		struct rec_job *j;

		while (!p->head && !p->stop)
			pthread_cond_wait(&p->work, &p->lock);
		if (!p->head)
			break;
		j = p->head;
		p->head = j->next;
		if (!p->head)
			p->tail = NULL;
		/*
		 * Falling behind (a quarter of the memory budget waits): store
		 * parts uncompressed until the queue is short again. Recordings
		 * get bigger under a flood of output instead of the event loop
		 * blocking and the kernel dropping events.
		 */
		j->store = p->queued > p->max_queued / 4;
		pthread_mutex_unlock(&p->lock);
		rec_commit(j->w, j);
		pthread_mutex_lock(&p->lock);
		p->queued -= j->len;
		j->w->inflight--;
		pthread_cond_broadcast(&p->done);
		free(j->buf);
		free(j);
	}
	pthread_mutex_unlock(&p->lock);
	return NULL;
}

int rec_pool_start(struct rec_pool **out, size_t max_queued)
{
	struct rec_pool *p = calloc(1, sizeof(*p));
	sigset_t all, old;
	int err;

	if (!p)
		return -ENOMEM;
	p->max_queued = max_queued ? max_queued : (64u << 20);
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	pthread_cond_init(&p->done, NULL);
	/* a library thread must never take the process's signals (SIGTERM would kill it) */
	sigfillset(&all);
	pthread_sigmask(SIG_SETMASK, &all, &old);
	err = -pthread_create(&p->thread, NULL, rec_pool_main, p);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (err) {
		pthread_cond_destroy(&p->work);
		pthread_cond_destroy(&p->done);
		pthread_mutex_destroy(&p->lock);
		free(p);
		return err;
	}
	*out = p;
	return 0;
}

void rec_pool_stop(struct rec_pool *p)
{
	if (!p)
		return;
	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->lock);
	pthread_join(p->thread, NULL); /* the queue is written out before the thread ends */
	pthread_cond_destroy(&p->work);
	pthread_cond_destroy(&p->done);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

size_t rec_pool_queued(struct rec_pool *p)
{
	size_t n;

	pthread_mutex_lock(&p->lock);
	n = p->queued;
	pthread_mutex_unlock(&p->lock);
	return n;
}

/* Wait until every part of w handed to the pool is written. */
static void rec_writer_drain(struct rec_writer *w)
{
	if (!w->pool)
		return;
	pthread_mutex_lock(&w->pool->lock);
	while (w->inflight)
		pthread_cond_wait(&w->pool->done, &w->pool->lock);
	pthread_mutex_unlock(&w->pool->lock);
}

int rec_writer_flush(struct rec_writer *w, bool final)
{
	struct rec_job j = {0}, *q;
	struct rec_pool *p = w->pool;
	int err;

	err = __atomic_load_n(&w->err, __ATOMIC_RELAXED);
	if (err)
		return err;
	if (w->final)
		return -EINVAL;
	if (w->events == 0 && !final)
		return 0;
	j.w = w;
	j.buf = w->buf;
	j.len = w->len;
	j.events = w->events;
	j.first_ei = w->first_ei;
	j.last_ei = w->last_ei;
	j.final = final;
	w->final = final;
	if (!p) {
		err = rec_commit(w, &j);
		w->len = 0;
		w->events = 0;
		return err;
	}
	/* async: the buffer goes with the job; the writer starts a new one */
	q = malloc(sizeof(*q));
	if (!q) {
		w->final = false;
		return -ENOMEM;
	}
	*q = j;
	w->buf = NULL;
	w->cap = 0;
	w->len = 0;
	w->events = 0;
	pthread_mutex_lock(&p->lock);
	/* backpressure: never hold more than max_queued bytes in memory */
	while (p->queued > 0 && p->queued + q->len > p->max_queued)
		pthread_cond_wait(&p->done, &p->lock);
	if (p->tail)
		p->tail->next = q;
	else
		p->head = q;
	p->tail = q;
	p->queued += q->len;
	w->inflight++;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

size_t rec_writer_pending(const struct rec_writer *w)
{
	return w->len;
}

uint32_t rec_writer_parts(const struct rec_writer *w)
{
	return __atomic_load_n(&w->parts, __ATOMIC_RELAXED);
}

uint64_t rec_writer_bytes(const struct rec_writer *w)
{
	return __atomic_load_n(&w->bytes, __ATOMIC_RELAXED);
}

int rec_writer_close(struct rec_writer *w)
{
	int err, fd;

	if (!w)
		return 0;
	err = __atomic_load_n(&w->err, __ATOMIC_RELAXED);
	if (!err && !w->final)
		err = rec_writer_flush(w, true);
	rec_writer_drain(w);
	if (!err)
		err = w->err;
	fd = w->fd;
	w->fd = -1;
	if (fd >= 0 && close(fd) < 0 && !err)
		err = -errno;
	rec_writer_abandon(w);
	return err;
}

void rec_writer_abandon(struct rec_writer *w)
{
	if (!w)
		return;
	rec_writer_drain(w);
	if (w->fd >= 0)
		close(w->fd);
	free(w->buf);
	free(w->sid);
	free(w);
}

/* ------------------------------------------------------------ reader */

struct rec_reader {
	int fd;	      /* -1 when reading from memory */
	bool regular; /* fd is a regular file: its size bounds every length */
	const uint8_t *mem;
	size_t memlen;
	uint64_t off; /* input bytes consumed */

	uint8_t hdrbuf[REC_HDR_SIZE];
	uint8_t *body; /* file input only; memory input is used in place */
	size_t body_cap;
	uint8_t *raw; /* the current part, inflated */
	size_t raw_cap;

	struct rec_part_hdr hdr; /* the current part */
	bool loaded;
	size_t raw_pos;
	uint32_t rec_i;	       /* records of the current part returned */
	Sessrec__Event *first; /* part 0's session.start, decoded early to seed the chain */

	uint8_t prev_hash[32]; /* SHA-256 of the last part read */
	uint32_t parts;
	uint64_t raw_total;
	bool final;
	bool ended;
	bool have_ei;
	uint64_t next_ei;
	char *sid;
	char *expect_sid;

	int err; /* sticky */
	char why[REC_WHY_MAX];
};

__attribute__((format(printf, 3, 4))) static int rec_fail(struct rec_reader *r, int err,
							  const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(r->why, sizeof(r->why), fmt, ap);
	va_end(ap);
	r->err = err;
	return err;
}

/* strerror, safe in the agent's threads (GNU strerror_r). */
static const char *rec_errstr(int err, char *buf, size_t len)
{
	return strerror_r(err, buf, len);
}

static int rec_reader_new(struct rec_reader **out)
{
	struct rec_reader *r = calloc(1, sizeof(*r));

	if (!r)
		return -ENOMEM;
	r->fd = -1;
	*out = r;
	return 0;
}

int rec_reader_open(struct rec_reader **out, const char *path)
{
	struct rec_reader *r = NULL;
	struct stat st;
	int err;

	*out = NULL;
	err = rec_reader_new(&r);
	if (err)
		return err;
	r->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (r->fd < 0) {
		err = -errno;
		goto out;
	}
	if (fstat(r->fd, &st) < 0) {
		err = -errno;
		goto out;
	}
	r->regular = S_ISREG(st.st_mode);
out:
	if (err) {
		rec_reader_close(r);
		return err;
	}
	*out = r;
	return 0;
}

int rec_reader_open_mem(struct rec_reader **out, const uint8_t *buf, size_t len)
{
	struct rec_reader *r = NULL;
	int err;

	*out = NULL;
	if (!buf && len)
		return -EINVAL;
	err = rec_reader_new(&r);
	if (err)
		return err;
	r->mem = buf;
	r->memlen = len;
	*out = r;
	return 0;
}

int rec_reader_expect_sid(struct rec_reader *r, const char *sid)
{
	char *s;

	if (!sid || !*sid || r->parts || r->err)
		return -EINVAL;
	s = strdup(sid);
	if (!s)
		return -ENOMEM;
	free(r->expect_sid);
	r->expect_sid = s;
	return 0;
}

/* Read up to len bytes; *got < len only at the end of the file. 0 or -errno. */
static int rec_read_full(int fd, uint8_t *buf, size_t len, size_t *got)
{
	size_t n = 0;

	while (n < len) {
		ssize_t k = read(fd, buf + n, len - n);

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			break;
		n += (size_t)k;
	}
	*got = n;
	return 0;
}

/* Bytes the input still holds past r->off, as far as can be known without reading. */
static int rec_src_left(struct rec_reader *r, uint64_t *left)
{
	struct stat st;

	if (r->fd < 0) {
		*left = r->memlen - r->off;
		return 0;
	}
	if (!r->regular) {
		*left = UINT64_MAX;
		return 0;
	}
	/* Again each time: a live recording grows while it is read. */
	if (fstat(r->fd, &st) < 0)
		return -errno;
	*left = (uint64_t)st.st_size > r->off ? (uint64_t)st.st_size - r->off : 0;
	return 0;
}

/*
 * Up to len bytes at the current offset: in place for memory input, else read
 * into scratch (which holds len bytes). Advances the offset by *got.
 */
static int rec_src_get(struct rec_reader *r, size_t len, uint8_t *scratch, const uint8_t **p,
		       size_t *got)
{
	int err;

	if (r->fd < 0) {
		*got = len < r->memlen - r->off ? len : (size_t)(r->memlen - r->off);
		*p = r->mem + r->off;
	} else {
		err = rec_read_full(r->fd, scratch, len, got);
		if (err)
			return err;
		*p = scratch;
	}
	r->off += *got;
	return 0;
}

static int rec_inflate(struct rec_reader *r, uint32_t n, const uint8_t *body, size_t blen,
		       size_t raw_size)
{
	z_stream zs = {0};
	int err, zerr;

	/* One spare byte tells "inflates to more than raw_size" apart from "exactly". */
	err = rec_buf_reserve(&r->raw, &r->raw_cap, raw_size + 1);
	if (err)
		return rec_fail(r, err, "part %u: out of memory for %zu raw bytes", n, raw_size);
	if (inflateInit2(&zs, REC_GZIP_WBITS) != Z_OK)
		return rec_fail(r, -ENOMEM, "part %u: cannot set up zlib", n);
	zs.next_in = (Bytef *)body;
	zs.avail_in = (uInt)blen;
	zs.next_out = r->raw;
	zs.avail_out = (uInt)(raw_size + 1);
	zerr = inflate(&zs, Z_FINISH);
	if (zerr == Z_STREAM_END) {
		if (zs.avail_in)
			err = rec_fail(r, -EBADMSG,
				       "part %u: %u bytes after the gzip stream in the body", n,
				       zs.avail_in);
		else if (zs.total_out != raw_size)
			err = rec_fail(r, -EBADMSG,
				       "part %u: body inflates to %lu bytes, header says %zu", n,
				       zs.total_out, raw_size);
	} else if (zerr == Z_BUF_ERROR && zs.avail_out == 0) {
		err = rec_fail(r, -EBADMSG,
			       "part %u: body inflates to more than %zu bytes (raw_size)", n,
			       raw_size);
	} else if (zerr == Z_BUF_ERROR || zerr == Z_OK) {
		err = rec_fail(r, -EBADMSG, "part %u: gzip stream in the body is cut short", n);
	} else if (zerr == Z_MEM_ERROR) {
		err = rec_fail(r, -ENOMEM, "part %u: out of memory inflating the body", n);
	} else {
		err = rec_fail(r, -EBADMSG, "part %u: body is not valid gzip (%s)", n,
			       zs.msg ? zs.msg : "bad data");
	}
	inflateEnd(&zs);
	return err;
}

/* Walk the record lengths of the inflated part: all in bounds, as many as announced. */
static int rec_frame_check(struct rec_reader *r, uint32_t n, const struct rec_part_hdr *h)
{
	size_t pos = 0;
	uint32_t count = 0, len;

	while (pos < h->raw_size) {
		if (h->raw_size - pos < 4)
			return rec_fail(r, -EBADMSG, "part %u: record %u: length cut short", n,
					count);
		len = rec_be32_get(r->raw + pos);
		if (len > REC_EVENT_MAX)
			return rec_fail(r, -EBADMSG,
					"part %u: record %u: length %u over the limit (%u)", n,
					count, len, REC_EVENT_MAX);
		if (len > h->raw_size - pos - 4)
			return rec_fail(r, -EBADMSG,
					"part %u: record %u: length %u overruns the part body", n,
					count, len);
		pos += 4 + (size_t)len;
		count++;
	}
	if (count != h->events)
		return rec_fail(r, -EBADMSG, "part %u: holds %u events, header says %u", n, count,
				h->events);
	return 0;
}

/* Part 0 is chained to the sid of its first event, which must be a session.start. */
static int rec_first_check(struct rec_reader *r, const struct rec_part_hdr *h)
{
	Sessrec__Event *ev;
	uint8_t seed[32];
	char *sid;

	if (h->events == 0)
		return rec_fail(r, -EBADMSG,
				"part 0: no events: a recording starts with session.start");
	ev = sessrec__event__unpack(NULL, rec_be32_get(r->raw), r->raw + 4);
	if (!ev)
		return rec_fail(r, -EBADMSG, "part 0: record 0: not a valid sessrec.Event");
	if (ev->body_case != SESSREC__EVENT__BODY_START || !ev->start) {
		sessrec__event__free_unpacked(ev, NULL);
		return rec_fail(r, -EBADMSG, "part 0: the first event is not a session.start");
	}
	if (!ev->start->sid || !*ev->start->sid) {
		sessrec__event__free_unpacked(ev, NULL);
		return rec_fail(r, -EBADMSG, "part 0: session.start has an empty sid");
	}
	rec_chain_seed(ev->start->sid, seed);
	if (memcmp(seed, h->prev_hash, 32) != 0) {
		rec_fail(r, -EBADMSG,
			 "part 0: chain seed mismatch: the part is not from session %s "
			 "(copied from another recording or altered)",
			 ev->start->sid);
		sessrec__event__free_unpacked(ev, NULL);
		return r->err;
	}
	sid = strdup(ev->start->sid);
	if (!sid) {
		sessrec__event__free_unpacked(ev, NULL);
		return rec_fail(r, -ENOMEM, "part 0: out of memory");
	}
	r->sid = sid;
	r->first = ev;
	return 0;
}

/* Nothing may follow the final part. 0 at a clean end, or -errno. */
static int rec_end_check(struct rec_reader *r)
{
	const uint8_t *p;
	uint8_t byte;
	char ebuf[64];
	size_t got;
	uint64_t at = r->off;
	int err;

	err = rec_src_get(r, 1, &byte, &p, &got);
	if (err)
		return rec_fail(r, err, "reading after part %u: %s", r->parts - 1,
				rec_errstr(-err, ebuf, sizeof(ebuf)));
	if (got)
		return rec_fail(r, -EBADMSG,
				"data after the final part %u at byte %" PRIu64
				" (trailing garbage or an appended part)",
				r->parts - 1, at);
	r->ended = true;
	return 0;
}

/* Read, check and inflate the next part. 1 when loaded, 0 at a clean end, or -errno. */
static int rec_part_load(struct rec_reader *r)
{
	const uint32_t n = r->parts;
	const uint64_t at = r->off;
	const uint8_t *hp, *bp;
	struct rec_part_hdr h;
	uint8_t hash[32];
	const char *why = NULL;
	char ebuf[64];
	uint64_t left = 0;
	size_t got;
	int err;

	if (r->final)
		return rec_end_check(r);
	err = rec_src_get(r, REC_HDR_SIZE, r->hdrbuf, &hp, &got);
	if (err)
		return rec_fail(r, err, "part %u: reading the header: %s", n,
				rec_errstr(-err, ebuf, sizeof(ebuf)));
	if (got == 0 && n == 0)
		return rec_fail(r, -EIO, "empty recording: no parts (file ends at byte 0)");
	if (got == 0)
		return 0;
	if (got < REC_HDR_SIZE)
		return rec_fail(r, -EIO,
				"truncated in part %u header (file ends at byte %" PRIu64 ")", n,
				at + got);
	/* Memory input: keep a copy, the header bytes are hashed after the body. */
	if (hp != r->hdrbuf)
		memcpy(r->hdrbuf, hp, REC_HDR_SIZE);
	if (rec_hdr_decode(r->hdrbuf, &h, &why) != 0)
		return rec_fail(r, -EBADMSG, "part %u: %s (header at byte %" PRIu64 ")", n, why,
				at);

	if (n > 0 && memcmp(h.prev_hash, r->prev_hash, 32) != 0) {
		if (h.index != n)
			return rec_fail(
			    r, -EBADMSG,
			    "part %u: chain broken: previous part missing, reordered or "
			    "altered (header says part %u)",
			    n, h.index);
		return rec_fail(
		    r, -EBADMSG,
		    "part %u: chain broken: previous part missing, reordered or altered", n);
	}
	if (h.index != n)
		return rec_fail(r, -EBADMSG,
				"part %u: header says part %u: parts missing or reordered, or the "
				"header altered",
				n, h.index);
	if (n == 0 && r->expect_sid) {
		rec_chain_seed(r->expect_sid, hash);
		if (memcmp(hash, h.prev_hash, 32) != 0)
			return rec_fail(
			    r, -EBADMSG,
			    "part 0: chain seed mismatch: the part is not from session %s "
			    "(copied from another recording or altered)",
			    r->expect_sid);
	}

	/* Never allocate for more than the input can still hold. */
	err = rec_src_left(r, &left);
	if (err)
		return rec_fail(r, err, "part %u: %s", n, rec_errstr(-err, ebuf, sizeof(ebuf)));
	if (h.body_size > left)
		return rec_fail(r, -EIO,
				"truncated in part %u body (file ends at byte %" PRIu64 ")", n,
				r->off + left);
	if (r->fd >= 0) {
		err = rec_buf_reserve(&r->body, &r->body_cap, h.body_size ? h.body_size : 1);
		if (err)
			return rec_fail(r, err, "part %u: out of memory for a %u-byte body", n,
					h.body_size);
	}
	err = rec_src_get(r, h.body_size, r->body, &bp, &got);
	if (err)
		return rec_fail(r, err, "part %u: reading the body: %s", n,
				rec_errstr(-err, ebuf, sizeof(ebuf)));
	if (got < h.body_size)
		return rec_fail(r, -EIO,
				"truncated in part %u body (file ends at byte %" PRIu64 ")", n,
				r->off);

	err = rec_sha256(bp, h.body_size, NULL, 0, hash);
	if (err)
		return rec_fail(r, err, "part %u: cannot compute SHA-256", n);
	if (memcmp(hash, h.body_hash, 32) != 0)
		return rec_fail(r, -EBADMSG, "part %u: body hash mismatch (altered part)", n);
	err = rec_inflate(r, n, bp, h.body_size, h.raw_size);
	if (err)
		return err;
	err = rec_frame_check(r, n, &h);
	if (err)
		return err;
	if (n == 0) {
		err = rec_first_check(r, &h);
		if (err)
			return err;
	}
	err = rec_sha256(r->hdrbuf, REC_HDR_SIZE, bp, h.body_size, r->prev_hash);
	if (err)
		return rec_fail(r, err, "part %u: cannot compute SHA-256", n);

	r->hdr = h;
	r->loaded = true;
	r->raw_pos = 0;
	r->rec_i = 0;
	r->parts++;
	r->raw_total += h.raw_size;
	r->final = h.flags & REC_FLAG_FINAL;
	return 1;
}

int rec_reader_next(struct rec_reader *r, Sessrec__Event **ev)
{
	const struct rec_part_hdr *h = &r->hdr;
	Sessrec__Event *e;
	uint32_t len, n;
	int err = 0;

	*ev = NULL;
	if (r->err)
		return r->err;
	while (!r->loaded || r->rec_i == r->hdr.events) {
		if (r->ended)
			return 0;
		err = rec_part_load(r);
		if (err <= 0)
			return err;
	}
	n = r->parts - 1;
	/* Lengths were all checked by rec_frame_check. */
	len = rec_be32_get(r->raw + r->raw_pos);
	if (r->first) {
		e = r->first;
		r->first = NULL;
	} else {
		e = sessrec__event__unpack(NULL, len, r->raw + r->raw_pos + 4);
	}
	if (!e)
		return rec_fail(r, -EBADMSG, "part %u: record %u: not a valid sessrec.Event", n,
				r->rec_i);
	if (r->have_ei && e->ei != r->next_ei)
		err = rec_fail(r, -EBADMSG,
			       "part %u: record %u: ei %" PRIu64 " where %" PRIu64
			       " was expected (events missing or reordered)",
			       n, r->rec_i, e->ei, r->next_ei);
	else if (r->rec_i == 0 && e->ei != h->first_ei)
		err = rec_fail(r, -EBADMSG,
			       "part %u: first event has ei %" PRIu64 ", header says %" PRIu64, n,
			       e->ei, h->first_ei);
	else if (r->rec_i + 1 == h->events && e->ei != h->last_ei)
		err = rec_fail(r, -EBADMSG,
			       "part %u: last event has ei %" PRIu64 ", header says %" PRIu64, n,
			       e->ei, h->last_ei);
	else if (e->ei == UINT64_MAX)
		err = rec_fail(r, -EBADMSG, "part %u: record %u: ei out of range", n, r->rec_i);
	if (err < 0) {
		sessrec__event__free_unpacked(e, NULL);
		return err;
	}
	r->raw_pos += 4 + (size_t)len;
	r->rec_i++;
	r->have_ei = true;
	r->next_ei = e->ei + 1;
	*ev = e;
	return 1;
}

const char *rec_reader_error(const struct rec_reader *r)
{
	return r->why;
}

const char *rec_reader_sid(const struct rec_reader *r)
{
	return r->sid ? r->sid : "";
}

uint32_t rec_reader_parts(const struct rec_reader *r)
{
	return r->parts;
}

bool rec_reader_final(const struct rec_reader *r)
{
	return r->final;
}

void rec_reader_close(struct rec_reader *r)
{
	if (!r)
		return;
	if (r->fd >= 0)
		close(r->fd);
	if (r->first)
		sessrec__event__free_unpacked(r->first, NULL);
	free(r->body);
	free(r->raw);
	free(r->sid);
	free(r->expect_sid);
	free(r);
}

/* ------------------------------------------------------------ verify */

__attribute__((format(printf, 3, 4))) static void rec_why(char *why, size_t whylen, const char *fmt,
							  ...)
{
	va_list ap;

	if (!why || !whylen)
		return;
	va_start(ap, fmt);
	vsnprintf(why, whylen, fmt, ap);
	va_end(ap);
}

int rec_verify(const char *path, struct rec_verify_stats *stats, char *why, size_t whylen)
{
	struct rec_verify_stats st = {0};
	struct rec_reader *r = NULL;
	Sessrec__Event *ev;
	char ebuf[64];
	int err;

	rec_why(why, whylen, "%s", "");
	err = rec_reader_open(&r, path);
	if (err) {
		rec_why(why, whylen, "%s: cannot open: %s", path,
			rec_errstr(-err, ebuf, sizeof(ebuf)));
		goto out;
	}
	while ((err = rec_reader_next(r, &ev)) == 1) {
		st.events++;
		sessrec__event__free_unpacked(ev, NULL);
	}
	st.parts = r->parts;
	st.raw_bytes = r->raw_total;
	st.file_bytes = r->off;
	st.final = r->final;
	snprintf(st.sid, sizeof(st.sid), "%s", rec_reader_sid(r));
	if (err < 0) {
		rec_why(why, whylen, "%s", r->why);
		goto out;
	}
	if (!r->final) {
		err = -EBADMSG;
		rec_why(why, whylen,
			"not final: the recording is incomplete or the session is "
			"still open (%u parts)",
			st.parts);
	}
out:
	if (stats)
		*stats = st;
	rec_reader_close(r);
	return err;
}

/* ------------------------------------------------------------ reopen, scan */

/* Read exactly len bytes at off. 0, -EIO at an early end, or -errno. */
static int rec_pread_all(int fd, void *buf, size_t len, uint64_t off)
{
	size_t n = 0;

	while (n < len) {
		ssize_t k = pread(fd, (uint8_t *)buf + n, len - n, (off_t)(off + n));

		if (k < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (k == 0)
			return -EIO;
		n += (size_t)k;
	}
	return 0;
}

static int rec_tail_zero(int fd, uint64_t off, uint64_t size, bool *zero)
{
	uint8_t buf[65536];
	int err;

	*zero = true;
	while (off < size && *zero) {
		size_t n = size - off < sizeof(buf) ? (size_t)(size - off) : sizeof(buf);

		err = rec_pread_all(fd, buf, n, off);
		if (err)
			return err;
		for (size_t i = 0; i < n; i++)
			*zero &= buf[i] == 0;
		off += n;
	}
	return 0;
}

/*
 * Is everything from off to size the write a crash interrupted? A header or
 * body cut short, a last part whose body hash does not match, or zeros (a
 * file size that reached the disk before its data). Anything else is damage.
 */
static int rec_tail_torn(int fd, uint64_t off, uint64_t size, bool *torn)
{
	uint8_t hdr[REC_HDR_SIZE], hash[32], *body = NULL;
	struct rec_part_hdr h;
	uint64_t left = size - off;
	int err;

	*torn = false;
	if (left < REC_HDR_SIZE) {
		*torn = true;
		return 0;
	}
	err = rec_pread_all(fd, hdr, sizeof(hdr), off);
	if (err)
		return err;
	if (rec_hdr_decode(hdr, &h, NULL) != 0)
		return rec_tail_zero(fd, off, size, torn);
	if (REC_HDR_SIZE + (uint64_t)h.body_size > left) {
		*torn = true;
		return 0;
	}
	if (REC_HDR_SIZE + (uint64_t)h.body_size < left)
		return 0; /* more follows: not the last write */
	body = malloc(h.body_size ? h.body_size : 1);
	if (!body)
		return -ENOMEM;
	err = rec_pread_all(fd, body, h.body_size, off + REC_HDR_SIZE);
	if (!err)
		err = rec_sha256(body, h.body_size, NULL, 0, hash);
	if (!err)
		*torn = memcmp(hash, h.body_hash, 32) != 0;
	free(body);
	return err;
}

int rec_writer_reopen(struct rec_writer **out, const char *path, const struct rec_writer_opts *opts,
		      Sessrec__Event **start, uint64_t *next_ei, int64_t *last_time_ns)
{
	struct rec_reader *r = NULL;
	struct rec_writer *w = NULL;
	Sessrec__Event *ev = NULL, *first = NULL;
	uint64_t good_off = 0, good_nei = 0, part_nei = 0;
	int64_t good_last = 0, part_last = 0;
	uint32_t good_parts = 0;
	uint8_t good_hash[32] = {0};
	struct stat st;
	bool torn = false;
	int fd = -1, err;

	*out = NULL;
	if (start)
		*start = NULL;
	if (!path)
		return -EINVAL;
	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		err = -EINVAL;
		goto out;
	}
	err = rec_reader_open(&r, path);
	if (err)
		goto out;
	/* A part counts once all its events passed every check of the reader. */
	while ((err = rec_reader_next(r, &ev)) == 1) {
		part_nei = ev->ei + 1;
		part_last = ev->time_ns;
		if (!first)
			first = ev;
		else
			sessrec__event__free_unpacked(ev, NULL);
		ev = NULL;
		if (r->rec_i == r->hdr.events) {
			good_off = r->off;
			good_parts = r->parts;
			good_nei = part_nei;
			good_last = part_last;
			memcpy(good_hash, r->prev_hash, 32);
		}
	}
	if (r->final) {
		err = -EALREADY;
		goto out;
	}
	if (err < 0) {
		err = rec_tail_torn(r->fd, good_off, (uint64_t)st.st_size, &torn);
		if (err)
			goto out;
		if (!torn) {
			err = -EBADMSG;
			goto out;
		}
	}
	if (!good_parts || !first) {
		err = -ENODATA;
		goto out;
	}
	if ((uint64_t)st.st_size > good_off) {
		if (ftruncate(fd, (off_t)good_off) < 0 || fsync(fd) < 0) {
			err = -errno;
			goto out;
		}
	}
	if (lseek(fd, (off_t)good_off, SEEK_SET) < 0) {
		err = -errno;
		goto out;
	}
	err = rec_writer_new(&w, first->start->sid, opts);
	if (err)
		goto out;
	w->fd = fd;
	fd = -1;
	w->started = true;
	w->next_ei = good_nei;
	w->parts = good_parts;
	w->bytes = good_off;
	memcpy(w->prev_hash, good_hash, 32);
	if (next_ei)
		*next_ei = good_nei;
	if (last_time_ns)
		*last_time_ns = good_last;
	if (start) {
		*start = first;
		first = NULL;
	}
	*out = w;
	err = 0;
out:
	if (first)
		sessrec__event__free_unpacked(first, NULL);
	rec_reader_close(r);
	if (fd >= 0)
		close(fd);
	return err;
}

int rec_scan(const char *path, struct rec_scan_info *out)
{
	struct rec_scan_info info = {0};
	uint8_t hdr[REC_HDR_SIZE];
	struct rec_part_hdr h;
	struct stat st;
	uint64_t off = 0;
	int fd, err = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		err = -errno;
		goto out;
	}
	info.size = (uint64_t)st.st_size;
	while (!info.final && info.size - off >= REC_HDR_SIZE) {
		err = rec_pread_all(fd, hdr, sizeof(hdr), off);
		if (err)
			goto out;
		if (rec_hdr_decode(hdr, &h, NULL) != 0 || h.index != info.parts ||
		    REC_HDR_SIZE + (uint64_t)h.body_size > info.size - off)
			break;
		off += REC_HDR_SIZE + (uint64_t)h.body_size;
		info.parts++;
		info.final = h.flags & REC_FLAG_FINAL;
		info.end = off;
	}
	*out = info;
out:
	close(fd);
	return err;
}
