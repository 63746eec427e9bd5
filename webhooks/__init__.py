"""The Stripe webhook inbox."""
