-- A participant's calendar feed (GET /calendar/<token>.ics). Calendar clients cannot sign in,
-- so the URL carries an unguessable token; only its SHA-256 is stored. One live token per
-- participant: asking for a new link replaces (revokes) the old one.
CREATE TABLE calendar_feeds (
    employee_id text PRIMARY KEY,
    token_hash  text        NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz
);

REVOKE ALL ON TABLE calendar_feeds FROM PUBLIC;
