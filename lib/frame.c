#include "frame.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "util.h"

int frame_send(int fd, const ProtobufCMessage *msg)
{
	size_t len = protobuf_c_message_get_packed_size(msg);
	uint8_t *buf;
	uint32_t be;
	int err;

	if (len > FRAME_MAX)
		return -EMSGSIZE;
	buf = malloc(len + 4);
	if (!buf)
		return -ENOMEM;
	be = htonl((uint32_t)len);
	memcpy(buf, &be, 4);
	protobuf_c_message_pack(msg, buf + 4);
	err = util_write_all(fd, buf, len + 4);
	free(buf);
	return err;
}

int frame_recv(int fd, size_t max, uint8_t **buf, size_t *len)
{
	uint32_t be;
	size_t n;
	uint8_t *p;
	ssize_t got;
	int err;

	do
		got = read(fd, &be, sizeof(be));
	while (got < 0 && errno == EINTR);
	if (got < 0)
		return -errno;
	if (got == 0)
		return -ECONNRESET;
	if (got < (ssize_t)sizeof(be)) {
		err = util_read_all(fd, (char *)&be + got, sizeof(be) - (size_t)got);
		if (err)
			return err;
	}
	n = ntohl(be);
	if (n > max)
		return -EMSGSIZE;
	p = malloc(n ? n : 1);
	if (!p)
		return -ENOMEM;
	err = util_read_all(fd, p, n);
	if (err) {
		free(p);
		return err;
	}
	*buf = p;
	*len = n;
	return 0;
}
