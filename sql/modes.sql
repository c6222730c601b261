--
-- modes: pg_shield.mode, who may change it, and the other settings
--
SHOW pg_shield.mode;
SELECT mode FROM shield.status;

-- off: pg_shield does nothing, statistics included
SELECT shield.reset() IS NOT NULL AS reset;
SET pg_shield.mode = off;
SELECT mode FROM shield.status;
SELECT count(*) AS while_off FROM shield_t WHERE id < 10;
SET pg_shield.mode = monitor;
SELECT count(*) AS while_monitor FROM shield_t WHERE id < 20;
RESET pg_shield.mode;
SELECT query, calls FROM shield.query_stats
WHERE query LIKE 'SELECT count(*) AS while_%'
ORDER BY query COLLATE "C";

-- invalid values are rejected with the allowed ones listed
SET pg_shield.mode = 'bogus';
-- a role cannot switch itself out of pg_shield
SET ROLE regress_shield_alice;
SET pg_shield.mode = off;
RESET ROLE;
-- sizing settings need a restart
SET pg_shield.max_fingerprints = 1000;
-- the prefix is reserved
SET pg_shield.no_such_setting = 1;
