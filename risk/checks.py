"""The database side of the rules: settings, blocklist matches and velocity counts.

Whatever the history size the rules cost three statements: before the creating transaction the
settings with the currency's thresholds and whether a card fingerprint is blocklisted (1,
`rules_snapshot`); inside it the identity locks (1, PostgreSQL only), then the blocklist and the
velocity and decline counts together (1, `blocklist_and_velocity`); and, only when the amount reaches
the first-seen amount, whether the customer paid before (1).
"""

import ipaddress
from datetime import datetime, timedelta

from django.db import IntegrityError, connection, transaction
from django.db.models import Count, Exists, Q, QuerySet, Subquery, Value
from django.utils import timezone

from accounts.models import User
from config.encryption import email_index, ip_index
from payments.models import Payment
from payments.services import normalize_email
from payments.states import PaymentStatus
from risk import engine
from risk.defaults import DEFAULT_THRESHOLDS
from risk.models import BlockKind, BlocklistEntry, CurrencyThreshold, RiskSettings

RULE_FIELDS = tuple(name for name in engine.Rules.__dataclass_fields__ if name not in {"version", "threshold"})


def settings_ensure(queryset: QuerySet[RiskSettings] | None = None) -> RiskSettings:
    """The settings row (read through `queryset`), created with the defaults (and thresholds) when missing."""
    rows = queryset if queryset is not None else RiskSettings.objects.all()
    found = rows.filter(pk=1).first()
    if found is not None:
        return found
    try:
        with transaction.atomic():
            RiskSettings.objects.create(pk=1)
            CurrencyThreshold.objects.bulk_create(
                [
                    CurrencyThreshold(currency=code, review_amount=review, block_amount=block, first_seen_amount=first)
                    for code, (review, block, first) in DEFAULT_THRESHOLDS.items()
                ],
                ignore_conflicts=True,
            )
    except IntegrityError:  # created meanwhile by another request
        pass
    return rows.get(pk=1)


THRESHOLD_FIELDS = ("review_amount", "block_amount", "first_seen_amount")


def rules_load(currency: str) -> engine.Rules:
    """The settings with the currency's thresholds, in one statement."""
    return rules_snapshot(currency)[0]


def rules_snapshot(currency: str, now: datetime | None = None) -> tuple[engine.Rules, bool]:
    """The rules and whether any card fingerprint is blocklisted, in one statement (the rest as subqueries)."""
    thresholds = CurrencyThreshold.objects.filter(currency=currency)
    fingerprints = BlocklistEntry.objects.filter(active_entries(now or timezone.now()), kind=BlockKind.CARD_FINGERPRINT)
    row = settings_ensure(
        RiskSettings.objects.annotate(
            has_threshold=Exists(thresholds),
            fingerprints_blocked=Exists(fingerprints),
            **{f"threshold_{name}": Subquery(thresholds.values(name)[:1]) for name in THRESHOLD_FIELDS},
        )
    )
    threshold = None
    if getattr(row, "has_threshold", False):
        threshold = engine.Threshold(*(getattr(row, f"threshold_{name}") for name in THRESHOLD_FIELDS))
    rules = engine.Rules(version=row.version, threshold=threshold, **{name: getattr(row, name) for name in RULE_FIELDS})
    return rules, bool(getattr(row, "fingerprints_blocked", False))


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


def blocklist_matches(
    *, client: User, customer_id: str, email: str, ip: str | None, card_fingerprint: str, now: datetime
) -> QuerySet[BlocklistEntry]:
    match = Q(kind=BlockKind.CUSTOMER, value=customer_id) & (Q(client__isnull=True) | Q(client=client))
    if email:
        match |= Q(kind=BlockKind.EMAIL, value=email) | Q(kind=BlockKind.EMAIL_DOMAIN, value__in=_domains(email))
    if ip:
        match |= Q(kind=BlockKind.IP, value__in=_networks(ip))
    if card_fingerprint:
        match |= Q(kind=BlockKind.CARD_FINGERPRINT, value=card_fingerprint)
    return BlocklistEntry.objects.filter(match, active_entries(now)).order_by("id")


Counts = tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]


def blocklist_and_velocity(
    *,
    client: User,
    customer_id: str,
    email: str,
    ip: str | None,
    card_fingerprint: str,
    rules: engine.Rules,
    now: datetime,
) -> tuple[tuple[engine.BlocklistHit, ...], Counts]:
    """The blocklist hits and the velocity counts in one statement: the aggregate row joined to the matching entries.

    `SELECT v.*, h.id, h.kind, h.value FROM (<velocity>) v LEFT JOIN (<blocklist>) h ON 1 = 1`, both
    parts compiled by the ORM: the aggregate is always one row, so there is one row per hit, or one
    row with no hit. Run after `lock_identities`: the statement's snapshot then counts every payment
    committed by creations that held those locks before this one.
    """
    who, starts, velocity = _velocity_query(
        client=client, customer_id=customer_id, email=email, ip=ip, rules=rules, now=now
    )
    hits = blocklist_matches(
        client=client, customer_id=customer_id, email=email, ip=ip, card_fingerprint=card_fingerprint, now=now
    ).values("id", "kind", "value")
    velocity_sql, velocity_params = velocity.query.sql_with_params()
    hits_sql, hits_params = hits.query.sql_with_params()
    names = list(velocity.query.annotation_select)
    with connection.cursor() as cursor:
        cursor.execute(
            f"SELECT v.*, h.id, h.kind, h.value FROM ({velocity_sql}) v LEFT JOIN ({hits_sql}) h ON 1 = 1",  # noqa: S608
            [*velocity_params, *hits_params],
        )
        rows = cursor.fetchall()
    totals = dict(zip(names, rows[0][: len(names)], strict=True))
    found = tuple(
        engine.BlocklistHit(kind=kind, value=value, entry_id=pk)
        for pk, kind, value in (row[len(names) :] for row in rows)
        if pk is not None
    )
    return found, _velocity_split(totals, who, starts)


def _velocity_query(
    *, client: User, customer_id: str, email: str, ip: str | None, rules: engine.Rules, now: datetime
) -> tuple[dict[str, Q], dict[str, datetime], QuerySet]:
    """Earlier payments and declines per identity and window as a one-row aggregate queryset (a constant group:
    no GROUP BY, always one row). A window of W covers (now − W, now]: a payment exactly W old has left it.
    Declines are payments created in the window that the gateway declined (our own blocks are not declines).
    """
    starts = {
        "short": now - timedelta(minutes=rules.short_window_minutes),
        "long": now - timedelta(hours=rules.long_window_hours),
    }
    who = {"customer": Q(client=client, customer_id=customer_id)}
    # The e-mail and IP are encrypted: matched by their blind indexes (each with created_at on one index).
    if email:
        who["email"] = Q(customer_email_index=email_index(email))
    if ip:
        who["ip"] = Q(customer_ip_index=ip_index(ip))
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
    queryset = (
        Payment.objects.filter(any_identity, created_at__gt=earliest)
        .order_by()
        .annotate(group=Value(1))
        .values("group")
        .annotate(**aggregates)
        .values(*aggregates)
    )
    return who, starts, queryset


def _velocity_split(totals: dict[str, int], who: dict[str, Q], starts: dict[str, datetime]) -> Counts:
    payments = {(i, w): totals[f"p_{i}_{w}"] for i in who for w in starts}
    declines = {(i, w): totals[f"d_{i}_{w}"] for i in who for w in starts}
    return payments, declines


def customer_seen_before(*, client: User, customer_id: str) -> bool:
    return Payment.objects.filter(client=client, customer_id=customer_id).exists()
