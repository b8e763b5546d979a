/* sessrec-collector: stores recordings from the nodes and serves them (docs/api.md). */
#include <errno.h>
#include <getopt.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "collector.h"
#include "log.h"
#include "summarize.h"
#include "util.h"

#define COLLECTOR_PROG		 "sessrec-collector"
#define COLLECTOR_DEFAULT_CONFIG "/etc/sessrec/collector.yaml"
#define COLLECTOR_HOSTS_MAX	 32
#define COLLECTOR_DEFAULT_HOSTS	 "localhost,127.0.0.1,::1"
#define COLLECTOR_EXIT_USAGE	 2

static void usage(FILE *f)
{
	fprintf(f,
		"Usage: " COLLECTOR_PROG " [-c FILE] [--check-config] [--log-level LEVEL]\n"
		"       " COLLECTOR_PROG " ca init --dir DIR [--host H[,H...]]...\n"
		"       " COLLECTOR_PROG " ca issue-node NAME --dir DIR\n"
		"       " COLLECTOR_PROG " [-c FILE] token create USER --role ROLE\n"
		"       " COLLECTOR_PROG " [-c FILE] token list [--json]\n"
		"       " COLLECTOR_PROG " [-c FILE] token revoke ID\n"
		"\n"
		"Without a command: receive recordings from the nodes (HTTPS, client\n"
		"certificates), store and index them, keep the central audit log, and\n"
		"serve them to people with bearer tokens.\n"
		"\n"
		"  -c, --config FILE     configuration (default %s; missing = defaults)\n"
		"      --check-config    check the configuration, print it, and exit\n"
		"      --log-level LEVEL error, warn, info or debug (overrides the config)\n"
		"  -h, --help            this help\n"
		"  -V, --version         print the version\n"
		"\n"
		"Commands:\n"
		"  ca init               a new cluster CA and a server certificate in DIR:\n"
		"                        ca.crt ca.key server.crt server.key; --host names the\n"
		"                        server's DNS names and IP addresses (comma list or\n"
		"                        repeated; default " COLLECTOR_DEFAULT_HOSTS ")\n"
		"  ca issue-node NAME    a node's client certificate DIR/NAME.crt, NAME.key\n"
		"  token create USER     print a new token for USER with ROLE: access (own\n"
		"                        sessions), auditor (everything) or editor\n"
		"  token list            every token: id, user, role, created, revoked\n"
		"  token revoke ID       revoke a token (an id or a unique prefix of one)\n"
		"\n"
		"Signals: SIGTERM/SIGINT stop accepting, let requests in flight and summary\n"
		"jobs under way finish and exit; SIGHUP re-reads the configuration's log_level.\n",
		COLLECTOR_DEFAULT_CONFIG);
}

static void collector_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

static void collector_err(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, COLLECTOR_PROG ": ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* getopt's complaint for the option at hand, in our one-line form. */
static int collector_opt_error(const char *cmd, int c, char **argv)
{
	if (c == ':')
		collector_err("%s: option '%s' needs a value (see --help)", cmd, argv[optind - 1]);
	else
		collector_err("%s: unknown option '%s' (see --help)", cmd, argv[optind - 1]);
	return COLLECTOR_EXIT_USAGE;
}

/* ------------------------------------------------------------ ca */

static int collector_cmd_ca_init(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"host", required_argument, NULL, 'H'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *hosts[COLLECTOR_HOSTS_MAX], *dir = NULL;
	char *lists[COLLECTOR_HOSTS_MAX] = {0}, *save, *tok, err[512];
	size_t n_hosts = 0, n_lists = 0;
	int c, rc = COLLECTOR_EXIT_USAGE;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":d:H:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'H':
			if (n_lists == COLLECTOR_HOSTS_MAX) {
				collector_err("ca init: too many --host options");
				goto out;
			}
			lists[n_lists] = strdup(optarg);
			if (!lists[n_lists]) {
				collector_err("ca init: out of memory");
				rc = 1;
				goto out;
			}
			n_lists++;
			break;
		case 'h':
			usage(stdout);
			rc = 0;
			goto out;
		default:
			rc = collector_opt_error("ca init", c, argv);
			goto out;
		}
	}
	if (optind < argc) {
		collector_err("ca init: unexpected argument '%s'", argv[optind]);
		goto out;
	}
	if (!dir) {
		collector_err("ca init: --dir DIR is required");
		goto out;
	}
	if (n_lists == 0) {
		lists[0] = strdup(COLLECTOR_DEFAULT_HOSTS);
		if (!lists[0]) {
			collector_err("ca init: out of memory");
			rc = 1;
			goto out;
		}
		n_lists = 1;
	}
	for (size_t i = 0; i < n_lists; i++) {
		for (tok = strtok_r(lists[i], ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
			if (n_hosts == COLLECTOR_HOSTS_MAX) {
				collector_err("ca init: at most %d hosts", COLLECTOR_HOSTS_MAX);
				goto out;
			}
			hosts[n_hosts++] = tok;
		}
	}
	if (n_hosts == 0) {
		collector_err("ca init: --host: no host name given");
		goto out;
	}
	rc = 1;
	if (collector_ca_init(dir, hosts, n_hosts, err, sizeof(err))) {
		collector_err("ca init: %s", err);
		goto out;
	}
	fprintf(stderr,
		COLLECTOR_PROG ": wrote %s/ca.crt, ca.key (keep it safe: it signs every node), "
			       "server.crt, server.key\n",
		dir);
	rc = 0;
out:
	for (size_t i = 0; i < n_lists; i++)
		free(lists[i]);
	return rc;
}

