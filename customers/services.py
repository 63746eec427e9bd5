"""Every write to customers and saved payment methods, in atomic phases.

A gateway call never runs inside a transaction: the customer row is inserted (with `customer.created`)
and committed first, so concurrent requests agree on its `cu_` id; then the gateway is called with a key
derived from our ids (`cu_X:create`, `cu_X:attach:<token>`, `pmt_X:detach`), so a retry or a concurrent
request gets the gateway's first answer; then the answer is applied under the customer's row lock, with
its event, in one transaction. A saved method exists once per gateway reference (a unique constraint,
checked under the customer's lock). Events never carry personal data (`customers.rendering`).
"""

import hashlib
import json
import logging
import secrets
from collections.abc import Callable
from typing import Any, TypeVar

from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import User
from audit.services import staff_action_record
from customers.errors import PaymentMethodInvalid
from customers.locks import lock_customer, lock_payment_method
from customers.models import Customer, CustomerGatewayToken, PaymentMethod, PaymentMethodStatus
from customers.ports import card_screen
from customers.rendering import customer_event_data, payment_method_event_data
from customers.selectors import customer_by_gateway_reference, gateway_reference_of
from events.services import event_record
from gateways import get_gateway
from gateways.base import (
    Declined,
    Gateway,
    GatewayTimeout,
    PaymentMethodResult,
    Permanent,
    Retryable,
)
from payments.errors import (
    CardDeclined,
    GatewayRejected,
    GatewayTimeoutError,
    GatewayUnavailableError,
    PaymentBlocked,
)
from payments.models import ChangeSource

logger = logging.getLogger(__name__)
T = TypeVar("T")
ACTIVE, DETACHED = PaymentMethodStatus.ACTIVE, PaymentMethodStatus.DETACHED
KEEP: Any = object()  # "leave the default payment method as it is"
SYNC_CUSTOMER_TASK = "customers.tasks.sync_customer"
SYNC_PAYMENT_METHOD_TASK = "customers.tasks.sync_payment_method"


# --- gateway calls ----------------------------------------------------------------------------------
def _call(request: Callable[[], T], *, key: str) -> T:
    """Make one gateway call (idempotency key `key`) and turn its failures into API errors (a decline is 402).

    :raises CardDeclined: the gateway declined (402 card_error).
    :raises GatewayTimeoutError, GatewayUnavailableError: no answer (502); repeating with the same key is safe.
    :raises GatewayRejected: the gateway refused the request (400).
    """
    try:
        return _one_call_per_key(request, key=key)
    except Declined as exc:
        raise CardDeclined(exc.message, code=exc.code or CardDeclined.default_code) from exc
    except GatewayTimeout as exc:
        raise GatewayTimeoutError() from exc
    except Retryable as exc:
        raise GatewayUnavailableError() from exc
    except Permanent as exc:
        raise GatewayRejected(exc.message) from exc


def _one_call_per_key(request: Callable[[], T], *, key: str) -> T:
    """Make the call while no other process makes one with the same gateway key: the others wait, then get its answer.

    Concurrent requests about one customer share their gateway keys by design (`cu_X:create`,
    `cu_X:attach:<token>`); the gateway refuses a second call with a key still in flight (Stripe's 409). A
    PostgreSQL advisory lock on the key, taken outside any transaction (never one open across the gateway call),
    queues them: the next caller repeats the call with the same key once the first is answered, and the gateway
    replays that answer. Inside a transaction (or without PostgreSQL) the call is made as it is.
    """
    if connection.vendor != "postgresql" or connection.in_atomic_block:
        return request()
    lock = int.from_bytes(hashlib.sha256(key.encode()).digest()[:8], "big", signed=True)
    with connection.cursor() as cursor:
        cursor.execute("SELECT pg_advisory_lock(%s)", [lock])
    try:
        return request()
    finally:
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_unlock(%s)", [lock])


