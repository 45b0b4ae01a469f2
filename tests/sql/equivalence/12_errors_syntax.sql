-- Syntax and parse errors, with positions, and the session goes on after each.
SELEC 1;
SELECT 1 +;
SELECT * FROM;
SELECT 'unterminated;
';
SELECT "unterminated identifier;
";
SELECT 1 FROM (SELECT 2);
SELECT 1 FROM (SELECT 2) AS s WHERE;
CREATE TABLE (id int);
INSERT INTO VALUES (1);
SELECT 1, 2 3 4;
SELECT (((1);
SELECT $1;
SELECT 1::notatype;
SELECT ARRAY[1, 'a'];
SELECT CASE WHEN true THEN 1 ELSE 'x' END;
SELECT 1 UNION SELECT 'a', 2;
SELECT count(*) OVER (PARTITION BY) FROM generate_series(1, 2);
SELECT 1 LIMIT 'a';
SELECT
  1,
  2,
  oops
  3;
SELECT 'ok' AS after_errors;
/* a comment with a stray ; inside */ SELECT 'comment ok';
-- unterminated block comment at end of a statement:
SELECT 'before' /* not closed
  still in comment */ AS closed_now;
SELECT U&'\zzzz';
SELECT E'\u12';
SELECT 99999999999999999999999999999999999999999999::int;
SELECT 1e400::float8;
SELECT 'abc' NOT SIMILAR 'x';
SELECT 'ok again';
