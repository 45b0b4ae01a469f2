-- COPY FROM STDIN with inline data: text and csv, options, bad data, errors mid-stream, \copy from files.
CREATE SCHEMA eq_copyin;
SET search_path = eq_copyin;
CREATE TABLE dst (id int PRIMARY KEY, name text, amount numeric, flag boolean, seen date);
COPY dst FROM STDIN;
1	alpha	1.5	t	2026-11-24
2	beta with space	\N	f	2026-01-01
3	tab\there	-3	\N	\N
4	back\\slash	0	true	infinity
\.
SELECT * FROM dst ORDER BY id;
COPY dst FROM STDIN WITH (FORMAT csv, HEADER);
id,name,amount,flag,seen
5,"quoted, comma",5.5,yes,2026-02-03
6,"line
break",6,no,
7,"say ""hi""",,t,2026-12-31
\.
COPY dst (id, name) FROM STDIN WITH (FORMAT csv, DELIMITER ';', NULL 'NIL', QUOTE '''');
8;'semi;colon'
9;NIL
\.
COPY dst (id, name, flag) FROM STDIN WITH (FORMAT csv, FORCE_NOT_NULL (name), FORCE_NULL (flag));
10,,""
\.
SELECT id, name, name IS NULL AS name_null, amount, flag, seen FROM dst ORDER BY id;
COPY dst FROM STDIN;
11	ok	1	t	2026-01-01
12	bad amount	abc	t	2026-01-01
13	never loaded	1	t	2026-01-01
\.
COPY dst FROM STDIN;
14	too	many	columns	here	extra
\.
COPY dst (id) FROM STDIN;
1
\.
COPY dst (id, seen) FROM STDIN WITH (FORMAT csv);
15,2026-02-30
\.
COPY dst FROM STDIN WITH (FORMAT csv);
16,"unterminated quote,1,t,2026-01-01
\.
SELECT count(*) AS after_failed_copies FROM dst;
BEGIN;
COPY dst (id, name) FROM STDIN;
20	in transaction
\.
COPY dst (id, name) FROM STDIN;
21	dup next
20	duplicate key inside transaction
\.
SELECT 'aborted';
ROLLBACK;
SELECT count(*) AS after_rollback FROM dst WHERE id >= 20;
COPY dst (id, name) FROM STDIN;
\.
CREATE TABLE bulk (n int, s text);
COPY bulk FROM STDIN;
1	one
2	two
3	three
4	four
5	five
6	six
7	seven
8	eight
9	nine
10	ten
\.
INSERT INTO bulk SELECT g, md5(g::text) FROM generate_series(11, 30000) g;
\cd :workdir
\copy bulk TO 'bulk.txt'
TRUNCATE bulk;
\copy bulk FROM 'bulk.txt'
SELECT count(*), sum(n), md5(string_agg(s, ',' ORDER BY n)) FROM bulk;
\copy bulk (n) FROM 'no_such_file.txt'
\copy bulk FROM STDIN WITH (FORMAT csv)
40001,"from \copy, inline"
\.
\copy bulk FROM pstdin
SELECT count(*) FROM bulk;
COPY dst (id, name) FROM STDIN WITH (FORMAT text, ENCODING 'LATIN1');
30	caf\351
\.
SELECT id, name FROM dst WHERE id = 30;
COPY dst FROM '/etc/hostname';
SELECT 'still connected' AS ok;
DROP TABLE dst, bulk;
DROP SCHEMA eq_copyin CASCADE;
