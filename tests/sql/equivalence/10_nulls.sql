-- NULL semantics and NULL display in every position.
CREATE SCHEMA eq_nulls;
SET search_path = eq_nulls;
SELECT NULL AS untyped, NULL::int AS int_null, NULL::text AS text_null, NULL::jsonb AS jsonb_null, NULL::int[] AS arr_null;
SELECT NULL = NULL AS eq, NULL <> 1 AS ne, NULL IS NULL AS is_null, NULL IS DISTINCT FROM NULL AS distinct_,
       1 IS DISTINCT FROM NULL AS distinct_1, NULL::boolean IS UNKNOWN AS unknown_;
SELECT coalesce(NULL, NULL, 'third'), nullif(5, 5), nullif(5, 6), greatest(1, NULL, 3), least(NULL, 2);
SELECT NULL AND false AS and_f, NULL AND true AS and_t, NULL OR true AS or_t, NULL OR false AS or_f, NOT NULL::boolean AS not_;
SELECT count(*) AS all_rows, count(x) AS non_null, sum(x), avg(x), max(x), array_agg(x ORDER BY x NULLS FIRST)
  FROM (VALUES (1), (NULL), (3), (NULL)) v(x);
SELECT x FROM (VALUES (2), (NULL), (1)) v(x) ORDER BY x NULLS FIRST;
SELECT x FROM (VALUES (2), (NULL), (1)) v(x) ORDER BY x DESC NULLS LAST;
SELECT x, count(*) FROM (VALUES ('a'), (NULL), ('a'), (NULL)) v(x) GROUP BY x ORDER BY x;
SELECT DISTINCT x FROM (VALUES (NULL::int), (NULL), (1)) v(x) ORDER BY x;
SELECT 1 IN (1, NULL) AS in_hit, 2 IN (1, NULL) AS in_miss, 2 NOT IN (1, NULL) AS not_in,
       NULL = ANY (ARRAY[1]) AS any_null, 1 = ALL (ARRAY[1, NULL]) AS all_null;
SELECT sum(x) AS empty_sum, count(x) AS empty_count, max(x) FROM (SELECT 1 AS x WHERE false) s;
SELECT a.k, b.k FROM (VALUES (1), (NULL)) a(k) LEFT JOIN (VALUES (1), (NULL)) b(k) ON a.k = b.k ORDER BY a.k NULLS LAST;
SELECT concat(NULL), NULL || 'x', length(NULL), upper(NULL), NULL::text[] || ARRAY['a'], ARRAY[NULL]::text[];
\pset null '(null)'
SELECT NULL::int AS n, '' AS empty, ROW(NULL, NULL) AS r, ARRAY[NULL, 1] AS a, '{"k": null}'::jsonb AS j;
\pset format unaligned
SELECT NULL::int AS n, 'x' AS x;
\pset format aligned
\pset null ''
CREATE TABLE nn (a int NOT NULL, b text DEFAULT 'dflt', c int);
INSERT INTO nn (a) VALUES (1);
INSERT INTO nn VALUES (2, NULL, NULL);
INSERT INTO nn (b) VALUES ('no a');
INSERT INTO nn VALUES (NULL, 'x', 1);
SELECT a, b, c, b IS NULL AS b_null FROM nn ORDER BY a;
UPDATE nn SET c = NULL WHERE c IS NULL;
UPDATE nn SET a = NULL;
SELECT * FROM nn WHERE c = NULL;
SELECT count(*) FILTER (WHERE c IS NULL) FROM nn;
DROP TABLE nn;
DROP SCHEMA eq_nulls CASCADE;
