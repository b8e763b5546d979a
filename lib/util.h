/* Small helpers shared by every program: ids, times, files. */
#ifndef SESSREC_UTIL_H
#define SESSREC_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UUID_STR_LEN_ 37 /* 36 characters and the NUL */

/* A new random (v4) UUID in lower case. */
void util_uuid(char out[UUID_STR_LEN_]);
/* true when s is a canonical UUID (8-4-4-4-12 hex digits). */
bool util_is_uuid(const char *s);

/* Nanoseconds since the Unix epoch (CLOCK_REALTIME). */
int64_t util_now_ns(void);
/* CLOCK_MONOTONIC nanoseconds, the clock of bpf_ktime_get_ns(). */
uint64_t util_mono_ns(void);
/* RFC 3339 UTC with milliseconds: 2026-11-22T10:13:19.123Z. out >= 32 bytes. */
void util_rfc3339(int64_t ns, char *out, size_t outlen);

/* Write all of buf to fd, retrying on EINTR and short writes. 0 or -errno. */
int util_write_all(int fd, const void *buf, size_t len);
/* Read exactly len bytes; -EIO on early EOF. 0 or -errno. */
int util_read_all(int fd, void *buf, size_t len);
/* mkdir -p with mode for created directories. 0 or -errno. */
int util_mkdir_p(const char *path, unsigned int mode);
/* Read a small file (<= max bytes) into a NUL-terminated malloc'd buffer. */
int util_read_file(const char *path, size_t max, char **out, size_t *outlen);
/* Write a string to a file (e.g. a cgroup or sysfs knob). 0 or -errno. */
int util_write_file(const char *path, const char *s);

#endif
