-- Dates, times, timestamps, intervals with fixed values and fixed time zones; DateStyle and IntervalStyle.
SET TimeZone = 'UTC';
SET DateStyle = 'ISO, MDY';
SET IntervalStyle = 'postgres';
SHOW TimeZone;
SELECT '2026-11-24'::date AS d, '10:15:30.123456'::time AS t, '10:15:30+05:30'::timetz AS ttz,
       '2026-11-24 10:15:30.5'::timestamp AS ts, '2026-11-24 10:15:30.5+02'::timestamptz AS tstz;
SELECT 'epoch'::timestamptz AS epoch, 'infinity'::date AS inf, '-infinity'::timestamp AS ninf, '4713-01-01 BC'::date AS bc;
SELECT '2024-02-29'::date + 365 AS plus_days, '2026-03-01'::date - '2026-02-01'::date AS diff_days,
       '2026-01-31'::date + interval '1 month' AS month_end, age('2026-11-24'::timestamp, '1990-05-17'::timestamp);
SELECT extract(year FROM ts), extract(month FROM ts), extract(dow FROM ts), extract(doy FROM ts), extract(epoch FROM ts),
       extract(isodow FROM ts), extract(week FROM ts), date_part('quarter', ts)
  FROM (SELECT '2026-11-24 10:15:30.25'::timestamp ts) s;
SELECT date_trunc('month', '2026-11-24 10:15:30'::timestamp), date_trunc('hour', '2026-11-24 10:15:30+00'::timestamptz),
       date_bin('15 minutes', '2026-11-24 10:17:00'::timestamp, '2000-01-01'::timestamp);
SELECT to_char('2026-11-24 13:05:09.123'::timestamp, 'YYYY-MM-DD HH24:MI:SS.MS Day Mon DDth IYYY-IW'),
       to_date('24 Nov 2026', 'DD Mon YYYY'), to_timestamp('2026-11-24 10:00', 'YYYY-MM-DD HH24:MI');
SELECT make_date(2026, 2, 28), make_time(23, 59, 59.5), make_timestamp(2026, 1, 2, 3, 4, 5.6),
       make_interval(years => 1, days => 10, secs => 1.5), make_timestamptz(2026, 6, 1, 12, 0, 0, 'America/New_York');
SET TimeZone = 'Europe/Berlin';
SELECT '2026-03-29 01:30:00+00'::timestamptz AS before_dst, '2026-03-29 01:30:00+00'::timestamptz + interval '1 hour' AS after_dst,
       '2026-07-01 12:00:00'::timestamptz AS summer, '2026-12-01 12:00:00'::timestamptz AS winter;
SELECT '2026-11-24 12:00:00+00'::timestamptz AT TIME ZONE 'Asia/Kolkata' AS kolkata,
       '2026-11-24 12:00:00'::timestamp AT TIME ZONE 'America/Los_Angeles' AS from_la,
       timezone('Pacific/Chatham', '2026-11-24 12:00:00+00'::timestamptz) AS chatham;
SET TimeZone = 'America/Sao_Paulo';
SELECT '2026-11-24 12:00:00+00'::timestamptz AS sao_paulo, to_char('2026-11-24 12:00:00+00'::timestamptz, 'TZ OF');
SET TimeZone = '-03:30';
SELECT '2026-11-24 12:00:00+00'::timestamptz AS posix_offset;
SET TimeZone = 'UTC';
SET DateStyle = 'SQL, DMY';
SELECT '2026-11-24 10:15:30'::timestamp AS sql_dmy, '03/04/2026'::date AS dmy_input;
SET DateStyle = 'German';
SELECT '2026-11-24 10:15:30+00'::timestamptz AS german, '2026-11-24'::date;
SET DateStyle = 'Postgres, MDY';
SELECT '2026-11-24 10:15:30+00'::timestamptz AS postgres_style, '03/04/2026'::date AS mdy_input;
SET DateStyle = 'ISO, YMD';
SELECT interval '1 year 2 months 3 days 04:05:06.789' AS i, interval '-1 day +02:00', interval '36 hours',
       justify_hours(interval '36 hours'), justify_days(interval '35 days'), justify_interval(interval '1 mon -1 hour');
SET IntervalStyle = 'iso_8601';
SELECT interval '1 year 2 months 3 days 04:05:06.789' AS iso, interval '-10 minutes';
SET IntervalStyle = 'sql_standard';
SELECT interval '1 year 2 months 3 days 04:05:06.789' AS sql_std, interval '-1 year -2 months';
SET IntervalStyle = 'postgres_verbose';
SELECT interval '1 year 2 months 3 days 04:05:06.789' AS verbose, interval '-1 day';
SET IntervalStyle = 'postgres';
SELECT '2026-02-30'::date;
SELECT '25:00:00'::time;
SELECT '2026-11-24 10:00'::timestamptz AT TIME ZONE 'Mars/Olympus';
SET TimeZone = 'Nowhere/City';
SELECT interval '1 century' + interval '1 millennium' AS big, interval '1 microsecond' AS tiny;
SELECT ts FROM generate_series('2026-01-31'::timestamp, '2026-06-30', interval '1 month') ts ORDER BY ts;
SELECT d::date, to_char(d, 'Dy') FROM generate_series('2026-11-20'::date, '2026-11-26', '1 day') d ORDER BY d;
SELECT ('2026-11-24'::date, '2026-11-30'::date) OVERLAPS ('2026-11-29'::date, '2026-12-05'::date) AS overlaps;
SELECT isfinite('infinity'::date), '2026-11-24'::date = '2026-11-24 00:00'::timestamp AS cross_eq,
       '10:00'::time + interval '15 hours' AS wraps;
SELECT to_timestamp(1790000000) AS from_unix, extract(epoch FROM '2026-11-24 00:00:00+00'::timestamptz)::bigint;
SELECT '2026-11-24 10:15:30.123456789'::timestamp(3) AS rounded_ms, '12:00:00.999999'::time(0);
RESET DateStyle;
RESET IntervalStyle;
RESET TimeZone;
