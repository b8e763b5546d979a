/*
 * Recordings: length-delimited sessrec.Event messages grouped in gzip parts
 * behind a versioned header that chains each part to the previous one with
 * SHA-256. Format: docs/recording-format.md.
 */
#ifndef SESSREC_REC_H
#define SESSREC_REC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sessrec.pb-c.h"

#define REC_MAGIC	  "SRECPRT1" /* 8 bytes at the start of every part */
#define REC_VERSION	  1
#define REC_HDR_SIZE	  112
#define REC_FLAG_FINAL	  0x1u			 /* the last part of a finished recording */
#define REC_EVENT_MAX	  (1u << 20)		 /* largest event message accepted, bytes */
#define REC_PART_RAW_MAX  (64u << 20)		 /* largest uncompressed part accepted */
#define REC_PART_DEFAULT  (1u << 20)		 /* writer flushes a part at this raw size */
#define REC_PART_SIZE_MAX (REC_PART_RAW_MAX / 2) /* largest part a writer makes */

/* The decoded fixed header of one part (all integers big endian on disk). */
struct rec_part_hdr {
	uint16_t version;
	uint16_t flags;	    /* REC_FLAG_* */
	uint32_t index;	    /* 0, 1, 2, ... */
	uint32_t events;    /* events in this part */
	uint32_t raw_size;  /* uncompressed body bytes */
	uint32_t body_size; /* gzip body bytes following the header */
	uint64_t first_ei;
	uint64_t last_ei;
	/* SHA-256 of the previous part (header + body); part 0: of the sid */
	uint8_t prev_hash[32];
	uint8_t body_hash[32]; /* SHA-256 of this part's gzip body */
};

/* Serialise / parse a header. parse returns 0, or -EBADMSG with a reason in *why. */
void rec_hdr_encode(const struct rec_part_hdr *h, uint8_t out[REC_HDR_SIZE]);
int rec_hdr_decode(const uint8_t in[REC_HDR_SIZE], struct rec_part_hdr *h, const char **why);
/* The prev_hash that part 0 of session sid must carry. */
void rec_chain_seed(const char *sid, uint8_t out[32]);

/* ------------------------------------------------------------ writer */

struct rec_writer;
struct rec_pool;

/*
 * A thread that compresses, writes and fsyncs parts for any number of
 * writers, in the order they were handed over, so that the caller's thread
 * (the agent's event loop) never waits for the disk. Appends block only while
 * more than max_queued raw bytes (0: 64 MiB) are waiting. rec_pool_stop writes
 * out everything queued first. Writers must be closed before their pool.
 */
int rec_pool_start(struct rec_pool **out, size_t max_queued);
void rec_pool_stop(struct rec_pool *p);
size_t rec_pool_queued(struct rec_pool *p);

/*
 * Called after every part is written and fsync'd: the complete part bytes
 * (header + body). The upload spool hooks in here. Return 0 or -errno (an
 * error is logged by the caller of rec_writer_flush and returned from it).
 */
typedef int (*rec_part_cb)(void *ctx, uint32_t index, const uint8_t *part, size_t len, bool final);

struct rec_writer_opts {
	/* Flush when this many raw bytes are pending; 0 = REC_PART_DEFAULT; at most 32 MiB. */
	size_t part_size;
	int compress_level;  /* zlib level; 0 = default (6) */
	bool no_fsync;	     /* tests and benchmarks only */
	rec_part_cb on_part; /* called on the pool's thread when a pool is used */
	void *cb_ctx;
	struct rec_pool *pool; /* NULL: parts are written by rec_writer_append/flush itself */
};

/* Create path (O_EXCL) for a new recording of session sid. 0 or -errno. */
int rec_writer_open(struct rec_writer **out, const char *path, const char *sid,
		    const struct rec_writer_opts *opts);
/*
 * Append one event (packed and buffered; flushes a part when part_size is reached).
 * What no reader would accept is refused with -EINVAL: a first event that is not
 * a session.start of this sid, or an ei that is not the previous one plus one.
 * -EMSGSIZE for an event over REC_EVENT_MAX.
 */
