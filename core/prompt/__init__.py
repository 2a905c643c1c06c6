"""Stage 2, Prompt & budget: templates, request assembly, which rows a run sends, and the cost forecast."""
