-- Review that measures itself. Every decision is kept (append-only) with what the reviewer
-- was shown before deciding, when the form was opened and when it was saved, and whether an
-- undo reverted it: automation bias, independent agreement and expert time are read from here.
CREATE SEQUENCE review_events_id;
CREATE TABLE review_events (
    id            BIGINT PRIMARY KEY DEFAULT nextval('review_events_id'),
    project       VARCHAR NOT NULL,
    row_id        VARCHAR NOT NULL,
    reviewer      VARCHAR NOT NULL,
    kind          VARCHAR NOT NULL,   -- review | blind (label given before the teacher's answer) | bulk | adjudicate
    shown         VARCHAR NOT NULL,   -- what the form was filled with: teacher | none | reviewer | cli
    label         VARCHAR,
    teacher_label VARCHAR,            -- the teacher's label when the decision was made
    verdict       VARCHAR,
    reason        VARCHAR,
    comment       VARCHAR,
    label_changed BOOLEAN,
    opened_at     TIMESTAMP,          -- when the form for this row was drawn (NULL: unknown, CLI, bulk)
    decided_at    TIMESTAMP NOT NULL DEFAULT current_timestamp,
    change_id     VARCHAR,            -- the audit change it belongs to (undo marks it undone)
    undone        BOOLEAN NOT NULL DEFAULT FALSE
);
CREATE INDEX review_events_row ON review_events(project, row_id);
-- The old per-reviewer judgments become events. The first reviewer of a row saw the teacher's
-- label; a later one saw the form filled with the first reviewer's label (not independent).
INSERT INTO review_events(project, row_id, reviewer, kind, shown, label, teacher_label, verdict, reason, comment,
                          label_changed, decided_at)
SELECT r.project, r.row_id, r.reviewer, 'review',
       CASE WHEN row_number() OVER (PARTITION BY r.project, r.row_id ORDER BY r.reviewed_at, r.reviewer) = 1
            THEN 'teacher' ELSE 'reviewer' END,
       r.label, i.teacher_label, r.verdict, r.reason, r.comment,
       coalesce(r.label, '') <> coalesce(i.teacher_label, ''), r.reviewed_at
FROM reviews r LEFT JOIN items i ON i.project = r.project AND i.row_id = r.row_id
ORDER BY r.reviewed_at;
DROP TABLE reviews;
-- A spot-check plan may show a share of its rows blind: input and label set only.
ALTER TABLE spot_checks ADD COLUMN blind BOOLEAN DEFAULT FALSE;
-- Automatic rationale checks (core.rationale_checks), one row per checked row; `rationale`
-- is the text checked, so an edited rationale is known to need a new check.
CREATE TABLE rationale_checks (
    project   VARCHAR NOT NULL,
    row_id    VARCHAR NOT NULL,
    flags     VARCHAR[] NOT NULL,
    grounding DOUBLE,
    detail    VARCHAR,
    rationale VARCHAR,
    checked_at TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (project, row_id)
);
