/* sessrec-agent configuration (/etc/sessrec/agent.yaml). */
#ifndef SESSREC_AGENT_CONFIG_H
#define SESSREC_AGENT_CONFIG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct agent_label {
	char *key;
	char *value;
};

/* Where recordings go (the "collector" section). No url: they stay local. */
struct agent_collector_conf {
	char *url;		    /* https://host:port[/prefix]; NULL or "": no collector */
	char *ca_file;		    /* CA of the collector's certificate; NULL: the system's */
	char *cert_file;	    /* the node's client certificate (PEM) */
	char *key_file;		    /* its key (PEM) */
	char *mode;		    /* async (default) or sync */
	uint32_t sync_grace_period; /* seconds; default 30 */
};

struct agent_config {
	char *node_name;      /* default: the host name */
	char *data_dir;	      /* default: /var/lib/sessrec */
	char *audit_log;      /* default: /var/log/sessrec/audit.log */
	char *socket;	      /* default: /run/sessrec/agent.sock */
	char *socket_group;   /* group (besides root) allowed to open sessions; default none */
	char *metrics_listen; /* host:port; default 127.0.0.1:9464; "" disables */
	char *log_level;      /* error, warn, info (default), debug */
	struct agent_label *labels; /* node labels */
	size_t n_labels;
	uint32_t part_size;	/* recording part size in bytes; default 1 MiB */
	uint32_t part_interval; /* flush a part at least every N seconds; default 5 */
	struct {
		bool enabled;		       /* default true */
		uint32_t command_buffer_size;  /* pages, power of two; default 8 */
		uint32_t disk_buffer_size;     /* default 128 */
		uint32_t network_buffer_size;  /* default 8 */
		uint32_t terminal_buffer_size; /* default 1024 */
		char *cgroup_path;	       /* default /cgroup2 */
		char *root_path;	       /* default sessrec */
		char *pin_path;		       /* default /sys/fs/bpf/sessrec */
	} er;
	struct agent_collector_conf collector;
};

/* A collector is configured (collector.url set). */
bool agent_config_has_collector(const struct agent_config *c);
/* Sync mode: parts stream while sessions run. */
bool agent_config_sync(const struct agent_config *c);

/*
 * Load and validate a config file into a fresh struct. On error returns
 * -errno and writes one line "FILE:LINE: problem" into err.
 * path NULL means: defaults only.
 */
int agent_config_load(const char *path, struct agent_config **out, char *err, size_t errlen);
/* Defaults only, never fails except on -ENOMEM. */
int agent_config_defaults(struct agent_config **out);
void agent_config_free(struct agent_config *c);
/* Print the effective configuration as YAML (for --check-config -v). */
void agent_config_dump(const struct agent_config *c, FILE *f);

#endif
