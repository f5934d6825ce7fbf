-- Delivery records: what happened to each notification, for operations (`sebaya notifications
-- list/retry`) and for the cohort's at-risk list (an address that keeps failing).
--
-- status: pending (claimed, being sent, or left by a crash between send and record),
--         sent, failed (transient; retried by the delivery layer, bounded), dead (permanent
--         failure or retries used up), suppressed_erased (the person was erased).
ALTER TABLE deliveries
    ADD COLUMN last_error          text,
    ADD COLUMN provider_message_id text,
    ADD COLUMN last_attempt_at     timestamptz,
    ADD COLUMN updated_at          timestamptz NOT NULL DEFAULT now();

UPDATE deliveries SET status = 'pending' WHERE status IS NULL;
ALTER TABLE deliveries
    ALTER COLUMN status SET DEFAULT 'pending',
    ALTER COLUMN status SET NOT NULL,
    ADD CONSTRAINT deliveries_status_known
        CHECK (status IN ('pending', 'sent', 'failed', 'dead', 'suppressed_erased'));

-- The retry sweep and `notifications list --status failed` look at what is not sent; the
-- cohort's at-risk list looks at one person's recent deliveries.
CREATE INDEX deliveries_unsent ON deliveries (status, last_attempt_at)
    WHERE status IN ('pending', 'failed', 'dead');
CREATE INDEX deliveries_by_recipient ON deliveries (recipient, status, delivered_at);

-- A person's own choice of channel (people.csv notify_via); NULL: the program's default.
ALTER TABLE participants
    ADD COLUMN notify_via text CHECK (notify_via IN ('email', 'chat'));
