--
-- shapes: a query policy matches its statement however a driver sends it:
-- with $n parameters or constants inline, constants of another type,
-- IN lists of any length, through PREPARE, a cursor or a PL/pgSQL
-- variable.  The fingerprints in the views stay core's.
--
-- Rate limits with one token that takes 1000 s to come back make it
-- visible in one session: the first statement of a scope is admitted, any
-- later one that the policy governs is rejected (53S04).  The hint and
-- detail carry times and fingerprints: only the message is shown.
--
\set VERBOSITY terse

-- nothing left over from earlier tests; policy ids in messages start at 201
SELECT count(*) AS policies FROM shield.policy;
SELECT setval(pg_get_serial_sequence('shield.policy', 'id'), 200) AS policy_id_seq;
-- room in the statistics for this test's fingerprints
SELECT shield.reset() IS NOT NULL AS reset;

CREATE TABLE shape_t (id int PRIMARY KEY, big bigint NOT NULL, v text NOT NULL);
INSERT INTO shape_t SELECT g, g, 'v' || g FROM generate_series(1, 10) g;
GRANT SELECT ON shape_t TO PUBLIC;
-- prepared while no policy of the database has a shape: analyzed without
-- noting one (and no other statement of this test has its fingerprint,
-- which would note it)
PREPARE shape_early AS SELECT v FROM shape_t WHERE id = 8::smallint;

--
-- What is alike: each group has one shape, whatever its fingerprints (how
-- many differs between versions: 18 makes IN lists of constants alike);
-- no two groups share one
--
CREATE TABLE shape_forms (grp text, q text);
INSERT INTO shape_forms VALUES
  ('id =', 'SELECT v FROM shape_t WHERE id = $1'),
  ('id =', 'SELECT v FROM shape_t WHERE id = 3'),
  ('id =', 'SELECT v FROM shape_t WHERE id = 3.0'),
  ('id =', 'SELECT v FROM shape_t WHERE id = ''3'''),
  ('id =', 'SELECT v FROM shape_t WHERE id = 3::bigint'),
  ('id =', 'SELECT v FROM shape_t WHERE id = $1::int'),
  ('id =', 'SELECT v FROM shape_t WHERE id IN (3)'),
  ('big =', 'SELECT v FROM shape_t WHERE big = $1'),
  ('big =', 'SELECT v FROM shape_t WHERE big = 5'),
  ('big =', 'SELECT v FROM shape_t WHERE big = 5.0'),
  ('id IN', 'SELECT v FROM shape_t WHERE id = ANY($1)'),
  ('id IN', 'SELECT v FROM shape_t WHERE id IN (1, 2)'),
  ('id IN', 'SELECT v FROM shape_t WHERE id IN (1, 2, 3)'),
  ('id IN', 'SELECT v FROM shape_t WHERE id IN (1, 2, 3, 4, 5)'),
  ('id IN', 'SELECT v FROM shape_t WHERE id IN ($1, $2)'),
  ('id IN', 'SELECT v FROM shape_t WHERE id = ANY(''{1,2}'')'),
  ('id NOT IN', 'SELECT v FROM shape_t WHERE id NOT IN (1, 2)'),
  ('id >', 'SELECT v FROM shape_t WHERE id > 3'),
  ('id >', 'SELECT v FROM shape_t WHERE id > $1'),
  ('id = +', 'SELECT v FROM shape_t WHERE id = 3 + 0'),
  ('id = +', 'SELECT v FROM shape_t WHERE id = $1 + 0'),
  ('id::text =', 'SELECT v FROM shape_t WHERE id::text = ''3'''),
  ('v =', 'SELECT v FROM shape_t WHERE v = ''v3'''),
  ('v =', 'SELECT v FROM shape_t WHERE v = $1'),
  ('lower(v) =', 'SELECT v FROM shape_t WHERE lower(v) = ''v3'''),
  ('limit', 'SELECT v FROM shape_t ORDER BY id LIMIT 3'),
  ('limit', 'SELECT v FROM shape_t ORDER BY id LIMIT $1'),
  ('subquery', 'SELECT count(*) FROM (SELECT v FROM shape_t WHERE id < 4) s WHERE v <> ''x'''),
  ('subquery', 'SELECT count(*) FROM (SELECT v FROM shape_t WHERE id < $1) s WHERE v <> $2'),
  ('exists', 'SELECT 1 WHERE EXISTS (SELECT FROM shape_t WHERE id = 3)'),
  ('exists', 'SELECT 1 WHERE EXISTS (SELECT FROM shape_t WHERE id = $1)'),
  ('insert', 'INSERT INTO shape_t VALUES (11, 11, ''v11'')'),
  ('insert', 'INSERT INTO shape_t VALUES ($1, $2, $3)');
