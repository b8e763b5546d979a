/* libFuzzer: the recording reader on arbitrary bytes (a recording is outside input). */
#include <stdint.h>
#include <stdlib.h>

#include "rec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct rec_reader *r = NULL;
	Sessrec__Event *ev = NULL;
	int n = 0;

	if (rec_reader_open_mem(&r, data, size))
		return 0;
	while (n++ < 100000 && rec_reader_next(r, &ev) == 1)
		sessrec__event__free_unpacked(ev, NULL);
	rec_reader_close(r);
	return 0;
}
