"""The registry of four-eyes approval kinds: each app registers the kinds it owns (no if/elif over kinds here).

A kind says how to run an approved request (the owning app's service), which extra permission an
approver needs, and how the admin sums a request up. Apps register theirs in `AppConfig.ready()`.
"""

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from django.contrib import messages

from accounts.models import User
from audit.models import ApprovalRequest


@dataclass(frozen=True)
class ApprovalOutcome:
    """What the owning service did: a line for the request's result, and the before/after for the audit trail."""

    result: str
    before: dict[str, Any] = field(default_factory=dict)
    after: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class ApprovalKind:
    name: str
    run: Callable[[ApprovalRequest, User], ApprovalOutcome]
    summarize: Callable[[dict[str, Any]], str]
    approver_permission: str = ""  # needed besides audit.approve_request (e.g. refunds.approve_refund)


_KINDS: dict[str, ApprovalKind] = {}


def approval_kind_register(kind: ApprovalKind) -> None:
    """Register a kind (once per process; registering the same name twice is a programming error).

    :raises ValueError: a different kind with that name is registered already.
    """
    existing = _KINDS.get(kind.name)
    if existing is not None and existing != kind:
        raise ValueError(f"Approval kind {kind.name!r} is registered already")
    _KINDS[kind.name] = kind


def approval_kind(name: str) -> ApprovalKind:
    """:raises ValueError: no app registered this kind."""
    try:
        return _KINDS[name]
    except KeyError:
        raise ValueError(f"Unknown request kind {name!r}") from None


def approval_summary(request: ApprovalRequest) -> str:
    """The admin's one-line "what" of a request."""
    kind = _KINDS.get(request.kind)
    return kind.summarize(request.params) if kind else request.kind


def approval_or_done(result: Any, done: Callable[[Any], str]) -> tuple[str, int]:
    """A staff page's message for a service that either acted or asked for a second person's approval."""
    if isinstance(result, ApprovalRequest):
        return (
            f"Above the approval limit: request {result.pk} waits for another staff member's approval.",
            messages.WARNING,
        )
    return done(result), messages.SUCCESS
