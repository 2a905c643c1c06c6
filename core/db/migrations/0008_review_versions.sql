-- Undo checks versions: each audit record keeps items.version as it was right after its
-- change, so an undo can tell whether anyone changed the row since (and then refuses).
ALTER TABLE audit_log ADD COLUMN row_version INTEGER;
-- Records written before this migration: the latest change of each row left the row at its
-- current version (until now only reviews and undos bumped it, and both are audited); older
-- changes stay NULL, and undo then relies on the audit trail alone for them.
UPDATE audit_log SET row_version = i.version
FROM items i
WHERE i.project = audit_log.project AND i.row_id = audit_log.row_id
  AND audit_log.change_id = (SELECT arg_max(l.change_id, l.id) FROM audit_log l
                             WHERE l.project = audit_log.project AND l.row_id = audit_log.row_id);
