-- Arrays: literals, multidimensional, NULL elements, slicing, functions, unnest, errors.
SELECT ARRAY[1, 2, 3] AS ints, '{a,b,"c d"}'::text[] AS texts, ARRAY[[1, 2], [3, 4]] AS matrix, '{}'::int[] AS empty;
SELECT ARRAY[1, NULL, 3] AS with_null, ARRAY['NULL', NULL] AS null_string, '{"a\"b", "c,d", "e\\f"}'::text[] AS quoted;
SELECT (ARRAY[10, 20, 30, 40])[2] AS second, (ARRAY[10, 20, 30, 40])[2:3] AS slice, (ARRAY[10, 20])[5] AS out_of_range;
SELECT '[0:2]={7,8,9}'::int[] AS lower_bound_zero, array_lower('[0:2]={7,8,9}'::int[], 1), array_upper(ARRAY[1, 2], 1);
SELECT array_length(ARRAY[[1, 2, 3], [4, 5, 6]], 2), array_ndims(ARRAY[[1], [2]]), cardinality(ARRAY[[1, 2], [3, 4]]);
SELECT array_append(ARRAY[1, 2], 3), array_prepend(0, ARRAY[1]), array_cat(ARRAY[1], ARRAY[2, 3]), ARRAY[1] || 2 || ARRAY[3];
SELECT array_remove(ARRAY[1, 2, 1], 1), array_replace(ARRAY[1, 2, 1], 1, 9), array_position(ARRAY['a', 'b'], 'b'),
       array_positions(ARRAY[1, 2, 1], 1);
SELECT ARRAY[1, 2] @> ARRAY[2] AS contains, ARRAY[1, 2] && ARRAY[3] AS overlaps, ARRAY[1, 2] = ARRAY[1, 2] AS eq,
       ARRAY[1, 2] < ARRAY[1, 3] AS lt, 2 = ANY (ARRAY[1, 2]) AS any_, 2 > ALL (ARRAY[1, 3]) AS all_;
SELECT u, o FROM unnest(ARRAY['x', 'y', NULL]) WITH ORDINALITY AS t(u, o) ORDER BY o;
SELECT * FROM unnest(ARRAY[1, 2, 3], ARRAY['a', 'b']) AS t(n, s) ORDER BY n;
SELECT array_agg(x ORDER BY x DESC) AS agg, array_agg(DISTINCT x % 3 ORDER BY x % 3) AS mods
  FROM generate_series(1, 10) x;
SELECT array_to_string(ARRAY[1, NULL, 3], ',', '?'), string_to_array('1|2|3', '|')::int[], array_fill(7, ARRAY[2, 2]);
SELECT ARRAY[1.5, 2.25]::numeric[] AS nums, ARRAY[true, false, NULL] AS bools, ARRAY['2026-01-02'::date] AS dates,
       ARRAY['\x01ff'::bytea] AS bytes, ARRAY['{"k":1}'::jsonb] AS jsons;
SELECT ARRAY[[1, 2], [3]];
SELECT '{1,2'::int[];
SELECT ARRAY[1, 2] || ARRAY[[3, 4]];
SELECT ARRAY(SELECT g * g FROM generate_series(1, 12) g) AS squares;
SELECT array_dims(ARRAY[[[1, 2], [3, 4]], [[5, 6], [7, 8]]]), ARRAY[[[1, 2], [3, 4]], [[5, 6], [7, 8]]];
SELECT trim_array(ARRAY[1, 2, 3, 4], 2) AS trimmed;
SELECT cardinality(array_agg(g)), (array_agg(g))[9999] FROM generate_series(1, 10000) g;
CREATE TEMP TABLE arr (id int PRIMARY KEY, tags text[], grid int[][]);
INSERT INTO arr VALUES (1, '{red,green}', '{{1,2},{3,4}}'), (2, '{}', NULL), (3, ARRAY[NULL, 'blue'], '{{5}}');
UPDATE arr SET tags[3] = 'new' WHERE id = 1;
UPDATE arr SET tags = tags || 'x'::text WHERE id = 2;
SELECT id, tags, grid, tags[1] AS first_tag, grid[1][2] AS g12 FROM arr ORDER BY id;
SELECT id FROM arr WHERE 'blue' = ANY (tags) ORDER BY id;
DROP TABLE arr;
