-- Range and multirange types.
SET TimeZone = 'UTC';
SELECT int4range(1, 10) AS default_bounds, int4range(1, 10, '[]') AS closed_canonical, '(1,10]'::int4range AS half,
       numrange(1.5, 2.5, '()') AS num, 'empty'::int4range AS empty, '[5,)'::int8range AS unbounded;
SELECT tsrange('2026-11-24 09:00', '2026-11-24 17:00') AS work, daterange('2026-11-01', '2026-12-01', '[]') AS nov,
       tstzrange('2026-11-24 09:00+00', NULL) AS open_end;
SELECT lower(int4range(3, 7)), upper(int4range(3, 7)), isempty(int4range(3, 3)), lower_inc('(1,5]'::int4range),
       upper_inf('[1,)'::int4range), range_merge(int4range(1, 3), int4range(5, 8));
SELECT int4range(1, 10) @> 5 AS contains_elem, int4range(1, 10) @> int4range(2, 3) AS contains_range,
       int4range(1, 5) && int4range(4, 8) AS overlap, int4range(1, 5) -|- int4range(5, 8) AS adjacent,
       int4range(1, 5) << int4range(6, 8) AS strictly_left;
SELECT int4range(1, 5) + int4range(3, 8) AS union_, int4range(1, 5) * int4range(3, 8) AS intersect_,
       int4range(1, 10) - int4range(3, 5) AS minus_not_contiguous;
SELECT int4range(1, 10) - int4range(1, 5) AS minus_ok;
SELECT int4range(10, 1);
SELECT '[1,2'::int4range;
SELECT '{[1,3), [5,8)}'::int4multirange AS mr, '{}'::int4multirange AS empty_mr,
       int4multirange(int4range(1, 3), int4range(2, 6), int4range(10, 11)) AS merged;
SELECT '{[1,3), [5,8)}'::int4multirange @> 6 AS has6, '{[1,3), [5,8)}'::int4multirange - '{[2,6)}'::int4multirange AS diff,
       range_agg(r ORDER BY r) AS agg
  FROM (VALUES (int4range(1, 2)), (int4range(2, 4)), (int4range(7, 9))) v(r);
SELECT u FROM unnest('{[1,3), [5,8), [10,12)}'::int4multirange) u ORDER BY u;
CREATE SCHEMA eq_ranges;
CREATE TYPE eq_ranges.floatrange AS RANGE (subtype = float8, subtype_diff = float8mi);
SELECT '[1.5,2.5]'::eq_ranges.floatrange AS custom, eq_ranges.floatrange(1, 2) @> 1.5::float8 AS has;
CREATE EXTENSION btree_gist SCHEMA eq_ranges;
CREATE TABLE eq_ranges.booking (room int, during tsrange, EXCLUDE USING gist (room WITH =, during WITH &&));
INSERT INTO eq_ranges.booking VALUES (1, '[2026-11-24 09:00, 2026-11-24 10:00)'), (2, '[2026-11-24 09:00, 2026-11-24 11:00)');
INSERT INTO eq_ranges.booking VALUES (1, '[2026-11-24 09:30, 2026-11-24 10:30)');
INSERT INTO eq_ranges.booking VALUES (1, '[2026-11-24 10:00, 2026-11-24 10:30)');
SELECT room, during FROM eq_ranges.booking ORDER BY room, during;
SELECT room, during FROM eq_ranges.booking WHERE during @> '2026-11-24 10:15'::timestamp ORDER BY room;
DROP SCHEMA eq_ranges CASCADE;
