"""Management commands of reconciliation."""
