"""Erasure of a customer (the right to erasure): the gateway first, then every row of ours in one transaction.

Phase 1, outside any transaction, each call keyed by our ids so a repeat is safe: the customer's active
subscriptions canceled now (`subscriptions.services.subscription_cancel`), its saved methods detached
(`customers.services.payment_method_detach`), its gateway customer deleted (`cu_X:erase:<n>`; one already gone
counts as deleted). Phase 2, one transaction under the customer's lock: the customer's e-mail, name and metadata
removed; on its payments the e-mail and IP; the customer's e-mail, name and IP wherever they occur in free text
(descriptions, metadata, risk reasons, review notes, staff reasons, errors); dispute evidence and its file names;
invoices' hosted links; the raw webhook payloads about any of its objects (`redacted_webhook_body`); the stored
API responses of its requests; its events' personal keys; django-auditlog's values of personal fields; the staff
log's personal values (through their digests, so the hash chain holds). Amounts, currencies, statuses, ids and
times stay: they are the accounting records. A `CustomerErasure` row records it (ids only).

Rows are written with `save()` or the ORM's update (never raw SQL), so encrypted fields and their blind indexes
are written as their fields write them; django-auditlog is paused for these writes (it would copy the old values
into the log it is being cleaned of) and the erasure is recorded in the staff log instead.
"""

import json
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from auditlog.context import disable_auditlog
from auditlog.models import LogEntry
from django.contrib.contenttypes.models import ContentType
from django.db import models, transaction
from django.utils import timezone

from accounts.models import User
from audit.services import staff_action_erase, staff_action_record
from config.api.errors import ApplicationError
from customers.locks import lock_customer
from customers.models import Customer, CustomerGatewayToken, PaymentMethod, PaymentMethodStatus
from customers.services import customer_gateway_deleted, payment_method_detach
from disputes.models import Dispute, DisputeEvidenceFile, DisputeStatusChange
from events.models import Event
from gateways import get_gateway
from gateways.base import GatewayTimeout, Permanent, Retryable
from payments.errors import GatewayTimeoutError, GatewayUnavailableError
from payments.models import IdempotencyKey, Payment, PaymentStatusChange
from privacy.models import CustomerErasure
from privacy.redaction import (
    needles_of,
    redacted_webhook_body,
    scrub_changes,
    scrub_json,
    scrub_text,
    scrub_values,
)
from privacy.selectors import CustomerRows, customer_find_erasable, customer_rows, events_of, staff_actions_of
from privacy.services.retention import webhook_events_mentioning
from refunds.models import Refund, RefundStatusChange
from risk.models import RiskAssessment
from subscriptions import states as subscription_states
from subscriptions.models import Invoice, Subscription, SubscriptionStatusChange
from subscriptions.services import subscription_cancel, subscription_sync
from webhooks.models import WebhookEvent

logger = logging.getLogger(__name__)
T = TypeVar("T")
ERASE_ACTION = "erase_customer"
# The personal fields of each audited model, as django-auditlog names them in `changes`.
AUDITED_PERSONAL_FIELDS: dict[type[models.Model], tuple[str, ...]] = {
    Customer: ("email", "name", "metadata"),
    Payment: ("customer_email", "customer_ip", "description", "metadata", "review_reasons", "failure_message"),
    Refund: ("metadata", "failure_reason"),
    PaymentMethod: (),
    Subscription: ("metadata",),
    Invoice: ("hosted_invoice_url",),
    Dispute: ("evidence",),
}


# --- phase 1: the gateway -------------------------------------------------------------------------------
def _gateway(request: Callable[[], T]) -> T | None:
    """One gateway call; its "no such object" (gone already) as None, no answer as our 502.

    :raises GatewayTimeoutError, GatewayUnavailableError: no answer; nothing changed here, repeating is safe.
    """
    try:
        return request()
    except Permanent as exc:
        if exc.code == "resource_missing":
            return None
        raise
    except GatewayTimeout as exc:
        raise GatewayTimeoutError() from exc
    except Retryable as exc:
        raise GatewayUnavailableError() from exc


