-- The server ends the session with a FATAL of its own: the client sees exactly that one FATAL, then the end.
SELECT 'before' AS state;
SELECT pg_terminate_backend(pg_backend_pid());
SELECT 'never runs: psql stops when the connection is lost' AS state;
