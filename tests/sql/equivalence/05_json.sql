-- json and jsonb: input normalisation, operators, path queries, building, errors.
SELECT '{"b": 1, "a": [1, 2.50, "x"], "a": null}'::json AS json_kept,
       '{"b": 1, "a": [1, 2.50, "x"], "a": null}'::jsonb AS jsonb_normalised;
SELECT '"é\u00e9 \ud83d\ude00"'::jsonb AS unicode, '1e3'::jsonb AS num, 'null'::jsonb, '[]'::jsonb, '{}'::jsonb;
SELECT j -> 'a' AS arrow, j ->> 'a' AS text_arrow, j #> '{c,d}' AS path, j #>> '{c,d}' AS path_text, j -> 'missing' AS none
  FROM (SELECT '{"a": [1, {"x": true}], "c": {"d": "deep"}}'::jsonb j) s;
SELECT '{"a": 1}'::jsonb @> '{"a": 1}' AS contains, '{"a": 1}'::jsonb ? 'a' AS has_key, '{"a":1,"b":2}'::jsonb ?& ARRAY['a', 'b'],
       '["a", "b"]'::jsonb ?| ARRAY['z', 'b'];
SELECT '{"a": 1, "b": 2}'::jsonb || '{"c": 3}' AS concat, '{"a": 1, "b": 2}'::jsonb - 'a' AS minus_key,
       '[1, 2, 3]'::jsonb - 1 AS minus_idx, '{"a": {"b": 1}}'::jsonb #- '{a,b}' AS minus_path;
SELECT jsonb_set('{"a": [1, 2]}', '{a,1}', '"two"'), jsonb_insert('{"a": [1, 2]}', '{a,0}', '0'),
       jsonb_strip_nulls('{"a": null, "b": {"c": null, "d": 1}}');
SELECT jsonb_pretty('{"name": "pgmoat", "tags": ["gateway", "postgres"], "nested": {"ok": true, "n": null}}');
SELECT key, value FROM jsonb_each('{"z": 1, "a": "x", "m": [1]}') ORDER BY key;
SELECT key, value FROM json_each_text('{"z": 1, "a": "x"}') ORDER BY key;
SELECT value FROM jsonb_array_elements('[3, "two", null, {"o": 1}]') WITH ORDINALITY e(value, n) ORDER BY n;
SELECT * FROM jsonb_to_record('{"a": 1, "b": "text", "c": [1,2]}') AS r(a int, b text, c int[]);
SELECT * FROM jsonb_to_recordset('[{"id": 2, "v": "b"}, {"id": 1, "v": "a"}]') AS r(id int, v text) ORDER BY id;
SELECT json_build_object('k', 1, 'arr', json_build_array(1, 'two', NULL)), jsonb_build_object('t', now() IS NOT NULL);
SELECT to_json('text "quoted"'::text), to_jsonb(ARRAY[1, 2]), row_to_json(ROW(1, 'x')), to_jsonb(1.10::numeric);
SELECT json_agg(x ORDER BY x), jsonb_object_agg(x::text, x * x ORDER BY x) FROM generate_series(1, 4) x;
SELECT jsonb_path_query_array('{"items": [{"p": 5}, {"p": 15}, {"p": 25}]}', '$.items[*] ? (@.p > 10).p') AS over10,
       jsonb_path_exists('{"a": [1, 2]}', '$.a[*] ? (@ == 2)'), '{"a": 2}'::jsonb @? '$.a ? (@ > 1)',
       jsonb_path_query_first('{"a": {"b": [7, 8]}}', '$.a.b[last]');
SELECT jsonb_typeof('1'), jsonb_typeof('"s"'), jsonb_typeof('[]'), json_typeof('null'), jsonb_array_length('[1,2,3]');
SELECT '{"a": 1'::jsonb;
SELECT '{"a": 1}'::jsonb -> 'a' -> 'b' AS on_scalar, ('[1]'::jsonb ->> 0)::int + 1 AS cast_ok;
SELECT jsonb_path_query('{"a": 1}', 'strict $.b');
SELECT ('{"a": "x"}'::jsonb ->> 'a')::int;
SELECT jsonb_set('[1]', '{0,1}', '1');
SELECT ('[1, 2, 3]'::jsonb)[1] AS subscript, ('{"a": {"b": 42}}'::jsonb)['a']['b'] AS nested_subscript;
CREATE TEMP TABLE docs (id int PRIMARY KEY, body jsonb);
INSERT INTO docs SELECT g, jsonb_build_object('n', g, 'even', g % 2 = 0, 'tags', jsonb_build_array('t' || g % 3))
  FROM generate_series(1, 9) g;
UPDATE docs SET body['extra'] = '"set by subscript"' WHERE id = 3;
SELECT id, body FROM docs WHERE body @> '{"even": true}' ORDER BY id;
SELECT body ->> 'tags' AS tags, count(*) FROM docs GROUP BY 1 ORDER BY 1;
SELECT body FROM docs WHERE id = 3;
DROP TABLE docs;
SELECT json_object('{a, 1, b, "def", c, 3.5}'), '  {"spaces" :  [ 1 , 2 ] }  '::json AS json_spacing_kept;
SELECT repeat('[', 5000)::jsonb;