def _token_key(token: str) -> str:
    """A token as it may appear in a gateway key (Stripe's keys are at most 255 characters)."""
    return token if len(token) <= 100 else hashlib.sha256(token.encode()).hexdigest()[:32]


def _gateway_metadata(customer: Customer) -> dict[str, str]:
    """What the gateway's customer carries of ours: our ids (the storefront's metadata stays here)."""
    return {"customer_id": customer.public_id, "client_customer_id": customer.customer_id}


# --- events -----------------------------------------------------------------------------------------
def _customer_event(customer: Customer, type: str, *, gateway_reference: str | None = KEEP) -> None:  # noqa: A002
    gateway = get_gateway().name
    if gateway_reference is KEEP:
        gateway_reference = gateway_reference_of(customer=customer, gateway=gateway)
    event_record(
        type=type,
        client_id=customer.client_id,
        subject_type="customer",
        subject_id=customer.public_id,
        data=customer_event_data(customer, gateway=gateway, gateway_reference=gateway_reference),
    )


def _method_event(method: PaymentMethod, customer: Customer, type: str) -> None:  # noqa: A002
    event_record(
        type=type,
        client_id=customer.client_id,
        subject_type="payment_method",
        subject_id=method.public_id,
        data=payment_method_event_data(
            method, customer_id=customer.customer_id, is_default=customer.default_payment_method_id == method.pk
        ),
    )


# --- customers --------------------------------------------------------------------------------------
def customer_ensure(*, client: User, customer_id: str, fields: dict[str, Any] | None = None) -> tuple[Customer, bool]:
    """This client's customer, inserted with `fields` and `customer.created` when it has none (or it was deleted).

    Returns (customer, created). Concurrent calls agree on one row (the unique client × customer_id).
    """
    existing = Customer.objects.filter(client=client, customer_id=customer_id).first()
    if existing is not None and existing.deleted_at is None:
        return existing, False
    with transaction.atomic():
        if existing is None:
            try:
                with transaction.atomic():
                    customer = Customer.objects.create(client=client, customer_id=customer_id, **(fields or {}))
            except IntegrityError:
                return Customer.objects.get(client=client, customer_id=customer_id), False
        else:  # deleted at the gateway (the Dashboard): made again, with a new gateway customer
            customer = lock_customer(existing.pk)
            if customer.deleted_at is None:
                return customer, False
            customer.deleted_at = None
            for name, value in (fields or {}).items():
                setattr(customer, name, value)
            customer.save(update_fields=["deleted_at", "updated_at", *(fields or {})])
        _customer_event(customer, "customer.created", gateway_reference=None)
    logger.info("Customer created", extra={"customer": customer.public_id})
    return customer, True


def customer_gateway_reference(*, customer: Customer) -> str:
    """The gateway's customer (Stripe: cus_…), created there first when there is none (key `cu_X:create`).

    :raises GatewayTimeoutError, GatewayUnavailableError, GatewayRejected: see `_call`.
    """
    gateway = get_gateway()
    reference = gateway_reference_of(customer=customer, gateway=gateway.name)
    if reference:
        return reference
    key = f"{customer.public_id}:create" + (f":{customer.incarnation}" if customer.incarnation else "")
    result = _call(
        lambda: gateway.create_customer(
            email=customer.email, name=customer.name, metadata=_gateway_metadata(customer), idempotency_key=key
        ),
        key=key,
    )
    try:
        with transaction.atomic():
            CustomerGatewayToken.objects.create(customer=customer, gateway=gateway.name, reference=result.reference)
    except IntegrityError:  # a concurrent request stored it first (the same key: the same gateway customer)
        stored = gateway_reference_of(customer=customer, gateway=gateway.name)
        if stored is None:
            raise
        return stored
    return result.reference


def _active_method(customer: Customer | None, public_id: str, *, param: str) -> PaymentMethod:
    method = (
        PaymentMethod.objects.filter(customer=customer, public_id=public_id, status=ACTIVE).first()
        if customer is not None
        else None
    )
    if method is None:
        raise PaymentMethodInvalid(
            f"{param} is not an active saved payment method of this customer.", code="resource_missing", param=param
        )
    return method


