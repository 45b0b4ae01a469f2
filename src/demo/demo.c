/*
 * `pgmoat demo`: a throwaway PostgreSQL with a fake shop full of PII, a
 * gateway in front of it with a demo agent identity and token, and
 * ready-to-paste psql lines. Ctrl-C (or SIGTERM) stops every process it
 * started, by pid, and removes its directory.
 *
 * The topology is the mission's: PostgreSQL listens on its Unix socket only
 * (listen_addresses = ''), a relay beside it dials out to the gateway and
 * holds the database password, and clients reach the database only through
 * the gateway, whose config names the relay and no password.
 *
 * Layout of the demo directory (mkdtemp under $TMPDIR or /tmp):
 *   pg/            the cluster (owned by the postgres OS user when run as root)
 *   ca.crt ...     a demo CA and a server certificate for the gateway
 *   pgmoat.yaml    the gateway's config; state.db its state store
 *   relay/         the relay's side: relay.yaml, its token, the database password
 */
#include "demo/demo.h"
#include "core/util.h"
#include "net/tls.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PGBIN "/usr/lib/postgresql/15/bin"

extern const char _binary_src_demo_shop_sql_start[];
extern const char _binary_src_demo_shop_sql_end[];

typedef struct demo {
	char dir[256];
	char pgdata[300];
	int pg_port, gw_port, http_port, relay_port;
	pid_t pg_pid, gw_pid, relay_pid;
	uid_t pg_uid;
	gid_t pg_gid;
	bool as_postgres;
	char admin_token[80];
	char self[4096];
	bool quiet;
} demo;

static demo D;

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
	if (D.quiet)
		return;
	va_list ap;
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
}

/* Run argv (optionally as the postgres user, with stdin from a buffer); returns exit status. */
static int run(char *const argv[], bool as_pg, const char *input, size_t inlen, char *out, size_t outlen)
{
	int inpipe[2] = {-1, -1}, outpipe[2] = {-1, -1};
	if (input && pipe(inpipe) < 0)
		return -1;
	if (out && pipe(outpipe) < 0)
		return -1;
	pid_t pid = fork();
	if (pid < 0)
		return -1;
	if (pid == 0) {
		if (input) {
			dup2(inpipe[0], 0);
			close(inpipe[1]);
		} else {
			int devnull = open("/dev/null", O_RDONLY);
			dup2(devnull, 0);
		}
		if (out) {
			dup2(outpipe[1], 1);
			close(outpipe[0]);
		} else {
			int devnull = open("/dev/null", O_WRONLY);
			dup2(devnull, 1);
		}
		if (as_pg && D.as_postgres) {
			if (setgid(D.pg_gid) < 0 || setuid(D.pg_uid) < 0)
				_exit(126);
		}
		execv(argv[0], argv);
		_exit(127);
	}
	if (input) {
		close(inpipe[0]);
		size_t off = 0;
		while (off < inlen) {
			ssize_t w = write(inpipe[1], input + off, inlen - off);
			if (w <= 0)
				break;
			off += (size_t)w;
		}
		close(inpipe[1]);
	}
	if (out) {
		close(outpipe[1]);
		size_t n = 0;
		ssize_t r;
		while ((r = read(outpipe[0], out + n, outlen - 1 - n)) > 0 && n + 1 < outlen)
			n += (size_t)r;
		out[n] = 0;
		close(outpipe[0]);
	}
	int st;
	while (waitpid(pid, &st, 0) < 0 && errno == EINTR)
		;
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128;
}

static int free_port(int preferred)
{
	for (int attempt = 0; attempt < 2; attempt++) {
		int fd = socket(AF_INET, SOCK_STREAM, 0);
		struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
		a.sin_port = htons((uint16_t)(attempt == 0 ? preferred : 0));
		if (attempt == 0 && !preferred) {
			close(fd);
			continue;
		}
		if (bind(fd, (struct sockaddr *)&a, sizeof(a)) == 0) {
			socklen_t l = sizeof(a);
			getsockname(fd, (struct sockaddr *)&a, &l);
			close(fd);
			return ntohs(a.sin_port);
		}
		close(fd);
	}
	return -1;
}

