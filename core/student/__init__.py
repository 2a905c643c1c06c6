"""The trained student: predictions from a saved run, files in batches, and its int8 export."""
