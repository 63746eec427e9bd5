"""Disputes (chargebacks and inquiries) of payments, their evidence and status history (issue #19)."""
