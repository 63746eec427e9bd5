"""The risk app's screen for saving cards (customers.ports.CardScreen): a blocklisted card is never saved."""

from django.utils import timezone

from accounts.models import User
from risk.checks import blocklist_matches


class BlocklistCardScreen:
    """Refuse a card whose fingerprint is on the blocklist, or a customer who is: the entries payments check."""

    def refuses(self, *, client: User, customer_id: str, fingerprint: str) -> bool:
        matches = blocklist_matches(
            client=client, customer_id=customer_id, email="", ip=None, card_fingerprint=fingerprint, now=timezone.now()
        )
        return matches.exists()
