"""Refund models (arrive with the refunds issue)."""
