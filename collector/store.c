/*
 * Storage backends: the table of backends and what every backend shares. Each
 * backend is a struct store_ops (collector.h); "local" is the embedded default
 * (store_local.c). S3 + PostgreSQL will be added to store_backends[].
 */
#include <stdlib.h>
#include <string.h>

#include "collector.h"

static const struct store_ops *const store_backends[] = {
    &store_local_ops,
};

const struct store_ops *store_find(const char *name)
{
	size_t i;

	if (!name || !*name)
		name = "local";
	for (i = 0; i < sizeof(store_backends) / sizeof(store_backends[0]); i++)
		if (strcmp(store_backends[i]->name, name) == 0)
			return store_backends[i];
	return NULL;
}

void store_session_clear(struct store_session *s)
{
	if (!s)
		return;
	free(s->node);
	free(s->user);
	free(s->login);
	free(s->kind);
	free(s->labels_json);
	free(s->initial_command_json);
	free(s->status);
	free(s->closed_by);
	memset(s, 0, sizeof(*s));
}
