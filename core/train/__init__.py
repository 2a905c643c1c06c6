"""Stage 5, Train: the student's training loop, its base models, and data parallelism."""
