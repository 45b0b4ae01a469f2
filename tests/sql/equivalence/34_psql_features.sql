-- psql client features that run queries: \gset, \gexec, \if, \crosstabview, output formats, variables.
SELECT 42 AS answer, 'text value' AS label \gset
\echo :answer :label
SELECT 1 AS a, 2 AS b \gset pre_
\echo :pre_a :pre_b
SELECT 1 AS a WHERE false \gset
SELECT 1 AS a, 2 AS a FROM generate_series(1, 2) \gset
\echo :ROW_COUNT :SQLSTATE
SELECT format('SELECT %s AS gexec_%s', g, g) FROM generate_series(1, 3) g ORDER BY g \gexec
SELECT 'SELECT 1 / 0', 'SELECT ''after gexec error''' \gexec
SELECT current_user = 'gw_scram' AS is_gw \gset
\if :is_gw
  \echo running as the upstream role
\else
  \echo unexpected role
\endif
SELECT count(*) > 0 AS has_rows FROM pg_class \gset
\if :has_rows
SELECT 'conditional query ran' AS cond;
\elif false
SELECT 'never';
\endif
\set v1 'hello world'
SELECT :'v1' AS quoted, :"v1" AS ident_err;
SELECT :'v1' AS quoted;
\set num 7
SELECT :num * 6 AS product;
\set undefined_use_is_literal
SELECT ':nope' AS not_interpolated_in_string;
CREATE TEMP TABLE ct (row_k text, col_k text, v int);
INSERT INTO ct VALUES ('r1', 'c1', 1), ('r1', 'c2', 2), ('r2', 'c1', 3), ('r2', 'c3', 4), ('r3', 'c2', 5);
SELECT row_k, col_k, v FROM ct ORDER BY row_k, col_k \crosstabview
SELECT row_k, col_k, v FROM ct ORDER BY row_k, col_k \crosstabview col_k row_k v
\pset format unaligned
SELECT * FROM ct ORDER BY row_k, col_k;
\pset format csv
SELECT * FROM ct ORDER BY row_k, col_k;
SELECT 'has,comma' AS a, 'has"quote' AS b, E'has\nnewline' AS c;
\pset format html
SELECT * FROM ct WHERE v < 3 ORDER BY v;
\pset format latex
SELECT * FROM ct WHERE v < 3 ORDER BY v;
\pset format asciidoc
SELECT * FROM ct WHERE v < 3 ORDER BY v;
\pset format wrapped
\pset columns 40
SELECT repeat('wrap me ', 12) AS long_text, 1 AS n;
\pset format aligned
\pset border 2
SELECT * FROM ct WHERE v < 3 ORDER BY v;
\pset linestyle unicode
SELECT * FROM ct WHERE v < 3 ORDER BY v;
\pset border 1
\pset linestyle ascii
\pset tuples_only on
SELECT * FROM ct ORDER BY v;
\pset tuples_only off
\pset footer off
SELECT * FROM ct WHERE v = 1;
\pset footer on
\pset title 'A title'
SELECT * FROM ct WHERE v = 1;
\pset title
\pset numericlocale off
\x auto
SELECT * FROM ct WHERE v = 2;
\x off
\C 'caption'
SELECT 1 AS captioned;
\C
\qecho to query output
\echo -n no newline
\echo
\warn to stderr
\set ECHO queries
SELECT 'echo queries mode' AS e;
\set ECHO all
\set QUIET on
SELECT 'quiet mode keeps results' AS q;
INSERT INTO ct VALUES ('r9', 'c9', 9);
\set QUIET off
\o :workdir/query_output.txt
SELECT 'into a file' AS f;
\o
\o :workdir/included.sql
\qecho SELECT 40 + 2 AS included_script;
\qecho SELECT 1 / 0;
\o
\i :workdir/included.sql
\ir no_such_included_file.sql
\set ON_ERROR_STOP on
\set ON_ERROR_STOP off
\unknown_backslash_command
\echo :HIDE_TOAST_COMPRESSION :VERBOSITY :SHOW_CONTEXT
DROP TABLE ct;
