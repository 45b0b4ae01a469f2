#!/usr/bin/python3
"""`pgmoat doctor` (issue 7): a fixture cluster with one role per risk, each reported with its id and
severity, and cleared by running the finding's own fix_sql as a superuser; a least-privilege role gives
exit 0; masking rules naming missing columns; plaintext and unverified upstream TLS; pg_hba.conf routes and
listen_addresses; the --json shape and the exit codes (0 clean, 1 high, 2 usage/config/connect)."""
import json
import os
import socket
import subprocess
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))
from harness import PGBIN, PGMOAT, Certs, Postgres, as_postgres, free_port, main, make_tempdir  # noqa: E402

S = {}
PW = "doc-pw"
DB = "docdb"


def own_ip():
    """This host's address on its default route (not loopback), or None."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.connect(("198.51.100.1", 9))
            ip = s.getsockname()[0]
        except OSError:
            return None
    return None if ip.startswith("127.") else ip


def server_cert_for(certs, ip):
    """Re-sign the test server certificate with this host's address in its names (for verify-full)."""
    d = certs.dir
    csr = os.path.join(d, "server2.csr")
    ext = os.path.join(d, "ext2.cnf")
    with open(ext, "w") as f:
        f.write("subjectAltName=DNS:localhost,IP:127.0.0.1%s\nbasicConstraints=CA:FALSE\n" %
                (",IP:" + ip if ip else ""))
    run = lambda *a: subprocess.run(a, check=True, capture_output=True)
    run("openssl", "req", "-new", "-key", certs.key, "-out", csr, "-subj", "/CN=localhost")
    run("openssl", "x509", "-req", "-in", csr, "-CA", certs.ca, "-CAkey", certs.ca_key, "-CAcreateserial",
        "-out", certs.cert, "-days", "2", "-extfile", ext)


ROLES = """
CREATE ROLE doc_super LOGIN SUPERUSER PASSWORD '{pw}';
CREATE ROLE doc_createrole LOGIN CREATEROLE PASSWORD '{pw}';
CREATE ROLE doc_createdb LOGIN CREATEDB PASSWORD '{pw}';
CREATE ROLE doc_repl LOGIN REPLICATION PASSWORD '{pw}';
CREATE ROLE doc_bypass LOGIN BYPASSRLS PASSWORD '{pw}';
CREATE ROLE doc_rsf LOGIN PASSWORD '{pw}';
GRANT pg_read_server_files TO doc_rsf;
CREATE ROLE doc_files_grp NOLOGIN;
GRANT pg_write_server_files TO doc_files_grp;
CREATE ROLE doc_wsf LOGIN PASSWORD '{pw}';
GRANT doc_files_grp TO doc_wsf;
CREATE ROLE doc_exec LOGIN PASSWORD '{pw}';
GRANT pg_execute_server_program TO doc_exec;
CREATE ROLE doc_signal LOGIN PASSWORD '{pw}';
GRANT pg_signal_backend TO doc_signal;
CREATE ROLE doc_rad LOGIN PASSWORD '{pw}';
GRANT pg_read_all_data TO doc_rad;
CREATE ROLE doc_wad LOGIN PASSWORD '{pw}';
GRANT pg_write_all_data TO doc_wad;
CREATE ROLE doc_owner LOGIN PASSWORD '{pw}';
CREATE ROLE doc_owner_grp NOLOGIN;
CREATE ROLE doc_via_owner LOGIN PASSWORD '{pw}';
GRANT doc_owner_grp TO doc_via_owner;
CREATE ROLE doc_writer LOGIN PASSWORD '{pw}';
CREATE ROLE doc_colwriter LOGIN PASSWORD '{pw}';
CREATE ROLE doc_create LOGIN PASSWORD '{pw}';
CREATE ROLE "Doc Quoted" LOGIN PASSWORD '{pw}';
CREATE ROLE doc_hba LOGIN PASSWORD '{pw}';
GRANT pg_read_all_settings TO doc_hba;
CREATE ROLE doc_someone LOGIN PASSWORD '{pw}';
CREATE ROLE doc_lp LOGIN PASSWORD '{pw}';
CREATE ROLE doc_tls LOGIN PASSWORD '{pw}';
""".format(pw=PW, db=DB)

