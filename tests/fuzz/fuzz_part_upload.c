/*
 * libFuzzer: the collector's upload request path (PUT /v1/sessions/{sid}/parts/{n}) on
 * arbitrary bytes, against the real local store in a temporary data dir made once.
 *
 * Input: byte 0 chooses the part number n (0..239 as is; 240..255 the numbers just below
 * UINT32_MAX), byte 1 holds flags, the rest is the part body as a node would upload it.
 * Flag bit 0 "fix up" makes the cheap checks pass before the upload (header index = n,
 * body_size = the rest, body_hash = its SHA-256, prev_hash = the chain seed of the session
 * for part 0 or the SHA-256 of the stored part n-1), so that the fuzzer also reaches the
 * chain checks, the decoding of part 0 and the store itself. The session id is fixed: what
 * is stored stays for the next inputs (at most one part per number, below 240: bounded).
 *
 * Every input is also decoded with rec_hdr_decode, and a fixed-up part is read to its end by
 * the recording reader as part 0 of the session (what the collector does with a part 0, and
 * the only way a fuzzer gets past the body's SHA-256 into gzip and protobuf decoding: a
 * stored part 0 ends that path in the upload itself). Nothing may crash, leak or answer
 * anything but 200, 201, 400 or 409 (507 and 503 only when the disk is full or busy).
 */
#include <errno.h>
#include <ftw.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/evp.h>

#include "collector.h"
#include "log.h"
#include "rec.h"

#define FUZZ_SID      "5e551011-f022-4a2e-9c0d-00000000f022"
#define FUZZ_FIX_UP   0x01u
#define FUZZ_PART_MAX (1u << 20) /* more than any input of `make fuzz` (-max_len) */

static char fuzz_dir[] = "/tmp/sessrec-fuzz-part-upload.XXXXXX";
static struct collector_config *fuzz_cfg;
static struct store *fuzz_st;
static const struct store_ops *fuzz_ops = &store_local_ops;

static int fuzz_rm(const char *path, const struct stat *sb, int type, struct FTW *ftw)
{
	(void)sb;
	(void)type;
	(void)ftw;
	return remove(path);
}

static void fuzz_cleanup(void)
{
	if (fuzz_st)
		fuzz_ops->close(fuzz_st);
	fuzz_st = NULL;
	collector_config_free(fuzz_cfg);
	fuzz_cfg = NULL;
	nftw(fuzz_dir, fuzz_rm, 16, FTW_DEPTH | FTW_PHYS);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
	char err[512];
	int ret;

	(void)argc;
	(void)argv;
	log_init("fuzz_part_upload", LOG_LVL_ERROR);
	if (!mkdtemp(fuzz_dir)) {
		perror("mkdtemp");
		abort();
	}
	if (collector_config_load(NULL, &fuzz_cfg, err, sizeof(err))) {
		fprintf(stderr, "config: %s\n", err);
		abort();
	}
	free(fuzz_cfg->data_dir);
	fuzz_cfg->data_dir = strdup(fuzz_dir);
	if (!fuzz_cfg->data_dir)
		abort();
	ret = fuzz_ops->open(&fuzz_st, fuzz_cfg);
	if (ret) {
		fprintf(stderr, "store open %s: %s\n", fuzz_dir, strerror(-ret));
		abort();
	}
	atexit(fuzz_cleanup);
	return 0;
}

static void fuzz_sha256(const void *p, size_t len, uint8_t out[32])
{
	unsigned int n = 0;

	if (EVP_Digest(p, len, out, &n, EVP_sha256(), NULL) != 1 || n != 32)
		abort();
}

/* Make the part pass the header, size and hash checks (and chain where it can). */
static void fuzz_fix_up(uint8_t *buf, size_t len, uint32_t n)
{
	struct rec_part_hdr h;
	const char *why = NULL;
	uint8_t prev[32];

	if (len < REC_HDR_SIZE || rec_hdr_decode(buf, &h, &why) != 0)
		return; /* the header itself stays the fuzzer's */
	h.index = n;
	h.body_size = (uint32_t)(len - REC_HDR_SIZE);
	fuzz_sha256(buf + REC_HDR_SIZE, len - REC_HDR_SIZE, h.body_hash);
	if (n == 0)
		rec_chain_seed(FUZZ_SID, h.prev_hash);
	else if (fuzz_ops->part_stat(fuzz_st, FUZZ_SID, n - 1, prev, NULL) == 0)
		memcpy(h.prev_hash, prev, 32);
	rec_hdr_encode(&h, buf);
}

/* Read a fixed-up part as if it were part 0 of the session, to the end. */
static void fuzz_read_as_part0(const uint8_t *part, size_t len)
{
	struct rec_reader *r = NULL;
	struct rec_part_hdr h;
	const char *why = NULL;
	Sessrec__Event *ev = NULL;
	uint8_t *buf;
	int n = 0;

	if (len < REC_HDR_SIZE || rec_hdr_decode(part, &h, &why) != 0)
		return;
	buf = malloc(len);
	if (!buf)
		return;
	memcpy(buf, part, len);
	h.index = 0;
	rec_chain_seed(FUZZ_SID, h.prev_hash);
	rec_hdr_encode(&h, buf);
	if (rec_reader_open_mem(&r, buf, len) == 0) {
		if (rec_reader_expect_sid(r, FUZZ_SID) == 0)
			while (n++ < 100000 && rec_reader_next(r, &ev) == 1)
				sessrec__event__free_unpacked(ev, NULL);
		(void)rec_reader_error(r);
		rec_reader_close(r);
	}
	free(buf);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rec_part_hdr h;
	const char *why = NULL;
	char reason[512];
	uint8_t *buf;
	uint32_t n;
	size_t len;
	int status = 0, ret;

	if (size >= REC_HDR_SIZE)
		(void)rec_hdr_decode(data, &h, &why);
	if (size < 2 || size - 2 > FUZZ_PART_MAX)
		return 0;
	n = data[0] < 240 ? data[0] : UINT32_MAX - (uint32_t)(255 - data[0]);
	len = size - 2;
	/* a copy of exactly the body's size, so that ASan sees any read past it */
	buf = malloc(len ? len : 1);
	if (!buf)
		return 0;
	memcpy(buf, data + 2, len);
	if (len >= REC_HDR_SIZE)
		(void)rec_hdr_decode(buf, &h, &why);
	if (data[1] & FUZZ_FIX_UP)
		fuzz_fix_up(buf, len, n);

	reason[0] = '\0';
	ret = collector_part_upload(fuzz_st, fuzz_ops, FUZZ_SID, n, buf, len, &status, reason,
				    sizeof(reason));
	if (data[1] & FUZZ_FIX_UP)
		fuzz_read_as_part0(buf, len);
	free(buf);
	if (memchr(reason, '\0', sizeof(reason)) == NULL)
		abort(); /* the reason is always a terminated string */
	switch (status) {
	case 200:
	case 201:
	case 400:
	case 409:
		if (ret != 0)
			abort(); /* a decided answer is no error */
		break;
	case 503:
	case 507:
		break; /* the machine, not the input */
	default:
		fprintf(stderr, "unexpected answer %d (%d): %s\n", status, ret, reason);
		abort();
	}
	/* a bad session id never gets as far as the store */
	status = 0;
	ret = collector_part_upload(fuzz_st, fuzz_ops, "../../" FUZZ_SID, n, data + 2, size - 2,
				    &status, reason, sizeof(reason));
	if (status != 400 || ret != 0)
		abort();
	return 0;
}
