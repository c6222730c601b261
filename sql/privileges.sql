--
-- privileges: who may reset, and who may see which query text
--
SELECT shield.reset() IS NOT NULL AS reset;

SET ROLE regress_shield_alice;
SELECT v AS alice_secret FROM shield_t WHERE id = 42;
RESET ROLE;
SET ROLE regress_shield_bob;
SELECT v AS bob_query FROM shield_t WHERE id = 7;

-- bob sees alice's numbers, not her text or fingerprint
SELECT rolname, queryid IS NULL AS queryid_hidden, query, calls
FROM shield.query_stats
WHERE rolname LIKE 'regress_shield_%' AND query NOT LIKE '%shield.%'
ORDER BY rolname COLLATE "C", query COLLATE "C";
-- every role reads the role view and the status
SELECT rolname, calls FROM shield.role_stats
WHERE rolname = 'regress_shield_alice';
SELECT mode FROM shield.status;

-- an unprivileged role cannot reset
\set VERBOSITY sqlstate
SELECT shield.reset();
\set VERBOSITY default
SELECT shield.reset();
RESET ROLE;

-- pg_read_all_stats sees every text
SET ROLE regress_shield_reader;
SELECT rolname, queryid IS NULL AS queryid_hidden, query
FROM shield.query_stats
WHERE rolname LIKE 'regress_shield_%' AND query NOT LIKE '%shield.%'
ORDER BY rolname COLLATE "C", query COLLATE "C";
RESET ROLE;

-- reset can be granted
GRANT EXECUTE ON FUNCTION shield.reset() TO regress_shield_bob;
SET ROLE regress_shield_bob;
SELECT shield.reset() IS NOT NULL AS bob_reset;
RESET ROLE;
REVOKE EXECUTE ON FUNCTION shield.reset() FROM regress_shield_bob;
SELECT count(*) AS alice_rows_after_reset FROM shield.query_stats
WHERE rolname = 'regress_shield_alice';

-- no PUBLIC execute on reset; the views are readable by all
SELECT p.proname, has_function_privilege('public', p.oid, 'EXECUTE') AS public_execute
FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
WHERE n.nspname = 'shield' ORDER BY p.proname COLLATE "C";
SELECT c.relname, has_table_privilege('public', c.oid, 'SELECT') AS public_select
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname = 'shield' ORDER BY c.relname COLLATE "C";