OBJECTS = """
CREATE TABLE public.invoices (id int PRIMARY KEY, total numeric);
CREATE TABLE public.customers (id int PRIMARY KEY, name text, email text);
CREATE TABLE public.audit_log (id serial PRIMARY KEY, what text);
CREATE TABLE public.owned_t (id int);
ALTER TABLE public.owned_t OWNER TO doc_owner;
CREATE SCHEMA doc_own_s AUTHORIZATION doc_owner;
CREATE TABLE public.grp_owned (id int);
ALTER TABLE public.grp_owned OWNER TO doc_owner_grp;
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."Odd Table" (id int, "Odd Col" text);
GRANT USAGE ON SCHEMA "Odd Schema" TO "Doc Quoted";
GRANT SELECT, INSERT, DELETE ON "Odd Schema"."Odd Table" TO "Doc Quoted";
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON public.invoices TO doc_writer;
GRANT SELECT ON public.customers TO doc_writer;
GRANT SELECT ON public.audit_log TO doc_writer;
GRANT SELECT ON public.customers TO doc_colwriter;
GRANT UPDATE (email) ON public.customers TO doc_colwriter;
GRANT CREATE ON SCHEMA public TO doc_create;
GRANT CREATE ON DATABASE {db} TO doc_create;
GRANT SELECT ON public.invoices, public.customers TO doc_lp, doc_hba, doc_tls;
GRANT SELECT ON pg_catalog.pg_hba_file_rules TO doc_hba;
GRANT EXECUTE ON FUNCTION pg_catalog.pg_hba_file_rules() TO doc_hba;
""".format(db=DB)

READ_POLICY = """policies:
  - name: agents-read
    who: [group:agents]
    connections: [main]
    scope: read
    tables: [public.invoices, public.customers]
"""


def setup_module():
    ip = own_ip()
    certs = Certs()
    server_cert_for(certs, ip)
    hba = ("host all doc_hba 198.51.100.0/24 scram-sha-256\n"
           "host all doc_someone 203.0.113.0/24 trust\n")
    if ip:
        hba += "host all doc_tls %s/32 scram-sha-256\n" % ip
    pg = Postgres(ssl_certs=certs, hba_extra=hba, conf_extra="listen_addresses = '*'\n").start()
    pg.sql(ROLES)
    pg.sql("CREATE DATABASE %s" % DB)
    pg.sql(OBJECTS, db=DB)
    S.update(pg=pg, certs=certs, ip=ip, dir=make_tempdir("pgmoat-doctor-"))


def config(user, policies=READ_POLICY, masking="", host="127.0.0.1", sslmode="disable", extra_conn="", port=None):
    """A gateway config with one connection, main, as user."""
    text = ("listen: {postgres: \"127.0.0.1:%d\"}\n"
            "tls: {allow_plaintext_loopback: true}\n"
            "state: \"sqlite:%s/state.db\"\n"
            "connections:\n"
            "  - name: main\n"
            "    host: \"%s\"\n"
            "    port: %d\n"
            "    database: %s\n"
            "    user: \"%s\"\n"
            "    password: env:DOC_PW\n"
            "    sslmode: %s\n%s" % (free_port(), S["dir"], host, port or S["pg"].port, DB, user, sslmode,
                                     extra_conn)) + policies + masking
    path = os.path.join(S["dir"], "pgmoat-%s.yaml" % abs(hash(text)))
    with open(path, "w") as f:
        f.write(text)
    return path


