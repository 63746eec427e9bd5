"""Fixtures for the back office: the staff groups, one staff member per role, captured payments."""

import importlib
from collections.abc import Callable

import pytest
from django.apps import apps as django_apps
from django.test import Client

from accounts.models import User
from payments.models import Payment
from payments.services import payment_create
from tests.accounts.factories import StaffUserFactory, UserFactory

staff_groups_migration = importlib.import_module("accounts.migrations.0002_staff_groups")
risk_grants_migration = importlib.import_module("risk.migrations.0002_defaults_and_staff_permissions")


@pytest.fixture
def staff_groups(db) -> None:
    """The groups of the data migrations (a transactional test's flush empties them: create them again).

    `create_groups` sets each group's permissions, so the risk app's grants are added again after it.
    """
    staff_groups_migration.create_groups(django_apps, None)
    risk_grants_migration.grant_permissions(django_apps, None)


@pytest.fixture
def make_staff(staff_groups) -> Callable[[str, str], User]:
    def make(username: str, group: str) -> User:
        return StaffUserFactory(username=username, groups=[group])

    return make


@pytest.fixture
def agent(make_staff) -> User:
    return make_staff("agent-ann", "finance_agent")


@pytest.fixture
def lead(make_staff) -> User:
    return make_staff("lead-lou", "finance_lead")


@pytest.fixture
def other_lead(make_staff) -> User:
    return make_staff("lead-lee", "finance_lead")


@pytest.fixture
def auditor(make_staff) -> User:
    return make_staff("auditor-ada", "auditor")


def logged_in(user: User) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def shop(db) -> User:
    return UserFactory()


@pytest.fixture
def captured(shop) -> Callable[..., Payment]:
    """A succeeded payment, made through the service with the simulator."""

    def make(amount: int, currency: str = "usd", order_id: str = "ord_1") -> Payment:
        return payment_create(
            client=shop,
            amount=amount,
            currency=currency,
            customer_id="cus_audit",
            order_id=order_id,
            payment_method="pm_card_visa",
            confirm=True,
        )

    return make
