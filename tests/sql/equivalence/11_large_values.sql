-- Large values: rows and fields far beyond the gateway's streaming threshold, in both directions.
SELECT length(repeat('x', 10 * 1024 * 1024)) AS ten_mb_not_sent;
SELECT repeat('0123456789abcdef', 12288) AS a_192kb_value;
SELECT md5(v), length(v) FROM (SELECT string_agg(md5(g::text), '') AS v FROM generate_series(1, 50000) g) s;
-- A 2 MB field travels to the client, is kept in a variable and sent back in a 2 MB query.
SELECT repeat('pgmoat-', 300000) AS big \gset
SELECT length(:'big') AS length_back, md5(:'big') AS md5_back;
SELECT repeat('ü', 600000) AS big_unicode \gset
SELECT length(:'big_unicode') AS chars, octet_length(:'big_unicode') AS bytes;
CREATE TEMP TABLE blobs (id int PRIMARY KEY, t text, b bytea);
INSERT INTO blobs VALUES (1, repeat('a', 1500000), decode(repeat('ff00', 750000), 'hex'));
INSERT INTO blobs VALUES (2, :'big', NULL);
SELECT id, length(t), md5(t), length(b), md5(b) FROM blobs ORDER BY id;
SELECT t AS big_text FROM blobs WHERE id = 1 \gset
SELECT length(:'big_text') AS got;
SELECT b AS big_bytea FROM blobs WHERE id = 1 \gset
SELECT length(:'big_bytea') AS hex_text_length, left(:'big_bytea', 10) AS head;
SELECT id, length(t), left(t, 20) FROM blobs ORDER BY id;
-- Many wide rows.
SELECT g, repeat(chr(65 + g % 26), 2000) AS wide FROM generate_series(1, 300) g WHERE g % 100 = 0 ORDER BY g;
SELECT count(*), sum(length(w)) FROM (SELECT repeat('w', 1000 + g) AS w FROM generate_series(1, 2000) g) s;
\set FETCH_COUNT 7
SELECT g, md5(g::text) FROM generate_series(1, 20) g ORDER BY g;
\unset FETCH_COUNT
SELECT length(string_agg(repeat('z', 1000), '')) FROM generate_series(1, 5000);
-- Messages from the server larger than the gateway's buffers: an error and a notice of 1.5 MB.
SELECT ('x' || repeat('y', 1500000))::int;
DO $$ BEGIN RAISE NOTICE 'big notice: %', repeat('n', 1500000); END $$;
SELECT 'after' AS still_alive;
DROP TABLE blobs;
