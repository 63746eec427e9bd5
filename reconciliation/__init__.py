"""Reconciliation: compare the gateway's records for a window with ours and let staff close the differences."""
