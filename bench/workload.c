/*
 * workload: the timed loops of the sessrec benchmark (bench/run.py).
 *
 *   workload exec N              fork + execve /bin/true + waitpid, N times
 *   workload open N PATH         open + close of PATH, N times
 *   workload connect N PORT      TCP connect to 127.0.0.1:PORT + close (abortive), N times
 *   workload pty BYTES [CHUNK]   BYTES of text written to stdout (a pty slave in
 *                                the benchmark) in write() calls of CHUNK bytes
 *   workload opens-rate N [PATH [RATE]]
 *                                open + close N times (the event-rate test; PATH
 *                                defaults to /etc/passwd), at most RATE per second
 *                                on average when RATE is given and not 0
 *   workload listen              a loopback TCP listener outside the timing: prints
 *                                its port on stdout, accepts and closes until SIGTERM
 *   workload drain               reads stdin (a pty master) to its end, discarding:
 *                                the pty reader outside sessions
 *
 * Only the loop is timed (CLOCK_MONOTONIC). The result is one JSON line,
 * {"mode":...,"n":...,"ns":...}, appended to the file named by $BENCH_OUT, else
 * written to stderr; never to stdout, which the pty workload measures.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <arpa/inet.h>

#define WORKLOAD_N_MAX	     100000000ULL
#define WORKLOAD_BYTES_MAX   (64ULL << 30)
#define WORKLOAD_CHUNK_MAX   (1u << 20)
#define WORKLOAD_CHUNK_DEF   4096u
#define WORKLOAD_TEXT_SIZE   (1u << 20) /* text generated once, then written over and over */
#define WORKLOAD_LINE_MAX    256
#define WORKLOAD_TRUE	     "/bin/true"
#define WORKLOAD_OPEN_DEF    "/etc/passwd"
#define WORKLOAD_LISTEN_BACK 4096

extern char **environ;

struct workload_result {
	const char *mode;
	uint64_t n;
	uint64_t ns;	 /* wall time of the loop */
	uint64_t cpu_ns; /* CPU time of the loop: this process and the children it reaped */
	uint64_t bytes;	 /* pty only */
	uint64_t chunk;	 /* pty only */
	uint64_t writes;
};

static volatile sig_atomic_t workload_stop;

static uint64_t workload_now_ns(void)
{
	struct timespec ts;

	/* CLOCK_MONOTONIC cannot fail with a valid pointer. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/*
 * User + system time of this process and of its reaped children. Linux scales
 * the tick-sampled split so that the sum is the scheduler's exact runtime, so
 * this is precise where the split is not; and unlike wall time it does not
 * count waiting for a CPU that someone else's job holds.
 */
static uint64_t workload_cpu_ns(void)
{
	struct rusage self, kids;
	uint64_t us = 0;

	if (getrusage(RUSAGE_SELF, &self) == 0)
		us += (uint64_t)self.ru_utime.tv_sec * 1000000 + (uint64_t)self.ru_utime.tv_usec +
		      (uint64_t)self.ru_stime.tv_sec * 1000000 + (uint64_t)self.ru_stime.tv_usec;
	if (getrusage(RUSAGE_CHILDREN, &kids) == 0)
		us += (uint64_t)kids.ru_utime.tv_sec * 1000000 + (uint64_t)kids.ru_utime.tv_usec +
		      (uint64_t)kids.ru_stime.tv_sec * 1000000 + (uint64_t)kids.ru_stime.tv_usec;
	return us * 1000;
}

static int workload_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (!s || s[0] < '0' || s[0] > '9')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v < min || v > max)
		return -EINVAL;
	*out = v;
	return 0;
}

static int workload_report(const struct workload_result *r)
{
	const char *path = getenv("BENCH_OUT");
	char line[512];
	int len, fd = STDERR_FILENO, err = 0;

	if (r->bytes)
		len = snprintf(line, sizeof(line),
			       "{\"mode\":\"%s\",\"n\":%" PRIu64 ",\"ns\":%" PRIu64
			       ",\"cpu_ns\":%" PRIu64 ",\"bytes\":%" PRIu64 ",\"chunk\":%" PRIu64
			       ",\"writes\":%" PRIu64 "}\n",
			       r->mode, r->n, r->ns, r->cpu_ns, r->bytes, r->chunk, r->writes);
	else
		len = snprintf(line, sizeof(line),
			       "{\"mode\":\"%s\",\"n\":%" PRIu64 ",\"ns\":%" PRIu64
			       ",\"cpu_ns\":%" PRIu64 "}\n",
			       r->mode, r->n, r->ns, r->cpu_ns);
	if (len < 0 || (size_t)len >= sizeof(line))
		return -EOVERFLOW;
	if (path && path[0]) {
		fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
		if (fd < 0) {
			err = -errno;
			fprintf(stderr, "workload: cannot open %s: %s\n", path, strerror(-err));
			return err;
		}
	}
	/* One write: O_APPEND keeps concurrent reporters' lines whole. */
	if (write(fd, line, (size_t)len) != len)
		err = errno ? -errno : -EIO;
	if (fd != STDERR_FILENO && close(fd) < 0 && !err)
		err = -errno;
	if (err)
		fprintf(stderr, "workload: cannot write the result: %s\n", strerror(-err));
	return err;
}

