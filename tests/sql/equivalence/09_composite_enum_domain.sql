-- Composite types, enums and domains: I/O, comparison, errors with DETAIL.
CREATE SCHEMA eq_udt;
SET search_path = eq_udt;
CREATE TYPE address AS (street text, zip char(5), geo point);
CREATE TYPE mood AS ENUM ('sad', 'ok', 'happy');
CREATE DOMAIN posint AS int CHECK (VALUE > 0);
CREATE DOMAIN email AS text NOT NULL CHECK (VALUE ~ '^[^@]+@[^@]+$');
CREATE TABLE person (id posint PRIMARY KEY, name text, home address, feeling mood, contact email);
INSERT INTO person VALUES (1, 'Ada', ROW('1 Main St', '12345', '(1,2)'), 'happy', 'ada@example.org');
INSERT INTO person VALUES (2, 'Bob', ('2 "Quoted" Rd, Apt 3', NULL, NULL), 'sad', 'bob@example.org');
INSERT INTO person VALUES (3, 'Cy', NULL, 'ok', 'cy@example.org');
SELECT id, name, home, feeling, contact FROM person ORDER BY id;
SELECT id, (home).street, (home).zip, (home).geo FROM person ORDER BY id;
SELECT (p.home).* FROM person p WHERE id = 1;
SELECT feeling, feeling > 'sad' AS better_than_sad, enum_first(NULL::mood), enum_range(NULL::mood) FROM person ORDER BY feeling;
SELECT 'ecstatic'::mood;
INSERT INTO person VALUES (0, 'Zero', NULL, 'ok', 'z@example.org');
INSERT INTO person VALUES (4, 'Dee', NULL, 'ok', 'not-an-email');
INSERT INTO person VALUES (5, 'Eve', NULL, 'ok', NULL);
SELECT (-1)::posint;
ALTER TYPE mood ADD VALUE 'meh' BEFORE 'ok';
SELECT enum_range(NULL::mood) AS with_meh;
UPDATE person SET home.zip = '99999' WHERE id = 2;
SELECT ROW(1, 'a') = ROW(1, 'a') AS row_eq, ROW(1, 2) < ROW(1, 3) AS row_lt, ROW(1, NULL) = ROW(1, NULL) AS row_null,
       ROW(1, NULL) IS NOT DISTINCT FROM ROW(1, NULL) AS not_distinct;
SELECT ROW('x', 2.5, ARRAY[1, 2], '{"a":1}'::jsonb) AS anonymous_record, ('a', 'b') AS pair;
SELECT home FROM person WHERE id = 2;
SELECT '("a,b",12345,"(3,4)")'::address AS parsed, '(,,)'::address AS all_null, '("",,)'::address AS empty_string;
SELECT '(a,b'::address;
SELECT row_to_json(p) FROM person p ORDER BY id;
SELECT array_agg(home ORDER BY id) FROM person;
CREATE TYPE pair AS (a int, b int);
CREATE FUNCTION swap(p pair) RETURNS pair LANGUAGE sql IMMUTABLE AS $$ SELECT ROW(p.b, p.a)::pair $$;
SELECT swap(ROW(1, 2)), (swap(ROW(1, 2))).*;
\dT+ eq_udt.*
\dD eq_udt.*
\d eq_udt.person
DROP SCHEMA eq_udt CASCADE;
