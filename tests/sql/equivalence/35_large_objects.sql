-- Large objects: psql's \lo_* commands use the fast-path FunctionCall protocol; server-side lo_* functions.
\set QUIET on
\o :workdir/lo_source.txt
\qecho large object payload line 1
\qecho ünïcödé line 2 🐘
\o
\set QUIET off
BEGIN;
\set QUIET on
\lo_import :workdir/lo_source.txt
\set QUIET off
SELECT :LASTOID > 0 AS imported;
SELECT convert_from(lo_get(:LASTOID), 'UTF8') AS content;
SELECT length(lo_get(:LASTOID)) AS bytes;
\set lo :LASTOID
\lo_export :lo :workdir/lo_copy.txt
\set QUIET on
\lo_unlink :lo
\set QUIET off
COMMIT;
SELECT count(*) AS left_after_unlink FROM pg_largeobject_metadata WHERE oid = :lo;
\set QUIET on
\lo_import :workdir/lo_copy.txt
\set QUIET off
SELECT convert_from(lo_get(:LASTOID), 'UTF8') AS round_trip;
\set lo2 :LASTOID
\set QUIET on
\lo_unlink :lo2
\set QUIET off
\lo_import :workdir/no_such_file.txt
\lo_export 4294967000 :workdir/never.txt
\lo_unlink 4294967000
SELECT lo_from_bytea(0, decode(repeat('00ff', 100000), 'hex')) AS big_lo \gset
BEGIN;
SELECT lo_open(:big_lo, 393216) AS fd \gset
SELECT length(loread(:fd, 1000)) AS first_read, lo_lseek(:fd, 0, 2) AS size, lo_tell(:fd) AS pos;
SELECT lo_lseek(:fd, 10, 0), encode(loread(:fd, 4), 'hex') AS four_bytes;
SELECT lowrite(:fd, 'written');
SELECT lo_close(:fd);
COMMIT;
SELECT length(lo_get(:big_lo)) AS len, encode(lo_get(:big_lo, 10, 10), 'escape') AS slice;
SELECT md5(lo_get(:big_lo)) AS md5;
\set QUIET on
\lo_export :big_lo :workdir/big_lo.bin
\lo_import :workdir/big_lo.bin
\set QUIET off
SELECT md5(lo_get(:LASTOID)) = md5(lo_get(:big_lo)) AS big_round_trip;
SELECT lo_unlink(:LASTOID), lo_unlink(:big_lo);
-- The errors name the object's OID, which differs between runs: show only the SQLSTATE.
\set VERBOSITY sqlstate
SELECT lo_get(:big_lo);
SELECT lo_unlink(:big_lo);
\set VERBOSITY verbose
SELECT lo_import('/etc/hostname');
