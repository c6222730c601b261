--
-- cleanup: the extension drops cleanly
--
DROP EXTENSION pg_shield;
SELECT count(*) AS leftover_objects FROM pg_proc p
JOIN pg_namespace n ON n.oid = p.pronamespace WHERE n.nspname = 'shield';
DROP SCHEMA shield;
DROP TABLE shield_t;
DROP ROLE regress_shield_alice, regress_shield_bob, regress_shield_reader;
