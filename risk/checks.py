"""The database side of the rules: settings, blocklist matches and velocity counts.

Whatever the history size the rules cost two statements: before the creating transaction none once the
process has read the settings with the currency's thresholds and whether a card fingerprint is
blocklisted (`rules_snapshot`, kept per currency: `rules_known`); inside it the identity locks (1,
PostgreSQL only; an API create takes them in its idempotency key's statement instead:
`RiskPreparation.lock_keys`), then the blocklist, the velocity and decline counts and the settings as
stored now together (1, `blocklist_and_velocity`: the payment is decided with those); and, only when the
amount reaches the first-seen amount, whether the customer paid before (1).

The two statements of every creation are built and compiled by the ORM once per shape (which
identities are given, how many domains and networks) and then only run with new values
(`config.prepared`): building them cost more Python time than the database takes to answer.
"""

import ipaddress
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from django.db import IntegrityError, transaction
from django.db.models import Count, Exists, Q, QuerySet, Subquery, Value
from django.utils import timezone

from accounts.models import User
from config.encryption import email_index, ip_index
from config.prepared import PreparedQuery, Slots
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
    _settings_create()
    return rows.get(pk=1)


def _settings_create() -> None:
    """Create the settings row with the defaults, and the default thresholds (unless another request just did)."""
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


THRESHOLD_FIELDS = ("review_amount", "block_amount", "first_seen_amount")


def rules_load(currency: str) -> engine.Rules:
    """The settings with the currency's thresholds, in one statement."""
    return rules_snapshot(currency)[0]


SNAPSHOT_COLUMNS = (
    "version",
    *RULE_FIELDS,
    "has_threshold",
    *(f"threshold_{name}" for name in THRESHOLD_FIELDS),
    "fingerprints_blocked",
)


def _snapshot_rows(currency: str, now: datetime) -> QuerySet:
    """The settings row with the currency's thresholds and whether a card fingerprint is blocklisted."""
    thresholds = CurrencyThreshold.objects.filter(currency=currency)
    fingerprints = BlocklistEntry.objects.filter(active_entries(now), kind=BlockKind.CARD_FINGERPRINT)
    rows = RiskSettings.objects.annotate(
        has_threshold=Exists(thresholds),
        fingerprints_blocked=Exists(fingerprints),
        **{f"threshold_{name}": Subquery(thresholds.values(name)[:1]) for name in THRESHOLD_FIELDS},
    )
    return rows.filter(pk=1).order_by("pk").values_list(*SNAPSHOT_COLUMNS)[:1]  # as settings_ensure's first()


@PreparedQuery
def _snapshot_query(slots: Slots) -> QuerySet:
    """`_snapshot_rows`, compiled once."""
    return _snapshot_rows(slots.text("currency"), slots.moment("now"))


# The settings with each currency's thresholds as this process last read them: a create's rules before its
# transaction cost no statement (`rules_known`), and its counts' statement reads them again to check them.
_known: dict[str, tuple[engine.Rules, bool]] = {}


def rules_snapshot(currency: str, now: datetime | None = None) -> tuple[engine.Rules, bool]:
    """The rules and whether any card fingerprint is blocklisted, in one statement (the rest as subqueries).

    The settings row is created with the defaults when missing (as `settings_ensure` does).
    :raises RiskSettings.DoesNotExist: still no settings row after creating it.
    """
    values = {"currency": currency, "now": now or timezone.now()}
    rows = _snapshot_query.execute(values=values)
    if not rows:
        _settings_create()
        rows = _snapshot_query.execute(values=values)
        if not rows:
            raise RiskSettings.DoesNotExist("RiskSettings matching query does not exist.")
    snapshot = _known[currency] = _rules_of(rows[0])
    return snapshot


def rules_known(currency: str) -> tuple[engine.Rules, bool]:
    """`rules_snapshot` as this process last read it (read now if never): no statement once warm.

    What a create decides with them is checked inside its transaction: `blocklist_and_velocity` reads the
    settings again in the same statement as the counts, and `risk_assess` decides with those.
    """
    known = _known.get(currency)
    return known if known is not None else rules_snapshot(currency)


