/*
 * Table-driven YAML configuration (libyaml event API), shared by the agent and
 * the collector.
 *
 * A program describes its config struct with a table of struct conf_key,
 * terminated by CONF_END. Sections are sub-tables whose offsets are relative
 * to the same base struct (offsetof(struct x, sect.field)). Loading is always:
 *
 *	struct x *c = calloc(1, sizeof(*c));
 *	conf_defaults(table, c);                       defaults first
 *	conf_parse_file(table, c, path, err, errlen);  file values on top
 *	... cross-field checks ...
 *	swap c in whole, or conf_free(table, c); free(c);
 *
 * so a bad file (or a bad reload) never changes the running configuration.
 * Parsing stops at the first problem and writes one line "FILE:LINE: problem"
 * (line 1-based) into err: unknown keys, wrong types, values out of range,
 * duplicate keys, YAML syntax errors, a top level that is not a mapping, more
 * than one document, aliases. An empty file (or one holding only comments)
 * leaves the defaults. Input is capped at CONF_MAX_SIZE bytes and nesting at
 * CONF_MAX_DEPTH levels. The whole file is checked for YAML syntax first, so a
 * syntax error is reported as such even after a value that would be refused.
 *
 * Scalar syntax: bools true/false/yes/no/on/off (any case); uint32 decimal
 * digits; sizes digits with an optional K, KiB, M, MiB, G or GiB (powers of
 * 1024); durations digits with an optional s, m or h (stored as seconds).
 * An empty value (nothing, ~ or null) is "no value": allowed for strings with
 * CONF_NULLABLE (stored as NULL), and for sections, maps and lists (no entries);
 * an error for everything else.
 */
#ifndef SESSREC_CONF_H
#define SESSREC_CONF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#define CONF_MAX_SIZE  (1024u * 1024u) /* bytes of YAML read at most */
#define CONF_MAX_DEPTH 16	       /* mappings and lists inside each other */

enum conf_type {
	CONF_T_END = 0,	 /* terminates a table */
	CONF_T_STRING,	 /* char *, malloc'd */
	CONF_T_BOOL,	 /* bool */
	CONF_T_UINT32,	 /* uint32_t */
	CONF_T_SIZE,	 /* uint32_t bytes, suffixes K KiB M MiB G GiB */
	CONF_T_DURATION, /* uint32_t seconds, suffixes s m h */
	CONF_T_SECTION,	 /* nested mapping described by sub */
	CONF_T_MAP,	 /* string -> string: array of pairs + size_t count */
	CONF_T_STRLIST,	 /* char ** + size_t count */
	CONF_T_EXTERN,	 /* any value, skipped: the program parses it itself */
};

/* flags */
#define CONF_POW2     0x1u /* numbers: must be a power of two */
#define CONF_NULLABLE 0x2u /* strings: an empty value stores NULL */

struct conf_key {
	const char *name; /* YAML key; NULL ends the table */
	enum conf_type type;
	size_t offset;		    /* of the field (or array pointer) in the base struct */
	const struct conf_key *sub; /* CONF_T_SECTION */
	unsigned int flags;

	/* defaults, applied by conf_defaults() */
	const char *def_str; /* strings; NULL leaves the field NULL */
	uint32_t def_u32;    /* numbers */
	bool def_bool;

	/* numbers: inclusive range; max 0 means no upper bound */
	uint32_t min, max;

	/* strings: allowed values, NULL-terminated; NULL allows any */
	const char *const *choices;
	/*
	 * Strings, map keys and list items: return 0, or -EINVAL with a short
	 * reason ("must be an absolute path") in why. Called with the line of
	 * the value at hand, so the error points at it.
	 */
	int (*check)(const char *s, char *why, size_t whylen);
	/* Map values. */
	int (*check_value)(const char *s, char *why, size_t whylen);

	/* maps and lists */
	size_t count_offset; /* size_t count in the base struct */
	size_t max_items;    /* 0: 4096 */
	size_t elem_size;    /* maps: element struct holding two char * */
	size_t key_offset;   /* maps: of the key in the element */
	size_t value_offset; /* maps: of the value in the element */
};

/*
 * Table helpers. Each checks at compile time that the field has the C type
 * the conf type writes (a mismatch is an incompatible-pointer error). Extra
 * designated initializers (.check = ..., .flags = ...) go after the fixed
 * arguments.
 */
