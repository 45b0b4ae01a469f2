/*
 * pgmoat — command-line entry: picks the subcommand and hands over.
 * No logic lives here.
 */
#include "cli/cli.h"
#include "core/config.h"
#include "core/util.h"
#include "demo/demo.h"
#include "doctor/doctor.h"
#include "gateway/gateway.h"
#include "relay/relay.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char usage[] =
	"pgmoat — an access gateway for AI agents (and people) on PostgreSQL\n"
	"\n"
	"usage: pgmoat COMMAND [options]   (every command takes --help)\n"
	"\n"
	"  serve -c pgmoat.yaml        run the gateway (Postgres listener + HTTP API)\n"
	"  check -c FILE               validate a config file; exit 1 on error\n"
	"  doctor -c FILE [--json]     check the roles and routes under each connection; exit 1 on a high risk\n"
	"  demo                        throwaway PostgreSQL + gateway with fake PII; Ctrl-C cleans up\n"
	"  identity add|list|disable|enable   manage identities\n"
	"  token issue|list|revoke     API tokens (shown once, stored hashed)\n"
	"  login [--issuer URL]        a person signs in (OAuth device flow); login --print-env: psql's lines\n"
	"  relay -c relay.yaml         run a relay beside the database; it dials out to the gateway\n"
	"  relays                      relays connected to the gateway: tunnels, sessions, last seen\n"
	"  sessions [--active]         live sessions\n"
	"  kill SESSION_ID             end a live session\n"
	"  request CONNECTION --scope S [--tables a,b] --for 30m --reason TEXT\n"
	"                              ask for just-in-time access\n"
	"  requests [--pending]        access requests; approve ID / deny ID [--comment T]\n"
	"  grants [--active]           grants in force; revoke GRANT_ID ends one\n"
	"  reviews [--pending]         per-statement reviews; review approve|deny ID\n"
	"  audit [--identity I] [--session S] [--since T] [--json]\n"
	"                              read the record; audit verify [-c FILE] checks its hash chain\n"
	"\n"
	"Admin verbs talk to a running gateway: --gateway URL (PGMOAT_GATEWAY, default\n"
	"http://127.0.0.1:8080) with a bearer token (PGMOAT_TOKEN or --token-file F, else\n"
	"the one pgmoat login kept).\n"
	"Exit codes: 0 ok, 1 refused or failed, 2 usage.\n";

static const char *config_arg(int argc, char **argv, const char *cmd, int *rc)
{
	const char *path = NULL;
	*rc = 0;
	for (int i = 2; i < argc; i++) {
		if ((!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config")) && i + 1 < argc)
			path = argv[++i];
		else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
			printf("usage: pgmoat %s -c pgmoat.yaml\n", cmd);
			*rc = -1;
			return NULL;
		} else {
			fprintf(stderr, "pgmoat %s: unknown argument '%s'\nusage: pgmoat %s -c pgmoat.yaml\n", cmd, argv[i], cmd);
			*rc = 2;
			return NULL;
		}
	}
	if (!path) {
		fprintf(stderr, "usage: pgmoat %s -c pgmoat.yaml\n", cmd);
		*rc = 2;
	}
	return path;
}

static int cmd_check(int argc, char **argv)
{
	int rc;
	const char *path = config_arg(argc, argv, "check", &rc);
	if (!path)
		return rc < 0 ? 0 : rc;
	char *errors = NULL;
	gw_config *cfg = gw_config_load(path, &errors);
	if (!cfg) {
		fputs(errors, stderr);
		free(errors);
		return 1;
	}
	printf("%s: ok (%zu connection%s, state %s)\n", path, cfg->n_conns, cfg->n_conns == 1 ? "" : "s", cfg->state);
	gw_config_free(cfg);
	return 0;
}

static int cmd_serve(int argc, char **argv)
{
	int rc;
	const char *path = config_arg(argc, argv, "serve", &rc);
	if (!path)
		return rc < 0 ? 0 : rc;
	return gw_serve(path);
}

int main(int argc, char **argv)
{
	if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help")) {
		fputs(usage, argc < 2 ? stderr : stdout);
		return argc < 2 ? 2 : 0;
	}
	curl_global_init(CURL_GLOBAL_DEFAULT);
	const char *cmd = argv[1];
	if (!strcmp(cmd, "serve") || !strcmp(cmd, "relay") || !strcmp(cmd, "demo"))
		gw_malloc_tune();
	int rc;
	if (!strcmp(cmd, "serve"))
		rc = cmd_serve(argc, argv);
	else if (!strcmp(cmd, "check"))
		rc = cmd_check(argc, argv);
	else if (!strcmp(cmd, "doctor"))
		rc = gw_doctor_main(argc - 1, argv + 1);
	else if (!strcmp(cmd, "demo"))
		rc = gw_demo_main(argc - 1, argv + 1);
	else if (!strcmp(cmd, "identity"))
		rc = gw_cli_identity(argc - 1, argv + 1);
	else if (!strcmp(cmd, "token"))
		rc = gw_cli_token(argc - 1, argv + 1);
	else if (!strcmp(cmd, "sessions"))
		rc = gw_cli_sessions(argc - 1, argv + 1);
	else if (!strcmp(cmd, "login"))
		rc = gw_cli_login(argc - 1, argv + 1);
	else if (!strcmp(cmd, "relay"))
		rc = gw_relay_main(argc - 1, argv + 1);
	else if (!strcmp(cmd, "relays"))
		rc = gw_cli_relays(argc - 1, argv + 1);
	else if (!strcmp(cmd, "kill"))
		rc = gw_cli_kill(argc - 1, argv + 1);
	else if (!strcmp(cmd, "request"))
		rc = gw_cli_request(argc - 1, argv + 1);
	else if (!strcmp(cmd, "requests"))
		rc = gw_cli_requests(argc - 1, argv + 1);
	else if (!strcmp(cmd, "approve"))
		rc = gw_cli_approve(argc - 1, argv + 1);
	else if (!strcmp(cmd, "deny"))
		rc = gw_cli_deny(argc - 1, argv + 1);
	else if (!strcmp(cmd, "grants"))
		rc = gw_cli_grants(argc - 1, argv + 1);
	else if (!strcmp(cmd, "revoke"))
		rc = gw_cli_revoke(argc - 1, argv + 1);
	else if (!strcmp(cmd, "reviews"))
		rc = gw_cli_reviews(argc - 1, argv + 1);
	else if (!strcmp(cmd, "review"))
		rc = gw_cli_review(argc - 1, argv + 1);
	else if (!strcmp(cmd, "audit"))
		rc = gw_cli_audit(argc - 1, argv + 1);
	else {
		fprintf(stderr, "pgmoat: unknown command '%s'\n\n%s", cmd, usage);
		rc = 2;
	}
	curl_global_cleanup();
	return rc;
}
