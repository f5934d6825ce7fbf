-- Read models (projections) of the event log, and the checkpoints that make them exactly-once.
-- Written only by projections/projector.py; everything here can be dropped and rebuilt from
-- the events table (`sebaya projections rebuild`). See docs/projections.md.

-- One row per projector: the position in the global order (eventstore.Position) of the last
-- event whose effects are in the views. It is updated in the same transaction as the views,
-- so after a crash the views and the checkpoint are always from the same batch.
CREATE TABLE projection_checkpoints (
    name                text PRIMARY KEY,
    tx_id               xid8        NOT NULL DEFAULT '0'::xid8,
    global_position     bigint      NOT NULL DEFAULT 0,
    events_applied      bigint      NOT NULL DEFAULT 0,
    rebuild_started_at  timestamptz,
    rebuild_finished_at timestamptz,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- One row per pairing: flattened columns that answer the coordinator's and the auditor's
-- questions with plain SQL. Every column is computed from the folded domain.pairing.PairingState
-- by projections/pairing.py.
CREATE TABLE pairing_view (
    pairing_id          text PRIMARY KEY,
    cohort_id           text        NOT NULL,
    mentor_id           text        NOT NULL,
    mentee_id           text        NOT NULL,
    phase               text        NOT NULL,
    started_at          timestamptz,
    ended_at            timestamptz,
    -- The pairing's own calendar, fixed by its ground rules at the match.
    goal_deadline_at    timestamptz,
    midpoint_opens_at   timestamptz,
    program_ends_at     timestamptz,
    goals_set_mentor    boolean     NOT NULL DEFAULT false,
    goals_set_mentee    boolean     NOT NULL DEFAULT false,
    goals               jsonb       NOT NULL DEFAULT '{}',   -- side -> [goal]
    goal_progress       jsonb       NOT NULL DEFAULT '{}',   -- goal id -> percent
    meetings_held       integer     NOT NULL DEFAULT 0,
    meetings_missed     integer     NOT NULL DEFAULT 0,
    consecutive_missed  integer     NOT NULL DEFAULT 0,
    minutes_met         integer     NOT NULL DEFAULT 0,
    last_meeting_at     timestamptz,
    next_meeting_no     integer,
    next_meeting_at     timestamptz,
    nudged              boolean     NOT NULL DEFAULT false,
    escalated           boolean     NOT NULL DEFAULT false,
    escalations         integer     NOT NULL DEFAULT 0,
    goals_overdue       boolean     NOT NULL DEFAULT false,
    -- side -> {satisfaction, wants_to_continue} / {goal_attainment, relationship_rating,
    -- program_rating, learned, would_recommend}
    midpoint            jsonb       NOT NULL DEFAULT '{}',
    midpoint_closed     boolean     NOT NULL DEFAULT false,
    final               jsonb       NOT NULL DEFAULT '{}',
    exit_reason         text,
    exit_initiated_by   text,
    exit_phase          text,
    leaving_employee_id text,
    rematch_of          text,
    match_score         double precision,
    -- From the match explanation (PairingMatched.explanation.cross_functional); NULL when the
    -- matcher did not say.
    cross_functional    boolean,
    topics_covered      jsonb       NOT NULL DEFAULT '{}',   -- topic -> meetings
    stream_version      bigint      NOT NULL,
    last_event_at       timestamptz NOT NULL,                -- domain time of that version
    updated_at          timestamptz NOT NULL DEFAULT now()
)
-- Most batches rewrite rows in place: leave room for HOT updates.
WITH (fillfactor = 80);

CREATE INDEX pairing_view_cohort ON pairing_view (cohort_id, phase);

-- The folded PairingState (its JSON, pydantic's model_dump_json) at `version`, which a
-- restarted projector resumes from. It may trail pairing_view.stream_version: snapshots are
-- written when a pairing starts or closes, every few dozen events and when the projector is
-- idle; the projector refolds the missing events from the store. Kept apart from the view so
-- that the frequent row updates stay small. `json`, not `jsonb`: only the projector reads it
-- back, whole, and storing the text as is is cheaper than converting it.
CREATE TABLE pairing_snapshots (
    pairing_id          text PRIMARY KEY,
    version             bigint      NOT NULL,
    state               json        NOT NULL,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- One row per cohort, from its own stream (`cohort-<id>`) and from its pairings' phases.
-- A cohort whose pairings are seen before (or without) its own stream gets a row with
-- program_name NULL and phase 'unknown'.
CREATE TABLE cohort_view (
    cohort_id           text PRIMARY KEY,
    program_name        text,
    objective           jsonb,
    baseline            jsonb,
    starts_at           timestamptz,
    ends_at             timestamptz,
    rematch_until       timestamptz,
    cool_off_days       integer,
    approval            text,
    mentors_enrolled    integer,
    mentees_enrolled    integer,
    phase               text        NOT NULL,                -- unknown|matching|running|completed
    pairings_total      integer     NOT NULL DEFAULT 0,
    pairings_by_phase   jsonb       NOT NULL DEFAULT '{}',   -- pairing phase -> count
    launched            integer     NOT NULL DEFAULT 0,
    rematches           integer     NOT NULL DEFAULT 0,
    waiting             jsonb       NOT NULL DEFAULT '{}',   -- employee -> {role, since, ...}
    rematch_not_possible jsonb      NOT NULL DEFAULT '{}',   -- employee -> reason
    left_company        jsonb       NOT NULL DEFAULT '{}',   -- employee -> date they left
    match_runs          jsonb       NOT NULL DEFAULT '[]',   -- summaries, oldest first
    completed_at        timestamptz,
    stream_version      bigint      NOT NULL DEFAULT 0,
    updated_at          timestamptz NOT NULL DEFAULT now()
);

-- One row per person per cohort. Ids only: names and e-mails stay in `participants`.
-- `department` has no source event yet and stays NULL until one carries it.
CREATE TABLE participant_view (
    cohort_id           text        NOT NULL,
    employee_id         text        NOT NULL,
    role                text        NOT NULL,                -- mentor|mentee
    department          text,
    pairing_ids         jsonb       NOT NULL DEFAULT '[]',
    current_pairing_id  text,
    first_started_at    timestamptz,
    last_ended_at       timestamptz,
    waiting_since       timestamptz,
    available_at        timestamptz,
    rematch_not_possible text,
    left_on             date,
    updated_at          timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (cohort_id, employee_id)
);

-- Auditors may read the read models (they are derived from the events they can already read,
-- and hold no personal data); the 0003 grants stay otherwise untouched.
GRANT SELECT ON TABLE projection_checkpoints, pairing_view, pairing_snapshots, cohort_view,
    participant_view TO sebaya_auditor;