def doctor(path, *args, json_out=True):
    env = dict(os.environ, DOC_PW=PW)
    cmd = [PGMOAT, "doctor", "-c", path] + (["--json"] if json_out else []) + list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=60)
    if json_out and r.returncode in (0, 1, 2) and r.stdout.startswith("{"):
        r.doc = json.loads(r.stdout)
    return r


def findings(r):
    out = []
    for c in r.doc["connections"]:
        out += c["findings"]
    return out


def check_and_fix(user, fid, severity, policies=READ_POLICY, what_has=None, db=DB, expect_rc=None):
    """Doctor as user reports fid at severity; its fix_sql, run as a superuser, clears it."""
    path = config(user, policies=policies)
    r = doctor(path)
    assert r.returncode in (0, 1), (r.returncode, r.stderr)
    fs = [f for f in findings(r) if f["id"] == fid and (not what_has or what_has in f["what"])]
    assert fs, "no %s finding for %s: %s" % (fid, user, json.dumps(findings(r), indent=1))
    for f in fs:
        assert f["severity"] == severity, f
        assert f["role"] == user, f
        assert f["what"] and f["why"] and f["fix_sql"], f
        if what_has:
            assert what_has in f["what"], f
    want_rc = expect_rc if expect_rc is not None else (1 if any(f["severity"] == "high" for f in findings(r)) else 0)
    assert r.returncode == want_rc, (r.returncode, findings(r))
    assert r.doc["exit"] == r.returncode
    for f in fs:
        S["pg"].sql(f["fix_sql"], db=db)
    r2 = doctor(path)
    assert r2.returncode in (0, 1), (r2.returncode, r2.stderr)
    fixed = {f["what"] for f in fs}
    left = [f for f in findings(r2) if f["id"] == fid and (not what_has or f["what"] in fixed)]
    assert not left, "fix_sql did not clear %s: %s" % (fid, left)
    return fs


def test_superuser():
    fs = check_and_fix("doc_super", "role_superuser", "high")
    assert fs[0]["fix_sql"] == 'ALTER ROLE doc_super NOSUPERUSER;'


def test_createrole_high_before_pg16():
    check_and_fix("doc_createrole", "role_createrole", "high")


def test_createdb_medium():
    check_and_fix("doc_createdb", "role_createdb", "medium")


def test_replication():
    check_and_fix("doc_repl", "role_replication", "high")


def test_bypassrls():
    check_and_fix("doc_bypass", "role_bypassrls", "high")


def test_pg_read_server_files():
    check_and_fix("doc_rsf", "member_pg_read_server_files", "high")


def test_pg_write_server_files_through_a_group():
    fs = check_and_fix("doc_wsf", "member_pg_write_server_files", "high", what_has="through doc_files_grp")
    assert fs[0]["fix_sql"] == "REVOKE doc_files_grp FROM doc_wsf;"


def test_pg_execute_server_program():
    check_and_fix("doc_exec", "member_pg_execute_server_program", "high")


def test_pg_signal_backend_medium():
    check_and_fix("doc_signal", "member_pg_signal_backend", "medium")


def test_pg_read_all_data():
    check_and_fix("doc_rad", "member_pg_read_all_data", "high")


def test_pg_write_all_data():
    check_and_fix("doc_wad", "member_pg_write_all_data", "high")


def test_owns_table_and_schema():
    fs = check_and_fix("doc_owner", "owns_table", "medium", what_has="public.owned_t")
    assert fs[0]["fix_sql"] == "ALTER TABLE public.owned_t OWNER TO postgres;"
    check_and_fix("doc_owner", "owns_schema", "medium", what_has="doc_own_s")


def test_owner_through_membership():
    fs = check_and_fix("doc_via_owner", "member_of_owner", "medium", what_has="public.grp_owned")
    assert fs[0]["fix_sql"] == "REVOKE doc_owner_grp FROM doc_via_owner;"


