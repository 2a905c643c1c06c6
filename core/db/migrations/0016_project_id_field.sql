-- The column the project's rows were imported with as their id (`case`, `ticket_id`, ...): a
-- student trained on the project carries it into the files it predicts, so they join back.
ALTER TABLE projects ADD COLUMN id_field VARCHAR;
