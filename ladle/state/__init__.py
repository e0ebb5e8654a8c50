"""State: one SQLite database (the single source of truth) and per-object lock files."""
