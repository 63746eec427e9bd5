"""Customers and their saved payment methods (issue #17): the card vault, tokenized at the gateway."""
