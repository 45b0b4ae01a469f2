-- Several statements in one line or one query string, empty queries, comments, and psql's \; .
SELECT 1 AS a; SELECT 2 AS b; SELECT 3 AS c;
SELECT 1 AS first \; SELECT 2 AS second \; SELECT 3 AS third;
SELECT 1 AS only_last_before_error \; SELECT 1 / 0 \; SELECT 'never';
CREATE TEMP TABLE m (x int) \; INSERT INTO m VALUES (1), (2) \; UPDATE m SET x = x * 10 \; SELECT * FROM m ORDER BY x;
INSERT INTO m VALUES (3) \; DELETE FROM m WHERE x = 10 \; SELECT count(*) FROM m;
;
;;;
-- a comment alone
/* a block comment alone */
SELECT ';' AS semicolon_in_string, $$;$$ AS in_dollar, 'x' /* ; */ AS in_comment;
SELECT 'a'
;
SELECT
'statement'
  ,
'spanning'
  ,
'lines';
SELECT 1 AS one; -- trailing comment ; with semicolon
SELECT 2 AS two /* comment */; SELECT 3 AS three
;
SELECT 'x' \; ;
\; SELECT 'leading' AS l;
SELECT 1 \g
SELECT 2 \gx
SELECT 'a' AS x, 'b' AS y \gx
\g
SELECT 'no semicolon at end of buffer'
\g
BEGIN \; SELECT 'in tx' \; COMMIT \; SELECT 'after tx';
SELECT 'x' \; BEGIN \; SELECT 'begin inside multi' AS note;
SELECT 'still in tx' AS note;
COMMIT;
SHOW transaction_isolation \; SET LOCAL work_mem = '2MB' \; SHOW work_mem;
SHOW work_mem;
VACUUM m \; SELECT 1;
DO $$BEGIN RAISE NOTICE 'one'; END$$ \; DO $$BEGIN RAISE NOTICE 'two'; END$$ \; SELECT 'three' AS t;
SELECT 'done' AS done;
DROP TABLE m;
