"""The Stripe webhook endpoint."""
