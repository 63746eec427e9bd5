"""Audit and reconciliation models (arrive with the back-office issue)."""