def _cancel_subscriptions(customer: Customer, *, actor: User, reason: str, source: str) -> None:
    live = Subscription.objects.filter(customer=customer).exclude(status__in=subscription_states.TERMINAL)
    for subscription in live.order_by("pk"):
        try:
            subscription_cancel(
                subscription=subscription, at_period_end=False, source=source, actor=actor, reason=reason
            )
        except ApplicationError:
            # Canceled at the gateway meanwhile (a repeated erasure whose first run deleted the customer there):
            # read it, and go on only if it is over.
            subscription_sync(gateway_name=subscription.gateway, reference=subscription.gateway_reference)
            subscription.refresh_from_db(fields=["status"])
            if subscription.status not in subscription_states.TERMINAL:
                raise


def _detach_methods(customer: Customer, *, source: str) -> None:
    for method in PaymentMethod.objects.filter(customer=customer, status=PaymentMethodStatus.ACTIVE).order_by("pk"):
        payment_method_detach(method=method, source=source)


def _delete_gateway_customers(customer: Customer) -> None:
    for token in CustomerGatewayToken.objects.filter(customer=customer).order_by("pk"):
        gateway = get_gateway(token.gateway)
        key = f"{customer.public_id}:erase:{customer.incarnation}"
        _gateway(lambda: gateway.delete_customer(reference=token.reference, idempotency_key=key))  # noqa: B023


# --- phase 2: our rows ----------------------------------------------------------------------------------
def _lock(model: type[models.Model], pks: list[int]) -> list[Any]:
    if not pks:
        return []
    return list(model.objects.select_for_update(of=("self",)).filter(pk__in=pks).order_by("pk"))  # type: ignore[attr-defined]


def _save(instance: models.Model, **fields: Any) -> bool:
    """Set the fields that differ and save the whole row (every field written as it writes itself)."""
    changed = {name: value for name, value in fields.items() if getattr(instance, name) != value}
    for name, value in changed.items():
        setattr(instance, name, value)
    if changed:
        instance.save()
    return bool(changed)


def _erase_payments(rows: CustomerRows, needles: list[str]) -> int:
    """The payments' e-mail and IP removed; their description, metadata and texts kept without the needles."""
    count = 0
    for payment in _lock(Payment, rows.payment_pks):
        count += _save(
            payment,
            customer_email="",
            customer_ip=None,
            description=scrub_text(payment.description, needles),
            metadata=scrub_values(payment.metadata, needles),
            failure_message=scrub_text(payment.failure_message, needles),
            last_error=scrub_text(payment.last_error, needles),
            review_reasons=scrub_values(payment.review_reasons, needles),
        )
    for change in PaymentStatusChange.objects.filter(payment_id__in=rows.payment_pks).order_by("pk"):
        count += _save(change, reason=scrub_text(change.reason, needles))
    return count


def _erase_refunds(rows: CustomerRows, needles: list[str]) -> int:
    count = 0
    for refund in _lock(Refund, rows.refund_pks):
        count += _save(
            refund,
            metadata=scrub_values(refund.metadata, needles),
            failure_reason=scrub_text(refund.failure_reason, needles),
            last_error=scrub_text(refund.last_error, needles),
        )
    for change in RefundStatusChange.objects.filter(refund_id__in=rows.refund_pks).order_by("pk"):
        count += _save(change, reason=scrub_text(change.reason, needles))
    return count


def _erase_disputes(rows: CustomerRows, needles: list[str]) -> int:
    count = 0
    for dispute in _lock(Dispute, rows.dispute_pks):
        count += _save(dispute, evidence={})
    for file in DisputeEvidenceFile.objects.filter(dispute_id__in=rows.dispute_pks).order_by("pk"):
        count += _save(file, filename=f"{file.field} (erased)")
    for change in DisputeStatusChange.objects.filter(dispute_id__in=rows.dispute_pks).order_by("pk"):
        count += _save(change, reason=scrub_text(change.reason, needles))
    return count


def _erase_billing(rows: CustomerRows, needles: list[str]) -> int:
    """Subscriptions' metadata without the needles; invoices' hosted links (a page with the customer's name,
    e-mail and address for whoever holds it) removed. Amounts and statuses stay."""
    count = 0
    for subscription in _lock(Subscription, rows.subscription_pks):
        count += _save(subscription, metadata=scrub_values(subscription.metadata, needles))
    for change in SubscriptionStatusChange.objects.filter(subscription_id__in=rows.subscription_pks).order_by("pk"):
        count += _save(change, reason=scrub_text(change.reason, needles))
    for invoice in _lock(Invoice, rows.invoice_pks):
        count += _save(invoice, hosted_invoice_url="")
    return count