static int collector_cmd_ca_issue(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"dir", required_argument, NULL, 'd'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char *dir = NULL;
	char err[512];
	int c;

	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":d:h", opts, NULL)) != -1) {
		switch (c) {
		case 'd':
			dir = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return collector_opt_error("ca issue-node", c, argv);
		}
	}
	if (argc - optind != 1) {
		collector_err("ca issue-node: expected one node NAME");
		return COLLECTOR_EXIT_USAGE;
	}
	if (!dir) {
		collector_err("ca issue-node: --dir DIR is required");
		return COLLECTOR_EXIT_USAGE;
	}
	if (collector_ca_issue_node(dir, argv[optind], err, sizeof(err))) {
		collector_err("ca issue-node: %s", err);
		return 1;
	}
	fprintf(stderr, COLLECTOR_PROG ": wrote %s/%s.crt and %s/%s.key\n", dir, argv[optind], dir,
		argv[optind]);
	return 0;
}

static int collector_cmd_ca(int argc, char **argv)
{
	if (argc < 2) {
		collector_err("ca: expected 'init' or 'issue-node' (see --help)");
		return COLLECTOR_EXIT_USAGE;
	}
	if (strcmp(argv[1], "init") == 0)
		return collector_cmd_ca_init(argc - 1, argv + 1);
	if (strcmp(argv[1], "issue-node") == 0)
		return collector_cmd_ca_issue(argc - 1, argv + 1);
	if (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0) {
		usage(stdout);
		return 0;
	}
	collector_err("ca: unknown command '%s' (init or issue-node)", argv[1]);
	return COLLECTOR_EXIT_USAGE;
}

/* ------------------------------------------------------------ token */

struct collector_token_list {
	bool json;
	bool header;
};

static int collector_token_row(void *ctx, const char *id, const char *user, const char *role,
			       int64_t created_ns, bool revoked)
{
	struct collector_token_list *l = ctx;
	char when[40];

	util_rfc3339(created_ns, when, sizeof(when));
	if (l->json) {
		/* ids, users and roles were checked when the token was made: no escaping needed */
		printf("{\"id\":\"%s\",\"user\":\"%s\",\"role\":\"%s\",\"created\":\"%s\","
		       "\"revoked\":%s}\n",
		       id, user, role, when, revoked ? "true" : "false");
	} else {
		if (!l->header) {
			printf("%-36s  %-20s  %-8s  %-24s  %s\n", "ID", "USER", "ROLE", "CREATED",
			       "REVOKED");
			l->header = true;
		}
		printf("%-36s  %-20s  %-8s  %-24s  %s\n", id, user, role, when,
		       revoked ? "yes" : "no");
	}
	return ferror(stdout) ? -EIO : 0;
}

