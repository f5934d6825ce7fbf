-- Tables the rest of the system keeps beside the event log.

-- Notification idempotency: a delivery is attempted at most once per key, however often the
-- activity that sends it is retried.
CREATE TABLE deliveries (
    idempotency_key text PRIMARY KEY,
    channel         text,
    recipient       text,
    template        text,
    payload         jsonb,
    status          text,
    attempts        integer     NOT NULL DEFAULT 0,
    created_at      timestamptz NOT NULL DEFAULT now(),
    delivered_at    timestamptz
);

-- Personal data lives here, never in events: events are immutable and hash-chained, so a
-- GDPR erasure blanks name/email and sets erased_at in this table and leaves history intact
-- (events refer to people by employee_id only).
CREATE TABLE participants (
    employee_id text PRIMARY KEY,
    name        text,
    email       text,
    timezone    text,
    erased_at   timestamptz,
    updated_at  timestamptz NOT NULL DEFAULT now()
);

-- Personal data is never readable by default, whoever is added to the cluster later.
REVOKE ALL ON TABLE participants FROM PUBLIC;
REVOKE ALL ON TABLE deliveries FROM PUBLIC;
