-- Why a job stopped before finishing (budget, paused, cancelled, writer failed, ...); its status is then 'stopped', 'paused' or 'cancelled'.
ALTER TABLE jobs ADD COLUMN stop_reason VARCHAR;