/* ------------------------------------------------------------ exec */

static int workload_exec(uint64_t n, struct workload_result *r)
{
	char *const args[] = {"true", NULL};
	uint64_t t0, c0, i;
	int status;
	pid_t pid;

	c0 = workload_cpu_ns();
	t0 = workload_now_ns();
	for (i = 0; i < n; i++) {
		pid = fork();
		if (pid < 0) {
			fprintf(stderr, "workload: fork: %s\n", strerror(errno));
			return -errno;
		}
		if (pid == 0) {
			execve(WORKLOAD_TRUE, args, environ);
			_exit(127);
		}
		if (waitpid(pid, &status, 0) < 0) {
			fprintf(stderr, "workload: waitpid: %s\n", strerror(errno));
			return -errno;
		}
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
			fprintf(stderr, "workload: %s failed (status 0x%x)\n", WORKLOAD_TRUE,
				status);
			return -ECHILD;
		}
	}
	r->ns = workload_now_ns() - t0;
	r->cpu_ns = workload_cpu_ns() - c0;
	return 0;
}

/* ------------------------------------------------------------ open */

/* Sleep until i operations are due at rate per second since t0 (rate 0: never). */
static void workload_pace(uint64_t t0, uint64_t i, uint64_t rate)
{
	uint64_t due, now;
	struct timespec ts;

	if (!rate)
		return;
	due = t0 + (uint64_t)((double)i * 1e9 / (double)rate);
	now = workload_now_ns();
	if (due <= now)
		return;
	ts.tv_sec = (time_t)((due - now) / 1000000000ULL);
	ts.tv_nsec = (long)((due - now) % 1000000000ULL);
	nanosleep(&ts, NULL);
}

static int workload_open(uint64_t n, const char *path, uint64_t rate, struct workload_result *r)
{
	uint64_t t0, c0, i;
	int fd;

	c0 = workload_cpu_ns();
	t0 = workload_now_ns();
	for (i = 0; i < n; i++) {
		/* paced in steps of 256 operations (about 1 ms at 250k/s) */
		if ((i & 255) == 0)
			workload_pace(t0, i, rate);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0) {
			fprintf(stderr, "workload: open %s: %s\n", path, strerror(errno));
			return -errno;
		}
		if (close(fd) < 0) {
			fprintf(stderr, "workload: close: %s\n", strerror(errno));
			return -errno;
		}
	}
	r->ns = workload_now_ns() - t0;
	r->cpu_ns = workload_cpu_ns() - c0;
	return 0;
}

/* ------------------------------------------------------------ connect */

/*
 * The close is abortive (SO_LINGER 0: a RST, no TIME_WAIT). A normal close
 * leaves one TIME_WAIT socket per connect for 60 s; tens of thousands of
 * them within a second exhaust the ephemeral ports the kernel picks from for
 * connect(), and the loop then measures the kernel's port search instead of
 * connect() and its hooks.
 */
static int workload_connect(uint64_t n, uint16_t port, struct workload_result *r)
{
	struct linger lg = {.l_onoff = 1, .l_linger = 0};
	struct sockaddr_in sa;
	uint64_t t0, c0, i;
	int fd, err;

	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_port = htons(port);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	c0 = workload_cpu_ns();
	t0 = workload_now_ns();
	for (i = 0; i < n; i++) {
		fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			fprintf(stderr, "workload: socket: %s\n", strerror(errno));
			return -errno;
		}
		if (setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg)) < 0) {
			err = -errno;
			fprintf(stderr, "workload: SO_LINGER: %s\n", strerror(-err));
			close(fd);
			return err;
		}
		if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
			err = -errno;
			fprintf(stderr, "workload: connect 127.0.0.1:%u (#%" PRIu64 "): %s\n", port,
				i, strerror(-err));
			close(fd);
			return err;
		}
		if (close(fd) < 0) {
			fprintf(stderr, "workload: close: %s\n", strerror(errno));
			return -errno;
		}
	}
	r->ns = workload_now_ns() - t0;
	r->cpu_ns = workload_cpu_ns() - c0;
	return 0;
}