static bool port_open(int port)
{
	int fd = socket(AF_INET, SOCK_STREAM, 0);
	struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
	bool ok = connect(fd, (struct sockaddr *)&a, sizeof(a)) == 0;
	close(fd);
	return ok;
}

static int rm_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
	return remove(path);
}

static void stop_pid(pid_t pid, int sig, const char *what)
{
	if (pid <= 0)
		return;
	kill(pid, sig);
	for (int i = 0; i < 200; i++) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);
		if (r == pid || (r < 0 && errno == ECHILD && kill(pid, 0) < 0))
			return;
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "pgmoat demo: %s (pid %d) did not stop; killing it\n", what, (int)pid);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
}

static void cleanup(void)
{
	stop_pid(D.relay_pid, SIGTERM, "the relay");
	D.relay_pid = 0;
	stop_pid(D.gw_pid, SIGTERM, "the gateway");
	D.gw_pid = 0;
	/* The postmaster is not our child (pg_ctl forked it): SIGINT is a fast shutdown. */
	if (D.pg_pid > 0) {
		kill(D.pg_pid, SIGINT);
		for (int i = 0; i < 200 && kill(D.pg_pid, 0) == 0; i++) {
			struct timespec ts = {0, 50 * 1000 * 1000};
			nanosleep(&ts, NULL);
		}
		if (kill(D.pg_pid, 0) == 0)
			kill(D.pg_pid, SIGKILL);
		D.pg_pid = 0;
	}
	if (D.dir[0]) {
		nftw(D.dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
		D.dir[0] = 0;
	}
}

static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	fputs("pgmoat demo: ", stderr);
	vfprintf(stderr, fmt, ap);
	fputc('\n', stderr);
	va_end(ap);
	cleanup();
	return 1;
}

static int write_file(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);
	if (fd < 0)
		return -1;
	size_t n = strlen(text);
	int rc = write(fd, text, n) == (ssize_t)n ? 0 : -1;
	close(fd);
	return rc;
}

