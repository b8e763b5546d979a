/* sessrec-collector internals: the private header of collector/. */
#ifndef SESSREC_COLLECTOR_H
#define SESSREC_COLLECTOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* ------------------------------------------------------------ config.c */

/* A user's trait (users.NAME.traits.KEY): a list of values. */
struct collector_trait {
	char *key;
	char **values;
	size_t n_values;
};

/* Who a user is for policy filters: the config's users.NAME. */
struct collector_user {
	char *name;
	char **roles;
	size_t n_roles;
	struct collector_trait *traits;
	size_t n_traits;
};

struct collector_config {
	char *listen;		/* host:port; default 127.0.0.1:8443 */
	char *data_dir;		/* default /var/lib/sessrec/collector */
	char *log_level;	/* error, warn, info (default), debug */
	bool insecure_dev_mode; /* plain HTTP, loopback only; default false */
	struct {
		char *cert_file;      /* server certificate (PEM) */
		char *key_file;	      /* its key (PEM) */
		char *client_ca_file; /* CA that signs node certificates (PEM) */
	} tls;
	uint32_t audit_rotate_size;   /* rotate events.log at this size; default 64 MiB */
	uint32_t audit_keep;	      /* rotated files kept; default 10 */
	uint32_t max_part_size;	      /* upload body cap; default 40 MiB */
	uint32_t max_connections;     /* default 256 */
	uint32_t request_timeout;     /* seconds; default 60 */
	char *store;		      /* storage backend: "local" (default) */
	uint32_t summary_workers;     /* threads running summary jobs; default 2 */
	struct collector_user *users; /* users: name -> roles, traits (policy filters) */
	size_t n_users;
};

/* Load and validate (FILE:LINE: problem in err). path NULL: defaults only. */
int collector_config_load(const char *path, struct collector_config **out, char *err,
			  size_t errlen);
void collector_config_free(struct collector_config *c);
void collector_config_dump(const struct collector_config *c, FILE *f);
/* users.NAME, or NULL when the config does not name that user. */
const struct collector_user *collector_config_user(const struct collector_config *c,
						   const char *name);

/* ------------------------------------------------------------ store.h: storage backends */

/* A session as the index knows it (strings owned by the struct). */
struct store_session {
	char sid[40];
	char *node, *user, *login, *kind;
	char *labels_json;	    /* {"k":"v",...} */
	char *initial_command_json; /* ["bash",...] */
	int64_t start_ns, end_ns;   /* 0 while unknown */
	int32_t exit_code;
	uint32_t cols, rows;
	uint64_t events, commands, bytes;
	uint32_t parts;
	char *status;	 /* "uploading" or "complete" */
	char *closed_by; /* "session" or "completer" */
	/* read only: the risk level of the latest successful summary; "" when none */
	char risk_level[16];
};
void store_session_clear(struct store_session *s);

struct store_filter {
	const char *user, *node, *kind, *status;
	int64_t from_ns, to_ns;	   /* 0: open */
	const char *const *labels; /* "k=v" */
	size_t n_labels;
	const char *command; /* substring of a command's path or argv */
	const char *addr;    /* exact destination address */
	const char *risk;    /* risk level of the latest successful summary */
	uint32_t limit;
	const char *cursor; /* opaque, from the previous page */
};

/* One indexed event of a completed session (what the search needs). */
struct store_event {
	uint64_t ei;
	int64_t time_ns;
	const char *type;    /* "session.command", ... */
	const char *program; /* commands, disk, network */
	const char *path;
	const char *argv; /* commands: argv joined by spaces */
	const char *addr; /* network: destination address */
	uint32_t port;
	int32_t return_code;
};

/* An inference resource (docs/summaries.md) as stored. */
struct store_resource {
	char kind[32]; /* "inference_model", "inference_secret", "inference_policy" */
	char *name;
	char *json; /* the whole resource as validated (a secret's value included) */
	int64_t created_ns, updated_ns;
};
void store_resource_clear(struct store_resource *r);

/* A summary job: one session, one model. */
struct store_job {
	int64_t id;
	char sid[40];
	char *model;	    /* inference_model name */
	char *policy;	    /* the policy that chose it; "" for manual jobs */
	char origin[8];	    /* "auto" or "manual" */
	char status[16];    /* pending, running, done, failed, budget_exceeded */
	uint32_t attempts;  /* times it was started */
	int64_t next_at_ns; /* pending: not before */
	int64_t created_ns, updated_ns;
	char *error;	    /* why it failed or waits; "" */
	char *requested_by; /* manual: who asked */
};
void store_job_clear(struct store_job *j);