static int collector_cmd_token(const struct collector_config *cfg, int argc, char **argv)
{
	static const struct option opts[] = {
	    {"role", required_argument, NULL, 'r'},
	    {"json", no_argument, NULL, 'j'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const struct store_ops *ops;
	struct store *st = NULL;
	struct collector_token_list list = {0};
	const char *sub, *role = NULL;
	char token[COLLECTOR_TOKEN_LEN + 1], id[UUID_STR_LEN_];
	uint8_t hash[32];
	int c, ret, rc = COLLECTOR_EXIT_USAGE;

	if (argc < 2) {
		collector_err("token: expected create, list or revoke (see --help)");
		return rc;
	}
	sub = argv[1];
	argc--;
	argv++;
	optind = 0;
	opterr = 0;
	while ((c = getopt_long(argc, argv, ":r:jh", opts, NULL)) != -1) {
		switch (c) {
		case 'r':
			role = optarg;
			break;
		case 'j':
			list.json = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			return collector_opt_error("token", c, argv);
		}
	}
	if (strcmp(sub, "create") == 0) {
		if (argc - optind != 1 || !role) {
			collector_err("token create: expected USER --role access|auditor|editor");
			return rc;
		}
		if (!collector_token_user_valid(argv[optind])) {
			collector_err("token create: user '%s': 1-128 characters, no spaces, "
				      "quotes or control characters",
				      argv[optind]);
			return rc;
		}
		if (!collector_token_role_valid(role)) {
			collector_err("token create: role '%s': access, auditor or editor", role);
			return rc;
		}
	} else if (strcmp(sub, "list") == 0) {
		if (argc - optind != 0) {
			collector_err("token list: unexpected argument '%s'", argv[optind]);
			return rc;
		}
	} else if (strcmp(sub, "revoke") == 0) {
		if (argc - optind != 1) {
			collector_err("token revoke: expected one token ID");
			return rc;
		}
	} else {
		collector_err("token: unknown command '%s' (create, list or revoke)", sub);
		return rc;
	}
	if ((role && strcmp(sub, "create") != 0) || (list.json && strcmp(sub, "list") != 0)) {
		collector_err("token %s: --%s does not apply", sub, role ? "role" : "json");
		return rc;
	}

	rc = 1;
	ops = store_find(cfg->store);
	if (!ops) {
		collector_err("store '%s' is not built in", cfg->store);
		return rc;
	}
	ret = ops->open(&st, cfg);
	if (ret) {
		collector_err("cannot open the %s store under %s: %s", cfg->store, cfg->data_dir,
			      strerror(-ret));
		return rc;
	}
	if (strcmp(sub, "create") == 0) {
		ret = collector_token_generate(token, sizeof(token), hash);
		if (ret) {
			collector_err("token create: no randomness: %s", strerror(-ret));
			goto out;
		}
		util_uuid(id);
		ret = ops->token_put(st, id, argv[optind], role, hash);
		if (ret) {
			collector_err("token create: storing the token: %s", strerror(-ret));
			goto out;
		}
		if (printf("%s\n", token) < 0 || fflush(stdout) != 0) {
			collector_err("token create: cannot write the token: %s", strerror(errno));
			goto out;
		}
		fprintf(stderr,
			COLLECTOR_PROG ": token %s for %s (%s) created; it is shown only this "
				       "once\n",
			id, argv[optind], role);
	} else if (strcmp(sub, "list") == 0) {
		ret = ops->token_list(st, collector_token_row, &list);
		if (ret) {
			collector_err("token list: %s", strerror(-ret));
			goto out;
		}
	} else {
		ret = ops->token_revoke(st, argv[optind]);
		if (ret == -ENOENT) {
			collector_err("token revoke: no token '%s'", argv[optind]);
			goto out;
		}
		if (ret == -ENOTUNIQ || ret == -EINVAL) {
			collector_err("token revoke: '%s' does not name exactly one token",
				      argv[optind]);
			goto out;
		}
		if (ret) {
			collector_err("token revoke: %s", strerror(-ret));
			goto out;
		}
		fprintf(stderr, COLLECTOR_PROG ": token %s revoked\n", argv[optind]);
	}
	rc = 0;
out:
	explicit_bzero(token, sizeof(token));
	ops->close(st);
	return rc;
}

/* ------------------------------------------------------------ the server */

static void collector_reload(const char *path)
{
	struct collector_config *n = NULL;
	enum log_level lvl;
	char err[512];

	if (!path) {
		log_info("SIGHUP: no configuration file to re-read");
		return;
	}
	if (collector_config_load(path, &n, err, sizeof(err))) {
		log_error("reload refused, configuration unchanged: %s", err);
		return;
	}
	if (log_parse_level(n->log_level, &lvl) == 0) {
		log_set_level(lvl);
		log_info("SIGHUP: log_level is %s (other changes take effect at the next start)",
			 n->log_level);
	}
	collector_config_free(n);
}

static int collector_serve(const struct collector_config *cfg, const char *cfg_path)
{
	const struct store_ops *ops;
	struct collector_http *http = NULL;
	struct summarizer *sum = NULL;
	struct store *st = NULL;
	sigset_t set;
	int sig, ret, rc = 1;

	/* Every thread started from here on (store, libmicrohttpd) inherits this mask. */
	sigemptyset(&set);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGHUP);
	ret = pthread_sigmask(SIG_BLOCK, &set, NULL);
	if (ret) {
		log_error("cannot block signals: %s", strerror(ret));
		return rc;
	}
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR) {
		log_error("cannot ignore SIGPIPE: %s", strerror(errno));
		return rc;
	}
	ops = store_find(cfg->store);
	if (!ops) {
		log_error("store '%s' is not built in", cfg->store);
		return rc;
	}
	ret = util_mkdir_p(cfg->data_dir, 0700);
	if (ret) {
		log_error("cannot create data_dir %s: %s", cfg->data_dir, strerror(-ret));
		return rc;
	}
	ret = ops->open(&st, cfg);
	if (ret) {
		log_error("cannot open the %s store under %s: %s", cfg->store, cfg->data_dir,
			  strerror(-ret));
		return rc;
	}
	ret = summarize_start(&sum, cfg, st, ops, NULL, cfg->summary_workers);
	if (ret) {
		log_error("cannot start summarizing: %s", strerror(-ret));
		goto out;
	}
	if (collector_http_start(&http, cfg, st, ops, sum))
		goto out;
	log_info(COLLECTOR_PROG " %s started: store %s under %s", SESSREC_VERSION, cfg->store,
		 cfg->data_dir);
	for (;;) {
		ret = sigwait(&set, &sig);
		if (ret) {
			log_error("sigwait: %s", strerror(ret));
			break;
		}
		if (sig == SIGHUP) {
			collector_reload(cfg_path);
			continue;
		}
		log_info("%s: no new connections; finishing requests in flight",
			 sig == SIGTERM ? "SIGTERM" : "SIGINT");
		break;
	}
	collector_http_stop(http, cfg->request_timeout);
	http = NULL;
	rc = ret ? 1 : 0;
out:
	collector_http_stop(http, 0);
	/* after the server: no completion hands it a session any more */
	if (summarize_stop(sum, cfg->request_timeout) == -EBUSY) {
		/* a worker still waits on a provider: leave the store to the exit */
		log_info("stopped (a summary job is pending again at the next start)");
		return rc;
	}
	if (!rc)
		log_info("stopped");
	ops->close(st);
	return rc;
}

