/*
 * CLI: the admin and agent verbs (`identity`, `token`, `sessions`, `kill`,
 * and the just-in-time access verbs `request`, `requests`, `approve`, `deny`,
 * `grants`, `revoke`, `reviews`, `review`, and `audit`) as clients of a running
 * gateway's HTTP API. `audit verify -c FILE` alone reads the state file itself
 * (audit/), for when the gateway is down.
 *
 * Owns: option parsing for those verbs, the bearer token lookup
 * (--token-file, PGMOAT_TOKEN, else the token `pgmoat login` kept), HTTP calls (libcurl) and printing results as
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

/*
 * `pgmoat login` (login.c): a person signs in with the OAuth device flow (RFC 8628); the token is
 * kept with mode 0600 and `--print-env` prints the lines psql needs. Exit 0, 1 refused or failed, 2 usage.
 */
int gw_cli_login(int argc, char **argv);

/*
 * The token `pgmoat login` kept in its default place ($XDG_CONFIG_HOME/pgmoat/token or
 * ~/.config/pgmoat/token), for the admin verbs when neither --token-file nor PGMOAT_TOKEN is given.
 * Returns an owned string (the caller wipes and frees it), or NULL when there is none or it has
 * expired (then a line on stderr says so).
 */
char *gw_cli_login_token(void);

#endif
