-- Generated from a freshly migrated database; do not edit.
-- Regenerate after adding a migration to core/db/migrations/: python -m core.db.schema
-- Schema version 16.

CREATE SEQUENCE audit_id INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807;

CREATE SEQUENCE prompt_trials_id INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807;

CREATE SEQUENCE review_events_id INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807;

CREATE SEQUENCE spend_ledger_id INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807;

CREATE SEQUENCE teacher_calls_id INCREMENT BY 1 MINVALUE 1 MAXVALUE 9223372036854775807;

CREATE TABLE answer_rereads (
    project     VARCHAR NOT NULL,
    row_id      VARCHAR NOT NULL,
    answer_hash VARCHAR NOT NULL,
    reread_hash VARCHAR NOT NULL,
    model       VARCHAR NOT NULL,
    label       VARCHAR,
    created_at  TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY(project, row_id, answer_hash)
);

CREATE TABLE audit_log (
    id          BIGINT NOT NULL DEFAULT nextval('audit_id'),
    project     VARCHAR NOT NULL,
    row_id      VARCHAR NOT NULL,
    reviewer    VARCHAR NOT NULL,
    changed_at  TIMESTAMP DEFAULT current_timestamp,
    field       VARCHAR NOT NULL,
    before      VARCHAR,
    after       VARCHAR,
    reason      VARCHAR,
    change_id   VARCHAR,
    undone_by   VARCHAR,
    row_version INTEGER,
    PRIMARY KEY(id)
);

CREATE TABLE items (
    project            VARCHAR NOT NULL,
    row_id             VARCHAR NOT NULL,
    idx                INTEGER NOT NULL,
    split              VARCHAR NOT NULL,
    inputs             VARCHAR NOT NULL,
    choices            VARCHAR,
    gold               VARCHAR,
    status             VARCHAR NOT NULL DEFAULT 'unlabeled',
    teacher_label      VARCHAR,
    teacher_rationale  VARCHAR,
    flag               VARCHAR,
    error              VARCHAR,
    request_hash       VARCHAR,
    label              VARCHAR,
    rationale          VARCHAR,
    label_source       VARCHAR,
    reviewed           BOOLEAN NOT NULL DEFAULT false,
    reviewer           VARCHAR,
    version            INTEGER NOT NULL DEFAULT 0,
    updated_at         TIMESTAMP,
    verdict            VARCHAR,
    verdict_reason     VARCHAR,
    teacher_confidence DOUBLE,
    PRIMARY KEY(project, row_id)
);

CREATE TABLE jobs (
    id               VARCHAR NOT NULL,
    project          VARCHAR NOT NULL,
    kind             VARCHAR NOT NULL,
    config           VARCHAR NOT NULL,
    status           VARCHAR NOT NULL,
    pid              INTEGER,
    done             INTEGER DEFAULT 0,
    total            INTEGER DEFAULT 0,
    cost_usd         DOUBLE DEFAULT 0,
    message          VARCHAR,
    error            VARCHAR,
    out_dir          VARCHAR,
    cancel_requested BOOLEAN DEFAULT false,
    created_at       TIMESTAMP DEFAULT current_timestamp,
    started_at       TIMESTAMP,
    finished_at      TIMESTAMP,
    heartbeat_at     TIMESTAMP,
    pause_requested  BOOLEAN DEFAULT false,
    parent_id        VARCHAR,
    stop_reason      VARCHAR,
    proc_start_ticks BIGINT,
    proc_cmdline_sha VARCHAR,
    live_rows        INTEGER DEFAULT 0,
    PRIMARY KEY(id)
);

CREATE TABLE label_leases (
    project  VARCHAR NOT NULL,
    job_id   VARCHAR NOT NULL,
    taken_at TIMESTAMP NOT NULL,
    PRIMARY KEY(project)
);