int main(int argc, char **argv)
{
	static const struct option opts[] = {
	    {"config", required_argument, NULL, 'c'},	 {"check-config", no_argument, NULL, 'k'},
	    {"log-level", required_argument, NULL, 'l'}, {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},	 {NULL, 0, NULL, 0},
	};
	struct collector_config *cfg = NULL;
	const char *cfg_path = NULL, *log_level = NULL, *cmd = NULL;
	bool check = false;
	char err[512] = "";
	enum log_level lvl;
	int c, rc = 1;

	log_init(COLLECTOR_PROG, LOG_LVL_INFO);
	opterr = 0;
	/* '+': stop at the command, which parses its own options. */
	while ((c = getopt_long(argc, argv, "+:c:hV", opts, NULL)) != -1) {
		switch (c) {
		case 'c':
			cfg_path = optarg;
			break;
		case 'k':
			check = true;
			break;
		case 'l':
			log_level = optarg;
			break;
		case 'h':
			usage(stdout);
			return 0;
		case 'V':
			printf(COLLECTOR_PROG " %s\n", SESSREC_VERSION);
			return 0;
		default:
			return collector_opt_error(COLLECTOR_PROG, c, argv);
		}
	}
	if (optind < argc)
		cmd = argv[optind];
	if (cmd && strcmp(cmd, "ca") == 0) {
		if (cfg_path || check) {
			collector_err("ca: -c and --check-config do not apply");
			return COLLECTOR_EXIT_USAGE;
		}
		return collector_cmd_ca(argc - optind, argv + optind);
	}
	if (cmd && strcmp(cmd, "token") != 0) {
		collector_err("unknown command '%s' (ca or token; see --help)", cmd);
		return COLLECTOR_EXIT_USAGE;
	}
	if (cmd && check) {
		collector_err("token: --check-config does not apply");
		return COLLECTOR_EXIT_USAGE;
	}
	if (!cfg_path && access(COLLECTOR_DEFAULT_CONFIG, F_OK) == 0)
		cfg_path = COLLECTOR_DEFAULT_CONFIG;
	if (collector_config_load(cfg_path, &cfg, err, sizeof(err))) {
		collector_err("%s", err);
		return 1;
	}
	if (check) {
		collector_config_dump(cfg, stdout);
		if (fflush(stdout) != 0 || ferror(stdout)) {
			collector_err("cannot write the configuration: %s", strerror(errno));
			goto out;
		}
		fprintf(stderr, COLLECTOR_PROG ": %s: OK\n", cfg_path ? cfg_path : "(defaults)");
		rc = 0;
		goto out;
	}
	if (log_parse_level(log_level ? log_level : cfg->log_level, &lvl)) {
		collector_err("unknown log level '%s' (error, warn, info or debug)", log_level);
		rc = COLLECTOR_EXIT_USAGE;
		goto out;
	}
	log_set_level(lvl);
	if (cmd)
		rc = collector_cmd_token(cfg, argc - optind, argv + optind);
	else
		rc = collector_serve(cfg, cfg_path);
out:
	collector_config_free(cfg);
	return rc;
}
