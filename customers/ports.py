"""The port through which saving a card asks whether the card may be saved (risk plugs in; customers never imports it).

`payment_method_attach` calls the configured screen with the card's fingerprint after the gateway attached it
and before it is recorded here: a refused card is detached again at the gateway and the request is 402
`card_error` / `blocked`, as a blocked payment is. `CUSTOMERS_CARD_SCREEN` names the implementation (a dotted
path); `AllowEveryCard` is the screen of a house with no risk app.
"""

from functools import cache
from typing import Protocol

from django.conf import settings
from django.utils.module_loading import import_string

from accounts.models import User


class CardScreen(Protocol):
    def refuses(self, *, client: User, customer_id: str, fingerprint: str) -> bool:
        """True when this card must not be saved (for example: its fingerprint is on the blocklist)."""
        ...


class AllowEveryCard:
    def refuses(self, *, client: User, customer_id: str, fingerprint: str) -> bool:
        return False


@cache
def _screen(path: str) -> CardScreen:
    screen: CardScreen = import_string(path)()
    return screen


def card_screen() -> CardScreen:
    """The configured screen (`CUSTOMERS_CARD_SCREEN`)."""
    return _screen(settings.CUSTOMERS_CARD_SCREEN)