/* A summary of a session (a failed attempt too: success false, error set). */
struct store_summary {
	int64_t id;
	char sid[40];
	int64_t job_id;
	char origin[8];
	char *model_name, *provider, *model_id;
	char *title, *short_description, *detailed_description;
	char risk_level[16]; /* low, medium, high, critical; "" when failed */
	uint32_t risk_score;
	char *risk_reasons_json;	 /* ["...",...] */
	char *commands_of_interest_json; /* ["...",...] */
	bool needs_review;
	uint64_t tokens_in, tokens_out;
	uint32_t chunks; /* transcript chunks summarized (1: whole) */
	uint64_t transcript_bytes, raw_bytes;
	int64_t started_ns, finished_ns;
	bool success;
	char *error_code, *error;
};
void store_summary_clear(struct store_summary *m);

struct store;

/*
 * A storage backend. Every function returns 0 or a negative errno. Parts and
 * audit lines are durable (fsync'd) when the call returns 0. Thread-safe: the
 * HTTP server calls it from several threads.
 */
struct store_ops {
	const char *name;
	int (*open)(struct store **out, const struct collector_config *cfg);
	void (*close)(struct store *s);

	/* -ENOENT when part n of sid is not stored; else its SHA-256 and size. */
	int (*part_stat)(struct store *s, const char *sid, uint32_t n, uint8_t sha256[32],
			 uint64_t *size);
	/* Store part n durably (its sha256 given). -EEXIST if a part n is there already. */
	int (*part_put)(struct store *s, const char *sid, uint32_t n, const uint8_t *buf,
			size_t len, const uint8_t sha256[32]);
	/* Read part n into a malloc'd buffer. */
	int (*part_get)(struct store *s, const char *sid, uint32_t n, uint8_t **buf, size_t *len);

	/* Insert or replace a session's index row. */
	int (*session_put)(struct store *s, const struct store_session *ss);
	/* -ENOENT when unknown. */
	int (*session_get)(struct store *s, const char *sid, struct store_session *out);
	/* Matching sessions, newest first; *next_cursor malloc'd or NULL at the end. */
	int (*session_list)(struct store *s, const struct store_filter *f,
			    int (*cb)(void *ctx, const struct store_session *ss), void *ctx,
			    char **next_cursor);
	/* Replace the indexed events of a session (at completion). */
	int (*events_put)(struct store *s, const char *sid, const struct store_event *ev, size_t n);

	/* Append lines (no newline inside) to the central audit log, durably, in order. */
	int (*audit_append)(struct store *s, const char *const *lines, size_t n);
	/*
	 * Audit lines after cursor (0: from the start), oldest first, at most limit;
	 * *next is the cursor to continue from. Filtering by type/sid is the
	 * caller's (it parses the JSON anyway for access checks).
	 */
	int (*audit_read)(struct store *s, uint64_t cursor, uint32_t limit,
			  int (*cb)(void *ctx, uint64_t cursor, const char *line), void *ctx,
			  uint64_t *next);

	/* Tokens: only the SHA-256 of a token is stored. */
	int (*token_put)(struct store *s, const char *id, const char *user, const char *role,
			 const uint8_t hash[32]);
	/* -ENOENT when no live token has this hash. */
	int (*token_find)(struct store *s, const uint8_t hash[32], char *user, size_t userlen,
			  char *role, size_t rolelen);
	int (*token_list)(struct store *s,
			  int (*cb)(void *ctx, const char *id, const char *user, const char *role,
				    int64_t created_ns, bool revoked),
			  void *ctx);
	int (*token_revoke)(struct store *s, const char *id_or_prefix);

	/* ---- inference resources */

	/*
	 * Store n resources in one transaction. Without replace, -EEXIST when one
	 * exists already (*conflict: its index) and nothing is stored.
	 */
	int (*resource_put)(struct store *s, const struct store_resource *r, size_t n, bool replace,
			    size_t *conflict);
	/* -ENOENT when there is none. */
	int (*resource_get)(struct store *s, const char *kind, const char *name,
			    struct store_resource *out);
	/* Every resource of kind (NULL: all), by kind then name. */
	int (*resource_list)(struct store *s, const char *kind,
			     int (*cb)(void *ctx, const struct store_resource *r), void *ctx);
	/* -ENOENT when there is none. */
	int (*resource_delete)(struct store *s, const char *kind, const char *name);
	/* Small settings of the collector itself ("inference_defaults"): -ENOENT when unset. */
	int (*meta_get)(struct store *s, const char *key, char **value);
	int (*meta_set)(struct store *s, const char *key, const char *value);

