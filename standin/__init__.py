"""standin package."""
