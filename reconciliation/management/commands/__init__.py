"""`manage.py reconcile`."""