def test_ownership_is_info_with_a_ddl_policy():
    S["pg"].sql("CREATE TABLE public.owned_ddl (id int); ALTER TABLE public.owned_ddl OWNER TO doc_owner", db=DB)
    ddl = READ_POLICY + "  - {name: migrate, who: [group:dba], connections: [main], scope: ddl}\n"
    r = doctor(config("doc_owner", policies=ddl))
    fs = [f for f in findings(r) if f["id"] == "owns_table"]
    assert fs and all(f["severity"] == "info" for f in fs), fs
    S["pg"].sql("DROP TABLE public.owned_ddl", db=DB)


def test_write_privileges_above_a_read_policy():
    fs = check_and_fix("doc_writer", "table_privilege_above_policy", "medium", what_has="public.invoices")
    f = [x for x in fs if "invoices" in x["what"]][0]
    assert f["fix_sql"] == "REVOKE DELETE, INSERT, TRUNCATE, UPDATE ON TABLE public.invoices FROM doc_writer;", f


def test_select_beyond_the_policy_tables_is_low():
    # doc_writer's SELECT on public.audit_log: no policy names that table
    r = doctor(config("doc_writer"))
    fs = [f for f in findings(r) if f["id"] == "table_privilege_above_policy" and "audit_log" in f["what"]]
    assert len(fs) == 1 and fs[0]["severity"] == "low", findings(r)
    S["pg"].sql(fs[0]["fix_sql"], db=DB)
    r = doctor(config("doc_writer"))
    assert not [f for f in findings(r) if "audit_log" in f["what"]], findings(r)


def test_per_table_scope_allows_writes_where_a_policy_grants_them():
    S["pg"].sql("GRANT INSERT ON public.customers TO doc_lp", db=DB)
    write_customers = READ_POLICY + ("  - {name: w, who: [group:agents], connections: [main], scope: write,"
                                     " tables: [public.customers]}\n")
    r = doctor(config("doc_lp", policies=write_customers))
    assert not [f for f in findings(r) if f["id"] == "table_privilege_above_policy"], findings(r)
    r = doctor(config("doc_lp"))
    assert [f for f in findings(r) if f["id"] == "table_privilege_above_policy"], findings(r)
    S["pg"].sql("REVOKE INSERT ON public.customers FROM doc_lp", db=DB)


def test_column_privilege_above_policy():
    fs = check_and_fix("doc_colwriter", "column_privilege_above_policy", "medium", what_has="email")
    assert fs[0]["fix_sql"] == "REVOKE UPDATE (email) ON TABLE public.customers FROM doc_colwriter;", fs


def test_quoted_identifiers_in_fix_sql():
    pol = READ_POLICY.replace("tables: [public.invoices, public.customers]", "tables: [Odd Schema.Odd Table]")
    fs = check_and_fix('Doc Quoted', "table_privilege_above_policy", "medium", policies=pol)
    assert fs[0]["fix_sql"] == 'REVOKE DELETE, INSERT ON TABLE "Odd Schema"."Odd Table" FROM "Doc Quoted";', fs


def test_create_on_schema_and_database_without_ddl():
    check_and_fix("doc_create", "schema_create_without_ddl", "medium", what_has="public")
    check_and_fix("doc_create", "database_create_without_ddl", "medium", what_has=DB)


def test_least_privilege_role_is_clean():
    r = doctor(config("doc_lp"))
    assert r.returncode == 0, (r.returncode, r.stdout, r.stderr)
    fs = findings(r)
    assert not [f for f in fs if f["severity"] == "high"], fs
    ids = {f["id"] for f in fs}
    # what it can see of the routes: listen_addresses = '*' (medium), pg_hba.conf not readable (info)
    assert ids <= {"listen_network", "hba_not_readable"}, fs
    assert "hba_not_readable" in ids
    assert r.doc["summary"]["high"] == 0 and r.doc["exit"] == 0


