/* The human forms of recording events, for `sessrec events` and friends. */
#include "cli.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

static const struct {
	int body;
	const char *name;
} cli_types[] = {
    {SESSREC__EVENT__BODY_START, "start"},     {SESSREC__EVENT__BODY_END, "end"},
    {SESSREC__EVENT__BODY_COMMAND, "command"}, {SESSREC__EVENT__BODY_DISK, "disk"},
    {SESSREC__EVENT__BODY_NETWORK, "network"}, {SESSREC__EVENT__BODY_PRINT, "print"},
    {SESSREC__EVENT__BODY_LOST, "lost"},
};

#define CLI_NTYPES (sizeof(cli_types) / sizeof(cli_types[0]))

const char *cli_event_type_name(int body_case)
{
	for (size_t i = 0; i < CLI_NTYPES; i++) {
		if (cli_types[i].body == body_case)
			return cli_types[i].name;
	}
	return "?";
}

static uint32_t cli_type_bit(int body_case)
{
	int i = body_case - SESSREC__EVENT__BODY_START;

	return i >= 0 && i < 32 ? 1u << i : 0;
}

int cli_event_types_parse(const char *list, uint32_t *mask)
{
	static const char prefix[] = "session.";
	const char *p = list;
	uint32_t m = 0;

	for (;;) {
		size_t n = strcspn(p, ",");
		const char *w = p;
		bool found = false;

		if (n > sizeof(prefix) - 1 && strncmp(w, prefix, sizeof(prefix) - 1) == 0) {
			w += sizeof(prefix) - 1;
			n -= sizeof(prefix) - 1;
		}
		for (size_t i = 0; i < CLI_NTYPES; i++) {
			if (strlen(cli_types[i].name) == n &&
			    strncmp(w, cli_types[i].name, n) == 0) {
				m |= cli_type_bit(cli_types[i].body);
				found = true;
			}
		}
		if (!found)
			return -EINVAL;
		p = w + n;
		if (!*p)
			break;
		p++;
	}
	*mask = m;
	return 0;
}

bool cli_event_type_match(uint32_t mask, int body_case)
{
	return mask == 0 || (mask & cli_type_bit(body_case));
}

int cli_open_flags_str(int32_t flags, char *buf, size_t len)
{
	static const struct {
		int flag;
		const char *name;
	} names[] = {
	    /* O_SYNC holds the O_DSYNC bit and O_TMPFILE O_DIRECTORY: they come first. */
	    {O_SYNC, "O_SYNC"},		  {O_DSYNC, "O_DSYNC"},	    {O_TMPFILE, "O_TMPFILE"},
	    {O_DIRECTORY, "O_DIRECTORY"}, {O_CREAT, "O_CREAT"},	    {O_EXCL, "O_EXCL"},
	    {O_NOCTTY, "O_NOCTTY"},	  {O_TRUNC, "O_TRUNC"},	    {O_APPEND, "O_APPEND"},
	    {O_NONBLOCK, "O_NONBLOCK"},	  {O_DIRECT, "O_DIRECT"},   {O_NOFOLLOW, "O_NOFOLLOW"},
	    {O_NOATIME, "O_NOATIME"},	  {O_CLOEXEC, "O_CLOEXEC"}, {O_PATH, "O_PATH"},
	    {FASYNC, "O_ASYNC"},
	};
	uint32_t rest = (uint32_t)flags;
	const char *acc;
	size_t off;
	int n;

	switch (flags & O_ACCMODE) {
	case O_RDONLY:
		acc = "O_RDONLY";
		break;
	case O_WRONLY:
		acc = "O_WRONLY";
		break;
	case O_RDWR:
		acc = "O_RDWR";
		break;
	default:
		acc = "O_ACCMODE";
		break;
	}
	rest &= ~(uint32_t)O_ACCMODE;
	n = snprintf(buf, len, "%s", acc);
	if (n < 0 || (size_t)n >= len)
		return -ENOSPC;
	off = (size_t)n;
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
		uint32_t f = (uint32_t)names[i].flag;

		if ((rest & f) != f)
			continue;
		rest &= ~f;
		n = snprintf(buf + off, len - off, "|%s", names[i].name);
		if (n < 0 || (size_t)n >= len - off)
			return -ENOSPC;
		off += (size_t)n;
	}
	if (rest) {
		n = snprintf(buf + off, len - off, "|0x%" PRIx32, rest);
		if (n < 0 || (size_t)n >= len - off)
			return -ENOSPC;
	}
	return 0;
}

