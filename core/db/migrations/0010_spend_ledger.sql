-- The spend ledger: every live request reserves its worst-case cost before it is sent, in a
-- transaction that checks the project's cap (and the run's) against settled spend plus every
-- open reservation of every process. A reservation settles in the transaction that writes the
-- call's real cost, is released when the call failed unbilled, and stops counting once it
-- expires (its process died with the request in flight).
CREATE SEQUENCE spend_ledger_id;
CREATE TABLE spend_ledger (
    id           BIGINT PRIMARY KEY DEFAULT nextval('spend_ledger_id'),
    project      VARCHAR NOT NULL,
    job_id       VARCHAR,
    pid          INTEGER,
    request_hash VARCHAR,
    reserved_usd DOUBLE NOT NULL,        -- worst case: estimated input + full max_tokens out
    state        VARCHAR NOT NULL,       -- reserved | settled | released
    settled_usd  DOUBLE,                 -- the real cost, once known
    created_at   TIMESTAMP DEFAULT current_timestamp,
    expires_at   TIMESTAMP NOT NULL,     -- an open reservation stops counting after this
    closed_at    TIMESTAMP
);
CREATE INDEX spend_ledger_open ON spend_ledger(project, state);
