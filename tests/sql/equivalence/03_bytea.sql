-- bytea in hex and escape output, functions, large-ish values.
SET bytea_output = 'hex';
SELECT '\x00ff10'::bytea AS hex, 'abc'::bytea AS text_in, E'\\001\\002'::bytea AS octal_in, ''::bytea AS empty;
SELECT decode('SGVsbG8=', 'base64'), encode('Hello'::bytea, 'base64'), encode('\x0001'::bytea, 'escape');
SELECT length('\xdeadbeef'::bytea), get_byte('\xdeadbeef'::bytea, 1), set_byte('\x0000'::bytea, 0, 255);
SELECT substring('\x0102030405'::bytea FROM 2 FOR 3), '\x01'::bytea || '\x02'::bytea, md5('\x00'::bytea);
SELECT sha224('abc'), sha512(''::bytea);
SET bytea_output = 'escape';
SELECT '\x00ff10'::bytea AS esc, 'abc\000def'::bytea AS nul, convert_to('é', 'UTF8') AS utf8;
SET bytea_output = 'hex';
SELECT '\xzz'::bytea;
SELECT decode('not base64!', 'base64');
SELECT get_byte('\x01'::bytea, 5);
SELECT md5(b), length(b) FROM (SELECT decode(repeat('00ff7f80', 250000), 'hex') AS b) s;
SELECT substr(encode(decode(repeat('0123456789abcdef', 8192), 'hex'), 'hex'), 1, 64) AS head,
       length(decode(repeat('0123456789abcdef', 8192), 'hex')) AS len;
SELECT decode(repeat('cafebabe', 5000), 'hex') AS twenty_kb;
SELECT string_agg(to_hex(get_byte(b, i)), ' ' ORDER BY i)
  FROM (SELECT '\x0a1b2c3d'::bytea b) s, generate_series(0, 3) i;
