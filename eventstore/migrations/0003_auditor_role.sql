-- Read-only access for auditors: the event log and stream heads, nothing personal.

-- Roles are cluster-wide while this migration runs once per database (every test database,
-- possibly several at once), so create the role only if absent and tolerate losing the race.
DO $$
BEGIN
    IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'sebaya_auditor') THEN
        CREATE ROLE sebaya_auditor NOLOGIN;
    END IF;
EXCEPTION
    WHEN duplicate_object OR unique_violation THEN
        NULL;  -- another database's migration created it between our check and CREATE
END $$;

-- The events an auditor replays, in the same stable order catch-up readers use:
-- ORDER BY tx_id, global_position. Rows of transactions still running (or younger than the
-- oldest running one) are left out, so a replay never sees history appear behind it.
CREATE VIEW audit_events AS
SELECT global_position, tx_id, stream_id, version, event_id, type, schema_version,
       payload, metadata, occurred_at, recorded_at, prev_hash, hash
FROM events
WHERE tx_id < pg_snapshot_xmin(pg_current_snapshot());

-- Start from nothing, then grant exactly what an auditor needs.
REVOKE ALL ON ALL TABLES IN SCHEMA public FROM sebaya_auditor;
REVOKE ALL ON ALL SEQUENCES IN SCHEMA public FROM sebaya_auditor;
REVOKE ALL ON SCHEMA public FROM sebaya_auditor;
GRANT USAGE ON SCHEMA public TO sebaya_auditor;
GRANT SELECT ON TABLE events, streams, audit_events TO sebaya_auditor;