def _rules_of(values: Sequence[Any]) -> tuple[engine.Rules, bool]:
    """The rules and whether a card fingerprint is blocklisted, from a row of `SNAPSHOT_COLUMNS`."""
    row = dict(zip(SNAPSHOT_COLUMNS, values, strict=True))
    threshold = None
    if row["has_threshold"]:
        threshold = engine.Threshold(*(row[f"threshold_{name}"] for name in THRESHOLD_FIELDS))
    rules = engine.Rules(version=row["version"], threshold=threshold, **{name: row[name] for name in RULE_FIELDS})
    return rules, bool(row["fingerprints_blocked"])


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
    if "%" in ip:  # an IPv6 scope: leave its handling to ipaddress
        return [
            str(ipaddress.ip_network(f"{address}/{bits}", strict=False)) for bits in range(address.max_prefixlen + 1)
        ]
    # what str(ip_network(f"{address}/{bits}", strict=False)) gives, formatting each distinct network address once
    # (an IPv6 address formats slowly, and many prefixes share a network address: 129 networks cost 1.7 ms)
    width, whole, kind = address.max_prefixlen, int(address), type(address)
    names: dict[int, str] = {}
    networks = []
    for bits in range(width + 1):
        masked = whole >> (width - bits) << (width - bits)
        name = names.get(masked)
        if name is None:
            name = names[masked] = str(kind(masked))
        networks.append(f"{name}/{bits}")
    return networks


def active_entries(now: datetime) -> Q:
    return Q(expires_at__isnull=True) | Q(expires_at__gt=now)


def blocklist_matches(
    *, client: User, customer_id: str, email: str, ip: str | None, card_fingerprint: str, now: datetime
) -> QuerySet[BlocklistEntry]:
    return _blocklist_query(
        client=client,
        customer_id=customer_id,
        email=email,
        domains=_domains(email) if email else [],
        networks=_networks(ip) if ip else None,
        card_fingerprint=card_fingerprint,
        now=now,
    )


def _blocklist_query(
    *,
    client: User | int,
    customer_id: str,
    email: str,
    domains: list[str],
    networks: list[str] | None,
    card_fingerprint: str,
    now: datetime,
) -> QuerySet[BlocklistEntry]:
    """The active entries for these values (`email` "": none; `networks` None: no IP; `client` a user or its id)."""
    match = Q(kind=BlockKind.CUSTOMER, value=customer_id) & (Q(client__isnull=True) | Q(client=client))
    if email:
        match |= Q(kind=BlockKind.EMAIL, value=email) | Q(kind=BlockKind.EMAIL_DOMAIN, value__in=domains)
    if networks is not None:
        match |= Q(kind=BlockKind.IP, value__in=networks)
    if card_fingerprint:
        match |= Q(kind=BlockKind.CARD_FINGERPRINT, value=card_fingerprint)
    return BlocklistEntry.objects.filter(match, active_entries(now)).order_by("id")


Counts = tuple[dict[tuple[str, str], int], dict[tuple[str, str], int]]
WINDOWS = ("short", "long")


def blocklist_and_velocity(
    *,
    client: User,
    customer_id: str,
    email: str,
    ip: str | None,
    card_fingerprint: str,
    rules: engine.Rules,
    now: datetime,
    currency: str = "",
) -> tuple[tuple[engine.BlocklistHit, ...], Counts, tuple[engine.Rules, bool] | None]:
    """The blocklist hits, the velocity counts and the rules as stored now, in one statement.

    `SELECT v.*, s.*, h.id, h.kind, h.value FROM (<velocity>) v LEFT JOIN (<settings>) s ON true LEFT
    JOIN (<blocklist>) h ON true`, each part compiled by the ORM (once per shape, see `_combined_query`):
    the aggregate is always one row, so there is one row per hit, or one row with no hit. The windows
    counted are `rules`'; the settings part is `rules_snapshot`'s row for `currency` (None: no settings
    row), for the caller to decide with (and count again if a window changed). Run after
    `lock_identities`: the statement's snapshot then counts every payment committed by creations that held
    those locks before this one.
    """
    domains = _domains(email) if email else []
    networks = _networks(ip) if ip else None
    starts = {
        "short": now - timedelta(minutes=rules.short_window_minutes),
        "long": now - timedelta(hours=rules.long_window_hours),
    }
    values = {
        "client": client.pk,
        "customer_id": customer_id,
        "email": email,
        "email_index": email_index(email) if email else "",
        "ip_index": ip_index(ip) if ip else "",
        "domains": domains,
        "networks": networks or [],
        "card_fingerprint": card_fingerprint,
        "now": now,
        "since": min(starts.values()),
        **{f"{window}_start": start for window, start in starts.items()},
        "currency": currency,
    }
    shape = (bool(email), len(domains), None if networks is None else len(networks), bool(card_fingerprint))
    rows = _combined_query.execute(*shape, values=values)
    identities = _identities(email=bool(email), ip=bool(ip))
    names = _velocity_names(identities)
    settings_at = len(names)
    hits_at = settings_at + len(SNAPSHOT_COLUMNS)
    totals = dict(zip(names, rows[0][:settings_at], strict=True))
    found = tuple(
        engine.BlocklistHit(kind=kind, value=value, entry_id=pk)
        for pk, kind, value in (row[hits_at:] for row in rows)
        if pk is not None
    )
    stored = rows[0][settings_at:hits_at]
    current = None if stored[0] is None else _rules_of(stored)  # `version` is never NULL in a settings row
    if current is not None and currency:
        _known[currency] = current
    return found, _velocity_split(totals, identities), current


