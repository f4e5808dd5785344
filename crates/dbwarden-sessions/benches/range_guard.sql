-- How much a guard that keeps a cleanup range statement within its batch
-- costs over a plain range DELETE (see BENCHMARKS.md, "Cleanup of
-- 1 000 000 expired sessions"). Each form deletes the ~7 100 targets of the
-- same 300 pages and is rolled back (a subtransaction undone by an
-- exception), eight rounds with the forms interleaved; the script prints
-- each form's fastest, median and slowest time:
--   psql postgres://postgres@127.0.0.1:5432/test -f crates/dbwarden-sessions/benches/range_guard.sql
DROP TABLE IF EXISTS range_guard_t;
CREATE TABLE range_guard_t (id_hash bytea PRIMARY KEY, user_id text, created_at bigint, last_seen_at bigint,
    expires_at bigint, absolute_expires_at bigint, version bigint, data bytea);
CREATE INDEX ON range_guard_t (expires_at);
-- One row in 11 live, the others expired; ~270-byte rows as in cleanup_bulk.
INSERT INTO range_guard_t SELECT sha256(int8send(i)), NULL, 0, 0, CASE WHEN i % 11 = 0 THEN 10 ELSE 1 END, 100, 1,
    convert_to(repeat(md5(i::text), 6), 'UTF8') FROM generate_series(1, 300000) AS i;
VACUUM ANALYZE range_guard_t;

CREATE TEMP TABLE range_guard_times (round int, form text, ms float8);
DO $$
DECLARE
    range_targets CONSTANT text :=
        'ctid >= ''(0,0)''::tid AND ctid < ''(300,0)''::tid AND expires_at < 5';
    over_batch CONSTANT text :=
        'CASE WHEN COUNT(*) > 100000 THEN CAST(COUNT(*)::text || '' targets: more than the batch'' AS bigint)';
    forms CONSTANT text[] := ARRAY['plain', 'init-plan guard', 'returning guard'];
    statements CONSTANT text[] := ARRAY[
        format('DELETE FROM range_guard_t WHERE %s', range_targets),
        format('DELETE FROM range_guard_t WHERE %s AND (SELECT %s ELSE 0 END FROM range_guard_t WHERE %s) = 0',
            range_targets, over_batch, range_targets),
        format('WITH gone AS (DELETE FROM range_guard_t WHERE %s RETURNING 1) SELECT %s ELSE COUNT(*) END FROM gone',
            range_targets, over_batch)
    ];
    started timestamptz;
BEGIN
    FOR round IN 1..8 LOOP
        FOR form IN 1..array_length(forms, 1) LOOP
            started := clock_timestamp();
            BEGIN
                EXECUTE statements[form];
                RAISE EXCEPTION USING ERRCODE = 'P0001', MESSAGE = 'roll back';
            EXCEPTION WHEN raise_exception THEN
                NULL;
            END;
            INSERT INTO range_guard_times
                VALUES (round, forms[form], extract(epoch FROM clock_timestamp() - started) * 1000);
        END LOOP;
    END LOOP;
END
$$;

SELECT form,
       round(min(ms)::numeric, 1) AS fastest_ms,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric, 1) AS median_ms,
       round(max(ms)::numeric, 1) AS slowest_ms
FROM range_guard_times GROUP BY form ORDER BY median_ms;
DROP TABLE range_guard_t;
