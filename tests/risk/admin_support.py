"""Shared pieces of the risk back-office tests: staff per role, held payments over the API, reading admin pages."""

from html.parser import HTMLParser
from typing import Any

import pytest
from django.apps import apps as django_apps
from rest_framework.test import APIClient

from accounts.models import User
from payments.models import Payment
from tests.accounts.factories import StaffUserFactory
from tests.risk.conftest import post_payment, risk_grants_migration, staff_groups_migration

HELD_AMOUNT = (
    200_000  # usd: a new customer's first payment ≥ $1,000.00 is held (first-seen, 50 points; see known_rules)
)


def make_staff(username: str, group: str | None) -> User:
    """A staff member in `group` (None: staff without any group), with the groups' full permissions."""
    staff_groups_migration.create_groups(django_apps, None)  # a transactional test's flush empties them
    risk_grants_migration.grant_permissions(django_apps, None)
    return StaffUserFactory(username=username, groups=[group] if group else None)


@pytest.fixture(name="agent")
def agent_fixture(db) -> User:
    return make_staff("agent-ann", "finance_agent")


@pytest.fixture(name="lead")
def lead_fixture(db) -> User:
    return make_staff("lead-lou", "finance_lead")


@pytest.fixture(name="auditor")
def auditor_fixture(db) -> User:
    return make_staff("auditor-ada", "auditor")


@pytest.fixture(name="known_rules")
def known_rules_fixture(rules, threshold) -> None:
    """The rules these tests were written against, whatever the shipped defaults become."""
    rules(review_score=50, block_score=90, amount_review_points=60, amount_block_points=100, first_seen_points=50)
    threshold("usd", review_amount=500_000, block_amount=5_000_000, first_seen_amount=100_000)


@pytest.fixture(name="held")
def held_fixture(storefront, known_rules):
    """POST a payment the rules hold for review (a new customer's first large payment), confirmed: authorized."""

    def post(client: APIClient | None = None, **overrides: Any) -> Payment:
        body = {"amount": HELD_AMOUNT, "payment_method": "pm_card_visa", "confirm": True, **overrides}
        body = {name: value for name, value in body.items() if value is not None}  # None: leave the field out
        response = post_payment(client or storefront, **body)
        assert response.status_code == 201, response.content
        assert response.json()["review"]["state"] == "pending"
        return Payment.objects.get(public_id=response.json()["id"])

    return post


# --- reading the admin's HTML -------------------------------------------------------------------------
class _Page(HTMLParser):
    """Collects the changelist rows (`#result_list tbody tr`, cells by their `field-…` class) and the messages."""

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[dict[str, str]] = []
        self.messages: list[str] = []
        self._in_results = self._in_body = self._in_messagelist = self._in_message = False
        self._cell: str | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        classes = (found.get("class") or "").split()
        if tag == "table" and found.get("id") == "result_list":
            self._in_results = True
        elif tag == "ul" and "messagelist" in classes:
            self._in_messagelist = True
        elif self._in_results and tag == "tbody":
            self._in_body = True
        elif self._in_body and tag == "tr":
            self.rows.append({})
        elif self._in_body and tag in {"td", "th"}:
            field = next((name[len("field-") :] for name in classes if name.startswith("field-")), None)
            self._cell, self._text = field, []
        elif self._in_messagelist and tag == "li":
            self._in_message, self._text = True, []
        elif tag == "br" and (self._cell or self._in_message):
            self._text.append(" | ")

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._in_results:
            self._in_results = self._in_body = False
        elif tag in {"td", "th"} and self._cell is not None:
            self.rows[-1][self._cell] = " ".join("".join(self._text).split())
            self._cell = None
        elif tag == "li" and self._in_message:
            self.messages.append(" ".join("".join(self._text).split()))
            self._in_message = False
        elif tag == "ul":
            self._in_messagelist = False

    def handle_data(self, data: str) -> None:
        if self._cell is not None or self._in_message:
            self._text.append(data)


def _page(response: Any) -> _Page:
    page = _Page()
    page.feed(response.content.decode())
    return page


def rows_of(response: Any) -> list[dict[str, str]]:
    """The changelist's rows as {column: text}, in the order shown; `<br>` reads as ` | `."""
    return _page(response).rows


def messages_of(response: Any) -> list[str]:
    """The texts of the admin's message list (success, warning, error)."""
    return _page(response).messages