	/* ---- summary jobs (pending work survives a restart) */

	/*
	 * A new job (status, attempts and times are the store's). An automatic
	 * job for a session that has one already: -EEXIST (at most one per
	 * session). *id: the new job's id.
	 */
	int (*job_add)(struct store *s, const struct store_job *j, int64_t *id);
	/* The oldest pending job due at now_ns, made running (attempts + 1). -ENOENT: none. */
	int (*job_claim)(struct store *s, int64_t now_ns, struct store_job *out);
	/* Set a job's status, next time and error. */
	int (*job_update)(struct store *s, int64_t id, const char *status, int64_t next_at_ns,
			  const char *error);
	int (*job_get)(struct store *s, int64_t id, struct store_job *out);
	/*
	 * Jobs, newest first: of sid (NULL: all), in status (NULL: any), at most
	 * limit (0: 100).
	 */
	int (*job_list)(struct store *s, const char *sid, const char *status, uint32_t limit,
			int (*cb)(void *ctx, const struct store_job *j), void *ctx);
	/* How many jobs there are per model and status. */
	int (*job_counts)(struct store *s,
			  int (*cb)(void *ctx, const char *model, const char *status, uint64_t n),
			  void *ctx);
	/*
	 * Make jobs pending again: status "running" (a collector that stopped
	 * mid-job) or "budget_exceeded" (a new day, a raised budget), model NULL
	 * for every model. *n: how many.
	 */
	int (*job_requeue)(struct store *s, const char *status, const char *model, int64_t now_ns,
			   uint64_t *n);

	/* ---- token spending, per model and UTC day ("2026-11-22") */
	int (*usage_add)(struct store *s, const char *model, const char *day, uint64_t tokens_in,
			 uint64_t tokens_out);
	/* 0 with zeros when nothing was spent. */
	int (*usage_get)(struct store *s, const char *model, const char *day, uint64_t *tokens_in,
			 uint64_t *tokens_out);

	/* ---- summaries */

	/*
	 * Store a summary and, when m->job_id is set, end that job in the same
	 * transaction (done when m->success, else failed with m->error).
	 */
	int (*summary_put)(struct store *s, const struct store_summary *m, int64_t *id);
	/* The latest summary of sid (successful or not). -ENOENT when none. */
	int (*summary_get)(struct store *s, const char *sid, struct store_summary *out);
	/* Every summary of sid, newest first. */
	int (*summary_list)(struct store *s, const char *sid,
			    int (*cb)(void *ctx, const struct store_summary *m), void *ctx);
	/* The newest central audit line of sid with this event name. -ENOENT when none. */
	int (*audit_find)(struct store *s, const char *sid, const char *event, char **line);
};

/* The embedded default: part files under data_dir, SQLite index, events.log. */
extern const struct store_ops store_local_ops;
/* The backend named in the configuration, or NULL. */
const struct store_ops *store_find(const char *name);

/* ------------------------------------------------------------ ingest.c */

/*
 * Check an uploaded part against the stored chain and store it.
 * Returns 201/200/4xx status in *status and a one-line reason in why.
 */
int collector_part_upload(struct store *st, const struct store_ops *ops, const char *sid,
			  uint32_t n, const uint8_t *buf, size_t len, int *status, char *why,
			  size_t whylen);
/* Complete a session: verify, index, audit. Status and reason as above. */
int collector_session_complete(struct store *st, const struct store_ops *ops, const char *sid,
			       const char *node, uint32_t parts, const char *end_json, int *status,
			       char *why, size_t whylen);

/* The hook collector_session_complete calls once a session became complete (not on repeats). */
typedef void (*collector_complete_hook)(void *ctx, const struct store_session *row,
					const char *end_line);
/*
 * Called after indexing, with the session's row and its session.end audit
 * line (NULL when the recording has none). Must be quick: the node waits for
 * the answer. NULL removes it.
 */
void collector_set_complete_hook(collector_complete_hook fn, void *ctx);

/* ------------------------------------------------------------ resource.c: inference resources */

