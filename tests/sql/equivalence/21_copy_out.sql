-- COPY ... TO STDOUT in text, csv and binary, with options; \copy to stdout.
CREATE TEMP TABLE src (id int, name text, price numeric(8,2), tags text[], note text, at timestamptz, raw bytea);
SET TimeZone = 'UTC';
INSERT INTO src VALUES
  (1, 'plain', 1.50, '{a,b}', NULL, '2026-11-24 10:00:00+00', '\x00ff'),
  (2, 'tab	inside', 20, '{}', 'line1
line2', '2026-11-24 11:00:00+00', ''),
  (3, 'quote " and , comma', 300.25, '{"x y"}', 'back\slash', '2026-01-01 00:00:00+00', NULL),
  (4, 'ünïcödé 🐘', -4, NULL, '', 'infinity', '\x5c6e');
COPY src TO STDOUT;
COPY src (id, note) TO STDOUT WITH (NULL '<null>');
COPY src TO STDOUT WITH (FORMAT csv);
COPY src TO STDOUT WITH (FORMAT csv, HEADER, DELIMITER ';', QUOTE '''', FORCE_QUOTE (name, note), NULL 'NULL');
COPY src (id, name) TO STDOUT WITH (FORMAT csv, HEADER true, ESCAPE '\', FORCE_QUOTE *);
COPY src (id, name) TO STDOUT (DELIMITER '|');
COPY (SELECT id, name FROM src WHERE id > 2 ORDER BY id DESC) TO STDOUT;
COPY (SELECT g, g * 1.5 AS x FROM generate_series(1, 5) g) TO STDOUT WITH (FORMAT csv, HEADER);
COPY (SELECT 1 AS a, 'x' AS b) TO STDOUT WITH (FORMAT binary);
\echo
COPY (SELECT g FROM generate_series(1, 50000) g) TO STDOUT;
COPY (SELECT md5(g::text), repeat('r', 100) FROM generate_series(1, 3000) g) TO STDOUT WITH (FORMAT csv);
COPY (SELECT repeat('L', 200000) AS long_line) TO STDOUT;
COPY src TO STDOUT WITH (FORMAT xml);
COPY src TO STDOUT WITH (FORMAT csv, DELIMITER 'ab');
COPY src (nope) TO STDOUT;
COPY (SELECT 1 / 0) TO STDOUT;
COPY (SELECT CASE WHEN g < 5 THEN g ELSE g / 0 END FROM generate_series(1, 10) g) TO STDOUT;
COPY src TO '/tmp/pgmoat-eq-not-allowed.txt';
\copy (SELECT id, name FROM src ORDER BY id) TO STDOUT WITH (FORMAT csv, HEADER)
\copy src (id, price) TO STDOUT
\cd :workdir
\copy (SELECT id, note FROM src ORDER BY id) TO 'copy_out.csv' WITH (FORMAT csv)
COPY src (id) FROM STDIN;
5
6
\.
\copy src (id, note) FROM 'copy_out.csv' WITH (FORMAT csv)
SELECT id, note FROM src ORDER BY id, note;
\copy (SELECT 'ok' AS after_copy) TO STDOUT
SELECT 'after copies' AS ok;
DROP TABLE src;
