-- EXPLAIN with COSTS OFF (plans are deterministic on fixed, analysed data), in text, json, yaml and xml.
CREATE SCHEMA eq_explain;
SET search_path = eq_explain;
SET max_parallel_workers_per_gather = 0;
CREATE TABLE big (id int PRIMARY KEY, grp int, payload text);
INSERT INTO big SELECT g, g % 10, md5(g::text) FROM generate_series(1, 20000) g;
CREATE INDEX big_grp ON big (grp);
CREATE TABLE small (grp int PRIMARY KEY, name text);
INSERT INTO small SELECT g, 'group ' || g FROM generate_series(0, 9) g;
ANALYZE big;
ANALYZE small;
EXPLAIN (COSTS OFF) SELECT * FROM big WHERE id = 42;
EXPLAIN (COSTS OFF) SELECT * FROM big WHERE id < 100 ORDER BY id;
EXPLAIN (COSTS OFF) SELECT grp, count(*) FROM big GROUP BY grp ORDER BY grp;
EXPLAIN (COSTS OFF) SELECT s.name, count(*) FROM big b JOIN small s USING (grp) WHERE b.id <= 1000 GROUP BY s.name;
EXPLAIN (COSTS OFF, VERBOSE) SELECT id, upper(payload) FROM big WHERE id IN (1, 2, 3);
EXPLAIN (COSTS OFF, FORMAT json) SELECT * FROM small WHERE grp = 3;
EXPLAIN (COSTS OFF, FORMAT yaml) SELECT * FROM small ORDER BY name LIMIT 2;
EXPLAIN (COSTS OFF, FORMAT xml) SELECT count(*) FROM small;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT count(*) FROM big WHERE grp = 3;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF, BUFFERS OFF)
  SELECT * FROM small s WHERE EXISTS (SELECT 1 FROM big b WHERE b.grp = s.grp AND b.id < 5) ORDER BY grp;
EXPLAIN (COSTS OFF) WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r WHERE n < 5) SELECT * FROM r;
EXPLAIN (COSTS OFF) INSERT INTO small VALUES (10, 'ten') ON CONFLICT (grp) DO NOTHING;
EXPLAIN (COSTS OFF) UPDATE big SET payload = 'x' WHERE grp = 1 AND id < 50;
EXPLAIN (COSTS OFF) DELETE FROM big WHERE id = 1;
EXPLAIN (COSTS OFF) SELECT id, row_number() OVER (PARTITION BY grp ORDER BY id) FROM big WHERE id < 30;
SET enable_indexscan = off;
SET enable_bitmapscan = off;
EXPLAIN (COSTS OFF) SELECT * FROM big WHERE id = 42;
RESET enable_indexscan;
RESET enable_bitmapscan;
PREPARE p (int) AS SELECT * FROM big WHERE grp = $1;
EXPLAIN (COSTS OFF) EXECUTE p(1);
EXPLAIN (COSTS OFF, GENERIC_PLAN) SELECT 1;
EXPLAIN SELECT * FROM nope;
EXPLAIN (COSTS OFF, FORMAT csv) SELECT 1;
EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF, SUMMARY OFF) SELECT 1 / 0;
EXPLAIN (COSTS OFF) SELECT 1 \gset explained_
\echo :explained_QUERY PLAN
DROP SCHEMA eq_explain CASCADE;
