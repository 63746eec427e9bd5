"""Template tags of the audit app."""
