-- Prompt trials: "try the prompt on N rows" before labeling everything. One row per try (the
-- template version, mode, output format and model it ran with, and what came back), and one row
-- per row of a try (its parsed answer; the raw answer is teacher_cache's, by request_hash).
-- A try runs as a labeling job (job_id); its results are filled in once that job has ended.
CREATE SEQUENCE prompt_trials_id;
CREATE TABLE prompt_trials (
    id               BIGINT PRIMARY KEY DEFAULT nextval('prompt_trials_id'),
    project          VARCHAR NOT NULL,
    template_version INTEGER NOT NULL,
    mode             VARCHAR NOT NULL,
    output_format    VARCHAR NOT NULL,
    model            VARCHAR NOT NULL,
    created_at       TIMESTAMP DEFAULT current_timestamp,
    job_id           VARCHAR,                -- the labeling job that asked the teacher
    status           VARCHAR NOT NULL DEFAULT 'running',  -- running, then the job's final status
    row_ids          VARCHAR NOT NULL,       -- JSON list: the rows the try asked about
    rows             INTEGER NOT NULL,       -- how many
    answered         INTEGER,                -- rows with an answer (a failed call is none)
    parsed           INTEGER,                -- answers that parsed to a label
    correct          INTEGER,                -- parsed labels equal to gold
    with_gold        INTEGER,                -- answered rows with a gold label
    output_tokens    BIGINT,                 -- output tokens of the answers (cached ones too)
    cost_usd         DOUBLE,                 -- billed by this try (the cache answers for free)
    cache_hits       INTEGER,                -- rows answered from the response cache
    finished_at      TIMESTAMP
);
CREATE TABLE prompt_trial_rows (
    trial_id      BIGINT NOT NULL,
    row_id        VARCHAR NOT NULL,
    request_hash  VARCHAR,                   -- the answer in teacher_cache (NULL: never sent)
    label         VARCHAR,
    rationale     VARCHAR,
    flag          VARCHAR,                   -- why the answer did not parse cleanly
    correct       BOOLEAN,                   -- NULL when the row has no gold label
    output_tokens INTEGER,
    billed_usd    DOUBLE,
    error         VARCHAR,                   -- a failed call, or why the row was not sent
    PRIMARY KEY (trial_id, row_id)
);