#define RESOURCE_NAME_MAX	    128	       /* bytes of a resource name */
#define RESOURCE_DOCS_MAX	    64	       /* documents in one create */
#define RESOURCE_YAML_MAX	    (1u << 20) /* bytes of one create's YAML */
#define RESOURCE_LENGTH_DEFAULT	    200000u    /* max_session_length_bytes */
#define RESOURCE_SESSION_KIND_NAMES "ssh, k8s, db, local"

enum resource_kind {
	RESOURCE_MODEL = 0, /* inference_model */
	RESOURCE_SECRET,    /* inference_secret */
	RESOURCE_POLICY,    /* inference_policy */
	RESOURCE_KINDS,
};

struct resource_model {
	char *provider;	  /* "openai", "bedrock" or "builtin" */
	char *model_id;	  /* openai_model_id or bedrock_model_id; "" for builtin */
	char *base_url;	  /* openai; "" for the public API */
	char *secret_ref; /* openai: api_key_secret_ref; "" for none */
	char *region;	  /* bedrock */
	double temperature;
	uint64_t max_session_length_bytes; /* RESOURCE_LENGTH_DEFAULT when not given */
	uint64_t max_tokens_per_day;	   /* 0: no limit */
	uint32_t timeout_s, max_retries;   /* 0: the provider's defaults */
	bool have_max_retries;
};

struct resource_policy {
	uint32_t kinds; /* resource_session_kind_bit()s */
	char *model;
	char *filter; /* NULL: every session of its kinds */
};

/* One validated resource. */
struct resource {
	enum resource_kind kind;
	char *name;
	struct resource_model model;   /* RESOURCE_MODEL */
	struct resource_policy policy; /* RESOURCE_POLICY */
	char *secret;		       /* RESOURCE_SECRET: the value, never shown */
	char *json;		       /* the canonical document, as stored */
	bool replaced;		       /* resource_create: it existed and was replaced */
	unsigned int doc;	       /* 1-based place among the documents it came in */
	size_t line;		       /* its document's first line */
	size_t ref_line;	       /* line of spec.model / api_key_secret_ref */
};

/* "inference_model", "inference_secret", "inference_policy". */
const char *resource_kind_name(enum resource_kind k);
/* Full names and short ones (model, secret, policy). 0 or -EINVAL. */
int resource_kind_parse(const char *s, enum resource_kind *out);
/* The bit of a session kind (ssh, k8s, db, local); 0 for anything else. */
uint32_t resource_session_kind_bit(const char *kind);
/* A usable resource name: [A-Za-z0-9._-], 1-128, starting with a letter or digit. */
bool resource_name_valid(const char *name);

/*
 * Parse and validate YAML documents (separated by ---; JSON is YAML too).
 * Errors: -EINVAL with one line in err naming the document (its index, kind
 * and name), the line, the field and the problem; a secret's value is never
 * quoted. References between resources are not checked here.
 */
int resource_parse(const char *text, size_t len, struct resource **out, size_t *n, char *err,
		   size_t errlen);
/* A stored resource back. */
int resource_from_store(const struct store_resource *r, struct resource *out);
void resource_clear(struct resource *r);
void resource_array_free(struct resource *v, size_t n);

/*
 * POST /v1/resources: parse, check references (a policy's model, a model's
 * secret: in the same text or stored), store all or nothing. *status: 201
 * created, 400 invalid, 409 exists (without replace), 500 (with -errno).
 * *out: what was stored, in document order.
 */
int resource_create(struct store *st, const struct store_ops *ops, const char *text, size_t len,
		    bool replace, struct resource **out, size_t *n, int *status, char *why,
		    size_t whylen);
/* DELETE: 200, 404 unknown, 409 in use (a model by a policy, a secret by a model). */
int resource_delete(struct store *st, const struct store_ops *ops, enum resource_kind kind,
		    const char *name, int *status, char *why, size_t whylen);
/*
 * On the first start with no resources at all: inference_model "builtin" and
 * inference_policy "default" (every kind -> builtin). Never again once done
 * (a flag in the store), so removing them sticks. *installed: whether it did.
 */
int resource_install_defaults(struct store *st, const struct store_ops *ops, bool *installed);

/* ------------------------------------------------------------ policy.c: which policy a session
 * meets */

struct pred_expr;
struct pred_value;

struct policy {
	char *name;
	uint32_t kinds; /* resource_session_kind_bit()s */
	char *model;
	struct pred_expr *filter; /* NULL: every session of its kinds */
};