def customer_upsert(*, client: User, customer_id: str, changes: dict[str, Any]) -> tuple[Customer, bool]:
    """Create (True) or update (False) this client's customer here and at the gateway.

    `changes` holds what the request gave of `email`, `name`, `metadata` and `default_payment_method`
    (a `pmt_…` of this customer, or None to unset it); what it leaves out stays as it is.

    :raises PaymentMethodInvalid: the default is not an active saved method of this customer (no gateway call).
    :raises GatewayTimeoutError, GatewayUnavailableError, GatewayRejected: see `_call`.
    """
    fields = {name: changes[name] for name in ("email", "name", "metadata") if name in changes}
    default: Any = KEEP
    if changes.get("default_payment_method") is not None:
        existing = Customer.objects.filter(client=client, customer_id=customer_id, deleted_at__isnull=True).first()
        default = _active_method(existing, changes["default_payment_method"], param="default_payment_method")
    elif "default_payment_method" in changes:
        default = None
    customer, created = customer_ensure(client=client, customer_id=customer_id, fields=fields)
    customer_gateway_reference(customer=customer)  # made at the gateway with the fields just stored
    if created:
        return customer, True
    return customer_change(customer=customer, fields=fields, default=default), False


def customer_change(
    *, customer: Customer, fields: dict[str, Any], default: PaymentMethod | None = KEEP, source: str = ChangeSource.API
) -> Customer:
    """Change the customer at the gateway (e-mail, name, default method), then here with `customer.updated`.

    Nothing is written, and the gateway is not called, when nothing changes.
    """
    changed = {name: value for name, value in fields.items() if getattr(customer, name) != value}
    default_id = customer.default_payment_method_id if default is KEEP else (default.pk if default else None)
    default_changed = default_id != customer.default_payment_method_id
    if not changed and not default_changed:
        return customer
    if {"email", "name"} & set(changed) or default_changed:
        gateway = get_gateway()
        reference = customer_gateway_reference(customer=customer)
        target = {name: changed.get(name, getattr(customer, name)) for name in ("email", "name")}
        pm = None if not default_changed else (default.gateway_reference if default else "")
        version = int(customer.updated_at.timestamp() * 1_000_000)  # the same change again later is a new call
        digest = hashlib.sha256(json.dumps([target, pm], sort_keys=True).encode()).hexdigest()[:16]
        update_key = f"{customer.public_id}:update:{version}:{digest}"
        _call(
            lambda: gateway.update_customer(
                reference=reference,
                email=target["email"],
                name=target["name"],
                metadata=_gateway_metadata(customer),
                default_payment_method=pm,
                idempotency_key=update_key,
            ),
            key=update_key,
        )
    return _customer_apply(customer_pk=customer.pk, fields=changed, default_id=default_id)


def _customer_apply(*, customer_pk: int, fields: dict[str, Any], default_id: int | None | Any = KEEP) -> Customer:
    """Apply changes here under the customer's lock, with `customer.updated` when anything moved."""
    with transaction.atomic():
        customer = lock_customer(customer_pk)
        update = [name for name, value in fields.items() if getattr(customer, name) != value]
        for name in update:
            setattr(customer, name, fields[name])
        if default_id is not KEEP and default_id != customer.default_payment_method_id:
            customer.default_payment_method_id = default_id
            update.append("default_payment_method")
        if update:
            customer.save(update_fields=[*update, "updated_at"])
            _customer_event(customer, "customer.updated")
    return customer


