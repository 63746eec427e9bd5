"""The implementation of `customers.ports.CustomerPrivacy`, registered in `PrivacyConfig.ready()`."""

from typing import Any

from accounts.models import User
from privacy.selectors import customer_export
from privacy.services import customer_erase


class CustomerPrivacyService:
    def erase(self, *, client: User, customer_id: str, actor: User, reason: str, source: str) -> None:
        customer_erase(client=client, customer_id=customer_id, actor=actor, reason=reason, source=source)

    def export(self, *, client: User, customer_id: str) -> dict[str, Any]:
        return customer_export(client=client, customer_id=customer_id)
