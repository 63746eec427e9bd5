"""End-to-end fixtures: Debian's Chromium driven by Playwright against pytest-django's live server."""

import importlib
import os
from collections.abc import Callable

import pytest
from django.apps import apps as django_apps

from accounts.models import User
from tests.accounts.factories import StaffUserFactory

# Playwright's sync API runs an event loop in this thread; Django's ORM would otherwise refuse to run.
os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "true"

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args):
    """Use the system Chromium: `playwright install` downloads are not available here."""
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


def create_staff_groups() -> None:
    """The staff groups with every permission the data migrations give them.

    The flush of a transactional test empties the migrations' groups; `create_groups` sets each group's
    permissions, so the risk app's grants are added again after it.
    """
    importlib.import_module("accounts.migrations.0002_staff_groups").create_groups(django_apps, None)
    importlib.import_module("risk.migrations.0002_defaults_and_staff_permissions").grant_permissions(django_apps, None)


@pytest.fixture
def staff_groups(transactional_db) -> None:
    create_staff_groups()


@pytest.fixture
def make_staff(staff_groups) -> Callable[[str, str], User]:
    """A staff member of one staff group, who logs in with the factories' PASSWORD and a TOTP code.

    StaffUserFactory enrols the authenticator; `tests.accounts.factories.totp_code(username)` is its current code,
    typed into the login form's `#id_otp_token` after the password.
    """

    def make(username: str, group: str) -> User:
        return StaffUserFactory(username=username, groups=[group])

    return make
