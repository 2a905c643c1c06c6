"""Stage 6, Results: run comparison, charts, reports, the model export, and what the student saves."""
