"""Writes of privacy: erasure of a customer's personal data and the retention of raw webhook payloads."""

from privacy.services.erasure import customer_erase
from privacy.services.retention import webhook_payloads_purge, webhooks_of_erased_customers_redact

__all__ = ["customer_erase", "webhook_payloads_purge", "webhooks_of_erased_customers_redact"]
