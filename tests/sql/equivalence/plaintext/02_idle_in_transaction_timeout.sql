-- The server times out an idle transaction (FATAL 25P03) while the client waits; the next query finds out.
SET idle_in_transaction_session_timeout = '100ms';
BEGIN;
SELECT 'in transaction' AS state;
\! sleep 0.5
SELECT 'never runs' AS state;
