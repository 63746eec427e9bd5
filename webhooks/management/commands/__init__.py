"""Management commands of the webhook inbox."""
