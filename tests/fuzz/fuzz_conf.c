/* libFuzzer: the agent configuration parser on arbitrary YAML. */
#include <stdint.h>
#include <stdio.h>
#include <sys/mman.h>
#include <unistd.h>

#include "config.h"
#include "util.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct agent_config *c = NULL;
	char path[64], err[512];
	int fd = memfd_create("fuzz-conf", MFD_CLOEXEC);

	if (fd < 0)
		return 0;
	if (util_write_all(fd, data, size) == 0) {
		snprintf(path, sizeof(path), "/proc/self/fd/%d", fd);
		if (agent_config_load(path, &c, err, sizeof(err)) == 0) {
			/* what loads must dump to something that loads again */
			FILE *f = fopen("/dev/null", "w");

			if (f) {
				agent_config_dump(c, f);
				fclose(f);
			}
			agent_config_free(c);
		}
	}
	close(fd);
	return 0;
}
