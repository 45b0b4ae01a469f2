-- Prepared statements: PREPARE/EXECUTE/DEALLOCATE, parameter types, errors, pg_prepared_statements, \gdesc.
CREATE SCHEMA eq_prep;
SET search_path = eq_prep;
CREATE TABLE kv (k text PRIMARY KEY, v int);
PREPARE ins (text, int) AS INSERT INTO kv VALUES ($1, $2) RETURNING k, v;
PREPARE sel AS SELECT k, v FROM kv WHERE v >= $1 ORDER BY k;
PREPARE untyped AS SELECT $1 || '!' AS p, pg_typeof($1 || '!') AS t;
PREPARE unknown_param AS SELECT pg_typeof($1);
EXECUTE ins('a', 1);
EXECUTE ins('b', 2);
EXECUTE ins('c', '3');
EXECUTE ins('a', 4);
EXECUTE ins('d', 'x');
EXECUTE sel(2);
EXECUTE sel(0);
EXECUTE untyped('hello');
EXECUTE untyped(42);
SELECT name, statement, parameter_types, from_sql FROM pg_prepared_statements ORDER BY name;
EXECUTE sel;
EXECUTE sel(1, 2);
EXECUTE nope(1);
PREPARE sel AS SELECT 1;
PREPARE bad AS SELECT * FROM missing_table;
PREPARE bad2 (unknown_type) AS SELECT $1;
PREPARE typed (numeric, date, boolean[]) AS SELECT $1 * 2 AS dbl, $2 + 1 AS next_day, $3 AS flags;
EXECUTE typed(1.25, '2026-11-24', '{t,f}');
PREPARE upd (int) AS UPDATE kv SET v = v + $1;
EXECUTE upd(100);
EXECUTE sel(100);
ALTER TABLE kv ADD COLUMN extra text DEFAULT 'x';
EXECUTE sel(100);
PREPARE star AS SELECT * FROM kv ORDER BY k;
EXECUTE star;
ALTER TABLE kv DROP COLUMN extra;
EXECUTE star;
DEALLOCATE ins;
EXECUTE ins('e', 5);
DEALLOCATE PREPARE sel;
DEALLOCATE nope;
PREPARE div (int) AS SELECT 10 / $1;
EXECUTE div(2);
EXECUTE div(0);
BEGIN;
EXECUTE div(0);
EXECUTE div(5);
ROLLBACK;
EXPLAIN (COSTS OFF) EXECUTE typed(1, '2026-01-01', '{}');
CREATE TABLE AS_target AS EXECUTE div(1);
SELECT * FROM as_target;
DEALLOCATE ALL;
SELECT count(*) AS prepared_left FROM pg_prepared_statements;
-- \gdesc describes a query through Parse/Describe without running it.
SELECT k, v, v * 1.5 AS scaled, ARRAY[k] AS arr FROM kv \gdesc
SELECT 1 / 0 AS never_run \gdesc
SELECT nope FROM kv \gdesc
INSERT INTO kv VALUES ('z', 26) RETURNING * \gdesc
SELECT k, v FROM kv ORDER BY k;
-- Named parameters in SQL functions and psql variables used as parameters.
\set myk 'b'
SELECT k, v FROM kv WHERE k = :'myk';
\set cond 'v > 100'
SELECT k FROM kv WHERE :cond ORDER BY k;
DROP SCHEMA eq_prep CASCADE;
