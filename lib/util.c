#include "util.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <uuid/uuid.h>

/*
 * Random (v4) UUIDs from the kernel's CSPRNG, fetched 4 KiB at a time: the
 * agent names every event, and one getrandom() per id was measurable.
 */
static _Thread_local uint8_t util_rand_pool[4096];
static _Thread_local size_t util_rand_left;

static void util_random16(uint8_t out[16])
{
	if (util_rand_left < 16) {
		size_t got = 0;

		while (got < sizeof(util_rand_pool)) {
			ssize_t n =
			    getrandom(util_rand_pool + got, sizeof(util_rand_pool) - got, 0);

			if (n < 0) {
				if (errno == EINTR)
					continue;
				/* no getrandom: libuuid finds another source */
				uuid_generate_random(out);
				return;
			}
			got += (size_t)n;
		}
		util_rand_left = sizeof(util_rand_pool);
	}
	memcpy(out, util_rand_pool + sizeof(util_rand_pool) - util_rand_left, 16);
	util_rand_left -= 16;
}

void util_uuid(char out[UUID_STR_LEN_])
{
	static const char hex[] = "0123456789abcdef";
	uint8_t u[16];
	size_t i, o = 0;

	util_random16(u);
	u[6] = (u[6] & 0x0f) | 0x40; /* version 4 */
	u[8] = (u[8] & 0x3f) | 0x80; /* RFC 4122 variant */
	for (i = 0; i < 16; i++) {
		if (i == 4 || i == 6 || i == 8 || i == 10)
			out[o++] = '-';
		out[o++] = hex[u[i] >> 4];
		out[o++] = hex[u[i] & 0xf];
	}
	out[o] = '\0';
}

bool util_is_uuid(const char *s)
{
	static const int dash[] = {8, 13, 18, 23};
	size_t i, d = 0;

	if (!s || strlen(s) != 36)
		return false;
	for (i = 0; i < 36; i++) {
		if (d < 4 && (int)i == dash[d]) {
			if (s[i] != '-')
				return false;
			d++;
			continue;
		}
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f') ||
		      (s[i] >= 'A' && s[i] <= 'F')))
			return false;
	}
	return true;
}

int64_t util_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

uint64_t util_mono_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void util_rfc3339(int64_t ns, char *out, size_t outlen)
{
	/* events come in bursts within one second: format the second once */
	static _Thread_local time_t last_sec = -1;
	static _Thread_local char last[24];
	time_t sec;
	int ms;

	if (ns < 0)
		ns = 0;
	sec = (time_t)(ns / 1000000000LL);
	ms = (int)((ns % 1000000000LL) / 1000000LL);
	if (sec != last_sec) {
		struct tm tm;

		gmtime_r(&sec, &tm);
		strftime(last, sizeof(last), "%Y-%m-%dT%H:%M:%S", &tm);
		last_sec = sec;
	}
	if (outlen < 25) {
		snprintf(out, outlen, "%s.%03dZ", last, ms);
		return;
	}
	memcpy(out, last, 19);
	out[19] = '.';
	out[20] = (char)('0' + ms / 100);
	out[21] = (char)('0' + ms / 10 % 10);
	out[22] = (char)('0' + ms % 10);
	out[23] = 'Z';
	out[24] = '\0';
}

int util_write_all(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len > 0) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int util_read_all(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len > 0) {
		ssize_t n = read(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -EIO;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

int util_mkdir_p(const char *path, unsigned int mode)
{
	char buf[4096];
	size_t len = strlen(path);

	if (len == 0 || len >= sizeof(buf))
		return -ENAMETOOLONG;
	memcpy(buf, path, len + 1);
	for (char *p = buf + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(buf, mode) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(buf, mode) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

int util_read_file(const char *path, size_t max, char **out, size_t *outlen)
{
	int fd, err = 0;
	char *buf = NULL;
	size_t len = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	buf = malloc(max + 1);
	if (!buf) {
		err = -ENOMEM;
		goto out;
	}
	while (len < max) {
		ssize_t n = read(fd, buf + len, max - len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			goto out;
		}
		if (n == 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
	*out = buf;
	if (outlen)
		*outlen = len;
	buf = NULL;
out:
	free(buf);
	close(fd);
	return err;
}

int util_write_file(const char *path, const char *s)
{
	int fd, err;

	fd = open(path, O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	err = util_write_all(fd, s, strlen(s));
	if (close(fd) < 0 && !err)
		err = -errno;
	return err;
}
