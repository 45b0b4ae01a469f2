-- Notices, warnings and info messages with DETAIL, HINT, CONTEXT; client_min_messages filtering.
CREATE SCHEMA eq_notice;
SET search_path = eq_notice;
DO $$ BEGIN RAISE NOTICE 'plain notice'; END $$;
DO $$ BEGIN RAISE WARNING 'a warning with % and %', 'two', 'params'; END $$;
DO $$ BEGIN RAISE INFO 'info is always sent'; END $$;
DO $$ BEGIN RAISE LOG 'log is not sent to the client'; END $$;
DO $$ BEGIN RAISE DEBUG 'debug is not sent by default'; END $$;
DO $$ BEGIN
  RAISE NOTICE 'with detail and hint' USING DETAIL = 'the detail text', HINT = 'the hint text';
  RAISE WARNING 'custom sqlstate' USING ERRCODE = '01999', COLUMN = 'col', CONSTRAINT = 'cons', DATATYPE = 'dt',
    TABLE = 'tbl', SCHEMA = 'sch';
  RAISE NOTICE 'multi
line
notice';
END $$;
DO $$
DECLARE i int;
BEGIN
  FOR i IN 1..5 LOOP
    RAISE NOTICE 'loop %', i;
  END LOOP;
END $$;
SET client_min_messages = debug1;
DO $$ BEGIN RAISE DEBUG 'debug now visible'; RAISE LOG 'log visible at debug1'; END $$;
SET client_min_messages = warning;
DO $$ BEGIN RAISE NOTICE 'hidden notice'; RAISE WARNING 'visible warning'; RAISE INFO 'info ignores the setting'; END $$;
SET client_min_messages = error;
DO $$ BEGIN RAISE WARNING 'hidden warning'; END $$;
RESET client_min_messages;
CREATE TABLE IF NOT EXISTS n1 (x int);
CREATE TABLE IF NOT EXISTS n1 (x int);
DROP TABLE IF EXISTS no_such_table_here;
DROP FUNCTION IF EXISTS no_such_fn(int);
SELECT 'a'::varchar(1) AS ok;
CREATE FUNCTION eq_notice.noisy(n int) RETURNS int LANGUAGE plpgsql AS $$
BEGIN
  RAISE NOTICE 'noisy(%) called', n;
  IF n % 2 = 0 THEN RAISE WARNING 'even input %', n USING HINT = 'use odd numbers'; END IF;
  RETURN n * 10;
END $$;
SELECT g, eq_notice.noisy(g) FROM generate_series(1, 4) g ORDER BY g;
BEGIN;
DO $$ BEGIN RAISE NOTICE 'notice in a transaction'; END $$;
SAVEPOINT s;
DO $$ BEGIN RAISE NOTICE 'before the error'; RAISE EXCEPTION 'and then an error' USING HINT = 'roll back'; END $$;
ROLLBACK TO s;
COMMIT;
SET escape_string_warning = on;
SET standard_conforming_strings = off;
SELECT 'back\\slash' AS old_style;
RESET standard_conforming_strings;
RESET escape_string_warning;
BEGIN;
BEGIN;
COMMIT;
COMMIT;
SET search_path = no_such_schema_yet, pg_catalog;
SHOW search_path;
SET search_path = eq_notice;
\set VERBOSITY default
DO $$ BEGIN RAISE NOTICE 'default verbosity' USING DETAIL = 'd', HINT = 'h'; END $$;
SELECT 1 / 0;
\set VERBOSITY terse
DO $$ BEGIN RAISE NOTICE 'terse verbosity' USING DETAIL = 'd', HINT = 'h'; END $$;
SELECT 1 / 0;
\set VERBOSITY sqlstate
SELECT 1 / 0;
\set VERBOSITY verbose
\set SHOW_CONTEXT never
DO $$ BEGIN RAISE NOTICE 'no context shown'; END $$;
\set SHOW_CONTEXT errors
DO $$ BEGIN RAISE NOTICE 'context only for errors'; END $$;
DO $$ BEGIN RAISE EXCEPTION 'error with context'; END $$;
\set SHOW_CONTEXT always
\errverbose
DROP SCHEMA eq_notice CASCADE;
