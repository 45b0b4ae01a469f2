-- Window functions: ranking, frames, named windows, aggregates over partitions, ties broken deterministically.
CREATE SCHEMA eq_win;
SET search_path = eq_win;
CREATE TABLE sales (region text, month int, amount numeric);
INSERT INTO sales VALUES ('east', 1, 100), ('east', 2, 150), ('east', 3, 150), ('east', 4, 90),
  ('west', 1, 200), ('west', 2, 80), ('west', 3, 80), ('west', 4, 300), ('north', 1, 10);
SELECT region, month, amount,
       row_number() OVER w AS rn, rank() OVER w AS rnk, dense_rank() OVER w AS drnk,
       percent_rank() OVER w AS prank, round((cume_dist() OVER w)::numeric, 4) AS cdist, ntile(2) OVER w AS half
  FROM sales WINDOW w AS (PARTITION BY region ORDER BY amount DESC, month) ORDER BY region, rn;
SELECT region, month, amount,
       sum(amount) OVER (PARTITION BY region ORDER BY month) AS running,
       sum(amount) OVER (PARTITION BY region ORDER BY month ROWS BETWEEN 1 PRECEDING AND 1 FOLLOWING) AS moving3,
       avg(amount) OVER (PARTITION BY region) AS region_avg,
       lag(amount) OVER (PARTITION BY region ORDER BY month) AS prev,
       lead(amount, 2, -1) OVER (PARTITION BY region ORDER BY month) AS next2,
       first_value(amount) OVER (PARTITION BY region ORDER BY month) AS first,
       last_value(amount) OVER (PARTITION BY region ORDER BY month ROWS BETWEEN UNBOUNDED PRECEDING AND UNBOUNDED FOLLOWING) AS last,
       nth_value(amount, 2) OVER (PARTITION BY region ORDER BY month) AS second
  FROM sales ORDER BY region, month;
SELECT month, amount,
       sum(amount) OVER (ORDER BY amount RANGE BETWEEN 50 PRECEDING AND CURRENT ROW) AS range50,
       count(*) OVER (ORDER BY amount GROUPS BETWEEN 1 PRECEDING AND 1 FOLLOWING) AS groups1,
       sum(amount) OVER (ORDER BY month, region ROWS UNBOUNDED PRECEDING EXCLUDE CURRENT ROW) AS excl
  FROM sales ORDER BY month, region;
SELECT region, month, amount FROM (
  SELECT *, rank() OVER (PARTITION BY region ORDER BY amount DESC, month) AS r FROM sales) s
 WHERE r = 1 ORDER BY region;
SELECT region, count(*) OVER () AS total_rows, count(*) OVER (PARTITION BY region) AS per_region,
       string_agg(month::text, ',') OVER (PARTITION BY region ORDER BY month) AS months
  FROM sales ORDER BY region, month;
SELECT g, sum(g) OVER (ORDER BY g) AS tri, g - lag(g, 1, 0) OVER (ORDER BY g) AS step
  FROM generate_series(1, 10) g ORDER BY g;
SELECT region, month, row_number() OVER (ORDER BY amount) FROM sales WHERE false;
SELECT rank() OVER (ORDER BY amount) FROM sales GROUP BY region;
SELECT sum(amount) OVER (ROWS BETWEEN -1 PRECEDING AND CURRENT ROW) FROM sales;
SELECT ntile(0) OVER () FROM sales;
SELECT region, sum(sum(amount)) OVER (ORDER BY region) AS cumulative_by_region FROM sales GROUP BY region ORDER BY region;
DROP SCHEMA eq_win CASCADE;
