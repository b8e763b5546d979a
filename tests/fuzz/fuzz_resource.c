/*
 * libFuzzer: inference resources (collector/resource.c) from arbitrary text, as
 * POST /v1/resources receives it. Nothing may crash or leak; an error is one
 * line; what parses is stored as JSON that reads back to the same resource.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "collector.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static bool quiet;
	struct store_resource sr = {0};
	struct resource *v = NULL, back;
	char err[512];
	size_t n = 0;

	if (!quiet) {
		log_init("fuzz", LOG_LVL_ERROR);
		quiet = true;
	}
	if (size > RESOURCE_YAML_MAX)
		return 0;
	if (resource_parse((const char *)data, size, &v, &n, err, sizeof(err)) != 0) {
		if (!err[0] || strchr(err, '\n'))
			abort();
		return 0;
	}
	for (size_t i = 0; i < n; i++) {
		snprintf(sr.kind, sizeof(sr.kind), "%s", resource_kind_name(v[i].kind));
		sr.name = v[i].name;
		sr.json = v[i].json;
		if (resource_from_store(&sr, &back) != 0 || back.kind != v[i].kind ||
		    strcmp(back.json, v[i].json) != 0)
			abort();
		resource_clear(&back);
	}
	resource_array_free(v, n);
	return 0;
}
