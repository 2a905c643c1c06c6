-- A second reading of a teacher answer that could not be read: a cheap model, asked with
-- structured output which label the answer chooses. One row per row and answer read again (a new
-- teacher answer for the row is a new answer_hash, so an old re-read no longer applies to it).
-- The re-read request and its response are in teacher_cache (reread_hash), its call and cost in
-- teacher_calls like any call.
CREATE TABLE answer_rereads (
    project      VARCHAR NOT NULL,
    row_id       VARCHAR NOT NULL,
    answer_hash  VARCHAR NOT NULL,   -- the teacher answer read again (teacher_cache.request_hash)
    reread_hash  VARCHAR NOT NULL,   -- the re-read request (teacher_cache.request_hash)
    model        VARCHAR NOT NULL,
    label        VARCHAR,            -- the label it read; NULL: none, or several
    created_at   TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY(project, row_id, answer_hash)
);
