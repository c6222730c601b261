--
-- fingerprints: what a query policy's fingerprint depends on besides the
-- statement's shape, which differs between major versions of PostgreSQL:
-- up to 17 a table is jumbled by its OID, so that the search_path and
-- re-creating a table change the fingerprint and rebinding recomputes it;
-- from 18 by its name, so that neither does (fingerprints_1.out)
--
SELECT shield.fingerprint('SELECT v FROM shield_t WHERE id = 7') AS literal_fp \gset
CREATE SCHEMA policy_other;
CREATE TABLE policy_other.shield_t (id int, v text);
SET search_path = policy_other, public;
SELECT shield.fingerprint('SELECT v FROM shield_t WHERE id = 7') <> :'literal_fp' AS other_table;
RESET search_path;

-- DDL rebinds query policies from their sample text at once: dropping the
-- table a text names marks the policy stale (and warns, once); re-creating
-- it rebinds the policy, with no call by hand
SELECT shield.set_query_policy('SELECT v FROM policy_other.shield_t WHERE id = $1',
                               max_rate => 5) AS old_fp \gset
DROP TABLE policy_other.shield_t;
SELECT stale, bind_error FROM shield.policies WHERE query LIKE '%policy_other%';
CREATE INDEX ON shield_t (id);  -- other DDL: no second warning
DROP INDEX shield_t_id_idx;
CREATE TABLE policy_other.shield_t (id int, v text);
SELECT stale, bind_error IS NULL AS bound, queryid <> :'old_fp' AS rebound
FROM shield.policies WHERE query LIKE '%policy_other%';
-- by hand: nothing left to do; a text that no longer analyzes is reported
-- every time, and kept
SELECT shield.rebind_query_policies();
DROP TABLE policy_other.shield_t;
SELECT shield.rebind_query_policies();
SELECT count(*) AS kept FROM shield.policy WHERE query LIKE '%policy_other%';

DELETE FROM shield.policy;
DROP SCHEMA policy_other;

-- a session's temporary table of the same name, created by an ordinary
-- role, does not take the place of the table a policy's text names
SELECT shield.set_query_policy('SELECT v FROM shield_t WHERE id = $1',
                               max_rate => 5) AS public_fp \gset
SET ROLE regress_shield_alice;
CREATE TEMP TABLE shield_t (id int, v text);
RESET ROLE;
SELECT queryid = :'public_fp' AS still_public, stale
FROM shield.policies WHERE query = 'SELECT v FROM shield_t WHERE id = $1';
DROP TABLE pg_temp.shield_t;
DELETE FROM shield.policy;
