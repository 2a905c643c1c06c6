-- Prompt modes, structured output, versioned templates, project budget, cached token counts.
ALTER TABLE projects ADD COLUMN mode VARCHAR DEFAULT 'zero-shot';
ALTER TABLE projects ADD COLUMN output_format VARCHAR DEFAULT 'text';
ALTER TABLE projects ADD COLUMN shots INTEGER DEFAULT 6;
ALTER TABLE projects ADD COLUMN demo_rows VARCHAR;      -- JSON list of row ids chosen as demonstrations
ALTER TABLE projects ADD COLUMN budget_usd DOUBLE;      -- cap on teacher spend for the whole project
CREATE TABLE prompt_templates (
    project       VARCHAR NOT NULL,
    version       INTEGER NOT NULL,
    template      VARCHAR NOT NULL,
    mode          VARCHAR NOT NULL,
    output_format VARCHAR NOT NULL,
    template_hash VARCHAR NOT NULL,
    created_at    TIMESTAMP DEFAULT current_timestamp,
    PRIMARY KEY (project, version)
);
ALTER TABLE teacher_calls ADD COLUMN template_version INTEGER;
CREATE TABLE token_counts (
    request_hash   VARCHAR PRIMARY KEY,
    model          VARCHAR NOT NULL,
    input_tokens   INTEGER NOT NULL,   -- from the API's count_tokens endpoint
    offline_tokens INTEGER NOT NULL,   -- our offline estimate of the same request
    counted_at     TIMESTAMP DEFAULT current_timestamp
);
