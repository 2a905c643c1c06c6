-- Training: student predictions on held-out rows (per-example browser, teacher != student
-- queue), and sweeps (a parent job that runs its child training jobs one after another).
CREATE TABLE student_predictions (
    job_id     VARCHAR NOT NULL,
    project    VARCHAR NOT NULL,
    row_id     VARCHAR NOT NULL,
    prediction VARCHAR,
    raw        VARCHAR,
    rationale  VARCHAR,   -- the student's generated rationale, when it was asked for one
    gold       VARCHAR,
    teacher    VARCHAR,
    correct    BOOLEAN,   -- prediction equals gold (NULL without gold)
    agrees_teacher BOOLEAN,
    created_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (job_id, row_id)
);
ALTER TABLE jobs ADD COLUMN parent_id VARCHAR;