def test_masking_rule_naming_a_missing_column():
    masking = ("masking:\n  rules:\n"
               "    - {column: public.customers.emial, action: redact}\n"
               "    - {column: public.customers.email, action: partial}\n"
               "    - {column: nosuch.ssn, action: redact}\n"
               "    - {column_name: \".*card.*\", action: redact}\n")
    r = doctor(config("doc_lp", masking=masking))
    fs = [f for f in findings(r) if f["id"] == "mask_column_missing"]
    assert len(fs) == 2, fs
    assert all(f["severity"] == "medium" and f["fix_sql"] is None and f["fix"] for f in fs), fs
    assert any("public.customers.emial" in f["what"] and "column" in f["what"] for f in fs), fs
    assert any("nosuch.ssn" in f["what"] and "table" in f["what"] for f in fs), fs
    # the fix is in the config: correct the rule
    r = doctor(config("doc_lp", masking=masking.replace("emial", "email").replace("nosuch.ssn", "customers.name")))
    assert not [f for f in findings(r) if f["id"] == "mask_column_missing"], findings(r)


def test_readable_report():
    r = doctor(config("doc_writer", masking="masking:\n  rules:\n    - {column: public.x.y, action: redact}\n"),
               json_out=False)
    assert r.returncode == 0, (r.returncode, r.stderr)
    out = r.stdout
    assert out.startswith("connection main (doc_writer@127.0.0.1:%d/%s, sslmode disable)" % (S["pg"].port, DB)), out
    assert "MEDIUM  mask_column_missing" in out and "why: " in out and "fix: " in out, out
    assert "medium" in out.splitlines()[-1], out
    # high first
    S["pg"].sql("GRANT pg_read_all_data TO doc_rad")
    r = doctor(config("doc_rad"), json_out=False)
    assert r.returncode == 1
    lines = [l for l in r.stdout.splitlines() if l.startswith("  ") and not l.startswith("   ")]
    assert lines[0].startswith("  HIGH    member_pg_read_all_data"), r.stdout
    assert "fix (SQL, as a superuser): REVOKE pg_read_all_data FROM doc_rad;" in r.stdout, r.stdout


def test_transport_plaintext_and_unverified():
    ip = S["ip"]
    assert ip, "this host has no address besides loopback to test a network upstream with"
    expect = {"disable": ("upstream_plaintext", "high", 1), "prefer": ("upstream_plaintext", "high", 1),
              "require": ("upstream_tls_unverified", "medium", 0), "verify-ca": ("upstream_tls_no_hostname", "low", 0)}
    for mode, (fid, sev, rc) in expect.items():
        extra = "    sslrootcert: file:%s\n" % S["certs"].ca if mode.startswith("verify") else ""
        r = doctor(config("doc_tls", host=ip, sslmode=mode, extra_conn=extra))
        assert r.returncode == rc, (mode, r.returncode, r.stderr, r.stdout)
        fs = [f for f in findings(r) if f["id"].startswith("upstream_")]
        assert len(fs) == 1 and fs[0]["id"] == fid and fs[0]["severity"] == sev, (mode, fs)
        assert fs[0]["fix_sql"] is None and "verify-full" in fs[0]["fix"], fs
        # from the network, the listener is the gateway's own way in: no listen_addresses finding
        assert not [f for f in findings(r) if f["id"] == "listen_network"], findings(r)
    # the fix: verify-full
    r = doctor(config("doc_tls", host=ip, sslmode="verify-full", extra_conn="    sslrootcert: file:%s\n" % S["certs"].ca))
    assert r.returncode == 0, (r.returncode, r.stderr)
    assert not [f for f in findings(r) if f["id"].startswith("upstream_")], findings(r)
    # loopback and Unix sockets never leave the host
    r = doctor(config("doc_lp", host=S["pg"].sock, sslmode="disable"))
    assert r.returncode == 0 and not [f for f in findings(r) if f["id"].startswith("upstream_")], r.stdout