SELECT grp, count(DISTINCT shield.fingerprint(q)) > 1 AS fingerprints,
       count(DISTINCT shield.shape(q)) AS shapes
FROM shape_forms GROUP BY grp ORDER BY grp COLLATE "C";
SELECT count(DISTINCT grp) AS groups, count(DISTINCT shield.shape(q)) AS shapes
FROM shape_forms;
-- a statement without constants or parameters is its own shape
SELECT shield.shape('SELECT v FROM shape_t') =
       shield.fingerprint('SELECT v FROM shape_t') AS same;
SELECT shield.shape(NULL);
SELECT shield.shape('SELECT v FROM shape_t WHERE id = ');
SELECT shield.shape('SELECT 1; SELECT 2');

--
-- Declaring: the fingerprint returned and stored is core's, of the text
-- as given; the shape is stored beside it
--
SELECT shield.set_query_policy('SELECT v FROM shape_t WHERE id = $1',
                               max_rate => 0.001)
       = shield.fingerprint('SELECT v FROM shape_t WHERE id = $1') AS id_policy;
SELECT shield.set_query_policy('SELECT v FROM shape_t WHERE big = $1',
                               role => 'regress_shield_alice', max_rate => 0.001)
       = shield.fingerprint('SELECT v FROM shape_t WHERE big = $1') AS big_policy;
SELECT shield.set_query_policy('SELECT v FROM shape_t WHERE id = ANY($1)',
                               max_rate => 0.001)
       = shield.fingerprint('SELECT v FROM shape_t WHERE id = ANY($1)') AS in_policy;
-- declared by fingerprint: no shape, matches that fingerprint only
SELECT shield.set_query_policy(shield.fingerprint('SELECT v FROM shape_t WHERE v = $1'),
                               max_rate => 0.001) <> 0 AS v_policy;
SELECT id, scope, query IS NULL AS no_text, shape IS NULL AS no_shape,
       shape = CASE WHEN query IS NOT NULL THEN shield.shape(query) END AS shape_of_text
FROM shield.policies ORDER BY id;
-- the same shape again, with another text: declared, with a notice
SELECT shield.set_query_policy('SELECT v FROM shape_t WHERE id = 1',
                               max_rate => 100) <> 0 AS again;
-- ... but not for another role scope
SELECT shield.set_query_policy('SELECT v FROM shape_t WHERE id = 1',
                               role => 'regress_shield_bob',
                               max_rate => 100) <> 0 AS other_scope;
SELECT shield.drop_query_policy(shield.fingerprint('SELECT v FROM shape_t WHERE id = 1')),
       shield.drop_query_policy(shield.fingerprint('SELECT v FROM shape_t WHERE id = 1'),
                                'regress_shield_bob');

-- effective_policy says how each query policy matched
SELECT limit_name, value, policy_id, scope, matched_by
FROM shield.effective_policy('SELECT v FROM shape_t WHERE id = $1', 'regress_shield_alice');
SELECT limit_name, value, policy_id, scope, matched_by
FROM shield.effective_policy('SELECT v FROM shape_t WHERE id = 3.0', 'regress_shield_alice');
SELECT limit_name, value, policy_id, scope, matched_by
FROM shield.effective_policy('SELECT v FROM shape_t WHERE big = 7', 'regress_shield_alice');
SELECT count(*) AS limits
FROM shield.effective_policy('SELECT v FROM shape_t WHERE big = 7', 'regress_shield_bob');
SELECT limit_name, value, policy_id, scope, matched_by
FROM shield.effective_policy('SELECT v FROM shape_t WHERE id IN (4, 5, 6, 7, 8)', 'regress_shield_alice');
SELECT limit_name, value, policy_id, scope, matched_by
FROM shield.effective_policy('SELECT v FROM shape_t WHERE v = $1', 'regress_shield_alice');
SELECT count(*) AS limits
FROM shield.effective_policy('SELECT v FROM shape_t WHERE v = ''x''', 'regress_shield_alice');
SELECT count(*) AS limits
FROM shield.effective_policy('SELECT v FROM shape_t WHERE id > 3', 'regress_shield_alice');

--
-- Enforcing: the declared form takes the scope's one token, every other
-- form of the statement finds it taken
--
CREATE FUNCTION shape_open(k int) RETURNS refcursor LANGUAGE plpgsql AS $$
DECLARE
  c refcursor := 'shape_cur';
