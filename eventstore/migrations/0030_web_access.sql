-- Who may use the web service (issue 9). Secrets are never stored: a session cookie, a
-- sign-in link's nonce and an API token are kept only as their SHA-256, so reading these
-- tables (or a backup of them) lets nobody sign in.

-- Staff credentials for the API: `sebaya tokens create` shows the token once.
CREATE TABLE api_tokens (
    token_id    text PRIMARY KEY,
    name        text        NOT NULL,
    role        text        NOT NULL CHECK (role IN ('coordinator', 'auditor')),
    token_hash  text        NOT NULL UNIQUE,
    created_at  timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at  timestamptz
);

-- One row per sign-in link sent: the first POST of "Continue" consumes it.
CREATE TABLE magic_links (
    nonce_hash  text PRIMARY KEY,
    employee_id text        NOT NULL,
    created_at  timestamptz NOT NULL DEFAULT now(),
    expires_at  timestamptz NOT NULL,
    used_at     timestamptz
);
CREATE INDEX magic_links_expiry ON magic_links (expires_at);

-- Server-side sessions (revocable). A participant's session names an employee; a staff
-- session (signed in with an API token in the browser) names its token, so revoking the
-- token ends those sessions too.
CREATE TABLE web_sessions (
    session_hash text PRIMARY KEY,
    role         text        NOT NULL CHECK (role IN ('participant', 'coordinator', 'auditor')),
    subject      text        NOT NULL,
    token_id     text REFERENCES api_tokens (token_id),
    created_at   timestamptz NOT NULL DEFAULT now(),
    expires_at   timestamptz NOT NULL,
    revoked_at   timestamptz
);
CREATE INDEX web_sessions_subject ON web_sessions (role, subject);

REVOKE ALL ON TABLE api_tokens, magic_links, web_sessions FROM PUBLIC;