CREATE TABLE projects (
    name          VARCHAR NOT NULL,
    task          VARCHAR NOT NULL,
    input_fields  VARCHAR NOT NULL,
    label_set     VARCHAR,
    template      VARCHAR,
    model         VARCHAR,
    max_tokens    INTEGER DEFAULT 200,
    demo_teacher  BOOLEAN DEFAULT false,
    created_at    TIMESTAMP DEFAULT current_timestamp,
    mode          VARCHAR DEFAULT 'zero-shot',
    output_format VARCHAR DEFAULT 'text',
    shots         INTEGER DEFAULT 6,
    demo_rows     VARCHAR,
    budget_usd    DOUBLE,
    label_words   VARCHAR,
    opened_at     TIMESTAMP,
    id_field      VARCHAR,
    PRIMARY KEY("name")
);

CREATE TABLE prompt_templates (
    project       VARCHAR NOT NULL,
    version       INTEGER NOT NULL,
    template      VARCHAR NOT NULL,
    mode          VARCHAR NOT NULL,
    output_format VARCHAR NOT NULL,
    template_hash VARCHAR NOT NULL,
    created_at    TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY(project, "version")
);

CREATE TABLE prompt_trial_rows (
    trial_id      BIGINT NOT NULL,
    row_id        VARCHAR NOT NULL,
    request_hash  VARCHAR,
    label         VARCHAR,
    rationale     VARCHAR,
    flag          VARCHAR,
    correct       BOOLEAN,
    output_tokens INTEGER,
    billed_usd    DOUBLE,
    error         VARCHAR,
    PRIMARY KEY(trial_id, row_id)
);

CREATE TABLE prompt_trials (
    id               BIGINT NOT NULL DEFAULT nextval('prompt_trials_id'),
    project          VARCHAR NOT NULL,
    template_version INTEGER NOT NULL,
    mode             VARCHAR NOT NULL,
    output_format    VARCHAR NOT NULL,
    model            VARCHAR NOT NULL,
    created_at       TIMESTAMP DEFAULT current_timestamp,
    job_id           VARCHAR,
    status           VARCHAR NOT NULL DEFAULT 'running',
    row_ids          VARCHAR NOT NULL,
    rows             INTEGER NOT NULL,
    answered         INTEGER,
    parsed           INTEGER,
    correct          INTEGER,
    with_gold        INTEGER,
    output_tokens    BIGINT,
    cost_usd         DOUBLE,
    cache_hits       INTEGER,
    finished_at      TIMESTAMP,
    PRIMARY KEY(id)
);

CREATE TABLE rationale_checks (
    project    VARCHAR NOT NULL,
    row_id     VARCHAR NOT NULL,
    flags      VARCHAR[] NOT NULL,
    grounding  DOUBLE,
    detail     VARCHAR,
    rationale  VARCHAR,
    checked_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY(project, row_id)
);

CREATE TABLE review_events (
    id            BIGINT NOT NULL DEFAULT nextval('review_events_id'),
    project       VARCHAR NOT NULL,
    row_id        VARCHAR NOT NULL,
    reviewer      VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,
    shown         VARCHAR NOT NULL,
    label         VARCHAR,
    teacher_label VARCHAR,
    verdict       VARCHAR,
    reason        VARCHAR,
    comment       VARCHAR,
    label_changed BOOLEAN,
    opened_at     TIMESTAMP,
    decided_at    TIMESTAMP NOT NULL DEFAULT current_timestamp,
    change_id     VARCHAR,
    undone        BOOLEAN NOT NULL DEFAULT false,
    PRIMARY KEY(id)
);

CREATE TABLE run_metrics (
    job_id    VARCHAR NOT NULL,
    step      INTEGER NOT NULL,
    name      VARCHAR NOT NULL,
    value     DOUBLE,
    logged_at TIMESTAMP DEFAULT current_timestamp
);

CREATE TABLE schema_migrations (
    version    INTEGER NOT NULL,
    applied_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY("version")
);

