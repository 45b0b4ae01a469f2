-- Large result sets: 50,000 rows in aligned, unaligned and expanded formats, and through FETCH_COUNT.
SELECT g AS n, g * 2 AS doubled, md5(g::text) AS hash, repeat('x', g % 17) AS pad
  FROM generate_series(1, 50000) g ORDER BY g;
\pset format unaligned
\pset fieldsep ','
SELECT g, to_char(g, 'FM00000'), g % 7 = 0 AS sevens FROM generate_series(1, 10000) g ORDER BY g;
\pset format aligned
\pset fieldsep '|'
\set FETCH_COUNT 1000
SELECT g, sqrt(g)::numeric(12,6) AS root FROM generate_series(1, 10000) g ORDER BY g;
\unset FETCH_COUNT
\x on
SELECT g AS id, 'row ' || g AS label, g::float8 / 3 AS third FROM generate_series(1, 1000) g ORDER BY g;
\x off
SELECT count(*), sum(g), min(g), max(g) FROM generate_series(1, 1000000) g;
SELECT a, b FROM generate_series(1, 300) a CROSS JOIN generate_series(1, 200) b WHERE (a * b) % 997 = 0 ORDER BY a, b;
