"""The command line: one module per stage, the same core functions as the app."""