def test_hba_route_for_the_upstream_role():
    fs = check_and_fix("doc_hba", "hba_role_route", "medium", what_has="198.51.100.0/24")


def test_hba_trust_route_for_another_login_role():
    fs = check_and_fix("doc_hba", "hba_network_route", "high", what_has="doc_someone")
    assert "203.0.113.0/24" in fs[0]["what"] and "trust" in fs[0]["what"], fs
    hba = S["pg"].sql("SELECT pg_read_file(current_setting('hba_file'))")
    assert "# disabled by pgmoat doctor: host all doc_someone 203.0.113.0/24 trust" in hba, hba
    assert "host all all 127.0.0.1/32 scram-sha-256" in hba.splitlines(), hba


def test_hba_over_a_unix_socket_every_tcp_line_is_beside_the_gateway():
    S["pg"].sql("ALTER ROLE doc_hba SET search_path = public")  # harmless; the doctor pins its own
    r = doctor(config("doc_hba", host=S["pg"].sock))
    fs = [f for f in findings(r) if f["id"] == "hba_role_route"]
    # host all all 127.0.0.1/32 scram-sha-256: the gateway does not come this way, any local process can
    assert fs and all(f["severity"] == "low" for f in fs) and "127.0.0.1/32" in fs[0]["what"], findings(r)
    assert "Unix socket" in fs[0]["what"]


def test_search_path_cannot_spoof_the_catalog():
    # a role with its own pg_roles look-alike first on its search_path still gets the catalog's answers
    S["pg"].sql("CREATE SCHEMA spoof AUTHORIZATION doc_super; "
                "CREATE TABLE spoof.pg_roles AS SELECT * FROM pg_catalog.pg_roles WHERE false; "
                "ALTER TABLE spoof.pg_roles OWNER TO doc_super; "
                "ALTER ROLE doc_super SET search_path = spoof, pg_catalog; ALTER ROLE doc_super SUPERUSER", db=DB)
    r = doctor(config("doc_super"))
    assert r.returncode == 1 and "role_superuser" in {f["id"] for f in findings(r)}, (r.stdout, r.stderr)
    S["pg"].sql("ALTER ROLE doc_super NOSUPERUSER; ALTER ROLE doc_super RESET search_path; DROP SCHEMA spoof CASCADE",
                db=DB)


def test_exit_codes_and_json_shape():
    r = subprocess.run([PGMOAT, "doctor"], capture_output=True, text=True)
    assert r.returncode == 2 and "usage: pgmoat doctor" in r.stderr, r
    r = subprocess.run([PGMOAT, "doctor", "--help"], capture_output=True, text=True)
    assert r.returncode == 0 and "usage: pgmoat doctor -c" in r.stdout
    r = subprocess.run([PGMOAT, "doctor", "-c", "/nonexistent.yaml"], capture_output=True, text=True)
    assert r.returncode == 2 and r.stderr, r
    r = subprocess.run([PGMOAT, "doctor", "-c", config("doc_lp"), "--bogus"], capture_output=True, text=True)
    assert r.returncode == 2
    # a connection that cannot be reached: 2, with the reason, per connection in --json
    r = doctor(config("doc_lp", port=free_port()))
    assert r.returncode == 2 and "cannot connect" in r.stderr, (r.returncode, r.stderr)
    doc = json.loads(r.stdout)
    assert doc["exit"] == 2 and "cannot connect" in doc["connections"][0]["error"]
    # a wrong password: 2 as well
    env = dict(os.environ, DOC_PW="wrong")
    r = subprocess.run([PGMOAT, "doctor", "-c", config("doc_lp")], capture_output=True, text=True, env=env)
    assert r.returncode == 2 and "password" in r.stderr, r.stderr
    # the shape
    S["pg"].sql("GRANT pg_read_all_data TO doc_rad")
    r = doctor(config("doc_rad"))
    assert r.returncode == 1
    assert set(r.doc) == {"connections", "summary", "exit"}
    assert set(r.doc["summary"]) == {"high", "medium", "low", "info"} and r.doc["summary"]["high"] >= 1
    c = r.doc["connections"][0]
    assert c["name"] == "main" and isinstance(c["findings"], list)
    for f in c["findings"]:
        assert {"id", "severity", "role", "what", "why", "fix_sql"} <= set(f), f
        assert f["severity"] in ("high", "medium", "low", "info")
        assert isinstance(f["fix_sql"], str) or (f["fix_sql"] is None and isinstance(f["fix"], str)), f
    sev = [f["severity"] for f in c["findings"]]
    order = ["high", "medium", "low", "info"]
    assert sev == sorted(sev, key=order.index), sev


