-- Text, varchar, char(n), unicode, escapes, collation-free string functions.
SET standard_conforming_strings = on;
SELECT 'hello' AS t, 'it''s' AS quote, E'tab\there' AS tab, E'new\nline' AS newline, $$dollar 'quoted'$$ AS dq;
SELECT 'ab'::char(5) || '|' AS padded, 'ab'::varchar(5) AS vc, length('ab'::char(5)), octet_length('ab'::char(5));
SELECT 'abcdef'::varchar(3);
SELECT 'abc'::char(2);
SELECT 'grüße' AS de, 'Ελληνικά' AS el, '日本語テキスト' AS ja, 'emoji 🐘🚀' AS emoji, 'עברית' AS he;
SELECT length('grüße'), octet_length('grüße'), length('🐘'), octet_length('🐘'), upper('grüße'), lower('ÀÉÎ');
SELECT U&'\0041\00e9\+01F418' AS uescape, E'\u00e9\U0001F418' AS eescape, chr(9731), ascii('é');
SELECT 'x' || NULL AS concat_null, concat('a', NULL, 'b'), concat_ws('-', 'a', NULL, 'b', 'c');
SELECT substring('PostgreSQL' FROM 5 FOR 3), substr('PostgreSQL', 5), left('gateway', 4), right('gateway', 3);
SELECT position('SQL' IN 'PostgreSQL'), strpos('abcabc', 'c'), replace('a.b.c', '.', '::'), reverse('stressed');
SELECT lpad('7', 5, '0'), rpad('ab', 6, 'xy'), btrim('  sp  '), ltrim('xxabc', 'x'), repeat('ab', 4);
SELECT split_part('a,b,,d', ',', 4), string_to_array('a,b,,d', ','), array_to_string(ARRAY['x', NULL, 'z'], '/', '*');
SELECT initcap('hello wORLD'), md5('pgmoat'), encode(sha256('pgmoat'), 'hex'), quote_ident('Mixed Case'),
       quote_literal(E'o\'reilly'), quote_nullable(NULL), format('%s|%I|%L|%5s|%-5s|', 'a', 'B c', 'd''e', 'r', 'l');
SELECT 'abc' LIKE 'a%', 'ABC' ILIKE 'a_c', 'abc' SIMILAR TO '(a|b)%', 'foo123' ~ '^[a-z]+[0-9]+$', 'X' !~* 'x';
SELECT regexp_replace('2026-11-24', '(\d+)-(\d+)-(\d+)', '\3/\2/\1'), regexp_matches('a1b22c333', '\d+', 'g');
SELECT regexp_split_to_table('one  two three', '\s+') AS word ORDER BY 1;
SELECT translate('12345', '143', 'ax'), to_hex(255), starts_with('gateway', 'gate'), 'a' < 'b' AS lt;
SELECT string_agg(w, ',' ORDER BY w) FROM (VALUES ('pear'), ('apple'), ('fig')) v(w);
SELECT E'line1\nline2\nline3' AS multiline, 'col2' AS c2;
SELECT E'trailing spaces   ' AS t, E'\\backslash' AS b, E'carriage\rreturn' AS cr;
SELECT E'\x01\x07 control' AS ctrl;
SELECT E'\xff';
SELECT 'bad escape \' AS x;
SELECT convert_to('é', 'LATIN1'), convert_from('\xe9'::bytea, 'LATIN1'), normalize(U&'\0065\0301', NFC) = 'é' AS nfc;
SELECT '' AS empty, ' ' AS space, NULL::text AS null_text, length(''), '' IS NULL AS empty_is_null;
\pset null '<NULL>'
SELECT NULL::text AS n, '' AS e;
\pset null ''
SELECT md5(repeat('ünïcödé ', 1000)), length(repeat('ünïcödé ', 1000));
SELECT w, length(w) FROM (VALUES ('a'), ('ab'), ('日本'), ('🐘🐘🐘'), ('')) v(w) ORDER BY w COLLATE "C";