static int start_postgres(char *agent_pw)
{
	snprintf(D.pgdata, sizeof(D.pgdata), "%s/pg", D.dir);
	mkdir(D.pgdata, 0700);
	if (D.as_postgres && chown(D.pgdata, D.pg_uid, D.pg_gid) < 0)
		return fail("cannot hand %s to the postgres user: %s", D.pgdata, strerror(errno));
	say("  [1/5] creating a throwaway PostgreSQL 15 cluster in %s (Unix socket only: no TCP port)\n", D.pgdata);
	char *initdb[] = {PGBIN "/initdb", "-D", D.pgdata, "-U", "postgres", "-A", "trust", "-E", "UTF8",
		"--locale=C.UTF-8", "--no-sync", NULL};
	if (run(initdb, true, NULL, 0, NULL, 0) != 0)
		return fail("initdb failed (is postgresql-15 installed? run: make deps)");
	char conf[8192];
	snprintf(conf, sizeof(conf),
		"listen_addresses = ''\nport = %d\nunix_socket_directories = '%s'\nfsync = off\n"
		"password_encryption = 'scram-sha-256'\nlog_min_messages = warning\n", D.pg_port, D.pgdata);
	char path[512];
	snprintf(path, sizeof(path), "%s/postgresql.auto.conf", D.pgdata);
	if (write_file(path, conf, 0600) < 0)
		return fail("cannot write %s", path);
	snprintf(path, sizeof(path), "%s/pg_hba.conf", D.pgdata);
	if (write_file(path, "local all postgres trust\nlocal all all scram-sha-256\n", 0600) < 0)
		return fail("cannot write %s", path);
	if (D.as_postgres) {
		snprintf(path, sizeof(path), "%s/postgresql.auto.conf", D.pgdata);
		if (chown(path, D.pg_uid, D.pg_gid) < 0)
			return fail("chown failed");
		snprintf(path, sizeof(path), "%s/pg_hba.conf", D.pgdata);
		if (chown(path, D.pg_uid, D.pg_gid) < 0)
			return fail("chown failed");
	}
	char logf[512];
	snprintf(logf, sizeof(logf), "%s/postgres.log", D.pgdata);
	char *ctl[] = {PGBIN "/pg_ctl", "-D", D.pgdata, "-l", logf, "-w", "-t", "60", "start", NULL};
	if (run(ctl, true, NULL, 0, NULL, 0) != 0)
		return fail("PostgreSQL did not start; see %s", logf);
	snprintf(path, sizeof(path), "%s/postmaster.pid", D.pgdata);
	FILE *f = fopen(path, "r");
	if (!f || fscanf(f, "%d", &D.pg_pid) != 1) {
		if (f)
			fclose(f);
		return fail("cannot read %s", path);
	}
	fclose(f);

	say("  [2/5] loading a shop with fake customers, cards, phone numbers and support notes\n");
	uint8_t raw[18];
	gw_random_bytes(raw, sizeof(raw));
	gw_b64url(raw, sizeof(raw), agent_pw);
	size_t shop_len = (size_t)(_binary_src_demo_shop_sql_end - _binary_src_demo_shop_sql_start);
	char *setup = gw_xasprintf(
		"\\set ON_ERROR_STOP 1\nCREATE DATABASE shop;\n\\connect shop\n%.*s\n"
		"CREATE ROLE demo_reader LOGIN PASSWORD '%s';\n"
		"GRANT USAGE ON SCHEMA public TO demo_reader;\n"
		"GRANT SELECT ON ALL TABLES IN SCHEMA public TO demo_reader;\n"
		"GRANT INSERT, UPDATE ON support_notes TO demo_reader;\n"
		"GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO demo_reader;\n",
		(int)shop_len, _binary_src_demo_shop_sql_start, agent_pw);
	char port[16];
	snprintf(port, sizeof(port), "%d", D.pg_port);
	char *psql[] = {"/usr/bin/psql", "-X", "-q", "-h", D.pgdata, "-p", port, "-U", "postgres", "-d", "postgres", "-f", "-", NULL};
	int rc = run(psql, true, setup, strlen(setup), NULL, 0);
	memset(setup, 0, strlen(setup));
	free(setup);
	if (rc != 0)
		return fail("loading the demo schema failed");
	return 0;
}

