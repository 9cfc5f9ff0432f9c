"""core/adapters package."""
