"""Stage 4, Review: verdicts, bulk actions and undo, what review costs, prompt fixes, the labeled dataset export."""
