-- Message Batches: a batch id is stored before polling, so a restart resumes it.
CREATE TABLE teacher_batches (
    batch_id     VARCHAR PRIMARY KEY,
    project      VARCHAR NOT NULL,
    job_id       VARCHAR,
    model        VARCHAR,
    status       VARCHAR NOT NULL,   -- submitted | collected
    requests     INTEGER NOT NULL,
    submitted_at TIMESTAMP DEFAULT current_timestamp,
    collected_at TIMESTAMP
);
CREATE TABLE teacher_batch_requests (
    batch_id      VARCHAR NOT NULL,
    custom_id     VARCHAR NOT NULL,
    request_hash  VARCHAR NOT NULL,
    request       VARCHAR NOT NULL,  -- JSON params sent
    row_ids       VARCHAR NOT NULL,  -- JSON list of rows answered by this request
    worst_usd     DOUBLE,            -- budget reserved until the result is in
    PRIMARY KEY (batch_id, custom_id)
);
ALTER TABLE teacher_calls ADD COLUMN batch_id VARCHAR;
ALTER TABLE jobs ADD COLUMN pause_requested BOOLEAN DEFAULT FALSE;
