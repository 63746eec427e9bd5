"""The shared API toolkit: parsing, idempotency plumbing, the error envelope, pagination, auth and permissions."""
