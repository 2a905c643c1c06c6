-- Review workspace: verdicts and reason codes, per-reviewer judgments (double review),
-- grouped and undoable audit records, spot-check plans.
ALTER TABLE items ADD COLUMN verdict VARCHAR;        -- accept|correct|reject_rationale|flag
ALTER TABLE items ADD COLUMN verdict_reason VARCHAR; -- reason code when flagged
ALTER TABLE audit_log ADD COLUMN change_id VARCHAR;  -- the fields of one save or bulk action
ALTER TABLE audit_log ADD COLUMN undone_by VARCHAR;  -- change_id of the undo that reverted it
CREATE TABLE reviews (
    project   VARCHAR NOT NULL,
    row_id    VARCHAR NOT NULL,
    reviewer  VARCHAR NOT NULL,
    label     VARCHAR,
    verdict   VARCHAR,
    reason    VARCHAR,
    comment   VARCHAR,
    reviewed_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (project, row_id, reviewer)
);
CREATE TABLE spot_checks (
    project  VARCHAR NOT NULL,
    plan     VARCHAR NOT NULL,
    row_id   VARCHAR NOT NULL,
    PRIMARY KEY (project, plan, row_id)
);