int rec_writer_append(struct rec_writer *w, const Sessrec__Event *ev);
/* Write the pending events as a part (nothing happens when none are pending and !final). */
int rec_writer_flush(struct rec_writer *w, bool final);
/* Raw bytes pending in memory; how many parts were written; total bytes on disk. */
size_t rec_writer_pending(const struct rec_writer *w);
uint32_t rec_writer_parts(const struct rec_writer *w);
uint64_t rec_writer_bytes(const struct rec_writer *w);
/* Flush as final (unless already final) and free. Accepts NULL. 0 or -errno. */
int rec_writer_close(struct rec_writer *w);
/* Free without writing anything more (the file stays as it is). Accepts NULL. */
void rec_writer_abandon(struct rec_writer *w);

/*
 * Open an unfinished recording (a crash left it, or a restarted agent takes a
 * running session back) to append to it. Every complete part is read and
 * verified. What follows the last sound part is cut off when it can only be
 * the write that a crash interrupted: a header or body cut short, a last part
 * whose body hash does not match (only partly on disk), or a tail of zero
 * bytes. The chain, the part index and the next ei are restored, so appended
 * events and parts continue the recording as if it had never stopped.
 *
 * On success *start is the recording's session.start event (free it with
 * sessrec__event__free_unpacked; pass NULL to drop it), *next_ei the ei the
 * next appended event must carry and *last_time_ns the time of the last event
 * on disk. Returns 0; -EALREADY for a final recording (nothing may follow);
 * -ENODATA when not even part 0 is complete (nothing to continue);
 * -EBADMSG for damage anywhere else (the file is left as it is); or -errno.
 */
int rec_writer_reopen(struct rec_writer **out, const char *path, const struct rec_writer_opts *opts,
		      Sessrec__Event **start, uint64_t *next_ei, int64_t *last_time_ns);

/*
 * Walk the part headers of a recording without reading the bodies: cheap
 * enough for a whole spool, every few minutes. Counts the parts from the start
 * whose header decodes, whose index follows and whose body is complete in the
 * file, and stops at the first that does not. Hashes and events are not
 * checked (rec_verify does that).
 */
struct rec_scan_info {
	uint32_t parts; /* complete parts in sequence from the start */
	bool final;	/* the last of them carries REC_FLAG_FINAL */
	uint64_t end;	/* the byte where the last of them ends */
	uint64_t size;	/* the file's size: more than end when something follows */
};
int rec_scan(const char *path, struct rec_scan_info *out);

/* ------------------------------------------------------------ reader */

struct rec_reader;

/* Open a recording file. 0 or -errno. */
int rec_reader_open(struct rec_reader **out, const char *path);
/* Read from an in-memory buffer (not copied: must outlive the reader). */
int rec_reader_open_mem(struct rec_reader **out, const uint8_t *buf, size_t len);
/*
 * Next event, in order. Returns 1 with *ev set (free with
 * sessrec__event__free_unpacked(ev, NULL)), 0 at a clean end, or -errno on
 * any damage (-EBADMSG, -EIO, ...) with a one-line reason in rec_reader_error().
 * The reader checks every part header, the body hash, the chain to the
 * previous part, the part index sequence and that ei only grows.
 */
int rec_reader_next(struct rec_reader *r, Sessrec__Event **ev);
const char *rec_reader_error(const struct rec_reader *r);
/*
 * Require the recording to belong to session sid: part 0 must be chained to
 * rec_chain_seed(sid) (so a part 0 taken from another session's recording is
 * refused). Call before the first rec_reader_next. 0 or -errno.
 */
int rec_reader_expect_sid(struct rec_reader *r, const char *sid);
/* The session id, known once the first event (session.start) was read; else "". */
const char *rec_reader_sid(const struct rec_reader *r);
/* Parts read so far, and whether the last read part carried REC_FLAG_FINAL. */
uint32_t rec_reader_parts(const struct rec_reader *r);
bool rec_reader_final(const struct rec_reader *r);
void rec_reader_close(struct rec_reader *r);

/*
 * Verify a whole recording: every check of rec_reader_next, plus that the
 * first event is a session.start whose sid seeds the chain, and that the last
 * part is final. Fills *stats. Returns 0 when sound, or -errno with a one-line
 * reason written to why (at most whylen bytes).
 */
struct rec_verify_stats {
	uint32_t parts;
	uint64_t events;
	uint64_t raw_bytes;
	uint64_t file_bytes;
	bool final;
	char sid[40];
};
int rec_verify(const char *path, struct rec_verify_stats *stats, char *why, size_t whylen);

#endif
