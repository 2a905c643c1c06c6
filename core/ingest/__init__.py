"""Stage 1, Data: reading the user's files and Hugging Face datasets into a project's rows, within import limits."""
