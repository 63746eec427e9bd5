"""The rules, as pure functions of the facts gathered about a new payment (no database, no clock).

Each rule returns the reasons it fired with their points. The score is the sum over rules of the
highest points each rule gave (so one rule firing for the customer, the e-mail and the IP counts
once; the amount and first-seen rules count as one, see GROUP), capped at 100. The decision follows
the score: at or above `block_score` → block (level highest), at or above `review_score` → review
(level elevated), else allow (level normal).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

from payments.money import format_amount

IDENTITIES = ("customer", "email", "ip")
WINDOWS = ("short", "long")

ALLOW, REVIEW, BLOCK = "allow", "review", "block"
NORMAL, ELEVATED, HIGHEST = "normal", "elevated", "highest"


@dataclass(frozen=True)
class Threshold:
    """A currency's amounts, in minor units."""

    review_amount: int
    block_amount: int | None
    first_seen_amount: int


@dataclass(frozen=True)
class Rules:
    """A snapshot of the risk settings."""

    version: int = 1
    review_score: int = 50
    block_score: int = 90
    blocklist_points: int = 100
    amount_review_points: int = 60
    amount_block_points: int = 100
    first_seen_points: int = 50
    velocity_points: int = 60
    decline_points: int = 80
    short_window_minutes: int = 10
    short_window_payments: int = 5
    short_window_declines: int = 3
    long_window_hours: int = 24
    long_window_payments: int = 20
    long_window_declines: int = 5
    threshold: Threshold | None = None  # of the payment's currency; None: the amount rules do not apply

    def window_label(self, window: str) -> str:
        return f"{self.short_window_minutes} min" if window == "short" else f"{self.long_window_hours} h"

    def payment_limit(self, window: str) -> int:
        return self.short_window_payments if window == "short" else self.long_window_payments

    def decline_limit(self, window: str) -> int:
        return self.short_window_declines if window == "short" else self.long_window_declines


@dataclass(frozen=True)
class BlocklistHit:
    kind: str  # email, email_domain, ip, customer, card_fingerprint
    value: str
    entry_id: int


@dataclass(frozen=True)
class Facts:
    """What the database said about the new payment's customer, e-mail, IP and card."""

    amount: int
    currency: str
    blocklist_hits: tuple[BlocklistHit, ...] = ()
    # earlier payments and declines per (identity, window), e.g. ("email", "short") -> 3
    payments: Mapping[tuple[str, str], int] = field(default_factory=dict)
    declines: Mapping[tuple[str, str], int] = field(default_factory=dict)
    first_seen: bool | None = None  # None: not asked (the amount is below the first-seen amount)


@dataclass(frozen=True)
class Reason:
    rule: str
    code: str
    points: int
    message: str

    def as_dict(self) -> dict[str, object]:
        return {"rule": self.rule, "code": self.code, "points": self.points, "message": self.message}


@dataclass(frozen=True)
class Assessment:
    score: int
    level: str
    decision: str
    reasons: tuple[Reason, ...]
    settings_version: int


def blocklist_rule(facts: Facts, rules: Rules) -> list[Reason]:
    return [
        Reason("blocklist", f"blocklisted_{hit.kind}", rules.blocklist_points, f"{hit.kind} {hit.value} is blocklisted")
        for hit in facts.blocklist_hits
    ]


def amount_rule(facts: Facts, rules: Rules) -> list[Reason]:
    """The block tier past the block amount, the review tier past the review amount.

    Past the block amount the higher of the two tiers' points counts, so turning the block tier off
    (0 points) or down never scores a larger amount below a smaller one.
    """
    threshold = rules.threshold
    if threshold is None:
        return []
    shown = format_amount(facts.amount, facts.currency)
    if (
        threshold.block_amount is not None
        and facts.amount >= threshold.block_amount
        and rules.amount_block_points > rules.amount_review_points
    ):
        limit = format_amount(threshold.block_amount, facts.currency)
        message = f"amount {shown} is at or above the block amount {limit}"
        return [Reason("amount", "amount_block_threshold", rules.amount_block_points, message)]
    if facts.amount >= threshold.review_amount:
        limit = format_amount(threshold.review_amount, facts.currency)
        message = f"amount {shown} is at or above the review amount {limit}"
        return [Reason("amount", "amount_review_threshold", rules.amount_review_points, message)]
    return []


def first_seen_rule(facts: Facts, rules: Rules) -> list[Reason]:
    """A new customer's first payment at or above the first-seen amount (scored with the amount rule, see GROUP)."""
    threshold = rules.threshold
    if not facts.first_seen or threshold is None:
        return []
    limit = format_amount(threshold.first_seen_amount, facts.currency)
    message = f"first payment of this customer, {format_amount(facts.amount, facts.currency)} (≥ {limit})"
    return [Reason("first_seen", "first_seen_large_amount", rules.first_seen_points, message)]


def velocity_rule(facts: Facts, rules: Rules) -> list[Reason]:
    return [
        Reason(
            "velocity",
            f"velocity_{identity}_{window}",
            rules.velocity_points,
            f"{count} payments by this {identity} in {rules.window_label(window)}"
            f" (limit {rules.payment_limit(window)})",
        )
        for identity in IDENTITIES
        for window in WINDOWS
        if (count := facts.payments.get((identity, window), 0)) >= rules.payment_limit(window)
    ]


def decline_rule(facts: Facts, rules: Rules) -> list[Reason]:
    return [
        Reason(
            "declines",
            f"declines_{identity}_{window}",
            rules.decline_points,
            f"{count} declines for this {identity} in {rules.window_label(window)}"
            f" (limit {rules.decline_limit(window)})",
        )
        for identity in IDENTITIES
        for window in WINDOWS
        if (count := facts.declines.get((identity, window), 0)) >= rules.decline_limit(window)
    ]


RULES: tuple[Callable[[Facts, Rules], list[Reason]], ...] = (
    blocklist_rule,
    amount_rule,
    first_seen_rule,
    velocity_rule,
    decline_rule,
)
RULE_NAMES = ("blocklist", "amount", "first_seen", "velocity", "declines")
# Rules that score one fact together: the first-seen rule and the amount rule both look at a large amount, so
# a new customer's large order counts the higher of the two, not their sum (held for review, not blocked).
GROUP = {"first_seen": "amount"}


def evaluate(facts: Facts, rules: Rules) -> Assessment:
    """Run every rule; a rule whose points are 0 is off and gives no reason."""
    reasons = tuple(reason for rule in RULES for reason in rule(facts, rules) if reason.points > 0)
    best: dict[str, int] = {}
    for reason in reasons:
        group = GROUP.get(reason.rule, reason.rule)
        best[group] = max(best.get(group, 0), reason.points)
    score = min(100, sum(best.values()))
    if score >= rules.block_score:
        return Assessment(score, HIGHEST, BLOCK, reasons, rules.version)
    if score >= rules.review_score:
        return Assessment(score, ELEVATED, REVIEW, reasons, rules.version)
    return Assessment(score, NORMAL, ALLOW, reasons, rules.version)
