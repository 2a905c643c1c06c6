"""Stage 3, Label: the teacher run (live and batch), reading its answers, trying a prompt, rationale checks."""
