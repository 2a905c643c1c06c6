-- Which process runs a job, beyond its pid (the kernel reuses pids): the process's start time
-- in clock ticks (field 22 of /proc/<pid>/stat) and a fingerprint of its command line. A job
-- counts as alive only while all three match a live process (core/jobs.py). NULL where /proc
-- was not available: then the pid alone is checked, as before.
ALTER TABLE jobs ADD COLUMN proc_start_ticks BIGINT;
ALTER TABLE jobs ADD COLUMN proc_cmdline_sha VARCHAR;
-- Rows answered by live requests in the job's current run (not cache hits, not rows of earlier
-- runs of a resumed job): what its rows/s is computed from.
ALTER TABLE jobs ADD COLUMN live_rows INTEGER DEFAULT 0;
-- One labeling run per project at a time, so that two runs never budget on their own. Taken in
-- the transaction that queues or starts a labeling job, after checking that no other labeling
-- job of the project is still alive (a stale lease is taken over); dropped in the transaction
-- that moves its job to a non-active status.
CREATE TABLE label_leases (
    project  VARCHAR PRIMARY KEY,
    job_id   VARCHAR NOT NULL,
    taken_at TIMESTAMP NOT NULL
);