static int start_gateway(const char *agent_pw)
{
	say("  [3/5] starting the gateway (TLS with a fresh demo CA; relays dial in on 127.0.0.1:%d)\n", D.relay_port);
	char err[256];
	if (gw_tls_make_demo_certs(D.dir, err, sizeof(err)) < 0)
		return fail("%s", err);
	char path[512], text[4096];
	snprintf(path, sizeof(path), "%s/relay", D.dir);
	if (mkdir(path, 0700) < 0)
		return fail("cannot create %s: %s", path, strerror(errno));
	/* the database password lives on the relay's side only */
	snprintf(path, sizeof(path), "%s/relay/reader.pw", D.dir);
	if (write_file(path, agent_pw, 0600) < 0)
		return fail("cannot write %s", path);
	snprintf(path, sizeof(path), "%s/admin.token", D.dir);
	if (write_file(path, D.admin_token, 0600) < 0)
		return fail("cannot write %s", path);
	/* the key that signs the record's checkpoint */
	uint8_t rnd[32];
	char key[65];
	gw_random_bytes(rnd, sizeof(rnd));
	gw_hex(rnd, sizeof(rnd), key);
	snprintf(path, sizeof(path), "%s/audit.key", D.dir);
	if (write_file(path, key, 0600) < 0)
		return fail("cannot write %s", path);
	/* the key of masking's hash action (hashed values stay joinable, never reversible) */
	gw_random_bytes(rnd, sizeof(rnd));
	gw_hex(rnd, sizeof(rnd), key);
	snprintf(path, sizeof(path), "%s/mask.key", D.dir);
	if (write_file(path, key, 0600) < 0)
		return fail("cannot write %s", path);
	snprintf(text, sizeof(text),
		"# written by `pgmoat demo`\n"
		"listen: {postgres: \"127.0.0.1:%d\", http: \"127.0.0.1:%d\", relay: \"127.0.0.1:%d\"}\n"
		"tls: {cert: file:%s/server.crt, key: file:%s/server.key}\n"
		"state: \"sqlite:%s/state.db\"\n"
		"admin_token: file:%s/admin.token\n"
		"admins: [group:dba]\n"
		"connections:\n"
		"  - name: shop\n"
		"    relay: dc1          # the relay beside the database holds its address and credentials\n"
		"    target: shop\n"
		"    pool: {size: 10}\n"
		"policies:\n"
		"  - name: agents-read\n"
		"    who: [group:agents]\n"
		"    connections: [shop]\n"
		"    scope: read\n"
		"    guardrails: [no_delete_without_where, no_update_without_where, no_drop, no_truncate, {max_rows: 1000}]\n"
		"  - name: agents-write\n"
		"    who: [group:agents]\n"
		"    connections: [shop]\n"
		"    scope: write\n"
		"    access: jit\n"
		"    max_duration: 30m\n"
		"    approval: {approvers: [group:dba], required: 1}\n"
		"    guardrails: [no_delete_without_where, no_update_without_where]\n"
		"audit:\n"
		"  checkpoint_key: file:%s/audit.key\n"
		"masking:\n"
		"  rules:\n"
		"    - {column: public.customers.email, action: partial}\n"
		"    - {column: public.customers.ssn, action: redact}\n"
		"    - {column_name: \".*card.*|iban\", action: partial}\n"
		"    - {column: public.customers.phone, action: hash}\n"
		"  exempt: [group:dpo]\n"
		"  hash_key: file:%s/mask.key\n",
		D.gw_port, D.http_port, D.relay_port, D.dir, D.dir, D.dir, D.dir, D.dir, D.dir);
	char cfg[512];
	snprintf(cfg, sizeof(cfg), "%s/pgmoat.yaml", D.dir);
	if (write_file(cfg, text, 0600) < 0)
		return fail("cannot write %s", cfg);
	char logf[512];
	snprintf(logf, sizeof(logf), "%s/gateway.log", D.dir);
	D.gw_pid = fork();
	if (D.gw_pid == 0) {
		int fd = open(logf, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		signal(SIGINT, SIG_IGN); /* Ctrl-C reaches the demo; it stops us with SIGTERM */
		execl(D.self, D.self, "serve", "-c", cfg, (char *)NULL);
		_exit(127);
	}
	for (int i = 0; i < 200 && !(port_open(D.gw_port) && port_open(D.http_port)); i++) {
		int st;
		if (waitpid(D.gw_pid, &st, WNOHANG) == D.gw_pid) {
			D.gw_pid = 0;
			return fail("the gateway exited at start; see %s", logf);
		}
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	if (!port_open(D.gw_port))
		return fail("the gateway is not listening; see %s", logf);
	return 0;
}

static int make_agent(char *token, size_t toklen)
{
	say("  [4/5] creating the identity demo-agent and its token\n");
	char url[64];
	snprintf(url, sizeof(url), "http://127.0.0.1:%d", D.http_port);
	setenv("PGMOAT_GATEWAY", url, 1);
	setenv("PGMOAT_TOKEN", D.admin_token, 1);
	char *add[] = {D.self, "identity", "add", "demo-agent", "--kind", "agent", "--group", "agents", NULL};
	if (run(add, false, NULL, 0, NULL, 0) != 0)
		return fail("cannot create the demo identity");
	char *add2[] = {D.self, "identity", "add", "demo-dba", "--kind", "human", "--group", "dba", NULL};
	if (run(add2, false, NULL, 0, NULL, 0) != 0)
		return fail("cannot create the demo admin identity");
	char *issue[] = {D.self, "token", "issue", "demo-agent", "--ttl", "7d", NULL};
	if (run(issue, false, NULL, 0, token, toklen) != 0)
		return fail("cannot issue the demo token");
	token[strcspn(token, "\r\n")] = 0;
	char dba[256], path[512];
	char *issue2[] = {D.self, "token", "issue", "demo-dba", "--ttl", "7d", NULL};
	if (run(issue2, false, NULL, 0, dba, sizeof(dba)) != 0)
		return fail("cannot issue the demo approver's token");
	dba[strcspn(dba, "\r\n")] = 0;
	snprintf(path, sizeof(path), "%s/dba.token", D.dir);
	int wr = write_file(path, dba, 0600);
	memset(dba, 0, sizeof(dba));
	if (wr < 0)
		return fail("cannot write %s", path);
	unsetenv("PGMOAT_TOKEN");
	return 0;
}

static int start_relay(void)
{
	say("  [5/5] starting the relay beside the database: it dials out to the gateway, logs in to PostgreSQL "
		"over its Unix socket\n");
	setenv("PGMOAT_TOKEN", D.admin_token, 1);
	char *add[] = {D.self, "identity", "add", "dc1", "--kind", "relay", NULL};
	if (run(add, false, NULL, 0, NULL, 0) != 0)
		return fail("cannot create the relay identity");
	char tok[256], path[512], text[2048];
	char *issue[] = {D.self, "token", "issue", "dc1", NULL};
	if (run(issue, false, NULL, 0, tok, sizeof(tok)) != 0)
		return fail("cannot issue the relay's token");
	unsetenv("PGMOAT_TOKEN");
	tok[strcspn(tok, "\r\n")] = 0;
	snprintf(path, sizeof(path), "%s/relay/relay.token", D.dir);
	int wr = write_file(path, tok, 0600);
	memset(tok, 0, sizeof(tok));
	if (wr < 0)
		return fail("cannot write %s", path);
	snprintf(text, sizeof(text),
		"# written by `pgmoat demo`: the relay's side of the boundary\n"
		"gateway: {address: \"127.0.0.1:%d\", ca: file:%s/ca.crt, server_name: localhost}\n"
		"name: dc1\n"
		"token: file:%s/relay/relay.token\n"
		"targets:\n"
		"  - {name: shop, host: %s, port: %d, database: shop, user: demo_reader, password: file:%s/relay/reader.pw}\n",
		D.relay_port, D.dir, D.dir, D.pgdata, D.pg_port, D.dir);
	char cfg[512], logf[512];
	snprintf(cfg, sizeof(cfg), "%s/relay/relay.yaml", D.dir);
	if (write_file(cfg, text, 0600) < 0)
		return fail("cannot write %s", cfg);
	snprintf(logf, sizeof(logf), "%s/relay/relay.log", D.dir);
	D.relay_pid = fork();
	if (D.relay_pid == 0) {
		int fd = open(logf, O_WRONLY | O_CREAT | O_APPEND, 0600);
		if (fd >= 0) {
			dup2(fd, 1);
			dup2(fd, 2);
		}
		signal(SIGINT, SIG_IGN);
		execl(D.self, D.self, "relay", "-c", cfg, (char *)NULL);
		_exit(127);
	}
	/* Ready when the relay says it logged in to the gateway. */
	for (int i = 0; i < 200; i++) {
		int st;
		if (waitpid(D.relay_pid, &st, WNOHANG) == D.relay_pid) {
			D.relay_pid = 0;
			return fail("the relay exited at start; see %s", logf);
		}
		char buf[8192] = "";
		FILE *f = fopen(logf, "r");
		size_t n = f ? fread(buf, 1, sizeof(buf) - 1, f) : 0;
		if (f)
			fclose(f);
		buf[n] = 0;
		if (strstr(buf, "logged in to gateway"))
			return 0;
		struct timespec ts = {0, 50 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	return fail("the relay did not log in to the gateway; see %s", logf);
}

static volatile sig_atomic_t got_signal;
static void on_signal(int sig) { got_signal = sig; }

int gw_demo_main(int argc, char **argv)
{
	int wait_secs = -1;
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: pgmoat demo [--for SECONDS]\n\n"
				"Starts a throwaway PostgreSQL 15 with a fake shop (customers with emails, phone\n"
				"numbers, card numbers), a pgmoat gateway in front of it with TLS, an agent identity\n"
				"and its token, and prints psql lines to paste. Ctrl-C stops everything and removes\n"
				"every file it made. --for N stops by itself after N seconds.\n");
			return 0;
		}
		if (!strcmp(argv[i], "--for") && i + 1 < argc) {
			wait_secs = atoi(argv[++i]);
			continue;
		}
		fprintf(stderr, "usage: pgmoat demo [--for SECONDS]\n");
		return 2;
	}
	memset(&D, 0, sizeof(D));
	ssize_t sl = readlink("/proc/self/exe", D.self, sizeof(D.self) - 1);
	if (sl <= 0)
		return fail("cannot find my own executable");
	D.self[sl] = 0;
	if (access(PGBIN "/initdb", X_OK) != 0)
		return fail("PostgreSQL 15 is not installed (%s/initdb); run `make deps` as root", PGBIN);
	if (geteuid() == 0) {
		struct passwd *pw = getpwnam("postgres");
		if (!pw)
			return fail("running as root, but there is no postgres user to run the database as");
		D.as_postgres = true;
		D.pg_uid = pw->pw_uid;
		D.pg_gid = pw->pw_gid;
	}
	const char *tmp = getenv("TMPDIR");
	snprintf(D.dir, sizeof(D.dir), "%s/pgmoat-demo-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(D.dir)) {
		D.dir[0] = 0;
		return fail("cannot create a temporary directory: %s", strerror(errno));
	}
	chmod(D.dir, 0711);
	uint8_t raw[24];
	gw_random_bytes(raw, sizeof(raw));
	gw_b64url(raw, sizeof(raw), D.admin_token);
	D.pg_port = free_port(0);
	D.gw_port = free_port(6432);
	D.http_port = free_port(8080);
	D.relay_port = free_port(8443);

	struct sigaction sa = {.sa_handler = on_signal};
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGHUP, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);

	say("pgmoat demo\n");
	char agent_pw[64], token[256];
	if (start_postgres(agent_pw) || start_gateway(agent_pw) || make_agent(token, sizeof(token)) || start_relay())
		return 1;
	/* The floor under the gateway, checked by the relay with its own credentials. */
	say("\npgmoat doctor (is the role under the gateway least-privilege, and is there a route around it?):\n\n");
	{
		char cfg[512], report[16384] = "";
		snprintf(cfg, sizeof(cfg), "%s/pgmoat.yaml", D.dir);
		char *doc[] = {D.self, "doctor", "-c", cfg, NULL};
		int drc = run(doc, false, NULL, 0, report, sizeof(report));
		for (char *line = strtok(report, "\n"); line; line = strtok(NULL, "\n"))
			printf("  | %s\n", line);
		printf("  doctor exit code %d (%s)\n", drc, drc == 0 ? "no high finding" : drc == 1 ? "a HIGH finding: fix it"
			: "something could not be checked");
	}
	if (got_signal)
		return fail("interrupted");

	printf("\nReady. The database listens on no TCP port at all (its Unix socket is in %s); a relay beside it\n"
		"dialed out to the gateway, and agents go through the gateway on 127.0.0.1:%d.\n\n", D.pgdata, D.gw_port);
	printf("Connect as the agent (TLS, verified against the demo CA):\n\n");
	printf("  psql \"host=127.0.0.1 port=%d dbname=shop user=demo-agent password=%s sslmode=verify-full sslrootcert=%s/ca.crt\"\n\n",
		D.gw_port, token, D.dir);
	printf("Try (values are masked before they reach you; the note's PII is found in free text):\n"
		"  SELECT name, email, card_number, ssn, phone FROM customers LIMIT 3;\n  SELECT note FROM support_notes;\n"
		"  SELECT upper(email), row_to_json(c) FROM customers c LIMIT 1;   -- derived from masked columns: masked\n"
		"  UPDATE support_notes SET note = 'x' WHERE id = 1;   -- denied: the agent's standing policy is read\n\n");
	printf("Ask for write access just in time, and approve it as the demo's DBA (a person):\n\n");
	printf("  PGMOAT_GATEWAY=http://127.0.0.1:%d PGMOAT_TOKEN=%s %s request shop --scope write --for 15m "
		"--reason \"fix a note\"\n", D.http_port, token, D.self);
	printf("  PGMOAT_GATEWAY=http://127.0.0.1:%d PGMOAT_TOKEN=$(cat %s/dba.token) %s approve ID\n\n",
		D.http_port, D.dir, D.self);
	printf("A wrong token, or another user name, is refused:\n\n");
	printf("  psql \"host=127.0.0.1 port=%d dbname=shop user=demo-agent password=wrong sslmode=require\"\n\n", D.gw_port);
	printf("Administer the gateway (live sessions, identities, tokens):\n\n");
	printf("  export PGMOAT_GATEWAY=http://127.0.0.1:%d PGMOAT_TOKEN=$(cat %s/admin.token)\n", D.http_port, D.dir);
	printf("  %s sessions\n  %s identity list\n  %s token list\n\n", D.self, D.self, D.self);
	printf("Read the record of every statement (and check that nobody changed it):\n\n");
	printf("  %s audit --identity demo-agent\n  %s audit --session ID\n  %s audit verify\n\n", D.self, D.self,
		D.self);
	printf("The relay and its tunnels:  %s relays\n\n", D.self);
	printf("Gateway log: %s/gateway.log   Relay log: %s/relay/relay.log\n", D.dir, D.dir);
	printf("Press Ctrl-C to stop everything and remove %s.\n", D.dir);
	fflush(stdout);

	time_t until = wait_secs >= 0 ? time(NULL) + wait_secs : 0;
	while (!got_signal) {
		int st;
		if (waitpid(D.gw_pid, &st, WNOHANG) == D.gw_pid) {
			D.gw_pid = 0;
			fprintf(stderr, "pgmoat demo: the gateway stopped unexpectedly\n");
			cleanup();
			return 1;
		}
		if (D.relay_pid > 0 && waitpid(D.relay_pid, &st, WNOHANG) == D.relay_pid) {
			D.relay_pid = 0;
			fprintf(stderr, "pgmoat demo: the relay stopped unexpectedly\n");
			cleanup();
			return 1;
		}
		if (D.pg_pid > 0 && kill(D.pg_pid, 0) < 0) {
			D.pg_pid = 0;
			fprintf(stderr, "pgmoat demo: PostgreSQL stopped unexpectedly\n");
			cleanup();
			return 1;
		}
		if (until && time(NULL) >= until)
			break;
		struct timespec ts = {0, 200 * 1000 * 1000};
		nanosleep(&ts, NULL);
	}
	fprintf(stderr, "\npgmoat demo: stopping the relay, the gateway and PostgreSQL, removing %s\n", D.dir);
	cleanup();
	return 0;
}