def customer_gateway_deleted(*, customer: Customer, gateway: str, reference: str) -> bool:
    """The gateway's customer was deleted (the Stripe Dashboard): its methods are detached there, so here too.

    The customer is gone for the API (404) until a PUT, setup intent or attach makes it again with a new
    gateway customer. Returns False, changing nothing, when `reference` is not its gateway customer any more.
    """
    with transaction.atomic():
        locked = lock_customer(customer.pk)
        token = CustomerGatewayToken.objects.filter(customer=locked, gateway=gateway, reference=reference).first()
        if token is None:
            return False
        token.delete()
        now = timezone.now()
        methods = list(
            PaymentMethod.objects.select_for_update(of=("self",)).filter(customer=locked, status=ACTIVE).order_by("pk")
        )
        locked.default_payment_method = None
        for method in methods:
            method.status, method.detached_at = DETACHED, now
            method.save(update_fields=["status", "detached_at", "updated_at"])
            _method_event(method, locked, "payment_method.detached")
        locked.deleted_at = now
        locked.incarnation += 1
        locked.detach_count += len(methods)
        locked.save(update_fields=["deleted_at", "incarnation", "detach_count", "default_payment_method", "updated_at"])
        _customer_event(locked, "customer.deleted", gateway_reference=reference)
    logger.info("Customer deleted at the gateway", extra={"customer": locked.public_id, "detached": len(methods)})
    return True


def customer_sync(*, gateway_name: str, reference: str) -> bool:
    """Make our customer what the gateway says it is now (e-mail, name, default method; deleted).

    Reading the gateway's current state, not an event's snapshot, is what keeps a late event from winning.
    Returns whether anything changed.
    """
    customer = customer_by_gateway_reference(gateway=gateway_name, reference=reference)
    if customer is None:
        return False
    result = get_gateway(gateway_name).retrieve_customer(reference=reference)
    if result.deleted:
        return customer_gateway_deleted(customer=customer, gateway=gateway_name, reference=reference)
    default_id = (
        PaymentMethod.objects.filter(
            customer=customer, gateway=gateway_name, gateway_reference=result.default_payment_method, status=ACTIVE
        )
        .values_list("pk", flat=True)
        .first()
        if result.default_payment_method
        else None
    )
    before = (customer.email, customer.name, customer.default_payment_method_id)
    after = _customer_apply(
        customer_pk=customer.pk, fields={"email": result.email, "name": result.name}, default_id=default_id
    )
    return (after.email, after.name, after.default_payment_method_id) != before


# --- setup intents ----------------------------------------------------------------------------------
def setup_intent_create(*, client: User, customer_id: str, request_reference: str = "") -> tuple[Customer, Any]:
    """A setup intent for Stripe.js to collect and save a card (the customer made here and at the gateway first).

    `request_reference` (the request's Idempotency-Key, claimed) makes a retried request the same gateway call.
    A setup intent the gateway answers `succeeded` at once has its card saved now; otherwise the
    `setup_intent.succeeded` webhook saves it.
    """
    customer, _ = customer_ensure(client=client, customer_id=customer_id)
    reference = customer_gateway_reference(customer=customer)
    gateway = get_gateway()
    key = f"{customer.public_id}:setup_intent:{request_reference or secrets.token_hex(12)}"
    result = _call(
        lambda: gateway.create_setup_intent(
            customer_reference=reference, metadata={"customer_id": customer.public_id}, idempotency_key=key
        ),
        key=key,
    )
    if result.status == "succeeded" and result.payment_method:
        payment_method_save(customer=customer, gateway=gateway, reference=result.payment_method)
    return customer, result


