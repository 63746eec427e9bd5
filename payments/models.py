"""Payment models."""
