-- Aggregates: GROUP BY, HAVING, FILTER, ordered-set, GROUPING SETS/ROLLUP/CUBE, DISTINCT, statistics.
CREATE SCHEMA eq_agg;
SET search_path = eq_agg;
CREATE TABLE m (city text, year int, product text, units int, price numeric);
INSERT INTO m VALUES ('Oslo', 2025, 'a', 10, 1.5), ('Oslo', 2025, 'b', 5, 2.0), ('Oslo', 2026, 'a', 7, 1.6),
  ('Rome', 2025, 'a', 3, 1.4), ('Rome', 2026, 'b', 9, 2.2), ('Rome', 2026, 'b', 1, 2.1), ('Lima', 2026, 'c', 4, NULL);
SELECT city, count(*), sum(units), avg(units)::numeric(6,2), min(price), max(price), sum(units * price) AS revenue
  FROM m GROUP BY city ORDER BY city;
SELECT city, sum(units) FROM m GROUP BY city HAVING sum(units) > 8 ORDER BY city;
SELECT count(*) FILTER (WHERE year = 2025) AS y25, count(*) FILTER (WHERE year = 2026) AS y26,
       sum(units) FILTER (WHERE product = 'a') AS a_units FROM m;
SELECT city, year, sum(units) FROM m GROUP BY ROLLUP (city, year) ORDER BY city NULLS LAST, year NULLS LAST;
SELECT city, product, sum(units), grouping(city, product) AS g FROM m GROUP BY CUBE (city, product)
  ORDER BY city NULLS LAST, product NULLS LAST;
SELECT city, year, product, count(*) FROM m GROUP BY GROUPING SETS ((city), (year), (product), ())
  ORDER BY city NULLS LAST, year NULLS LAST, product NULLS LAST;
SELECT percentile_cont(0.5) WITHIN GROUP (ORDER BY units) AS median, percentile_disc(0.5) WITHIN GROUP (ORDER BY units),
       mode() WITHIN GROUP (ORDER BY product), percentile_cont(ARRAY[0.25, 0.75]) WITHIN GROUP (ORDER BY units) FROM m;
SELECT rank(5) WITHIN GROUP (ORDER BY units), dense_rank(5) WITHIN GROUP (ORDER BY units) FROM m;
SELECT count(DISTINCT city), count(DISTINCT (city, product)), string_agg(DISTINCT product, '/' ORDER BY product) FROM m;
SELECT corr(units, price)::numeric(10,6), covar_pop(units, price)::numeric(10,6), regr_slope(price, units)::numeric(10,6),
       stddev_pop(units)::numeric(10,6), var_samp(units)::numeric(10,6) FROM m;
SELECT bit_and(units), bit_or(units), bit_xor(units), bool_and(units > 0), every(price IS NOT NULL) FROM m;
SELECT json_object_agg(city, n ORDER BY city) FROM (SELECT city, count(*) n FROM m GROUP BY city) s;
SELECT array_agg(units ORDER BY units DESC) FILTER (WHERE city = 'Oslo') AS oslo FROM m;
SELECT year, sum(units) FROM m GROUP BY 1 ORDER BY 1 DESC;
SELECT city FROM m GROUP BY city HAVING count(*) > 100;
SELECT sum(units) FROM m WHERE false;
SELECT count(*) FROM m GROUP BY ();
SELECT city, units FROM m GROUP BY city;
SELECT sum(city) FROM m;
SELECT avg(DISTINCT units ORDER BY units) FROM m;
SELECT max(units) OVER () , max(units) FROM m;
CREATE AGGREGATE product_agg (numeric) (sfunc = numeric_mul, stype = numeric, initcond = '1');
SELECT product_agg(units::numeric) FROM m;
SELECT city, product_agg(units) FROM m GROUP BY city ORDER BY city;
DROP SCHEMA eq_agg CASCADE;
