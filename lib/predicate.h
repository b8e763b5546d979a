/*
 * The predicate language of inference policy filters (Teleport's): Go-like
 * expressions over user, resource and session fields. Reference:
 * docs/policies.md.
 */
#ifndef SESSREC_PREDICATE_H
#define SESSREC_PREDICATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PRED_MAX_LEN   4096 /* longest expression accepted */
#define PRED_MAX_DEPTH 32   /* deepest nesting of parentheses, calls and operators */
#define PRED_MAX_ARGS  64   /* most arguments to one function call */

/* A value: a string, a list of strings, a boolean or an integer. */
enum pred_type {
	PRED_STRING,
	PRED_LIST,
	PRED_BOOL,
	PRED_INT,
};

struct pred_value {
	enum pred_type type;
	const char *s;		 /* PRED_STRING (not owned) */
	const char *const *list; /* PRED_LIST (not owned) */
	size_t n;		 /* PRED_LIST length */
	bool b;			 /* PRED_BOOL */
	int64_t i;		 /* PRED_INT */
};

/*
 * Where field values come from. lookup gets a dotted field name
 * ("user.metadata.name", "session.participants") and, for map indexing
 * (`resource.metadata.labels["env"]`), the map field's name
 * ("resource.metadata.labels") and the key. It fills *out (pointers stay valid
 * for the evaluation) and returns 0; -ENOENT for a map key that is not there
 * (the language reads it as "" or an empty list); -EINVAL for a field that
 * does not exist. -ENOENT for a plain field (key NULL) reads the same way: a
 * session.* field a session lacks. Any other negative errno fails the
 * evaluation with that code. A value is never NULL: PRED_STRING needs s, a
 * PRED_LIST with n > 0 needs list and every item.
 */
struct pred_env {
	int (*lookup)(void *ctx, const char *field, const char *key, struct pred_value *out);
	void *ctx;
};

struct pred_expr;

/*
 * Parse src. On error returns -EINVAL and writes one line with the 1-based
 * column: "column 17: expected ')' after the arguments of contains"
 * (columns count characters; an expression written over several lines gets
 * "line 2, column 5: ..."). Longer than PRED_MAX_LEN bytes: -E2BIG; out of
 * memory: -ENOMEM. Unknown functions, wrong arities and type errors the
 * literals already show ("!\"a\"") are parse errors.
 *
 * known_fields (NULL-terminated, may be NULL to accept any field, indexed or
 * not) lists what may be named:
 *   "user.metadata.name"          a plain field; indexing it is an error
 *   "resource.metadata.labels[]"  a map field; it must be indexed with a key,
 *                                 resource.metadata.labels["env"]
 *   "session.*"                   every field below session, indexed or not
 * Anything else is an error naming the field.
 */
int pred_parse(const char *src, const char *const *known_fields, struct pred_expr **out, char *err,
	       size_t errlen);
/*
 * Evaluate to a boolean. Type errors ("&& needs booleans") are -EINVAL with a
 * reason and the column. Lists the expression builds (set()) live until it
 * returns. e is not modified: threads may evaluate one expression at once.
 */
int pred_eval(const struct pred_expr *e, const struct pred_env *env, bool *result, char *err,
	      size_t errlen);
void pred_free(struct pred_expr *e);

/* The fields of inference_policy filters, for pred_parse's known_fields. */
extern const char *const pred_policy_fields[];

#endif
