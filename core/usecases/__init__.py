"""Use cases: one object per area, each method one thing a user or a task does."""
