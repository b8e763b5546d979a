/*
 * Where a recording comes from: a file on this machine, or the collector.
 * A downloaded recording goes to an unlinked temporary file (recordings can be
 * larger than memory should hold) that the readers open by /proc/self/fd.
 */
#include "cli.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

enum cli_target cli_target_of(const char *arg)
{
	struct stat st;

	if (stat(arg, &st) == 0)
		return CLI_TARGET_FILE;
	if (util_is_uuid(arg))
		return CLI_TARGET_SID;
	return CLI_TARGET_NONE;
}

static int cli_recsrc_tmpfile(int *out)
{
	const char *dir = getenv("TMPDIR");
	char *tmpl = NULL;
	int fd, err = 0;

	if (!dir || dir[0] != '/')
		dir = "/tmp";
	if (asprintf(&tmpl, "%s/sessrec-recording-XXXXXX", dir) < 0)
		return -ENOMEM;
	fd = mkostemp(tmpl, O_CLOEXEC);
	if (fd < 0) {
		err = -errno;
		goto out;
	}
	/* Gone from the folder at once: nothing is left behind, whatever happens next. */
	if (unlink(tmpl) != 0) {
		err = -errno;
		close(fd);
		goto out;
	}
	*out = fd;
out:
	free(tmpl);
	return err;
}

/* GET /v1/sessions/{sid}/recording into an unlinked temporary file. */
static int cli_recsrc_download(struct cli_recsrc *s, const char *cmd, const char *arg,
			       struct cli_client **client, const struct cli_remote *flags)
{
	char path[96];
	int err;

	for (size_t i = 0; i < UUID_STR_LEN_ - 1; i++)
		s->sid[i] = (char)tolower((unsigned char)arg[i]);
	s->sid[UUID_STR_LEN_ - 1] = '\0';
	if (!*client) {
		err = cli_client_open(client, flags);
		if (err)
			goto out;
	}
	err = cli_recsrc_tmpfile(&s->fd);
	if (err) {
		cli_err("%s: cannot create a temporary file for the recording: %s", cmd,
			strerror(-err));
		goto out;
	}
	snprintf(path, sizeof(path), "/v1/sessions/%s/recording", s->sid);
	err = cli_client_get_file(*client, path, s->fd, CLI_RECORDING_MAX);
	if (err)
		goto out;
	if (asprintf(&s->path, "/proc/self/fd/%d", s->fd) < 0) {
		s->path = NULL;
		err = -ENOMEM;
	}
	s->name = strdup(s->sid);
	if (!s->path || !s->name) {
		cli_err("out of memory");
		err = -ENOMEM;
	}
out:
	return err;
}

int cli_recsrc_open(struct cli_recsrc *s, const char *cmd, const char *arg,
		    struct cli_client **client, const struct cli_remote *flags)
{
	int err = 0;

	memset(s, 0, sizeof(*s));
	s->fd = -1;
	switch (cli_target_of(arg)) {
	case CLI_TARGET_FILE:
		s->path = strdup(arg);
		s->name = strdup(arg);
		if (!s->path || !s->name) {
			cli_err("out of memory");
			err = -ENOMEM;
		}
		break;
	case CLI_TARGET_SID:
		err = cli_recsrc_download(s, cmd, arg, client, flags);
		break;
	default:
		cli_err("%s: %s: no such file, and not a session id (a UUID)", cmd, arg);
		err = -ENOENT;
		break;
	}
	if (err)
		cli_recsrc_close(s);
	return err;
}

void cli_recsrc_close(struct cli_recsrc *s)
{
	if (!s)
		return;
	if (s->fd >= 0)
		close(s->fd);
	free(s->path);
	free(s->name);
	memset(s, 0, sizeof(*s));
	s->fd = -1;
}
