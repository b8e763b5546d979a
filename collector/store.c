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

void store_resource_clear(struct store_resource *r)
{
	if (!r)
		return;
	free(r->name);
	if (r->json) {
		/* a secret's value is in it */
		explicit_bzero(r->json, strlen(r->json));
		free(r->json);
	}
	memset(r, 0, sizeof(*r));
}

void store_job_clear(struct store_job *j)
{
	if (!j)
		return;
	free(j->model);
	free(j->policy);
	free(j->error);
	free(j->requested_by);
	memset(j, 0, sizeof(*j));
}

void store_summary_clear(struct store_summary *m)
{
	if (!m)
		return;
	free(m->model_name);
	free(m->provider);
	free(m->model_id);
	free(m->title);
	free(m->short_description);
	free(m->detailed_description);
	free(m->risk_reasons_json);
	free(m->commands_of_interest_json);
	free(m->error_code);
	free(m->error);
	memset(m, 0, sizeof(*m));
}
