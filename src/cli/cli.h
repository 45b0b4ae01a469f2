/*
 * CLI: the admin and agent verbs (`identity`, `token`, `sessions`, `kill`,
 * and the just-in-time access verbs `request`, `requests`, `approve`, `deny`,
 * `grants`, `revoke`, `reviews`, `review`, and `audit`) as clients of a running
 * gateway's HTTP API. `audit verify -c FILE` alone reads the state file itself
 * (audit/), for when the gateway is down.
 *
 * Owns: option parsing for those verbs, the bearer token lookup
 * (--token-file, PGMOAT_TOKEN), HTTP calls (libcurl) and printing results as
 * tables or JSON. Exit codes: 0 ok, 1 refused/failed, 2 usage.
 */
#ifndef GW_CLI_CLI_H
#define GW_CLI_CLI_H

int gw_cli_identity(int argc, char **argv);
int gw_cli_token(int argc, char **argv);
int gw_cli_sessions(int argc, char **argv);
int gw_cli_kill(int argc, char **argv);
int gw_cli_relays(int argc, char **argv);
/* Just-in-time access: `request`, `requests`, `approve`, `deny`, `grants`, `revoke`, `reviews`, `review`. */
int gw_cli_request(int argc, char **argv);
int gw_cli_requests(int argc, char **argv);
int gw_cli_approve(int argc, char **argv);
int gw_cli_deny(int argc, char **argv);
int gw_cli_grants(int argc, char **argv);
int gw_cli_revoke(int argc, char **argv);
int gw_cli_reviews(int argc, char **argv);
int gw_cli_review(int argc, char **argv);
/* The record: `audit` (read it, a session's timeline) and `audit verify` (API, or offline with -c). */
int gw_cli_audit(int argc, char **argv);

#endif
