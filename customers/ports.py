"""The ports of customers: the card screen (risk plugs in) and customer privacy (erasure, export: privacy plugs in).

`payment_method_attach` calls the configured screen with the card's fingerprint after the gateway attached it
and before it is recorded here: a refused card is detached again at the gateway and the request is 402
`card_error` / `blocked`, as a blocked payment is. `CUSTOMERS_CARD_SCREEN` names the implementation (a dotted
path); `AllowEveryCard` is the screen of a house with no risk app.
"""

from functools import cache
from typing import Any, Protocol

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


class CustomerPrivacy(Protocol):
    """Erasure and export of a customer's personal data (the right to erasure and of access).

    They touch every app's rows, so they live above them all (`privacy`), which registers its implementation
    in its `AppConfig.ready()`; the customers API reaches it only through this port.
    """

    def erase(self, *, client: User, customer_id: str, actor: User, reason: str, source: str) -> None:
        """Erase the finance client's chosen customer (`client`: the storefront it belongs to).

        :raises rest_framework.exceptions.NotFound: no such customer, or erased already.
        """
        ...

    def export(self, *, client: User, customer_id: str) -> dict[str, Any]:
        """Everything held about the customer, as JSON.

        :raises rest_framework.exceptions.NotFound: no such customer.
        """
        ...


_privacy: list[CustomerPrivacy] = []


def customer_privacy_register(implementation: CustomerPrivacy) -> None:
    """Set the implementation (once, from the upper app's `ready()`; again replaces it, for tests)."""
    _privacy[:] = [implementation]


def customer_privacy() -> CustomerPrivacy:
    """The registered implementation.

    :raises RuntimeError: no app registered one (the privacy app is not installed).
    """
    if not _privacy:
        raise RuntimeError("No customer privacy implementation is registered (is the privacy app installed?)")
    return _privacy[0]
