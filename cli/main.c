/* sessrec: the command-line tool. Dispatches argv[1] through the command table. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"

struct cli_cmd {
	const char *name;
	int (*run)(int argc, char **argv);
	void (*usage)(FILE *out);
	const char *summary;
};

static const struct cli_cmd cli_cmds[] = {
    {"run", do_run, cli_run_usage, "run a command as a recorded session"},
    {"ls", do_ls, cli_ls_usage, "list the sessions on the collector"},
    {"show", do_show, cli_show_usage, "show what the collector knows about a session"},
    {"events", do_events, cli_events_usage, "list the events of a recording or session"},
    {"play", do_play, cli_play_usage, "replay the terminal output of a recording"},
    {"export", do_export, cli_export_usage, "convert a recording to asciicast or JSON"},
    {"verify", do_verify, cli_verify_usage, "check that a recording is complete and intact"},
    {"audit", do_audit, cli_audit_usage, "print the collector's audit log (audit tail [-f])"},
    {"summary", do_summary, cli_summary_usage, "show a session's summary and risk assessment"},
    {"summarize", do_summarize, cli_summarize_usage, "ask the collector to summarize a session"},
    {"create", do_create, cli_create_usage, "create inference models, secrets and policies"},
    {"get", do_get, cli_get_usage, "show inference models, secrets and policies"},
    {"rm", do_rm, cli_rm_usage, "remove an inference model, secret or policy"},
};

#define CLI_NCMDS (sizeof(cli_cmds) / sizeof(cli_cmds[0]))

static const struct cli_cmd *cli_find(const char *name)
{
	for (size_t i = 0; i < CLI_NCMDS; i++) {
		if (strcmp(cli_cmds[i].name, name) == 0)
			return &cli_cmds[i];
	}
	return NULL;
}

static void cli_usage(FILE *out)
{
	fprintf(out,
		"Usage: %s [--url URL] [--token T] [--ca FILE] COMMAND [OPTIONS] [ARGS]\n"
		"       %s help COMMAND | --help | --version\n\n"
		"Record interactive sessions with eBPF, and read the recordings.\n\n"
		"Commands:\n",
		CLI_PROG, CLI_PROG);
	for (size_t i = 0; i < CLI_NCMDS; i++)
		fprintf(out, "  %-9s  %s\n", cli_cmds[i].name, cli_cmds[i].summary);
	fprintf(out,
		"\nThe commands that talk to the collector take --url, --token and --ca (also\n"
		"before the command), else SESSREC_URL, SESSREC_TOKEN and SESSREC_CA, else\n"
		"url, token and ca in ~/.config/sessrec/config.yaml.\n");
	fprintf(out, "\nEvery command takes --help. Exit status: 0 on success, 1 when the command\n"
		     "failed (one line on stderr says why), 2 on a bad command line; `run` exits\n"
		     "with the status of the command it ran.\n");
}

static int cli_unknown(const char *what, const char *name)
{
	cli_err("unknown %s '%s' (see '%s --help')", what, name, CLI_PROG);
	return CLI_EXIT_USAGE;
}

/* sessrec help [COMMAND] */
static int cli_help(int argc, char **argv)
{
	const struct cli_cmd *cmd;

	if (argc < 2) {
		cli_usage(stdout);
		return CLI_EXIT_OK;
	}
	if (argc > 2) {
		cli_err("help: expected one command, got %d words", argc - 1);
		return CLI_EXIT_USAGE;
	}
	cmd = cli_find(argv[1]);
	if (!cmd)
		return cli_unknown("command", argv[1]);
	cmd->usage(stdout);
	return CLI_EXIT_OK;
}

static int cli_flush(int status)
{
	/* A full disk or a closed pipe on stdout is an error too, not a silent success. */
	if (fflush(stdout) != 0 && status == CLI_EXIT_OK) {
		cli_err("stdout: %m");
		status = CLI_EXIT_FAIL;
	}
	return status;
}

/*
 * A program started with stdin, stdout or stderr closed would hand those
 * numbers to the first files it opens (a pty master taken for stdin, a
 * recording written to by an error message): fill them with /dev/null.
 */
static int cli_std_fds(void)
{
	for (int fd = STDIN_FILENO; fd <= STDERR_FILENO; fd++) {
		int nfd;

		if (fcntl(fd, F_GETFD) >= 0 || errno != EBADF)
			continue;
		nfd = open("/dev/null", O_RDWR);
		if (nfd < 0)
			return -errno;
		if (nfd != fd) {
			/* Only possible when a lower one was taken: not a closed slot then. */
			close(nfd);
			return -EBADF;
		}
	}
	return 0;
}

/*
 * --url, --token and --ca before the command ("sessrec --url U ls"): taken
 * here, under what the command's own flags say. Returns how many words were
 * used, or -1 after an error message.
 */
static int cli_global_opts(int argc, char **argv)
{
	static const char *const names[] = {"--url", "--token", "--ca"};
	static const int codes[] = {CLI_OPT_URL, CLI_OPT_TOKEN, CLI_OPT_CA};
	struct cli_remote r = {0};
	int i = 1;

	while (i < argc) {
		size_t k, n;

		for (k = 0; k < 3; k++) {
			n = strlen(names[k]);
			if (strncmp(argv[i], names[k], n) == 0 &&
			    (argv[i][n] == '\0' || argv[i][n] == '='))
				break;
		}
		if (k == 3)
			break;
		if (argv[i][n] == '=') {
			cli_remote_opt(&r, codes[k], argv[i] + n + 1);
			i++;
		} else if (i + 1 < argc) {
			cli_remote_opt(&r, codes[k], argv[i + 1]);
			i += 2;
		} else {
			cli_err("option '%s' needs a value (see '%s --help')", names[k], CLI_PROG);
			return -1;
		}
	}
	cli_remote_set_global(&r);
	return i - 1;
}

int main(int argc, char **argv)
{
	const struct cli_cmd *cmd;
	const char *name;
	int status, used;

	if (cli_std_fds() < 0)
		return CLI_EXIT_FAIL;
	used = cli_global_opts(argc, argv);
	if (used < 0)
		return CLI_EXIT_USAGE;
	argc -= used;
	argv += used;
	name = argc > 1 ? argv[1] : NULL;
	if (!name) {
		cli_usage(stderr);
		status = CLI_EXIT_USAGE;
	} else if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
		cli_usage(stdout);
		status = CLI_EXIT_OK;
	} else if (strcmp(name, "--version") == 0 || strcmp(name, "-V") == 0) {
		printf("%s %s\n", CLI_PROG, SESSREC_VERSION);
		status = CLI_EXIT_OK;
	} else if (strcmp(name, "help") == 0) {
		status = cli_help(argc - 1, argv + 1);
	} else if (name[0] == '-') {
		status = cli_unknown("option", name);
	} else if ((cmd = cli_find(name))) {
		status = cmd->run(argc - 1, argv + 1);
	} else {
		status = cli_unknown("command", name);
	}
	return cli_flush(status);
}