def test_relay_connection_needs_the_running_gateway():
    # a connection through a relay: the gateway holds no password for it; its relay runs the checks, asked
    # through the running gateway (test_relay checks that path). With no gateway to ask, it is not checked:
    # the report says why and the exit code is 2; the direct connection is still checked.
    text = ("listen: {postgres: \"127.0.0.1:%d\", relay: \"127.0.0.1:%d\", http: \"127.0.0.1:%d\"}\n"
            "tls: {cert: file:%s, key: file:%s, allow_plaintext_loopback: true}\n"
            "state: \"sqlite:%s/state.db\"\n"
            "admin_token: env:DOC_PW\n"
            "connections:\n"
            "  - {name: direct, host: 127.0.0.1, port: %d, database: %s, user: doc_lp, password: env:DOC_PW,"
            " sslmode: disable}\n"
            "  - {name: far, relay: dc1, target: billing, database: %s, user: doc_lp}\n"
            % (free_port(), free_port(), free_port(), S["certs"].cert, S["certs"].key, S["dir"], S["pg"].port, DB, DB))
    path = os.path.join(S["dir"], "relay.yaml")
    with open(path, "w") as f:
        f.write(text)
    r = doctor(path)
    assert r.returncode == 2, (r.returncode, r.stdout, r.stderr)
    far = [c for c in r.doc["connections"] if c["name"] == "far"][0]
    assert "through relay dc1" in far["error"] and "does not answer" in far["error"] and far["findings"] == [], far
    direct = [c for c in r.doc["connections"] if c["name"] == "direct"][0]
    assert "error" not in direct and direct["findings"], direct
    r = doctor(path, json_out=False)
    assert "connection far (through relay dc1, target billing: checked by the relay)\n  not checked: through relay dc1" \
        in r.stdout, r.stdout
    assert "some connections could not be checked" in r.stdout.splitlines()[-1], r.stdout


def test_listen_addresses_with_the_gateway_on_loopback():
    # last: the fix takes a restart
    fs = [f for f in findings(doctor(config("doc_lp"))) if f["id"] == "listen_network"]
    assert len(fs) == 1 and fs[0]["severity"] == "medium", fs
    assert fs[0]["fix_sql"] == "ALTER SYSTEM SET listen_addresses = '127.0.0.1';", fs
    pg = S["pg"]
    pg.sql(fs[0]["fix_sql"])
    subprocess.run(as_postgres([PGBIN + "/pg_ctl", "-D", pg.data, "-l", os.path.join(pg.dir, "log"), "-w", "-t", "60",
                                "restart", "-m", "fast"]), check=True, capture_output=True)
    with open(os.path.join(pg.data, "postmaster.pid")) as f:
        pg.pid = int(f.readline())
    r = doctor(config("doc_lp"))
    assert not [f for f in findings(r) if f["id"] == "listen_network"], findings(r)
    # a network hba rule is now dormant: low
    r = doctor(config("doc_hba"))
    fs = [f for f in findings(r) if f["id"].startswith("hba_")]
    assert not [f for f in fs if f["severity"] in ("high", "medium")], fs


if __name__ == "__main__":
    main(globals())
