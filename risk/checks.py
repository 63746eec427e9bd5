"""The database side of the rules: settings, blocklist matches and velocity counts.

Whatever the history size the check costs a fixed number of statements inside the creating
transaction: the settings (1) and the currency's thresholds (1), the identity locks (1, PostgreSQL
only), the blocklist (1), the velocity and decline counts (1, one aggregate over both windows), and,
only when the amount reaches the first-seen amount, whether the customer paid before (1).
"""

import ipaddress
from datetime import datetime, timedelta

from django.db import IntegrityError, transaction
from django.db.models import Count, Q

from accounts.models import User
from payments.models import Payment
from payments.services import normalize_email
from payments.states import PaymentStatus
from risk import engine
from risk.defaults import DEFAULT_THRESHOLDS
from risk.models import BlockKind, BlocklistEntry, CurrencyThreshold, RiskSettings

RULE_FIELDS = tuple(name for name in engine.Rules.__dataclass_fields__ if name not in {"version", "threshold"})


def settings_ensure() -> RiskSettings:
    """The settings row, created with the defaults (and the default thresholds) when missing."""
    found = RiskSettings.objects.filter(pk=1).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            found = RiskSettings.objects.create(pk=1)
            CurrencyThreshold.objects.bulk_create(
                [
                    CurrencyThreshold(currency=code, review_amount=review, block_amount=block, first_seen_amount=first)
                    for code, (review, block, first) in DEFAULT_THRESHOLDS.items()
                ],
                ignore_conflicts=True,
            )
    except IntegrityError:  # created meanwhile by another request
        found = RiskSettings.objects.get(pk=1)
    return found


def rules_load(currency: str) -> engine.Rules:
    row = settings_ensure()
    threshold = CurrencyThreshold.objects.filter(currency=currency).first()
    return engine.Rules(
        version=row.version,
        threshold=engine.Threshold(threshold.review_amount, threshold.block_amount, threshold.first_seen_amount)
        if threshold
        else None,
        **{name: getattr(row, name) for name in RULE_FIELDS},
    )


def normalize_domain(value: str) -> str:
    return value.strip().lower().lstrip("@").rstrip(".")


def normalize_ip(value: str) -> str:
    """`203.0.113.7` → `203.0.113.7/32`; `10.1.2.3/8` → `10.0.0.0/8`. :raises ValueError: not an IP or network."""
    return str(ipaddress.ip_network(value.strip(), strict=False))


def normalize(kind: str, value: str) -> str:
    """The stored form of a blocklist value. :raises ValueError: for a malformed e-mail, domain or IP."""
    if kind == BlockKind.EMAIL:
        email = normalize_email(value)
        if email.count("@") != 1 or not all(email.split("@")):
            raise ValueError("Enter an e-mail address such as name@example.com.")
        return email
    if kind == BlockKind.EMAIL_DOMAIN:
        domain = normalize_domain(value)
        if not domain or "@" in domain or " " in domain:
            raise ValueError("Enter a domain such as example.com.")
        return domain
    if kind == BlockKind.IP:
        return normalize_ip(value)
    if not value.strip():
        raise ValueError("Enter a value.")
    return value.strip()


def _domains(email: str) -> list[str]:
    """`ann@mail.example.com` → [`mail.example.com`, `example.com`, `com`]."""
    domain = email.rpartition("@")[2]
    parts = domain.split(".") if domain else []
    return [".".join(parts[index:]) for index in range(len(parts))]


def _networks(ip: str) -> list[str]:
    """Every network that contains the address, in stored form: 33 for IPv4, 129 for IPv6."""
    address = ipaddress.ip_address(ip)
    return [str(ipaddress.ip_network(f"{address}/{bits}", strict=False)) for bits in range(address.max_prefixlen + 1)]


def active_entries(now: datetime) -> Q:
    return Q(expires_at__isnull=True) | Q(expires_at__gt=now)


def blocklist_hits(
    *, client: User, customer_id: str, email: str, ip: str | None, card_fingerprint: str, now: datetime
) -> tuple[engine.BlocklistHit, ...]:
    """One indexed query: the active entries matching any of the payment's values."""
    match = Q(kind=BlockKind.CUSTOMER, value=customer_id) & (Q(client__isnull=True) | Q(client=client))
    if email:
        match |= Q(kind=BlockKind.EMAIL, value=email) | Q(kind=BlockKind.EMAIL_DOMAIN, value__in=_domains(email))
    if ip:
        match |= Q(kind=BlockKind.IP, value__in=_networks(ip))
    if card_fingerprint:
        match |= Q(kind=BlockKind.CARD_FINGERPRINT, value=card_fingerprint)
    rows = BlocklistEntry.objects.filter(match, active_entries(now)).order_by("id").values_list("id", "kind", "value")
    return tuple(engine.BlocklistHit(kind=kind, value=value, entry_id=pk) for pk, kind, value in rows)


def fingerprint_blocking_in_use(now: datetime) -> bool:
    return BlocklistEntry.objects.filter(active_entries(now), kind=BlockKind.CARD_FINGERPRINT).exists()


def velocity_counts(
    *, client: User, customer_id: str, email: str, ip: str | None, rules: engine.Rules, now: datetime
) -> tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]:
    """Earlier payments and declines per identity and window, in one aggregate query.

    A window of W covers (now − W, now]: a payment exactly W old has left it. Declines are payments
    created in the window that the gateway declined (our own blocks are not declines).
    """
    starts = {
        "short": now - timedelta(minutes=rules.short_window_minutes),
        "long": now - timedelta(hours=rules.long_window_hours),
    }
    who = {"customer": Q(client=client, customer_id=customer_id)}
    if email:
        who["email"] = Q(customer_email=email)
    if ip:
        who["ip"] = Q(customer_ip=ip)
    declined = Q(status=PaymentStatus.FAILED) & ~Q(failure_code__in=["", "blocked"])
    aggregates = {}
    for identity, match in who.items():
        for window, start in starts.items():
            aggregates[f"p_{identity}_{window}"] = Count("pk", filter=match & Q(created_at__gt=start))
            aggregates[f"d_{identity}_{window}"] = Count("pk", filter=match & Q(created_at__gt=start) & declined)
    any_identity = Q()
    for match in who.values():
        any_identity |= match
    earliest = min(starts.values())
    totals = Payment.objects.filter(any_identity, created_at__gt=earliest).aggregate(**aggregates)
    payments = {(i, w): totals[f"p_{i}_{w}"] for i in who for w in starts}
    declines = {(i, w): totals[f"d_{i}_{w}"] for i in who for w in starts}
    return payments, declines


def customer_seen_before(*, client: User, customer_id: str) -> bool:
    return Payment.objects.filter(client=client, customer_id=customer_id).exists()
