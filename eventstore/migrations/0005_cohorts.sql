-- Cohort rosters and match proposals: inputs to matching, kept beside the event log.
-- Profiles hold what matching needs (level, department, answers, reporting chain) and no
-- names or e-mails; those stay in participants.

CREATE TABLE cohorts (
    cohort_id     text PRIMARY KEY,
    program       jsonb       NOT NULL,
    people_digest text        NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE cohort_members (
    cohort_id   text NOT NULL REFERENCES cohorts (cohort_id),
    employee_id text NOT NULL,
    role        text NOT NULL CHECK (role IN ('mentor', 'mentee')),
    department  text NOT NULL,
    hire_date   date NOT NULL,
    profile     jsonb NOT NULL,
    PRIMARY KEY (cohort_id, employee_id)
);

-- The explanation of every pair a match run proposed, looked up when a pairing is launched,
-- so explanations never travel through the cohort workflow's history.
CREATE TABLE match_proposals (
    cohort_id   text NOT NULL,
    run_id      text NOT NULL,
    mentor_id   text NOT NULL,
    mentee_id   text NOT NULL,
    score       double precision NOT NULL,
    explanation jsonb NOT NULL,
    PRIMARY KEY (cohort_id, run_id, mentor_id, mentee_id)
);

REVOKE ALL ON TABLE cohorts, cohort_members, match_proposals FROM PUBLIC;
-- Auditors may see why pairs were proposed (no personal contact data is in these tables).
GRANT SELECT ON TABLE cohorts, match_proposals TO sebaya_auditor;