BEGIN
  OPEN c FOR SELECT v FROM shape_t WHERE id = k;
  RETURN c;
END $$;

SET ROLE regress_shield_alice;
PREPARE shape_id(int) AS SELECT v FROM shape_t WHERE id = $1;
EXECUTE shape_id(3);
-- constants inline, of every type, as text drivers send them
SELECT v FROM shape_t WHERE id = 3;
\echo :LAST_ERROR_SQLSTATE
SELECT v FROM shape_t WHERE id = 3.0;
SELECT v FROM shape_t WHERE id = '3';
SELECT v FROM shape_t WHERE id IN (3);
-- prepared with a constant, now and before the policy was declared (the
-- first policy with a shape has cached plans analyzed again)
PREPARE shape_id_const AS SELECT v FROM shape_t WHERE id = 4;
EXECUTE shape_id_const;
EXECUTE shape_early;
EXECUTE shape_id(4);
-- a cursor, and the query of CREATE TABLE AS
BEGIN;
DECLARE shape_c CURSOR FOR SELECT v FROM shape_t WHERE id = 5;
ROLLBACK;
CREATE TEMP TABLE shape_ctas AS SELECT v FROM shape_t WHERE id = 5;
-- a PL/pgSQL variable, in a cursor the client fetches from
BEGIN;
SELECT shape_open(6);
FETCH ALL FROM shape_cur;
ROLLBACK;
-- other statements are not governed
SELECT v FROM shape_t WHERE id > 9;
SELECT v FROM shape_t WHERE id = 3 + 0;
SELECT v FROM shape_t WHERE v = 'v3';
SELECT v FROM shape_t WHERE id = 3 AND v = 'v3';

-- a bigint column: the operator is int8 = int4 with a constant, int8 = int8
-- with a parameter
PREPARE shape_big(bigint) AS SELECT v FROM shape_t WHERE big = $1;
EXECUTE shape_big(5);
SELECT v FROM shape_t WHERE big = 5;
SELECT v FROM shape_t WHERE big = 5.0;
RESET ROLE;
-- the policy is alice's only
SET ROLE regress_shield_bob;
SELECT v FROM shape_t WHERE big = 5;
RESET ROLE;

-- IN lists of any length, and an array parameter
SET ROLE regress_shield_alice;
PREPARE shape_any(int[]) AS SELECT v FROM shape_t WHERE id = ANY($1);
EXECUTE shape_any('{1,2}');
SELECT v FROM shape_t WHERE id IN (7, 8);
SELECT v FROM shape_t WHERE id IN (7, 8, 9);
SELECT v FROM shape_t WHERE id IN (1, 2, 3, 4, 5);
-- NOT IN is another statement
SELECT count(*) FROM shape_t WHERE id NOT IN (1, 2);
-- declared by fingerprint: that fingerprint only
SELECT v FROM shape_t WHERE v = 'v1';
SELECT v FROM shape_t WHERE v = 'v2';
PREPARE shape_v(text) AS SELECT v FROM shape_t WHERE v = $1;
EXECUTE shape_v('v1');
EXECUTE shape_v('v2');
DEALLOCATE ALL;
RESET ROLE;

-- the statistics keep core's fingerprints: one row per form that ran or
-- was turned away, each counting its own rejections
SELECT f.q, s.calls, s.rejected
FROM (VALUES ('SELECT v FROM shape_t WHERE id = $1'),
             ('SELECT v FROM shape_t WHERE id = 3'),
             ('SELECT v FROM shape_t WHERE id = 3.0')) f(q)
LEFT JOIN shield.query_stats s
  ON s.queryid = shield.fingerprint(f.q) AND s.rolname = 'regress_shield_alice'
ORDER BY 1;

--
-- Rebinding recomputes shapes along with fingerprints
--
UPDATE shield.policy SET shape = 42 WHERE query IS NOT NULL;
SELECT shield.rebind_query_policies() AS rebound;
SELECT count(*) AS right_shape FROM shield.policies
WHERE query IS NOT NULL AND shape = shield.shape(query);
-- the by-fingerprint form keeps the text and shape stored earlier
SELECT shield.set_query_policy(shield.fingerprint('SELECT v FROM shape_t WHERE id = $1'),
                               max_rate => 0.002) <> 0 AS redeclared;
SELECT max_rate, shape = shield.shape(query) AS kept
FROM shield.policies WHERE query = 'SELECT v FROM shape_t WHERE id = $1';

DELETE FROM shield.policy;
DROP FUNCTION shape_open(int);
DROP TABLE shape_t, shape_forms;
\set VERBOSITY default
