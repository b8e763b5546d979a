/* libFuzzer: a launcher's request on the agent socket, framing and message. */
#include <stdint.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "agent.pb-c.h"
#include "frame.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	Sessrec__Agent__Request *req;
	uint8_t *buf = NULL;
	size_t len = 0;
	int sv[2];

	if (size > 256 * 1024 || socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return 0;
	/* the peer may send anything, then hang up */
	if (util_write_all(sv[1], data, size) == 0) {
		close(sv[1]);
		sv[1] = -1;
		while (frame_recv(sv[0], FRAME_MAX, &buf, &len) == 0) {
			req = sessrec__agent__request__unpack(NULL, len, buf);
			free(buf);
			buf = NULL;
			if (!req)
				break;
			sessrec__agent__request__free_unpacked(req, NULL);
		}
	}
	close(sv[0]);
	if (sv[1] >= 0)
		close(sv[1]);
	return 0;
}
