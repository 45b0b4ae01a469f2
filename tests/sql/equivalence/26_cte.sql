-- Common table expressions: plain, recursive, materialized, data-modifying, SEARCH/CYCLE.
CREATE SCHEMA eq_cte;
SET search_path = eq_cte;
CREATE TABLE emp (id int PRIMARY KEY, name text, boss int REFERENCES emp (id), salary int);
INSERT INTO emp VALUES (1, 'ceo', NULL, 300), (2, 'cto', 1, 200), (3, 'cfo', 1, 190), (4, 'dev1', 2, 100),
  (5, 'dev2', 2, 110), (6, 'intern', 4, 20), (7, 'accountant', 3, 90);
WITH totals AS (SELECT boss, sum(salary) AS team FROM emp WHERE boss IS NOT NULL GROUP BY boss)
SELECT e.name, t.team FROM totals t JOIN emp e ON e.id = t.boss ORDER BY e.name;
WITH RECURSIVE chain(id, name, depth, path) AS (
  SELECT id, name, 0, ARRAY[name] FROM emp WHERE boss IS NULL
  UNION ALL
  SELECT e.id, e.name, c.depth + 1, c.path || e.name FROM emp e JOIN chain c ON e.boss = c.id
)
SELECT repeat('  ', depth) || name AS tree, depth, path FROM chain ORDER BY path;
WITH RECURSIVE fib(n, a, b) AS (SELECT 1, 0::numeric, 1::numeric UNION ALL SELECT n + 1, b, a + b FROM fib WHERE n < 90)
SELECT n, a FROM fib WHERE n % 10 = 0 ORDER BY n;
WITH RECURSIVE t(n) AS (VALUES (1) UNION ALL SELECT n + 1 FROM t WHERE n < 10000) SELECT count(*), sum(n) FROM t;
WITH RECURSIVE tree(id, boss) AS (SELECT id, boss FROM emp WHERE id = 1 UNION ALL SELECT e.id, e.boss FROM emp e, tree t WHERE e.boss = t.id)
  SEARCH DEPTH FIRST BY id SET ordercol
SELECT id, boss, ordercol FROM tree ORDER BY ordercol;
WITH RECURSIVE tree(id, boss) AS (SELECT id, boss FROM emp WHERE id = 1 UNION ALL SELECT e.id, e.boss FROM emp e, tree t WHERE e.boss = t.id)
  SEARCH BREADTH FIRST BY id SET ordercol
SELECT id, boss FROM tree ORDER BY ordercol;
CREATE TABLE edge (a int, b int);
INSERT INTO edge VALUES (1, 2), (2, 3), (3, 1), (3, 4);
WITH RECURSIVE walk(node) AS (SELECT 1 UNION ALL SELECT e.b FROM edge e JOIN walk w ON e.a = w.node)
  CYCLE node SET is_cycle USING route
SELECT node, is_cycle, route FROM walk ORDER BY route;
WITH m AS MATERIALIZED (SELECT id, salary FROM emp), n AS NOT MATERIALIZED (SELECT id FROM emp WHERE salary > 100)
SELECT count(*) FROM m JOIN n USING (id);
WITH moved AS (DELETE FROM emp WHERE id = 6 RETURNING *),
     raised AS (UPDATE emp SET salary = salary + 5 WHERE boss = 2 RETURNING id, salary),
     added AS (INSERT INTO emp VALUES (8, 'new', 1, 50) RETURNING id)
SELECT (SELECT count(*) FROM moved) AS deleted, (SELECT array_agg(id ORDER BY id) FROM raised) AS raised,
       (SELECT id FROM added) AS added;
SELECT id, name, salary FROM emp ORDER BY id;
WITH RECURSIVE bad(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM bad UNION ALL SELECT 1) SELECT * FROM bad;
WITH x AS (SELECT 1) SELECT * FROM y;
WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n * 2 FROM r WHERE n < 2000000000) SELECT max(n) FROM r;
WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n * 2 FROM r) SELECT n FROM r LIMIT 5;
WITH a AS (SELECT 1 AS v), b AS (SELECT v + 1 AS v FROM a), c AS (SELECT v * 10 AS v FROM b) SELECT * FROM a, b, c;
DROP SCHEMA eq_cte CASCADE;
