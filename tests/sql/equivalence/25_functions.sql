-- Functions and procedures: SQL and PL/pgSQL, set-returning, OUT parameters, variadic, defaults, CALL, errors.
CREATE SCHEMA eq_fn;
SET search_path = eq_fn;
CREATE FUNCTION add(a int, b int DEFAULT 10) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT a + b';
CREATE FUNCTION divmod(n int, d int, OUT q int, OUT r int) LANGUAGE sql AS 'SELECT n / d, n % d';
CREATE FUNCTION series(n int) RETURNS SETOF int LANGUAGE sql AS 'SELECT generate_series(1, n)';
CREATE FUNCTION pairs(n int) RETURNS TABLE (i int, sq int) LANGUAGE plpgsql AS $$
BEGIN
  FOR i IN 1..n LOOP
    sq := i * i;
    RETURN NEXT;
  END LOOP;
END $$;
CREATE FUNCTION total(VARIADIC nums numeric[]) RETURNS numeric LANGUAGE sql AS 'SELECT sum(x) FROM unnest(nums) x';
CREATE FUNCTION fact(n bigint) RETURNS numeric LANGUAGE plpgsql IMMUTABLE STRICT AS $$
BEGIN
  IF n <= 1 THEN RETURN 1; END IF;
  RETURN n * fact(n - 1);
END $$;
CREATE FUNCTION classify(x anyelement) RETURNS text LANGUAGE plpgsql AS $$
BEGIN
  RETURN format('%s is %s', x, pg_typeof(x));
END $$;
CREATE FUNCTION fails(n int) RETURNS int LANGUAGE plpgsql AS $$
DECLARE v int;
BEGIN
  v := 100 / n;
  RETURN v;
EXCEPTION WHEN division_by_zero THEN
  RAISE WARNING 'division by zero caught, returning -1' USING DETAIL = format('n was %s', n);
  RETURN -1;
END $$;
CREATE FUNCTION rethrow() RETURNS void LANGUAGE plpgsql AS $$
BEGIN
  PERFORM 1 / 0;
EXCEPTION WHEN OTHERS THEN
  RAISE EXCEPTION 'wrapped: %', SQLERRM USING ERRCODE = 'P0002', HINT = 'from rethrow()';
END $$;
CREATE TABLE log (id int GENERATED ALWAYS AS IDENTITY, msg text);
CREATE PROCEDURE note(m text, INOUT cnt int DEFAULT NULL) LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO log (msg) VALUES (m);
  SELECT count(*) INTO cnt FROM log;
END $$;
CREATE PROCEDURE tx_proc() LANGUAGE plpgsql AS $$
BEGIN
  INSERT INTO log (msg) VALUES ('committed in proc');
  COMMIT;
  INSERT INTO log (msg) VALUES ('rolled back in proc');
  ROLLBACK;
END $$;
SELECT add(1, 2), add(5), add(b => 1, a => 2), divmod(17, 5), (divmod(17, 5)).q;
SELECT * FROM divmod(-17, 5);
SELECT series(3);
SELECT * FROM series(4) s ORDER BY s DESC;
SELECT * FROM pairs(5) ORDER BY i;
SELECT total(1, 2, 3.5), total(VARIADIC ARRAY[10, 20]::numeric[]), total();
SELECT fact(25), fact(NULL);
SELECT classify(1), classify('x'::text), classify(7), classify(ARRAY[1.5]);
SELECT fails(4), fails(0);
SELECT rethrow();
CALL note('first');
CALL note('second', NULL);
CALL tx_proc();
SELECT id, msg FROM log ORDER BY id;
BEGIN;
CALL tx_proc();
ROLLBACK;
CALL note();
CALL nope();
SELECT add('a', 1);
SELECT add(1, 2, 3);
SELECT add(2147483647, 1);
\df eq_fn.*
\sf eq_fn.add
\sf+ eq_fn.fails
CREATE FUNCTION add(a int, b int DEFAULT 10) RETURNS int LANGUAGE sql AS 'SELECT a - b';
CREATE OR REPLACE FUNCTION add(a int, b int DEFAULT 10) RETURNS int LANGUAGE sql AS 'SELECT a - b';
SELECT add(1, 2);
CREATE FUNCTION broken() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN nope; END $$;
SELECT broken();
CREATE FUNCTION syntax_err() RETURNS int LANGUAGE plpgsql AS $$ BEGIN RETURN 1 END $$;
CREATE FUNCTION counter() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
  NEW.msg := upper(NEW.msg);
  RAISE NOTICE 'trigger % on % for %', TG_NAME, TG_TABLE_NAME, TG_OP;
  RETURN NEW;
END $$;
CREATE TRIGGER up BEFORE INSERT ON log FOR EACH ROW EXECUTE FUNCTION counter();
INSERT INTO log (msg) VALUES ('lower case');
SELECT msg FROM log ORDER BY id DESC LIMIT 1;
DROP SCHEMA eq_fn CASCADE;