CREATE TABLE spend_ledger (
    id           BIGINT NOT NULL DEFAULT nextval('spend_ledger_id'),
    project      VARCHAR NOT NULL,
    job_id       VARCHAR,
    pid          INTEGER,
    request_hash VARCHAR,
    reserved_usd DOUBLE NOT NULL,
    state        VARCHAR NOT NULL,
    settled_usd  DOUBLE,
    created_at   TIMESTAMP DEFAULT current_timestamp,
    expires_at   TIMESTAMP NOT NULL,
    closed_at    TIMESTAMP,
    PRIMARY KEY(id)
);

CREATE TABLE spot_checks (
    project VARCHAR NOT NULL,
    plan    VARCHAR NOT NULL,
    row_id  VARCHAR NOT NULL,
    blind   BOOLEAN DEFAULT false,
    PRIMARY KEY(project, plan, row_id)
);

CREATE TABLE student_predictions (
    job_id         VARCHAR NOT NULL,
    project        VARCHAR NOT NULL,
    row_id         VARCHAR NOT NULL,
    prediction     VARCHAR,
    raw            VARCHAR,
    rationale      VARCHAR,
    gold           VARCHAR,
    teacher        VARCHAR,
    correct        BOOLEAN,
    agrees_teacher BOOLEAN,
    created_at     TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY(job_id, row_id)
);

CREATE TABLE teacher_batch_requests (
    batch_id     VARCHAR NOT NULL,
    custom_id    VARCHAR NOT NULL,
    request_hash VARCHAR NOT NULL,
    request      VARCHAR NOT NULL,
    row_ids      VARCHAR NOT NULL,
    worst_usd    DOUBLE,
    PRIMARY KEY(batch_id, custom_id)
);

CREATE TABLE teacher_batches (
    batch_id     VARCHAR NOT NULL,
    project      VARCHAR NOT NULL,
    job_id       VARCHAR,
    model        VARCHAR,
    status       VARCHAR NOT NULL,
    requests     INTEGER NOT NULL,
    submitted_at TIMESTAMP DEFAULT current_timestamp,
    collected_at TIMESTAMP,
    PRIMARY KEY(batch_id)
);

CREATE TABLE teacher_cache (
    request_hash  VARCHAR NOT NULL,
    model         VARCHAR NOT NULL,
    request       VARCHAR NOT NULL,
    response      VARCHAR NOT NULL,
    input_tokens  INTEGER,
    output_tokens INTEGER,
    cost_usd      DOUBLE,
    source        VARCHAR NOT NULL,
    created_at    TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY(request_hash)
);

CREATE TABLE teacher_calls (
    id               BIGINT NOT NULL DEFAULT nextval('teacher_calls_id'),
    project          VARCHAR NOT NULL,
    row_id           VARCHAR NOT NULL,
    job_id           VARCHAR,
    request_hash     VARCHAR,
    template_hash    VARCHAR,
    model            VARCHAR,
    cached           BOOLEAN NOT NULL,
    billed_usd       DOUBLE NOT NULL DEFAULT 0,
    input_tokens     INTEGER,
    output_tokens    INTEGER,
    error_type       VARCHAR,
    error_message    VARCHAR,
    attempts         INTEGER,
    created_at       TIMESTAMP DEFAULT current_timestamp,
    batch_id         VARCHAR,
    template_version INTEGER,
    PRIMARY KEY(id)
);

CREATE TABLE token_counts (
    request_hash   VARCHAR NOT NULL,
    model          VARCHAR NOT NULL,
    input_tokens   INTEGER NOT NULL,
    offline_tokens INTEGER NOT NULL,
    counted_at     TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY(request_hash)
);

CREATE INDEX items_status ON items(project, status);

CREATE INDEX review_events_row ON review_events(project, row_id);

CREATE INDEX spend_ledger_open ON spend_ledger(project, state);
