"""Payments: the core aggregate, its state machine, gateways and event log."""
