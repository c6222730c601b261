--
-- setup: install pg_shield and the objects the other tests share
--
CREATE EXTENSION pg_shield;

-- schema shield, not relocatable, version 1.0
SELECT e.extname, e.extversion, e.extrelocatable, n.nspname
FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
WHERE e.extname = 'pg_shield';

-- the objects it owns (PostgreSQL 17 also records the row types of its
-- tables and views, and their array types, as members: they come with the
-- relations and are left out)
SELECT pg_describe_object(classid, objid, objsubid) COLLATE "C" AS object
FROM pg_depend
WHERE refclassid = 'pg_extension'::regclass AND deptype = 'e'
  AND refobjid = (SELECT oid FROM pg_extension WHERE extname = 'pg_shield')
  AND NOT (classid = 'pg_type'::regclass AND objid IN (
        SELECT oid FROM pg_type WHERE typrelid <> 0
        UNION ALL
        SELECT typarray FROM pg_type WHERE typrelid <> 0))
ORDER BY 1;

-- settings and their defaults (the test configuration sizes the tables)
SELECT name, setting, context, vartype
FROM pg_settings WHERE name LIKE 'pg_shield.%' ORDER BY name COLLATE "C";

CREATE ROLE regress_shield_alice LOGIN;
CREATE ROLE regress_shield_bob LOGIN;
CREATE ROLE regress_shield_reader LOGIN IN ROLE pg_read_all_stats;

CREATE TABLE shield_t (id int PRIMARY KEY, v text NOT NULL);
INSERT INTO shield_t SELECT g, 'v' || g FROM generate_series(1, 100) g;
GRANT SELECT ON shield_t TO PUBLIC;