/* ------------------------------------------------------------ listen */

static void workload_on_term(int sig)
{
	workload_stop = 1;
}

/* Read stdin (a pty master) until end of file or EIO, discarding: the reader
 * of the harness's pty, a C loop like the relay of `sessrec run`. */
static int workload_drain(void)
{
	static char buf[65536];

	for (;;) {
		ssize_t n = read(0, buf, sizeof(buf));

		if (n > 0)
			continue;
		if (n < 0 && errno == EINTR)
			continue;
		/* EIO: every slave fd is closed */
		return n == 0 || errno == EIO ? 0 : -errno;
	}
}

/* Accept and close until SIGTERM/SIGINT; the port goes to stdout. */
static int workload_listen(void)
{
	struct sockaddr_in sa;
	socklen_t len = sizeof(sa);
	struct sigaction act;
	int fd, c, err = 0, one = 1;

	memset(&act, 0, sizeof(act));
	act.sa_handler = workload_on_term; /* no SA_RESTART: accept() must return */
	if (sigaction(SIGTERM, &act, NULL) < 0 || sigaction(SIGINT, &act, NULL) < 0)
		return -errno;
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	memset(&sa, 0, sizeof(sa));
	sa.sin_family = AF_INET;
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(fd, WORKLOAD_LISTEN_BACK) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0) {
		err = -errno;
		fprintf(stderr, "workload: listen: %s\n", strerror(-err));
		goto out;
	}
	if (printf("%u\n", ntohs(sa.sin_port)) < 0 || fflush(stdout) == EOF) {
		err = -EIO;
		goto out;
	}
	while (!workload_stop) {
		c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);
		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			err = -errno;
			fprintf(stderr, "workload: accept: %s\n", strerror(-err));
			goto out;
		}
		close(c);
	}
out:
	close(fd);
	return err;
}

/* ------------------------------------------------------------ pty */

/* A deterministic pseudo-random source, so that every run writes the same text. */
static uint32_t workload_rand(uint64_t *state)
{
	*state = *state * 6364136223846793005ULL + 1442695040888963407ULL;
	return (uint32_t)(*state >> 33);
}

/*
 * Terminal-like text: a long `ls -l` listing interleaved with application log
 * lines, so that compression and the tty layer see what they would in a real
 * session (not one repeated byte).
 */
static int workload_text(char **out, size_t *outlen)
{
	static const char *const perms[] = {"-rw-r--r--", "-rwxr-xr-x", "drwxr-xr-x", "-rw-------",
					    "lrwxrwxrwx"};
	static const char *const users[] = {"root", "alice", "bob", "www-data", "postgres"};
	static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
					     "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
	static const char *const levels[] = {"INFO ", "DEBUG", "WARN ", "INFO ", "ERROR"};
	static const char *const words[] = {"config", "server", "cache",  "index", "report",
					    "backup", "worker", "client", "build", "session"};
	static const char *const exts[] = {".txt", ".log", ".c", ".py", ".json", ".tar.gz", ""};
	uint64_t st = 0x5e55ecULL;
	size_t len = 0;
	char *buf, line[WORKLOAD_LINE_MAX];
	int n;

	buf = malloc(WORKLOAD_TEXT_SIZE);
	if (!buf)
		return -ENOMEM;
	while (len < WORKLOAD_TEXT_SIZE) {
		uint32_t a = workload_rand(&st), b = workload_rand(&st), c = workload_rand(&st);

		if (a % 3)
			n = snprintf(line, sizeof(line),
				     "%s %2u %-8s %-8s %9u %s %2u %02u:%02u %s_%s%u%s\n",
				     perms[a % 5], 1 + b % 12, users[b % 5], users[c % 5],
				     c % 4000000, months[a % 12], 1 + b % 28, c % 24, a % 60,
				     words[b % 10], words[c % 10], a % 10000, exts[c % 7]);
		else
			n = snprintf(line, sizeof(line),
				     "2024-%02u-%02uT%02u:%02u:%02u.%03uZ %s [%s-%u] request "
				     "id=%08x%08x path=/api/v1/%s/%u status=%u dur=%ums\n",
				     1 + a % 12, 1 + b % 28, c % 24, a % 60, b % 60, c % 1000,
				     levels[a % 5], words[b % 10], c % 16, a, b, words[c % 10],
				     b % 100000, (c % 7) ? 200 : 404, a % 900);
		if (n < 0 || (size_t)n >= sizeof(line)) {
			free(buf);
			return -EOVERFLOW;
		}
		if ((size_t)n > WORKLOAD_TEXT_SIZE - len)
			n = (int)(WORKLOAD_TEXT_SIZE - len);
		memcpy(buf + len, line, (size_t)n);
		len += (size_t)n;
	}
	*out = buf;
	*outlen = len;
	return 0;
}