size_t cli_utf8_len(const unsigned char *p)
{
	unsigned char c = p[0];
	uint32_t cp;
	size_t n;

	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf) {
		n = 2;
		cp = c & 0x1f;
	} else if (c >= 0xe0 && c <= 0xef) {
		n = 3;
		cp = c & 0x0f;
	} else if (c >= 0xf0 && c <= 0xf4) {
		n = 4;
		cp = c & 0x07;
	} else {
		return 0;
	}
	for (size_t i = 1; i < n; i++) {
		if ((p[i] & 0xc0) != 0x80) /* also stops at the NUL */
			return 0;
		cp = (cp << 6) | (p[i] & 0x3f);
	}
	if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
	    (cp >= 0xd800 && cp <= 0xdfff) || cp <= 0x9f)
		return 0;
	return n;
}

static bool cli_plain_char(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
	       (c && strchr("_@%+=:,./-", c));
}

void cli_fput_word(FILE *f, const char *s)
{
	const unsigned char *p = (const unsigned char *)s;
	bool plain = *p != 0, printable = true;

	while (*p) {
		size_t n = cli_utf8_len(p);

		if (n == 0 || *p < 0x20 || *p == 0x7f) {
			printable = false;
			plain = false;
			break;
		}
		if (n == 1 && !cli_plain_char(*p))
			plain = false;
		p += n;
	}
	if (plain) {
		fputs(s, f);
		return;
	}
	if (printable) {
		fputc('\'', f);
		for (p = (const unsigned char *)s; *p; p++) {
			if (*p == '\'')
				fputs("'\\''", f);
			else
				fputc(*p, f);
		}
		fputc('\'', f);
		return;
	}
	fputs("$'", f);
	for (p = (const unsigned char *)s; *p;) {
		size_t n = cli_utf8_len(p);

		if (*p == '\\' || *p == '\'') {
			fprintf(f, "\\%c", *p);
		} else if (*p == '\n') {
			fputs("\\n", f);
		} else if (*p == '\t') {
			fputs("\\t", f);
		} else if (*p == '\r') {
			fputs("\\r", f);
		} else if (n == 0 || *p < 0x20 || *p == 0x7f) {
			fprintf(f, "\\x%02x", *p);
			n = 1;
		} else {
			fwrite(p, 1, n, f);
			p += n;
			continue;
		}
		p++;
	}
	fputc('\'', f);
}

void cli_fput_argv(FILE *f, char *const *argv, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		if (i)
			fputc(' ', f);
		cli_fput_word(f, argv[i]);
	}
}

void cli_fput_rc(FILE *f, int32_t rc)
{
	const char *name = rc < 0 && rc > INT32_MIN ? strerrorname_np(-rc) : NULL;

	if (name)
		fprintf(f, "rc=-%s", name);
	else
		fprintf(f, "rc=%" PRId32, rc);
}

/* A word, or "?" when the recording left it empty. */
static void cli_put_word_or_unknown(FILE *f, const char *s)
{
	if (*s)
		cli_fput_word(f, s);
	else
		fputc('?', f);
}

static void cli_put_proc(FILE *f, const char *program, uint32_t pid)
{
	cli_put_word_or_unknown(f, program);
	fprintf(f, "[%" PRIu32 "] ", pid);
}

static void cli_put_endpoint(FILE *f, const char *addr, uint32_t port)
{
	bool v6 = strchr(addr, ':') != NULL;

	if (!*addr) {
		fputc('?', f);
	} else {
		if (v6)
			fputc('[', f);
		cli_fput_word(f, addr);
		if (v6)
			fputc(']', f);
	}
	fprintf(f, ":%" PRIu32, port);
}

static void cli_put_start(FILE *f, const Sessrec__SessionStart *s)
{
	fputs("sid=", f);
	cli_fput_word(f, s->sid);
	fputs(" user=", f);
	cli_fput_word(f, s->user);
	fputs(" login=", f);
	cli_fput_word(f, s->login);
	fputs(" kind=", f);
	cli_fput_word(f, s->kind);
	fprintf(f, " size=%" PRIu32 "x%" PRIu32, s->cols, s->rows);
	if (s->n_initial_command) {
		fputs(": ", f);
		cli_fput_argv(f, s->initial_command, s->n_initial_command);
	}
}