def _erase_risk(rows: CustomerRows, needles: list[str]) -> int:
    """The assessments' reasons and review notes without the e-mail or IP they may quote (a blocklist hit)."""
    count = 0
    for assessment in RiskAssessment.objects.filter(payment_id__in=rows.payment_pks).order_by("pk"):
        count += _save(
            assessment,
            reasons=scrub_values(assessment.reasons, needles),
            review_note=scrub_text(assessment.review_note, needles),
        )
    return count


def _erase_webhooks(rows: CustomerRows, mentioning: list[int]) -> int:
    count = 0
    linked = WebhookEvent.objects.filter(
        models.Q(payment_id__in=rows.payment_pks)
        | models.Q(refund_id__in=rows.refund_pks)
        | models.Q(pk__in=mentioning)
    )
    for event in linked.select_for_update(of=("self",)).order_by("pk").only("pk", "body", "last_error"):
        body = redacted_webhook_body(event.body)
        if event.body != body or event.last_error:
            event.body, event.last_error = body, ""
            event.save(update_fields=["body", "last_error"])
            count += 1
    return count


def _mentions(value: Any, markers: list[str]) -> bool:
    text = json.dumps(value, default=str)
    return any(marker in text for marker in markers)


def _erase_idempotency(rows: CustomerRows, needles: list[str]) -> int:
    """The stored responses of the customer's requests (kept 24 h for replays): personal keys nulled."""
    customer = rows.customer
    markers = [*rows.public_ids(), f'"customer_id": {json.dumps(customer.customer_id)}', *needles]
    count = 0
    keys = IdempotencyKey.objects.filter(client_id=customer.client_id, response_body__isnull=False)
    for key in keys.order_by("pk").only("pk", "response_body").iterator(chunk_size=500):
        if _mentions(key.response_body, markers):
            scrubbed = scrub_json(key.response_body, needles)
            if scrubbed != key.response_body:
                IdempotencyKey.objects.filter(pk=key.pk).update(response_body=scrubbed)
                count += 1
    return count


def _erase_events(rows: CustomerRows, needles: list[str]) -> int:
    count = 0
    for event in events_of(rows).order_by("sequence").only("sequence", "data").iterator(chunk_size=500):
        scrubbed = scrub_json(event.data, needles)
        if scrubbed != event.data:
            Event.objects.filter(pk=event.pk).update(data=scrubbed)
            count += 1
    return count


def _erase_auditlog(rows: CustomerRows, needles: list[str]) -> int:
    pks: dict[type[models.Model], list[int]] = {
        Customer: [rows.customer.pk],
        Payment: rows.payment_pks,
        Refund: rows.refund_pks,
        PaymentMethod: rows.method_pks,
        Subscription: rows.subscription_pks,
        Invoice: rows.invoice_pks,
        Dispute: rows.dispute_pks,
    }
    count = 0
    for model, ids in pks.items():
        if not ids:
            continue
        entries = LogEntry.objects.filter(
            content_type=ContentType.objects.get_for_model(model), object_pk__in=[str(pk) for pk in ids]
        )
        personal = AUDITED_PERSONAL_FIELDS[model]
        for entry in entries.order_by("pk").iterator(chunk_size=500):
            changes = scrub_changes(entry.changes, personal, needles)
            changes_text = scrub_text(entry.changes_text, needles)
            serialized = scrub_json(entry.serialized_data, needles) if entry.serialized_data else entry.serialized_data
            additional = scrub_values(entry.additional_data, needles)
            repr_ = scrub_text(entry.object_repr, needles)
            if (changes, changes_text, serialized, additional, repr_) != (
                entry.changes,
                entry.changes_text,
                entry.serialized_data,
                entry.additional_data,
                entry.object_repr,
            ):
                LogEntry.objects.filter(pk=entry.pk).update(
                    changes=changes,
                    changes_text=changes_text,
                    serialized_data=serialized,
                    additional_data=additional,
                    object_repr=repr_,
                )
                count += 1
    return count