/* Policies in the order they are tried: alphabetical (byte order) by name. */
struct policy_set {
	struct policy *v;
	size_t n;
};

/*
 * From inference_policy resources (other kinds are skipped), filters
 * compiled. A filter that does not compile (it did when stored) leaves its
 * policy out, logged. 0 or -ENOMEM.
 */
int policy_set_build(struct policy_set *ps, const struct resource *res, size_t n);
void policy_set_clear(struct policy_set *ps);

/*
 * A session as filters see it: user.* (the session's user, roles and traits
 * from cfg's users), resource.* (its node, or for k8s sessions its pod) and
 * session.* (every field of its session.end audit line, end_line, which may
 * be NULL, and the session's own fields).
 */
struct policy_subject;
int policy_subject_new(struct policy_subject **out, const struct collector_config *cfg,
		       const struct store_session *row, const char *end_line);
void policy_subject_free(struct policy_subject *s);
/* The predicate lookup over a subject (struct pred_env's). */
int policy_subject_lookup(void *subject, const char *field, const char *key,
			  struct pred_value *out);
/*
 * The first policy, in name order, whose kinds hold the session's kind and
 * whose filter is true (or absent); NULL when none. A filter that fails to
 * evaluate (a type error) is false for this session, and logged.
 */
const struct policy *policy_match(const struct policy_set *ps, struct policy_subject *subj);

/*
 * ================================================================ added for http.c, ca.c, token.c
 * Declarations of the server, bootstrap and token modules (and two config
 * helpers); nothing above this line changed.
 */

/* ------------------------------------------------------------ config.c helpers */

/* Split "host:port" or "[v6]:port" (port 1-65535) into host (no brackets) and port. 0/-EINVAL. */
int collector_listen_split(const char *listen, char *host, size_t hostlen, uint16_t *port);
/* true for "localhost", 127.0.0.0/8 and ::1. */
bool collector_host_is_loopback(const char *host);

/* ------------------------------------------------------------ http.c: the HTTP(S) server */

struct collector_http;
struct summarizer;

/*
 * Listen on cfg->listen and serve docs/api.md from threads of libmicrohttpd.
 * cfg, st, ops and sum (summaries and resources; NULL: those endpoints answer
 * 503) must outlive the server. Errors are logged. 0 or -errno.
 */
int collector_http_start(struct collector_http **out, const struct collector_config *cfg,
			 struct store *st, const struct store_ops *ops, struct summarizer *sum);
/*
 * Stop accepting connections, end follow streams, wait at most timeout_s for
 * requests in flight to finish, then stop and free. Accepts NULL.
 */
void collector_http_stop(struct collector_http *h, unsigned int timeout_s);

/* ------------------------------------------------------------ token.c: bearer tokens */

#define COLLECTOR_TOKEN_PREFIX "srt_"
#define COLLECTOR_TOKEN_LEN    (sizeof(COLLECTOR_TOKEN_PREFIX) - 1 + 64) /* + 32 bytes hex */

/* A new token (COLLECTOR_TOKEN_LEN characters and a NUL) and its SHA-256. 0 or -errno. */
int collector_token_generate(char *out, size_t outlen, uint8_t hash[32]);
/* SHA-256 of a token as presented (what the store keeps). 0 or -errno. */
int collector_token_hash(const char *token, size_t len, uint8_t hash[32]);
/* "access", "auditor" or "editor". */
bool collector_token_role_valid(const char *role);
/* A user name a token may carry: 1-128 printable characters, no spaces. */
bool collector_token_user_valid(const char *user);

/* ------------------------------------------------------------ ca.c: bootstrap PKI (GnuTLS) */

/*
 * Write dir/ca.crt, ca.key, server.crt, server.key: a new CA and a server
 * certificate for hosts (DNS names or IP addresses; the first is the CN).
 * Refuses to overwrite. Keys are written 0600. 0 or -errno, reason in err.
 */
int collector_ca_init(const char *dir, const char *const *hosts, size_t n_hosts, char *err,
		      size_t errlen);
/* Write dir/NAME.crt and NAME.key: a client certificate CN=NAME signed by dir/ca.*. */
int collector_ca_issue_node(const char *dir, const char *name, char *err, size_t errlen);
/* A node name usable as a CN and a file name: [A-Za-z0-9._-], 1-64, no leading dot. */
bool collector_ca_name_valid(const char *name);

#endif
