-- Fixture for the policy-decision integration test (tests/integration/policy_cases.py).
--
-- Load into database "app" as a superuser after Postgres.setup_roles() (which creates the
-- database and the role gw_scram), e.g.  pg.sql_file("tests/sql/policy_fixture.sql", db="app").
-- Every object is owned by gw_scram, the gateway's upstream role, so that ddl cases
-- (ALTER/DROP/COMMENT/TRUNCATE/GRANT on objects the role owns) can really run through the gateway.
-- Re-loading the file recreates everything from scratch.
--
-- Objects the cases rely on:
--   public.customers, public.invoices (note = 'update' on one row), public.secrets,
--   public.audit_log (columns named "delete", "update", "drop"), public.scratch (for destructive
--   cases), sequence public.invoice_no_seq, view public.invoice_summary, materialized view
--   public.invoice_totals_mv, STABLE public.invoice_total(int) (sum of a customer's invoices),
--   IMMUTABLE public.add_tax(numeric), VOLATILE public.bump() (inserts into audit_log),
--   public.stable_but_writes() (declared STABLE, but calls bump(): the catalog lies),
--   procedure public.log_event(text), schema other with other.invoices.

\set ON_ERROR_STOP 1
SET client_min_messages = warning;

DROP SCHEMA IF EXISTS other CASCADE;
DROP MATERIALIZED VIEW IF EXISTS public.invoice_totals_mv;
DROP VIEW IF EXISTS public.invoice_summary;
DROP TABLE IF EXISTS public.invoices, public.customers, public.secrets, public.audit_log, public.scratch CASCADE;
DROP SEQUENCE IF EXISTS public.invoice_no_seq;
DROP FUNCTION IF EXISTS public.invoice_total(int), public.add_tax(numeric), public.bump(), public.stable_but_writes();
DROP PROCEDURE IF EXISTS public.log_event(text);

SET ROLE gw_scram;

CREATE TABLE public.customers (
    id    int PRIMARY KEY,
    name  text NOT NULL,
    email text,
    city  text
);

CREATE TABLE public.invoices (
    id          int PRIMARY KEY,
    customer_id int NOT NULL REFERENCES public.customers (id),
    amount      numeric(10, 2) NOT NULL,
    status      text NOT NULL DEFAULT 'open',
    note        text,
    issued_on   date NOT NULL DEFAULT DATE '2026-01-01'
);

CREATE TABLE public.secrets (
    id    int PRIMARY KEY,
    name  text NOT NULL,
    value text NOT NULL
);

CREATE TABLE public.audit_log (
    id         bigserial PRIMARY KEY,
    action     text NOT NULL DEFAULT 'note',
    "delete"   boolean NOT NULL DEFAULT false,
    "update"   text,
    "drop"     int,
    note       text,
    created_at timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE public.scratch (
    id int PRIMARY KEY,
    v  text
);

CREATE SEQUENCE public.invoice_no_seq START 1000;

CREATE VIEW public.invoice_summary AS
    SELECT c.id AS customer_id, c.name, count(i.id) AS invoices, coalesce(sum(i.amount), 0) AS total
    FROM public.customers c LEFT JOIN public.invoices i ON i.customer_id = c.id
    GROUP BY c.id, c.name;

-- Total of all invoices of customer $1.
CREATE FUNCTION public.invoice_total(int) RETURNS numeric
    LANGUAGE sql STABLE
    AS $$ SELECT coalesce(sum(amount), 0) FROM public.invoices WHERE customer_id = $1 $$;

CREATE FUNCTION public.add_tax(numeric) RETURNS numeric
    LANGUAGE sql IMMUTABLE
    AS $$ SELECT round($1 * 1.19, 2) $$;

CREATE FUNCTION public.bump() RETURNS bigint
    LANGUAGE sql VOLATILE
    AS $$ INSERT INTO public.audit_log (action) VALUES ('bump') RETURNING id $$;

-- Declared STABLE but writes through bump(): the gateway trusts the catalog (SPEC), so this is a
-- "read"; for a read scope the upstream read-only floor (default_transaction_read_only) stops the write.
CREATE FUNCTION public.stable_but_writes() RETURNS bigint
    LANGUAGE plpgsql STABLE
    AS $$ BEGIN RETURN public.bump(); END $$;

CREATE PROCEDURE public.log_event(text)
    LANGUAGE sql
    AS $$ INSERT INTO public.audit_log (action, note) VALUES ('event', $1) $$;

CREATE SCHEMA other;
CREATE TABLE other.invoices (
    id     int PRIMARY KEY,
    amount numeric(10, 2) NOT NULL,
    note   text
);

INSERT INTO public.customers (id, name, email, city) VALUES
    (1, 'Ada Lovelace',  'ada@example.com',   'London'),
    (2, 'Alan Turing',   'alan@example.com',  'Manchester'),
    (3, 'Grace Hopper',  'grace@example.com', 'New York'),
    (4, 'Edsger Dijkstra', NULL,              'Amsterdam');

INSERT INTO public.invoices (id, customer_id, amount, status, note, issued_on) VALUES
    (1, 1, 120.00, 'paid', 'first invoice',    DATE '2026-01-05'),
    (2, 1,  80.50, 'open', 'update',           DATE '2026-02-01'),
    (3, 2, 300.00, 'open', 'DROP TABLE x',     DATE '2026-02-11'),
    (4, 3,  42.00, 'void', NULL,               DATE '2026-03-01'),
    (5, 3, 999.99, 'paid', 'it''s; DELETE',    DATE '2026-03-15');

INSERT INTO public.secrets (id, name, value) VALUES
    (1, 'api_key', 'sk-test-51HcXyzAbC'),
    (2, 'db_password', 'hunter2');

INSERT INTO public.audit_log (action, "delete", "update", "drop", note) VALUES
    ('login',  false, NULL,       NULL, 'first'),
    ('export', true,  'invoices', 1,    'update'),
    ('delete', true,  NULL,       2,    'DELETE FROM invoices');

INSERT INTO public.scratch (id, v) VALUES (1, 'a'), (2, 'b'), (3, 'c');

INSERT INTO other.invoices (id, amount, note) VALUES (1, 10.00, 'other schema'), (2, 20.00, NULL);

CREATE MATERIALIZED VIEW public.invoice_totals_mv AS
    SELECT customer_id, sum(amount) AS total FROM public.invoices GROUP BY customer_id;

RESET ROLE;
ANALYZE;