static int workload_pty(uint64_t bytes, uint64_t chunk, struct workload_result *r)
{
	uint64_t t0, c0, done = 0, writes = 0;
	size_t tlen = 0, pos = 0;
	char *text = NULL, *buf = NULL;
	int err;

	err = workload_text(&text, &tlen);
	if (err)
		goto out;
	/* One contiguous source of chunk + text bytes: any chunk is a slice, no wrap. */
	buf = malloc(tlen + chunk);
	if (!buf) {
		err = -ENOMEM;
		goto out;
	}
	memcpy(buf, text, tlen);
	for (size_t i = 0; i < chunk; i++)
		buf[tlen + i] = text[i % tlen];
	c0 = workload_cpu_ns();
	t0 = workload_now_ns();
	while (done < bytes) {
		size_t want = bytes - done < chunk ? (size_t)(bytes - done) : (size_t)chunk;
		ssize_t n = write(STDOUT_FILENO, buf + pos, want);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			err = -errno;
			fprintf(stderr, "workload: write: %s\n", strerror(-err));
			goto out;
		}
		writes++;
		done += (uint64_t)n;
		pos = (pos + (size_t)n) % tlen;
	}
	r->ns = workload_now_ns() - t0;
	r->cpu_ns = workload_cpu_ns() - c0;
	r->bytes = bytes;
	r->chunk = chunk;
	r->writes = writes;
out:
	free(text);
	free(buf);
	return err;
}

/* ------------------------------------------------------------ main */

static void workload_usage(FILE *out)
{
	fprintf(out, "Usage: workload exec N\n"
		     "       workload open N PATH\n"
		     "       workload connect N PORT\n"
		     "       workload pty BYTES [CHUNK]\n"
		     "       workload opens-rate N [PATH [RATE]]\n"
		     "       workload listen\n"
		     "       workload drain\n\n"
		     "Runs one timed loop and reports {\"mode\",\"n\",\"ns\"} as a JSON line\n"
		     "appended to $BENCH_OUT (else on stderr).\n");
}

int main(int argc, char **argv)
{
	struct workload_result r;
	const char *mode = argc > 1 ? argv[1] : "";
	uint64_t n = 0, v = 0;
	int err;

	memset(&r, 0, sizeof(r));
	r.mode = mode;
	if (strcmp(mode, "-h") == 0 || strcmp(mode, "--help") == 0) {
		workload_usage(stdout);
		return 0;
	}
	if (strcmp(mode, "listen") == 0 && argc == 2)
		return workload_listen() ? 1 : 0;
	if (strcmp(mode, "drain") == 0 && argc == 2)
		return workload_drain() ? 1 : 0;
	if (argc < 3)
		goto usage;
	/* pty counts bytes, the others iterations: each has its own bound */
	if (strcmp(mode, "pty") != 0 && workload_parse_u64(argv[2], 1, WORKLOAD_N_MAX, &n))
		goto usage;
	if (strcmp(mode, "exec") == 0 && argc == 3) {
		r.n = n;
		err = workload_exec(n, &r);
	} else if (strcmp(mode, "open") == 0 && argc == 4) {
		r.n = n;
		err = workload_open(n, argv[3], 0, &r);
	} else if (strcmp(mode, "opens-rate") == 0 && argc >= 3 && argc <= 5) {
		if (argc == 5 && workload_parse_u64(argv[4], 0, WORKLOAD_N_MAX, &v))
			goto usage;
		r.n = n;
		err = workload_open(n, argc >= 4 ? argv[3] : WORKLOAD_OPEN_DEF, v, &r);
	} else if (strcmp(mode, "connect") == 0 && argc == 4) {
		if (workload_parse_u64(argv[3], 1, 65535, &v))
			goto usage;
		r.n = n;
		err = workload_connect(n, (uint16_t)v, &r);
	} else if (strcmp(mode, "pty") == 0 && (argc == 3 || argc == 4)) {
		v = WORKLOAD_CHUNK_DEF;
		if (workload_parse_u64(argv[2], 1, WORKLOAD_BYTES_MAX, &n) ||
		    (argc == 4 && workload_parse_u64(argv[3], 1, WORKLOAD_CHUNK_MAX, &v)))
			goto usage;
		err = workload_pty(n, v, &r);
		r.n = r.writes;
	} else {
		goto usage;
	}
	if (!err)
		err = workload_report(&r);
	return err ? 1 : 0;
usage:
	workload_usage(stderr);
	return 2;
}