# --- payment methods --------------------------------------------------------------------------------
def payment_method_attach(
    *, client: User, customer_id: str, payment_method: str, set_default: bool = False
) -> tuple[Customer, PaymentMethod]:
    """Attach a gateway token to this client's customer (made when needed) and save it; optionally the default.

    The gateway key is `cu_X:attach:<token>` (and the number of methods detached so far, so a token can be
    saved again after a detach): concurrent attaches of one token get one gateway method, saved once.

    :raises CardDeclined: the gateway refused to save the card (402, with its code).
    :raises PaymentMethodInvalid: the gateway does not know the token, or it is not a card (400).
    :raises GatewayTimeoutError, GatewayUnavailableError: see `_call`.
    """
    customer, _ = customer_ensure(client=client, customer_id=customer_id)
    reference = customer_gateway_reference(customer=customer)
    gateway = get_gateway()
    generation = f":{customer.detach_count}" if customer.detach_count else ""
    key = f"{customer.public_id}:attach:{_token_key(payment_method)}{generation}"
    try:
        result = _call(
            lambda: gateway.attach_payment_method(
                payment_method=payment_method, customer_reference=reference, idempotency_key=key
            ),
            key=key,
        )
    except GatewayRejected as exc:
        raise PaymentMethodInvalid(
            "payment_method is not a payment method token the gateway knows.", param="payment_method"
        ) from exc
    if _refused(customer, result):
        refused_key = f"{key}:refused"
        _call(
            lambda: gateway.detach_payment_method(payment_method=result.reference, idempotency_key=refused_key),
            key=refused_key,
        )
        raise PaymentBlocked("The card was refused by our risk rules.")
    method, _ = payment_method_record(customer=customer, gateway_name=gateway.name, result=result)
    if method.status != ACTIVE:
        raise PaymentMethodInvalid("payment_method was detached; attach a new token.", param="payment_method")
    if set_default:
        customer = customer_change(customer=Customer.objects.get(pk=customer.pk), fields={}, default=method)
    return customer, method


def payment_method_record(
    *, customer: Customer, gateway_name: str, result: PaymentMethodResult, source: str = ChangeSource.API
) -> tuple[PaymentMethod, bool]:
    """Save what the gateway says about an attached method once (by its gateway reference), with its event.

    Returns (method, created). Only a card's safe details are kept.

    :raises PaymentMethodInvalid: not a card.
    """
    card = result.card
    if result.type != "card" or card is None:
        raise PaymentMethodInvalid("Only cards can be saved.", param="payment_method")
    existing = PaymentMethod.objects.filter(gateway=gateway_name, gateway_reference=result.reference).first()
    if existing is not None:
        return existing, False
    with transaction.atomic():
        locked = lock_customer(customer.pk)  # concurrent saves of one method wait here, then find it
        existing = PaymentMethod.objects.filter(gateway=gateway_name, gateway_reference=result.reference).first()
        if existing is not None:
            return existing, False
        method = PaymentMethod.objects.create(
            customer=locked,
            gateway=gateway_name,
            gateway_reference=result.reference,
            type=result.type,
            brand=card.brand.lower(),
            last4=card.last4,
            exp_month=card.exp_month,
            exp_year=card.exp_year,
            funding=(card.funding or "unknown").lower(),
            country=card.country.upper(),
            fingerprint=card.fingerprint,
        )
        _method_event(method, locked, "payment_method.attached")
    logger.info(
        "Payment method saved",
        extra={"payment_method": method.public_id, "customer": customer.public_id, "via": source},
    )
    return method, True


def payment_method_save(*, customer: Customer, gateway: Gateway, reference: str) -> PaymentMethod | None:
    """Save a method the gateway attached to the customer itself (a setup intent, a payment's
    `setup_future_usage`): read it at the gateway, and save it if it is still attached to this customer."""
    result = gateway.retrieve_payment_method(payment_method=reference)
    own = gateway_reference_of(customer=customer, gateway=gateway.name)
    if not result.customer_reference or result.customer_reference != own:
        return None
    if _refused(customer, result):  # detached again at the gateway, never saved here
        gateway.detach_payment_method(
            payment_method=reference, idempotency_key=f"{customer.public_id}:refused:{reference}"
        )
        logger.warning("A card the risk rules refuse was not saved", extra={"customer": customer.public_id})
        return None
    method, _ = payment_method_record(customer=customer, gateway_name=gateway.name, result=result)
    return method


def _refused(customer: Customer, result: PaymentMethodResult) -> bool:
    """The risk screen (`customers.ports`) refuses this card for this customer."""
    fingerprint = result.card.fingerprint if result.card is not None else ""
    return card_screen().refuses(client=customer.client, customer_id=customer.customer_id, fingerprint=fingerprint)