@PreparedQuery
def _combined_query(
    slots: Slots, with_email: bool, domain_count: int, network_count: int | None, with_card: bool
) -> tuple[str, list]:
    """The velocity aggregate joined to the blocklist matches, for which values are given and how many."""
    client = slots.number("client")
    customer_id = slots.text("customer_id")
    now = slots.moment("now")
    velocity = _velocity_query(
        client=client,
        customer_id=customer_id,
        email_index=slots.text("email_index") if with_email else "",
        ip_index=slots.text("ip_index") if network_count is not None else "",
        starts={window: slots.moment(f"{window}_start") for window in WINDOWS},
        since=slots.moment("since"),
    )
    hits = _blocklist_query(
        client=client,
        customer_id=customer_id,
        email=slots.text("email") if with_email else "",
        domains=slots.texts("domains", domain_count),
        networks=None if network_count is None else slots.texts("networks", network_count),
        card_fingerprint=slots.text("card_fingerprint") if with_card else "",
        now=now,
    ).values("id", "kind", "value")
    velocity_sql, velocity_params = slots.compile(velocity)
    settings_sql, settings_params = slots.compile(_snapshot_rows(slots.text("currency"), now))
    hits_sql, hits_params = slots.compile(hits)
    return (
        f"SELECT v.*, s.*, h.id, h.kind, h.value FROM ({velocity_sql}) v "  # noqa: S608 - compiled by the ORM
        f"LEFT JOIN ({settings_sql}) s ON true LEFT JOIN ({hits_sql}) h ON true",
        [*velocity_params, *settings_params, *hits_params],
    )


def _identities(*, email: bool, ip: bool) -> tuple[str, ...]:
    return ("customer", *(("email",) if email else ()), *(("ip",) if ip else ()))


def _velocity_names(identities: tuple[str, ...]) -> list[str]:
    """The aggregate's columns, in the order `_velocity_query` selects them."""
    return [f"{kind}_{i}_{w}" for i in identities for w in WINDOWS for kind in ("p", "d")]


def _velocity_query(
    *,
    client: User | int,
    customer_id: str,
    email_index: str,
    ip_index: str,
    starts: dict[str, datetime],
    since: datetime,
) -> QuerySet:
    """Earlier payments and declines per identity and window as a one-row aggregate queryset (a constant group:
    no GROUP BY, always one row), over payments created after `since` (the earliest of `starts`). A window of W
    covers (now − W, now]: a payment exactly W old has left it. Declines are payments created in the window
    that the gateway declined (our own blocks are not declines). An identity whose index is "" is not counted.
    """
    who = {"customer": Q(client=client, customer_id=customer_id)}
    # The e-mail and IP are encrypted: matched by their blind indexes (each with created_at on one index).
    if email_index:
        who["email"] = Q(customer_email_index=email_index)
    if ip_index:
        who["ip"] = Q(customer_ip_index=ip_index)
    declined = Q(status=PaymentStatus.FAILED) & ~Q(failure_code__in=["", "blocked"])
    aggregates = {}
    for identity, match in who.items():
        for window in WINDOWS:
            in_window = match & Q(created_at__gt=starts[window])
            aggregates[f"p_{identity}_{window}"] = Count("pk", filter=in_window)
            aggregates[f"d_{identity}_{window}"] = Count("pk", filter=in_window & declined)
    any_identity = Q()
    for match in who.values():
        any_identity |= match
    return (
        Payment.objects.filter(any_identity, created_at__gt=since)
        .order_by()
        .annotate(group=Value(1))
        .values("group")
        .annotate(**aggregates)
        .values(*aggregates)
    )


def _velocity_split(totals: dict[str, int], identities: tuple[str, ...]) -> Counts:
    payments = {(i, w): totals[f"p_{i}_{w}"] for i in identities for w in WINDOWS}
    declines = {(i, w): totals[f"d_{i}_{w}"] for i in identities for w in WINDOWS}
    return payments, declines


def customer_seen_before(*, client: User, customer_id: str) -> bool:
    return Payment.objects.filter(client=client, customer_id=customer_id).exists()
