"""Refunds of captured payments."""
