-- Initial schema: projects and their items, the teacher cache and call log, the audit log, jobs and run metrics.
CREATE TABLE projects (
    name          VARCHAR PRIMARY KEY,
    task          VARCHAR NOT NULL,      -- classification | multiple-choice | nli | numeric
    input_fields  VARCHAR NOT NULL,      -- JSON list of field names
    label_set     VARCHAR,               -- JSON list, for classification and nli
    template      VARCHAR,               -- current prompt template
    model         VARCHAR,               -- teacher model
    max_tokens    INTEGER DEFAULT 200,
    demo_teacher  BOOLEAN DEFAULT FALSE, -- responses come from a recorded demo teacher
    created_at    TIMESTAMP DEFAULT current_timestamp
);
CREATE TABLE items (
    project           VARCHAR NOT NULL,
    row_id            VARCHAR NOT NULL,
    idx               INTEGER NOT NULL,  -- import order, used to align external teacher outputs
    split             VARCHAR NOT NULL,
    inputs            VARCHAR NOT NULL,  -- JSON object field -> text
    choices           VARCHAR,           -- JSON list, multiple-choice only
    gold              VARCHAR,
    status            VARCHAR NOT NULL DEFAULT 'unlabeled', -- unlabeled|labeled|flagged|error
    teacher_label     VARCHAR,
    teacher_rationale VARCHAR,
    flag              VARCHAR,           -- parse flag: unparseable|ambiguous|truncated
    error             VARCHAR,           -- last per-row API error
    request_hash      VARCHAR,
    label             VARCHAR,           -- current label: teacher's, or the reviewer's correction
    rationale         VARCHAR,
    label_source      VARCHAR,           -- teacher | reviewer | imported
    reviewed          BOOLEAN NOT NULL DEFAULT FALSE,
    reviewer          VARCHAR,
    version           INTEGER NOT NULL DEFAULT 0,  -- bumped on every edit (stale-edit check)
    updated_at        TIMESTAMP,
    PRIMARY KEY (project, row_id)
);
CREATE INDEX items_status ON items(project, status);
CREATE TABLE teacher_cache (
    request_hash  VARCHAR PRIMARY KEY,
    model         VARCHAR NOT NULL,
    request       VARCHAR NOT NULL,  -- JSON body that was (or would be) sent
    response      VARCHAR NOT NULL,  -- JSON Message as returned by the API
    input_tokens  INTEGER,
    output_tokens INTEGER,
    cost_usd      DOUBLE,
    source        VARCHAR NOT NULL,  -- live | recorded-demo | imported
    created_at    TIMESTAMP DEFAULT current_timestamp
);
CREATE SEQUENCE teacher_calls_id;
CREATE TABLE teacher_calls (
    id             BIGINT PRIMARY KEY DEFAULT nextval('teacher_calls_id'),
    project        VARCHAR NOT NULL,
    row_id         VARCHAR NOT NULL,
    job_id         VARCHAR,
    request_hash   VARCHAR,
    template_hash  VARCHAR,
    model          VARCHAR,
    cached         BOOLEAN NOT NULL,  -- served from teacher_cache, not billed
    billed_usd     DOUBLE NOT NULL DEFAULT 0,
    input_tokens   INTEGER,
    output_tokens  INTEGER,
    error_type     VARCHAR,
    error_message  VARCHAR,
    attempts       INTEGER,
    created_at     TIMESTAMP DEFAULT current_timestamp
);
CREATE SEQUENCE audit_id;
CREATE TABLE audit_log (
    id        BIGINT PRIMARY KEY DEFAULT nextval('audit_id'),
    project   VARCHAR NOT NULL,
    row_id    VARCHAR NOT NULL,
    reviewer  VARCHAR NOT NULL,
    changed_at TIMESTAMP DEFAULT current_timestamp,
    field     VARCHAR NOT NULL,
    before    VARCHAR,
    after     VARCHAR,
    reason    VARCHAR
);
CREATE TABLE jobs (
    id           VARCHAR PRIMARY KEY,
    project      VARCHAR NOT NULL,
    kind         VARCHAR NOT NULL,   -- label | train
    config       VARCHAR NOT NULL,   -- resolved JSON config
    status       VARCHAR NOT NULL,   -- queued|running|completed|failed|cancelled
    pid          INTEGER,
    done         INTEGER DEFAULT 0,
    total        INTEGER DEFAULT 0,
    cost_usd     DOUBLE DEFAULT 0,
    message      VARCHAR,
    error        VARCHAR,
    out_dir      VARCHAR,
    cancel_requested BOOLEAN DEFAULT FALSE,
    created_at   TIMESTAMP DEFAULT current_timestamp,
    started_at   TIMESTAMP,
    finished_at  TIMESTAMP,
    heartbeat_at TIMESTAMP
);
CREATE TABLE run_metrics (
    job_id  VARCHAR NOT NULL,
    step    INTEGER NOT NULL,
    name    VARCHAR NOT NULL,
    value   DOUBLE,
    logged_at TIMESTAMP DEFAULT current_timestamp
);
