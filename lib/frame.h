/* Length-delimited protobuf-c messages over a stream socket (u32 BE length). */
#ifndef SESSREC_FRAME_H
#define SESSREC_FRAME_H

#include <stddef.h>
#include <stdint.h>

#include <protobuf-c/protobuf-c.h>

#define FRAME_MAX (64u * 1024u)

/* Pack msg and write it with its length. 0 or -errno (-EMSGSIZE over FRAME_MAX). */
int frame_send(int fd, const ProtobufCMessage *msg);
/*
 * Read one frame into a malloc'd buffer. The length is checked against max
 * before anything is allocated. 0, -ECONNRESET on a clean EOF before the
 * length, -EMSGSIZE when too large, or -errno.
 */
int frame_recv(int fd, size_t max, uint8_t **buf, size_t *len);

#endif