#define CONF__CHECK(ctype, T, f) (0 * sizeof((ctype *){&((T *)0)->f}))
#define CONF__OFF(ctype, T, f)	 (offsetof(T, f) + CONF__CHECK(ctype, T, f))

#define CONF_STRING(nm, T, f, def, ...)                                                            \
	{                                                                                          \
		.name = (nm), .type = CONF_T_STRING, .offset = CONF__OFF(char *, T, f),            \
		.def_str = (def), __VA_ARGS__                                                      \
	}
#define CONF_BOOL(nm, T, f, def, ...)                                                              \
	{                                                                                          \
		.name = (nm), .type = CONF_T_BOOL, .offset = CONF__OFF(bool, T, f),                \
		.def_bool = (def), __VA_ARGS__                                                     \
	}
#define CONF_UINT32(nm, T, f, def, lo, hi, ...)                                                    \
	{                                                                                          \
		.name = (nm), .type = CONF_T_UINT32, .offset = CONF__OFF(uint32_t, T, f),          \
		.def_u32 = (def), .min = (lo), .max = (hi), __VA_ARGS__                            \
	}
#define CONF_SIZE(nm, T, f, def, lo, hi, ...)                                                      \
	{                                                                                          \
		.name = (nm), .type = CONF_T_SIZE, .offset = CONF__OFF(uint32_t, T, f),            \
		.def_u32 = (def), .min = (lo), .max = (hi), __VA_ARGS__                            \
	}
#define CONF_DURATION(nm, T, f, def, lo, hi, ...)                                                  \
	{                                                                                          \
		.name = (nm), .type = CONF_T_DURATION, .offset = CONF__OFF(uint32_t, T, f),        \
		.def_u32 = (def), .min = (lo), .max = (hi), __VA_ARGS__                            \
	}
#define CONF_SECTION(nm, subtable)                                                                 \
	{                                                                                          \
		.name = (nm), .type = CONF_T_SECTION, .sub = (subtable)                            \
	}
/* arr: E *field, n: size_t field, E: element struct with char *k and char *v. */
#define CONF_MAP(nm, T, arr, n, E, k, v, ...)                                                      \
	{                                                                                          \
		.name = (nm), .type = CONF_T_MAP, .offset = CONF__OFF(E *, T, arr),                \
		.count_offset = CONF__OFF(size_t, T, n), .elem_size = sizeof(E),                   \
		.key_offset = CONF__OFF(char *, E, k), .value_offset = CONF__OFF(char *, E, v),    \
		__VA_ARGS__                                                                        \
	}
#define CONF_STRLIST(nm, T, arr, n, ...)                                                           \
	{                                                                                          \
		.name = (nm), .type = CONF_T_STRLIST, .offset = CONF__OFF(char **, T, arr),        \
		.count_offset = CONF__OFF(size_t, T, n), __VA_ARGS__                               \
	}
/* A key whose value (any YAML) the program reads itself; conf checks its syntax only. */
#define CONF_EXTERN(nm)                                                                            \
	{                                                                                          \
		.name = (nm), .type = CONF_T_EXTERN                                                \
	}
#define CONF_END                                                                                   \
	{                                                                                          \
		.name = NULL                                                                       \
	}

/* Set every default of table into base (zeroed or conf_free'd). 0 or -ENOMEM. */
int conf_defaults(const struct conf_key *table, void *base);

/*
 * Parse a file (at most CONF_MAX_SIZE bytes) over what base holds. Returns 0;
 * -EINVAL on a config problem, -EFBIG on a file too large, -ENOMEM, or the
 * -errno of open/read; err then holds one line naming path (and the line for
 * problems inside the file). On error base may be partly updated: free it.
 */
int conf_parse_file(const struct conf_key *table, void *base, const char *path, char *err,
		    size_t errlen);
/* The same over a buffer; name is what error lines start with. */
int conf_parse_buffer(const struct conf_key *table, void *base, const char *name, const char *buf,
		      size_t len, char *err, size_t errlen);

/* Free every string, map and list that table describes in base; leaves them NULL/0. */
void conf_free(const struct conf_key *table, void *base);

/*
 * Write base as YAML that conf_parse_* reads back to the same values: strings
 * double-quoted, numbers plain, maps and sections as block mappings. 0 or -EIO.
 */
int conf_dump(const struct conf_key *table, const void *base, FILE *f);

/* Ready-made checks for .check. */
int conf_check_abs_path(const char *s, char *why, size_t whylen);
int conf_check_nonempty(const char *s, char *why, size_t whylen);

#endif
