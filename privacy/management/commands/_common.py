"""What the privacy commands share: the storefront client and the operator they act as."""

import getpass
from typing import Any

from django.core.management.base import CommandError

from accounts.models import ApiRole, User


def add_customer_arguments(parser: Any) -> None:
    parser.add_argument("--client", required=True, help="the storefront API client's username")
    parser.add_argument("--customer-id", required=True, help="the storefront's own customer id")


def storefront(name: str) -> User:
    client = User.objects.filter(username=name, api_role=ApiRole.STOREFRONT).first()
    if client is None:
        raise CommandError(f"No storefront API client named {name!r}.")
    return client


def operator(name: str | None) -> User:
    """The user the staff log names: `--actor`, or the one named as the operating system's user."""
    username = name or getpass.getuser()
    user = User.objects.filter(username=username, is_active=True).first()
    if user is None:
        raise CommandError(f"No active user {username!r} to act as: name one with --actor.")
    return user
