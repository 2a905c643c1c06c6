-- The teacher's own confidence in its label, when its (JSON) answer carries one.
ALTER TABLE items ADD COLUMN teacher_confidence DOUBLE;
