"""Audit trail, staff actions and reconciliation."""