def _erase_staff_log(rows: CustomerRows, needles: list[str]) -> int:
    """Personal values the staff log holds digests of, erased (the chain stays valid). Reasons, being chained
    as they are, stay: staff write why, not who."""
    return sum(staff_action_erase(action=action) for action in staff_actions_of(rows).order_by("pk"))


def _erase_rows(
    *, customer_pk: int, actor: User, reason: str, source: str, remote_addr: str | None, mentioning: list[int]
) -> CustomerErasure:
    customer = lock_customer(customer_pk)
    references = customer_rows(customer=customer).references  # with the gateway customer's id, deleted below
    for token in list(CustomerGatewayToken.objects.filter(customer=customer)):
        # deleted at the gateway in phase 1: here too (methods detached, `customer.deleted`), as its webhook would
        customer_gateway_deleted(customer=customer, gateway=token.gateway, reference=token.reference)
    customer = lock_customer(customer_pk)
    rows = customer_rows(customer=customer)
    ips = Payment.objects.filter(pk__in=rows.payment_pks).values_list("customer_ip", "customer_email")
    needles = needles_of(
        [customer.email, customer.name, *(str(ip) for ip, _ in ips if ip), *(email for _, email in ips)]
    )
    counts = {
        "customer": int(
            _save(customer, email="", name="", metadata={}, deleted_at=customer.deleted_at or timezone.now())
        ),
        "payments": _erase_payments(rows, needles),
        "refunds": _erase_refunds(rows, needles),
        "disputes": _erase_disputes(rows, needles),
        "billing": _erase_billing(rows, needles),
        "risk": _erase_risk(rows, needles),
        "webhook_events": _erase_webhooks(rows, mentioning),
        "idempotency_keys": _erase_idempotency(rows, needles),
        "events": _erase_events(rows, needles),
        "auditlog": _erase_auditlog(rows, needles),
        "staff_log": _erase_staff_log(rows, needles),
    }
    erasure = CustomerErasure.objects.create(
        customer=customer,
        actor=actor,
        source=source,
        reason=reason,
        references=sorted({*references, *rows.references}),
        counts=counts,
        erased_at=timezone.now(),  # not before the customer's deleted_at: erased until it is made again
    )
    staff_action_record(
        actor=actor,
        action=ERASE_ACTION,
        object_type="customer",
        object_id=customer.public_id,
        reason=reason,
        after={"erasure": erasure.pk, "source": source, "counts": counts},
        remote_addr=remote_addr,
    )
    return erasure


def customer_erase(
    *, client: User, customer_id: str, actor: User, reason: str, source: str, remote_addr: str | None = None
) -> CustomerErasure:
    """Erase this storefront client's customer: at the gateway, then every row of ours (see the module).

    A failure at the gateway leaves our rows as they were; repeating the erasure is safe (the same keys).

    :raises ValueError: no reason.
    :raises rest_framework.exceptions.NotFound: no such customer, or erased already.
    :raises GatewayTimeoutError, GatewayUnavailableError: the gateway did not answer (nothing erased here).
    :raises ApplicationError: the gateway refused to cancel a subscription (nothing erased here).
    """
    if not reason.strip():
        raise ValueError("An erasure needs a reason.")
    customer = customer_find_erasable(client=client, customer_id=customer_id)
    why = f"Customer erasure: {reason}"
    _cancel_subscriptions(customer, actor=actor, reason=why, source=source)
    _detach_methods(customer, source=source)
    _delete_gateway_customers(customer)
    rows = customer_rows(customer=customer)
    created = Payment.objects.filter(pk__in=rows.payment_pks).values_list("created_at", flat=True)
    since = min([customer.created_at, *created])
    mentioning = webhook_events_mentioning(references=rows.references, since=since)  # a read: before the lock
    with transaction.atomic(), disable_auditlog():
        erasure = _erase_rows(
            customer_pk=customer.pk,
            actor=actor,
            reason=reason,
            source=source,
            remote_addr=remote_addr,
            mentioning=mentioning,
        )
    logger.info("Customer erased", extra={"customer": customer.public_id, "counts": erasure.counts})
    return erasure