static void cli_put_end(FILE *f, const Sessrec__SessionEnd *e)
{
	int64_t d = e->session_stop_ns - e->session_start_ns;

	if (e->exit_code < 0)
		fputs("exit=?", f);
	else
		fprintf(f, "exit=%" PRId32, e->exit_code);
	if (e->session_start_ns > 0 && d >= 0)
		fprintf(f, " duration=%" PRId64 ".%03" PRId64 "s", d / 1000000000,
			d % 1000000000 / 1000000);
	fputs(" reason=", f);
	cli_fput_word(f, e->reason);
}

static void cli_put_body(FILE *f, const Sessrec__Event *ev)
{
	char flags[256];

	switch (ev->body_case) {
	case SESSREC__EVENT__BODY_START:
		cli_put_start(f, ev->start);
		break;
	case SESSREC__EVENT__BODY_END:
		cli_put_end(f, ev->end);
		break;
	case SESSREC__EVENT__BODY_COMMAND:
		cli_put_proc(f, ev->command->program, ev->command->pid);
		cli_fput_rc(f, ev->command->return_code);
		fputc(' ', f);
		if (ev->command->n_argv)
			cli_fput_argv(f, ev->command->argv, ev->command->n_argv);
		else
			cli_fput_word(f, ev->command->path);
		if (ev->command->argv_truncated)
			fputs(" [truncated]", f);
		break;
	case SESSREC__EVENT__BODY_DISK:
		cli_put_proc(f, ev->disk->program, ev->disk->pid);
		cli_fput_rc(f, ev->disk->return_code);
		fputc(' ', f);
		cli_fput_word(f, ev->disk->path);
		if (cli_open_flags_str(ev->disk->flags, flags, sizeof(flags)) == 0)
			fprintf(f, " %s", flags);
		else
			fprintf(f, " flags=0x%" PRIx32, (uint32_t)ev->disk->flags);
		break;
	case SESSREC__EVENT__BODY_NETWORK:
		cli_put_proc(f, ev->network->program, ev->network->pid);
		cli_fput_rc(f, ev->network->return_code);
		fputc(' ', f);
		cli_put_word_or_unknown(f, ev->network->protocol);
		fputc(' ', f);
		cli_put_endpoint(f, ev->network->src_addr, ev->network->src_port);
		fputs(" -> ", f);
		cli_put_endpoint(f, ev->network->dst_addr, ev->network->dst_port);
		break;
	case SESSREC__EVENT__BODY_PRINT:
		fprintf(f, "%" PRIu32 " bytes", ev->print->bytes);
		break;
	case SESSREC__EVENT__BODY_LOST:
		cli_put_word_or_unknown(f, ev->lost->class_);
		fprintf(f, ": %" PRIu64 " events", ev->lost->events);
		if (ev->lost->bytes)
			fprintf(f, ", %" PRIu64 " bytes", ev->lost->bytes);
		fputs(" lost", f);
		break;
	default:
		fputs("(unknown event)", f);
		break;
	}
}

int cli_argv_string(char *const *argv, size_t n, char **out)
{
	char *buf = NULL;
	size_t len = 0;
	FILE *f;
	int err = 0;

	f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	cli_fput_argv(f, argv, n);
	if (ferror(f))
		err = -ENOMEM;
	if (fclose(f) != 0)
		err = -ENOMEM;
	if (err)
		free(buf);
	else
		*out = buf;
	return err;
}

int cli_event_line(const Sessrec__Event *ev, char **out)
{
	char *buf = NULL;
	size_t len = 0;
	char ts[32];
	FILE *f;
	int err = 0;

	f = open_memstream(&buf, &len);
	if (!f)
		return -ENOMEM;
	util_rfc3339(ev->time_ns, ts, sizeof(ts));
	fprintf(f, "%6" PRIu64 "  %s  %-7s  ", ev->ei, ts, cli_event_type_name(ev->body_case));
	cli_put_body(f, ev);
	if (ferror(f))
		err = -ENOMEM;
	if (fclose(f) != 0)
		err = -ENOMEM;
	if (err)
		free(buf);
	else
		*out = buf;
	return err;
}
