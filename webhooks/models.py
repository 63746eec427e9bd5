"""Webhook inbox models (arrive with the webhooks issue)."""
