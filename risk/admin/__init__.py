"""Back office for the risk rules: the review queue and decisions, every assessment, the blocklist, the settings."""

from risk.admin import blocklist, reviews, rules

__all__ = ["blocklist", "reviews", "rules"]
