"""The kernel: what every stage shares (errors, names, task types, label matching, prices, paths); imports nothing else from core."""