def payment_method_sync(*, gateway_name: str, reference: str) -> bool:
    """Make our record of a method what the gateway says now: saved when attached to one of our customers,
    detached when it is attached to nobody. A late or repeated event changes nothing. Returns whether it moved."""
    result = get_gateway(gateway_name).retrieve_payment_method(payment_method=reference)
    local = PaymentMethod.objects.filter(gateway=gateway_name, gateway_reference=reference).first()
    if local is not None:
        if local.status == ACTIVE and not result.customer_reference:
            return payment_method_detach_local(method_id=local.pk, source=ChangeSource.WEBHOOK)
        return False
    if not result.customer_reference:
        return False  # detached again since: nothing to save
    customer = customer_by_gateway_reference(gateway=gateway_name, reference=result.customer_reference)
    if customer is None:
        return False
    _, created = payment_method_record(
        customer=customer, gateway_name=gateway_name, result=result, source=ChangeSource.WEBHOOK
    )
    return created


def payment_method_detach(
    *,
    method: PaymentMethod,
    source: str = ChangeSource.API,
    actor: User | None = None,
    reason: str = "",
    remote_addr: str | None = None,
) -> PaymentMethod:
    """Detach a saved method at the gateway (key `pmt_X:detach`), then here: it can no longer be charged.

    A default is unset. Staff (`actor`) must give a reason, kept in the staff log with the change.

    :raises ValueError: a staff detach without a reason.
    :raises GatewayTimeoutError, GatewayUnavailableError: nothing changed here; repeating is safe.
    """
    if actor is not None and not reason.strip():
        raise ValueError("A staff detach needs a reason.")
    if method.status == ACTIVE:
        gateway = get_gateway(method.gateway)
        try:
            detach_key = f"{method.public_id}:detach"
            _one_call_per_key(
                lambda: gateway.detach_payment_method(
                    payment_method=method.gateway_reference, idempotency_key=detach_key
                ),
                key=detach_key,
            )
        except Permanent:  # not attached there any more (detached in the Dashboard): detach it here too
            logger.warning("Payment method already detached at the gateway", extra={"payment_method": method.public_id})
        except GatewayTimeout as exc:
            raise GatewayTimeoutError() from exc
        except Retryable as exc:
            raise GatewayUnavailableError() from exc
        payment_method_detach_local(
            method_id=method.pk, source=source, actor=actor, reason=reason, remote_addr=remote_addr
        )
    return PaymentMethod.objects.select_related("customer").get(pk=method.pk)


def payment_method_detach_local(
    *,
    method_id: int,
    source: str,
    actor: User | None = None,
    reason: str = "",
    remote_addr: str | None = None,
) -> bool:
    """Mark a method detached here (unsetting a default), with its events; False when it already was."""
    customer_pk = PaymentMethod.objects.values_list("customer_id", flat=True).get(pk=method_id)
    with transaction.atomic():
        customer = lock_customer(customer_pk)
        method = lock_payment_method(method_id)
        if method.status != ACTIVE:
            return False
        was_default = customer.default_payment_method_id == method.pk
        method.status, method.detached_at = DETACHED, timezone.now()
        method.save(update_fields=["status", "detached_at", "updated_at"])
        customer.detach_count += 1
        if was_default:
            customer.default_payment_method = None
        customer.save(update_fields=["detach_count", "default_payment_method", "updated_at"])
        _method_event(method, customer, "payment_method.detached")
        if was_default:
            _customer_event(customer, "customer.updated")
        if actor is not None:
            staff_action_record(
                actor=actor,
                action="detach_payment_method",
                object_type="payment_method",
                object_id=method.public_id,
                reason=reason,
                before={"status": ACTIVE, "is_default": was_default},
                after={"status": DETACHED, "customer": customer.public_id},
                remote_addr=remote_addr,
            )
    logger.info("Payment method detached", extra={"payment_method": method.public_id, "via": source})
    return True
