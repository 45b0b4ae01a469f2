-- DML: INSERT/UPDATE/DELETE with RETURNING, ON CONFLICT, MERGE, sequences and identity columns, TRUNCATE.
CREATE SCHEMA eq_dml;
SET search_path = eq_dml;
CREATE TABLE stock (sku text PRIMARY KEY, qty int NOT NULL DEFAULT 0, price numeric(8,2), id int GENERATED ALWAYS AS IDENTITY);
INSERT INTO stock (sku, qty, price) VALUES ('apple', 10, 0.5), ('pear', 5, 0.75), ('fig', 0, 2) RETURNING *;
INSERT INTO stock (sku) VALUES ('plum') RETURNING sku, qty, price IS NULL AS no_price, id;
INSERT INTO stock (sku, id) VALUES ('kiwi', 99);
INSERT INTO stock (sku, id) OVERRIDING SYSTEM VALUE VALUES ('kiwi', 99) RETURNING id;
UPDATE stock SET qty = qty + 1 WHERE qty < 10 RETURNING sku, qty;
UPDATE stock SET price = price * 2 WHERE sku = 'none' RETURNING *;
DELETE FROM stock WHERE qty = 1 RETURNING sku;
INSERT INTO stock (sku, qty) VALUES ('apple', 1), ('melon', 3)
  ON CONFLICT (sku) DO UPDATE SET qty = stock.qty + EXCLUDED.qty RETURNING sku, qty, (xmax = 0) AS inserted;
INSERT INTO stock (sku, qty) VALUES ('apple', 1), ('apple', 2) ON CONFLICT (sku) DO UPDATE SET qty = 0;
INSERT INTO stock (sku, qty) VALUES ('pear', 100) ON CONFLICT (sku) DO UPDATE SET qty = EXCLUDED.qty WHERE stock.qty > 1000 RETURNING *;
CREATE TABLE incoming (sku text, qty int, price numeric(8,2));
INSERT INTO incoming VALUES ('apple', 5, NULL), ('grape', 7, 3.10), ('fig', 0, NULL), ('pear', -6, 0.80);
MERGE INTO stock s USING incoming i ON s.sku = i.sku
  WHEN MATCHED AND i.qty = 0 THEN DELETE
  WHEN MATCHED AND s.qty + i.qty < 0 THEN DO NOTHING
  WHEN MATCHED THEN UPDATE SET qty = s.qty + i.qty, price = coalesce(i.price, s.price)
  WHEN NOT MATCHED THEN INSERT (sku, qty, price) VALUES (i.sku, i.qty, i.price);
SELECT sku, qty, price, id FROM stock ORDER BY sku;
MERGE INTO stock s USING (VALUES ('apple', 1), ('apple', 2)) v(sku, q) ON s.sku = v.sku WHEN MATCHED THEN UPDATE SET qty = q;
UPDATE stock s SET qty = s.qty * 10 FROM incoming i WHERE i.sku = s.sku AND i.price IS NOT NULL RETURNING s.sku, s.qty;
DELETE FROM stock s USING incoming i WHERE i.sku = s.sku AND i.qty > 6 RETURNING s.*;
WITH upd AS (UPDATE stock SET qty = 0 WHERE sku = 'apple' RETURNING sku) SELECT count(*) FROM upd;
CREATE SEQUENCE ticket START 1000;
SELECT nextval('ticket'), nextval('ticket'), currval('ticket'), lastval();
SELECT setval('ticket', 5000), nextval('ticket'), setval('ticket', 42, false), nextval('ticket');
CREATE SEQUENCE tiny MAXVALUE 2;
SELECT nextval('tiny'), nextval('tiny');
SELECT nextval('tiny');
SELECT currval('never_used_seq');
CREATE SEQUENCE unused;
SELECT currval('unused');
TRUNCATE incoming;
SELECT count(*) FROM incoming;
TRUNCATE stock RESTART IDENTITY;
INSERT INTO stock (sku) VALUES ('after truncate') RETURNING id;
INSERT INTO stock SELECT 'bulk' || g, g, g / 10.0 FROM generate_series(1, 5000) g;
UPDATE stock SET qty = qty * 2 WHERE sku LIKE 'bulk%';
DELETE FROM stock WHERE qty % 4 = 0;
SELECT count(*), sum(qty), sum(price) FROM stock;
INSERT INTO stock (sku, qty) SELECT 'x', 1 FROM generate_series(1, 2);
INSERT INTO stock (sku, qty) VALUES ('neg', -1) RETURNING qty / 0;
SELECT count(*) FROM stock WHERE sku = 'neg';
DROP SCHEMA eq_dml CASCADE;
