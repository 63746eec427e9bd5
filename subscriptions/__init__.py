"""Subscriptions, prices and invoices (issue #18): recurring billing on the gateway's billing engine."""
