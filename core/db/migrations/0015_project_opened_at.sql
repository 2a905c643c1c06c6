-- When a project was last opened in the app: a new tab, a bookmark without ?project= and the
-- sidebar links open the project last used in this workspace, not the first one created (the demo).
ALTER TABLE projects ADD COLUMN opened_at TIMESTAMP;
