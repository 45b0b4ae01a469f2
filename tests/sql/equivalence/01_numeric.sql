-- Integer, numeric and float types: values, limits, arithmetic, rounding, casts, overflow.
SET extra_float_digits = 0;
SELECT 1::smallint AS s, 2::integer AS i, 3::bigint AS b;
SELECT 32767::smallint AS smax, (-32768)::smallint AS smin,
       2147483647::int AS imax, (-2147483648)::int AS imin,
       9223372036854775807::bigint AS bmax, (-9223372036854775808)::bigint AS bmin;
SELECT 32768::smallint;
SELECT 2147483647::int + 1;
SELECT 9223372036854775807::bigint * 2;
SELECT 123456789012345678901234567890.123456789::numeric AS big,
       -0.000000000000000000001::numeric AS tiny,
       1.50::numeric(10,2) AS scaled, 'NaN'::numeric AS nan;
SELECT 'Infinity'::numeric AS pinf, '-Infinity'::numeric AS ninf;
SELECT round(2.5), round(-2.5), round(2.5::float8), trunc(9.99), ceil(-1.1), floor(-1.1);
SELECT round(123.456789, 3), round(123.456789, -2), 10 / 3 AS intdiv, 10 % 3 AS intmod, 10.0 / 3 AS numdiv;
SELECT 2 ^ 10 AS pow, |/ 16 AS sqrt, ||/ 27 AS cbrt, @ -5 AS abs;
SELECT factorial(20), gcd(1071, 462), lcm(21, 6), mod(-7, 3), div(-7, 3);
SELECT 1.5::real AS r, 3.141592653589793::double precision AS d, 1e-300::float8 AS small, 1e300::float8 AS large;
SELECT 'Infinity'::float8, '-Infinity'::float4, 'NaN'::float8, '-0'::float8 AS negzero;
SET extra_float_digits = 3;
SELECT 0.1::float8 + 0.2::float8 AS sum, 1::float4 / 3 AS third4, 1::float8 / 3 AS third8;
SET extra_float_digits = 1;
SELECT 0.1::float8 + 0.2::float8 AS sum, 1::float4 / 3 AS third4, 1::float8 / 3 AS third8;
RESET extra_float_digits;
SELECT 1e308::float8 * 10;
SELECT '12abc'::int;
SELECT '1.5'::int;
SELECT 1.5::int AS rounds, (-1.5)::int AS rounds_neg, 2.5::bigint AS b;
SELECT 12345.678::numeric(5,2);
SELECT to_char(1234567.891, 'FM9,999,999.00'), to_char(-0.5, '0.99S'), to_number('12,345.6-', '99G999D9S');
SELECT 1234.5::money AS m, '$-1,234.56'::money + 1::money AS m2;
SELECT x, x::numeric(6,2), x::float4, x::int
  FROM (VALUES (0.005), (1.005), (-1.995), (99.999)) v(x) ORDER BY 1;
SELECT sum(x), avg(x), min(x), max(x), stddev_samp(x)::numeric(20,10), variance(x)
  FROM generate_series(1, 100) x;
SELECT sum(x::numeric) AS exact FROM generate_series(1, 100000) x;
SELECT width_bucket(5.35, 0.024, 10.06, 5), scale(8.4100), min_scale(8.4100), trim_scale(8.4100);
SELECT 255::bit(8) AS bits, B'1010' | B'0101' AS bor, x'ff'::int AS hex, 1 << 40 AS shift_int;
SELECT 1::bigint << 40 AS shift_big, ~0 AS notzero, 5 # 3 AS xor;
SELECT (2::numeric ^ 200) AS pow200;
SELECT exp(1::numeric), ln(10::numeric), log(1000::numeric), sqrt(2::numeric);
SELECT pi(), sin(0), cos(0), atan2(1, 1) * 4 AS pi2, degrees(pi()), radians(180);
