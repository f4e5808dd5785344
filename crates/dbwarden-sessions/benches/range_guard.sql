-- How much a guard that keeps a cleanup range statement within its batch
-- costs over a plain range DELETE (see BENCHMARKS.md, "Cleanup of
-- 1 000 000 expired sessions"). Each form deletes the ~6 450 targets of the
-- same 300 pages and is rolled back, eight times, interleaved; compare the
-- "Time" lines of the statements:
--   psql postgres://postgres@127.0.0.1:5432/test -f crates/dbwarden-sessions/benches/range_guard.sql
DROP TABLE IF EXISTS range_guard_t;
CREATE TABLE range_guard_t (id_hash bytea PRIMARY KEY, user_id text, created_at bigint, last_seen_at bigint,
    expires_at bigint, absolute_expires_at bigint, version bigint, data bytea);
CREATE INDEX ON range_guard_t (expires_at);
-- One row in 11 live, the others expired; ~270-byte rows as in cleanup_bulk.
INSERT INTO range_guard_t SELECT sha256(int8send(i)), NULL, 0, 0, CASE WHEN i % 11 = 0 THEN 10 ELSE 1 END, 100, 1,
    convert_to(repeat(md5(i::text), 6), 'UTF8') FROM generate_series(1, 300000) AS i;
VACUUM ANALYZE range_guard_t;
\timing on
\echo plain
BEGIN;
DELETE FROM range_guard_t AS s WHERE s.ctid >= '(0,0)'::tid AND s.ctid < '(300,0)'::tid AND s.expires_at < 5;
ROLLBACK;
\echo init-plan guard
BEGIN;
DELETE FROM range_guard_t AS s WHERE s.ctid >= '(0,0)'::tid AND s.ctid < '(300,0)'::tid AND s.expires_at < 5 AND (SELECT CASE WHEN COUNT(*) > 100000 THEN CAST(COUNT(*)::text || ' targets: more than the batch' AS bigint) ELSE 0 END FROM range_guard_t AS c WHERE c.ctid >= '(0,0)'::tid AND c.ctid < '(300,0)'::tid AND c.expires_at < 5) = 0;
ROLLBACK;
\echo returning guard
BEGIN;
WITH gone AS (DELETE FROM range_guard_t AS s WHERE s.ctid >= '(0,0)'::tid AND s.ctid < '(300,0)'::tid AND s.expires_at < 5 RETURNING 1) SELECT CASE WHEN COUNT(*) > 100000 THEN CAST(COUNT(*)::text || ' targets: more than the batch' AS bigint) ELSE COUNT(*) END FROM gone;
ROLLBACK;
\echo plain
BEGIN;
DELETE FROM range_guard_t AS s WHERE s.ctid >= '(0,0)'::tid AND s.ctid < '(300,0)'::tid AND s.expires_at < 5;
ROLLBACK;
\echo init-plan guard
BEGIN;
DELETE FROM range_guard_t AS s WHERE s.ctid >= '(0,0)'::tid AND s.ctid < '(300,0)'::tid AND s.expires_at < 5 AND (SELECT CASE WHEN COUNT(*) > 100000 THEN CAST(COUNT(*)::text || ' targets: more than the batch' AS bigint) ELSE 0 END FROM range_guard_t AS c WHERE c.ctid >= '(0,0)'::tid AND c.ctid < '(300,0)'::tid AND c.expires_at < 5) = 0;
ROLLBACK;
\echo returning guard
BEGIN;
WITH gone AS (DELETE FROM range_guard_t AS s WHERE s.ctid >= '(0,0)'::tid AND s.ctid < '(300,0)'::tid AND s.expires_at < 5 RETURNING 1) SELECT CASE WHEN COUNT(*) > 100000 THEN CAST(COUNT(*)::text || ' targets: more than the batch' AS bigint) ELSE COUNT(*) END FROM gone;
ROLLBACK;
\echo plain
BEGIN;
DELETE FROM range_guard_t AS s WHERE s.ctid >= '(0,0)'::tid AND s.ctid < '(300,0)'::tid AND s.expires_at < 5;
ROLLBACK;
\echo init-plan guard
BEGIN;
DELETE FROM range_guard_t AS s WHERE s.ctid >= '(0,0)'::tid AND s.ctid < '(300,0)'::tid AND s.expires_at < 5 AND (SELECT CASE WHEN COUNT(*) > 100000 THEN CAST(COUNT(*)::text || ' targets: more than the batch' AS bigint) ELSE 0 END FROM range_guard_t AS c WHERE c.ctid >= '(0,0)'::tid AND c.ctid < '(300,0)'::tid AND c.expires_at < 5) = 0;
ROLLBACK;
\echo returning guard
BEGIN;
WITH gone AS (DELETE FROM range_guard_t AS s WHERE s.ctid >= '(0,0)'::tid AND s.ctid < '(300,0)'::tid AND s.expires_at < 5 RETURNING 1) SELECT CASE WHEN COUNT(*) > 100000 THEN CAST(COUNT(*)::text || ' targets: more than the batch' AS bigint) ELSE COUNT(*) END FROM gone;
ROLLBACK;
\echo plain
BEGIN;
DELETE FROM range_guard_t AS s WHERE s.ctid >= '(0,0)'::tid AND s.ctid < '(300,0)'::tid AND s.expires_at < 5;
ROLLBACK;
\echo init-plan guard
BEGIN;
DELETE FROM range_guard_t AS s WHERE s.ctid >= '(0,0)'::tid AND s.ctid < '(300,0)'::tid AND s.expires_at < 5 AND (SELECT CASE WHEN COUNT(*) > 100000 THEN CAST(COUNT(*)::text || ' targets: more than the batch' AS bigint) ELSE 0 END FROM range_guard_t AS c WHERE c.ctid >= '(0,0)'::tid AND c.ctid < '(300,0)'::tid AND c.expires_at < 5) = 0;
ROLLBACK;
\echo returning guard
BEGIN;
WITH gone AS (DELETE FROM range_guard_t AS s WHERE s.ctid >= '(0,0)'::tid AND s.ctid < '(300,0)'::tid AND s.expires_at < 5 RETURNING 1) SELECT CASE WHEN COUNT(*) > 100000 THEN CAST(COUNT(*)::text || ' targets: more than the batch' AS bigint) ELSE COUNT(*) END FROM gone;
ROLLBACK;
\echo plain
BEGIN;
DELETE FROM range_guard_t AS s WHERE s.ctid >= '(0,0)'::tid AND s.ctid < '(300,0)'::tid AND s.expires_at < 5;
ROLLBACK;
\echo init-plan guard
BEGIN;
DELETE FROM range_guard_t AS s WHERE s.ctid >= '(0,0)'::tid AND s.ctid < '(300,0)'::tid AND s.expires_at < 5 AND (SELECT CASE WHEN COUNT(*) > 100000 THEN CAST(COUNT(*)::text || ' targets: more than the batch' AS bigint) ELSE 0 END FROM range_guard_t AS c WHERE c.ctid >= '(0,0)'::tid AND c.ctid < '(300,0)'::tid AND c.expires_at < 5) = 0;
ROLLBACK;
\echo returning guard
BEGIN;
WITH gone AS (DELETE FROM range_guard_t AS s WHERE s.ctid >= '(0,0)'::tid AND s.ctid < '(300,0)'::tid AND s.expires_at < 5 RETURNING 1) SELECT CASE WHEN COUNT(*) > 100000 THEN CAST(COUNT(*)::text || ' targets: more than the batch' AS bigint) ELSE COUNT(*) END FROM gone;
ROLLBACK;
\echo plain
BEGIN;
DELETE FROM range_guard_t AS s WHERE s.ctid >= '(0,0)'::tid AND s.ctid < '(300,0)'::tid AND s.expires_at < 5;
ROLLBACK;
\echo init-plan guard
BEGIN;
DELETE FROM range_guard_t AS s WHERE s.ctid >= '(0,0)'::tid AND s.ctid < '(300,0)'::tid AND s.expires_at < 5 AND (SELECT CASE WHEN COUNT(*) > 100000 THEN CAST(COUNT(*)::text || ' targets: more than the batch' AS bigint) ELSE 0 END FROM range_guard_t AS c WHERE c.ctid >= '(0,0)'::tid AND c.ctid < '(300,0)'::tid AND c.expires_at < 5) = 0;
ROLLBACK;
\echo returning guard
BEGIN;
WITH gone AS (DELETE FROM range_guard_t AS s WHERE s.ctid >= '(0,0)'::tid AND s.ctid < '(300,0)'::tid AND s.expires_at < 5 RETURNING 1) SELECT CASE WHEN COUNT(*) > 100000 THEN CAST(COUNT(*)::text || ' targets: more than the batch' AS bigint) ELSE COUNT(*) END FROM gone;
ROLLBACK;
\echo plain
BEGIN;
DELETE FROM range_guard_t AS s WHERE s.ctid >= '(0,0)'::tid AND s.ctid < '(300,0)'::tid AND s.expires_at < 5;
ROLLBACK;
\echo init-plan guard
BEGIN;
DELETE FROM range_guard_t AS s WHERE s.ctid >= '(0,0)'::tid AND s.ctid < '(300,0)'::tid AND s.expires_at < 5 AND (SELECT CASE WHEN COUNT(*) > 100000 THEN CAST(COUNT(*)::text || ' targets: more than the batch' AS bigint) ELSE 0 END FROM range_guard_t AS c WHERE c.ctid >= '(0,0)'::tid AND c.ctid < '(300,0)'::tid AND c.expires_at < 5) = 0;
ROLLBACK;
\echo returning guard
BEGIN;
WITH gone AS (DELETE FROM range_guard_t AS s WHERE s.ctid >= '(0,0)'::tid AND s.ctid < '(300,0)'::tid AND s.expires_at < 5 RETURNING 1) SELECT CASE WHEN COUNT(*) > 100000 THEN CAST(COUNT(*)::text || ' targets: more than the batch' AS bigint) ELSE COUNT(*) END FROM gone;
ROLLBACK;
\echo plain
BEGIN;
DELETE FROM range_guard_t AS s WHERE s.ctid >= '(0,0)'::tid AND s.ctid < '(300,0)'::tid AND s.expires_at < 5;
ROLLBACK;
\echo init-plan guard
BEGIN;
DELETE FROM range_guard_t AS s WHERE s.ctid >= '(0,0)'::tid AND s.ctid < '(300,0)'::tid AND s.expires_at < 5 AND (SELECT CASE WHEN COUNT(*) > 100000 THEN CAST(COUNT(*)::text || ' targets: more than the batch' AS bigint) ELSE 0 END FROM range_guard_t AS c WHERE c.ctid >= '(0,0)'::tid AND c.ctid < '(300,0)'::tid AND c.expires_at < 5) = 0;
ROLLBACK;
\echo returning guard
BEGIN;
WITH gone AS (DELETE FROM range_guard_t AS s WHERE s.ctid >= '(0,0)'::tid AND s.ctid < '(300,0)'::tid AND s.expires_at < 5 RETURNING 1) SELECT CASE WHEN COUNT(*) > 100000 THEN CAST(COUNT(*)::text || ' targets: more than the batch' AS bigint) ELSE COUNT(*) END FROM gone;
ROLLBACK;
DROP TABLE range_guard_t;
