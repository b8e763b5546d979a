/*
 * libFuzzer: the predicate parser on arbitrary bytes, and what parses
 * evaluated against a small fixed environment, with the policy fields and
 * with any field allowed. Checks the contract as well as memory: an error
 * always comes with a one-line message, a success never with one, and the
 * same expression evaluates the same way twice.
 */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "predicate.h"

#define FUZZ_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

static const char *const fuzz_roles[] = {"access", "intern", "access"};
static const char *const fuzz_people[] = {"alice", "bob", ""};
static const char *const fuzz_logins[] = {"root", "alice"};

static int fuzz_str(struct pred_value *out, const char *s)
{
	out->type = PRED_STRING;
	out->s = s;
	return 0;
}

static int fuzz_list(struct pred_value *out, const char *const *l, size_t n)
{
	out->type = PRED_LIST;
	out->list = l;
	out->n = n;
	return 0;
}

static int fuzz_lookup(void *ctx, const char *field, const char *key, struct pred_value *out)
{
	(void)ctx;
	if (!field)
		__builtin_trap();
	if (key) {
		if (strcmp(field, "resource.metadata.labels") == 0)
			return strcmp(key, "env") == 0 ? fuzz_str(out, "prod") : -ENOENT;
		if (strcmp(field, "user.spec.traits") == 0) {
			if (strcmp(key, "logins") == 0)
				return fuzz_list(out, fuzz_logins, FUZZ_ARRAY_LEN(fuzz_logins));
			return -ENOENT;
		}
		return strncmp(field, "session.", 8) == 0 ? -ENOENT : -EINVAL;
	}
	if (strcmp(field, "user.metadata.name") == 0)
		return fuzz_str(out, "alice");
	if (strcmp(field, "user.spec.roles") == 0)
		return fuzz_list(out, fuzz_roles, FUZZ_ARRAY_LEN(fuzz_roles));
	if (strcmp(field, "resource.kind") == 0)
		return fuzz_str(out, "node");
	if (strcmp(field, "resource.metadata.name") == 0)
		return fuzz_str(out, "web-1");
	if (strcmp(field, "session.participants") == 0)
		return fuzz_list(out, fuzz_people, FUZZ_ARRAY_LEN(fuzz_people));
	if (strcmp(field, "session.kubernetes_groups") == 0)
		return fuzz_list(out, NULL, 0);
	if (strcmp(field, "session.interactive") == 0) {
		out->type = PRED_BOOL;
		out->b = true;
		return 0;
	}
	if (strcmp(field, "session.port") == 0) {
		out->type = PRED_INT;
		out->i = 22;
		return 0;
	}
	if (strcmp(field, "session.io") == 0)
		return -EIO;
	return strncmp(field, "session.", 8) == 0 ? -ENOENT : -EINVAL;
}

static void fuzz_check_err(int rc, const char *err)
{
	if (rc == 0 && err[0] != '\0')
		__builtin_trap();
	if (rc != 0 && (err[0] == '\0' || strchr(err, '\n')))
		__builtin_trap();
}

static void fuzz_one(const char *src, const char *const *known)
{
	static const struct pred_env env = {.lookup = fuzz_lookup, .ctx = NULL};
	struct pred_expr *e = NULL;
	char err[256];
	bool r1 = false, r2 = false;
	int rc, rc2;

	rc = pred_parse(src, known, &e, err, sizeof(err));
	fuzz_check_err(rc, err);
	if (rc != 0) {
		if (e || (rc != -EINVAL && rc != -E2BIG && rc != -ENOMEM))
			__builtin_trap();
		return;
	}
	if (!e)
		__builtin_trap();
	rc = pred_eval(e, &env, &r1, err, sizeof(err));
	fuzz_check_err(rc, err);
	rc2 = pred_eval(e, &env, &r2, err, sizeof(err));
	if (rc != rc2 || (rc == 0 && r1 != r2))
		__builtin_trap();
	/* constant or not, no environment must fail cleanly or agree */
	rc2 = pred_eval(e, NULL, &r2, err, sizeof(err));
	fuzz_check_err(rc2, err);
	if (rc == 0 && rc2 == 0 && r1 != r2)
		__builtin_trap();
	pred_free(e);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	/* a little past the limit, so that -E2BIG is reached too */
	size_t len = size < PRED_MAX_LEN + 16 ? size : PRED_MAX_LEN + 16;
	char *src = malloc(len + 1);

	if (!src)
		return 0;
	memcpy(src, data, len);
	src[len] = '\0';
	fuzz_one(src, pred_policy_fields);
	fuzz_one(src, NULL);
	free(src);
	return 0;
}
