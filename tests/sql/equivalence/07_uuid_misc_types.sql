-- uuid, boolean, network, bit strings, geometric, xml-free misc types, pg_lsn, tsvector.
SELECT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'::uuid AS u, '{A0EEBC99-9C0B4EF8-BB6D6BB9-BD380A11}'::uuid AS braces,
       'a0eebc999c0b4ef8bb6d6bb9bd380a11'::uuid AS nodash;
SELECT 'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a1'::uuid;
SELECT u FROM (VALUES ('ffffffff-ffff-ffff-ffff-ffffffffffff'::uuid), ('00000000-0000-0000-0000-000000000000'),
       ('12345678-1234-5678-1234-567812345678')) v(u) ORDER BY u;
SELECT md5('x')::uuid AS md5_uuid, length(gen_random_uuid()::text) AS random_len;
SELECT true AS t, false AS f, NULL::boolean AS n, 'yes'::boolean, 'off'::boolean, '1'::boolean, 't'::boolean AND NULL;
SELECT 'maybe'::boolean;
SELECT bool_and(b), bool_or(b), every(b) FROM (VALUES (true), (false), (NULL)) v(b);
SELECT '192.168.1.5/24'::inet AS inet, '192.168.1.0/24'::cidr AS cidr, '::1'::inet AS v6, '2001:db8::/32'::cidr AS v6net,
       '08:00:2b:01:02:03'::macaddr AS mac, '08:00:2b:01:02:03:04:05'::macaddr8 AS mac8;
SELECT host('10.1.2.3/8'::inet), masklen('10.1.2.3/8'::inet), network('10.1.2.3/8'::inet), broadcast('10.1.2.3/8'::inet),
       '10.1.2.3'::inet << '10.0.0.0/8'::cidr AS contained, '10.0.0.1'::inet + 255 AS plus, family('::1');
SELECT '192.168.1.0/16'::cidr;
SELECT B'10101' AS b, '1010'::bit varying(8) AS vb, B'1100' & B'1010' AS band, B'1001' << 1 AS shifted,
       get_bit(B'1010', 0), bit_length(B'10101'), '101'::bit(3)::int;
SELECT point(1.5, 2), '(0,0),(1,1)'::box AS box, '<(0,0),2>'::circle AS circle, '[(0,0),(1,1),(2,0)]'::path AS path,
       '((0,0),(1,0),(1,1))'::polygon AS polygon, '{1,-1,0}'::line AS line, '[(0,0),(3,4)]'::lseg AS lseg;
SELECT point(0, 0) <-> point(3, 4) AS dist, area('(0,0),(2,3)'::box), center('(0,0),(2,2)'::box),
       '(1,1)'::point <@ '<(0,0),2>'::circle AS inside;
SELECT '16/B374D848'::pg_lsn AS lsn, '16/B374D848'::pg_lsn - '16/B374D800'::pg_lsn AS lsn_diff;
SELECT to_tsvector('english', 'The quick brown foxes jumped over the lazy dogs') AS tsv,
       to_tsquery('english', 'fox & dog') AS tsq,
       to_tsvector('english', 'The quick brown foxes') @@ to_tsquery('english', 'fox') AS match;
SELECT ts_headline('english', 'The quick brown fox jumps over the lazy dog', to_tsquery('english', 'fox'));
SELECT 'a:1 b:2'::tsvector, 'fat & (rat | cat)'::tsquery, plainto_tsquery('english', 'The Fat Rats');
SELECT 'xyz'::name AS name, 'r'::"char" AS ch, 42::oid AS oid_literal, 'int4'::regtype AS regtype,
       'pg_catalog.lower(text)'::regprocedure AS regproc, 'text[]'::regtype AS arr;
SELECT pg_typeof(1), pg_typeof(1.0), pg_typeof('a'::text), pg_typeof(ARRAY[1]), pg_typeof(NULL), pg_typeof(1::int8 + 1);
SELECT 'a'::text::bytea, 1::text || 2, 3::int::boolean, true::int, 65::"char", '1 day'::interval::text;
SELECT 1::boolean::text, 'on'::boolean::text, 2.5::float4::numeric, '2026-01-01'::date::timestamptz::date;
SELECT '10.5'::money;
SELECT txid_current() > 0 AS has_xid, pg_current_xact_id_if_assigned() IS NOT NULL AS assigned;
