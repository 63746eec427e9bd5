"""Dispute webhooks through the inbox: stored once, applied once, in any order; late news never moves back."""

import copy
import itertools

import pytest

from disputes.models import Dispute, DisputeStatusChange
from events.models import Event
from payments.models import Payment
from tests.webhooks import payloads
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db


def _dispute_events(dispute: Dispute) -> list[str]:
    return list(Event.objects.filter(subject_id=dispute.public_id).order_by("sequence").values_list("type", flat=True))


def _row(event: dict) -> WebhookEvent:
    return WebhookEvent.objects.get(stripe_id=event["id"])


def _final(payment: Payment) -> tuple:
    dispute = Dispute.objects.get(payment=payment)
    payment.refresh_from_db()
    return (
        dispute.status,
        dispute.funds_withdrawn,
        dispute.funds_reinstated,
        dispute.has_evidence,
        dispute.submission_count,
        dispute.evidence_submitted_at is not None,
        payment.amount_disputed,
        payment.amount_dispute_held,
        payment.status,
    )


def test_a_won_dispute_from_its_webhooks(story, deliver):
    # given
    told = story()
    created, withdrawn, submitted, closed, reinstated = told.won()
    payment = told.payment

    # when / then: each step as the bank takes it
    deliver(created)
    dispute = Dispute.objects.get(payment=payment)
    payment.refresh_from_db()
    assert (dispute.status, dispute.amount, dispute.reason, dispute.gateway_reference) == (
        "needs_response",
        2000,
        "fraudulent",
        told.reference,
    )
    assert dispute.public_id.startswith("dp_")
    assert (dispute.client, dispute.charge_reference, dispute.funds_withdrawn) == (payment.client, told.charge, False)
    assert (payment.amount_disputed, payment.amount_dispute_held, payment.status) == (2000, 2000, "succeeded")
    assert payment.disputed_at is not None
    assert payment.dispute_reference == told.reference

    deliver(withdrawn)
    dispute.refresh_from_db()
    assert (dispute.status, dispute.funds_withdrawn, dispute.funds_reinstated) == ("needs_response", True, False)

    deliver(submitted)
    dispute.refresh_from_db()
    assert (dispute.status, dispute.has_evidence, dispute.submission_count) == ("under_review", True, 1)
    assert dispute.evidence_submitted_at is not None

    deliver(closed)
    deliver(reinstated)
    dispute.refresh_from_db()
    payment.refresh_from_db()
    assert (dispute.status, dispute.funds_withdrawn, dispute.funds_reinstated) == ("won", True, True)
    assert (payment.amount_disputed, payment.amount_dispute_held, payment.status) == (0, 0, "succeeded")
    assert _dispute_events(dispute) == [
        "dispute.created",
        "dispute.funds_withdrawn",
        "dispute.updated",
        "dispute.closed",
        "dispute.funds_reinstated",
    ]
    history = DisputeStatusChange.objects.filter(dispute=dispute).values_list("from_status", "to_status", "source")
    assert list(history) == [
        ("", "needs_response", "webhook"),
        ("needs_response", "under_review", "webhook"),
        ("under_review", "won", "webhook"),
    ]
    assert {_row(event).status for event in (created, withdrawn, submitted, closed, reinstated)} == {"processed"}
    assert _row(reinstated).payment == payment
    opened = Event.objects.filter(subject_id=payment.public_id, type="payment.dispute_opened")
    assert opened.count() == 1
    assert opened.get().data["amount_disputed"] == 2000
    assert opened.get().data["disputed"] is True


def test_an_event_carries_the_dispute_as_the_api_renders_it_without_evidence(story, deliver, finance):
    told = story()
    deliver(told.event("created", "needs_response", evidence={"customer_name": "Ada Lovelace"}))
    dispute = Dispute.objects.get(payment=told.payment)

    event = Event.objects.get(subject_id=dispute.public_id, type="dispute.created")

    shown = finance.get(f"/api/v1/disputes/{dispute.public_id}/").json()
    assert shown["evidence"] == {"customer_name": "Ada Lovelace"}
    del shown["evidence"]
    assert event.data == shown
    assert event.client == told.payment.client
    assert event.subject_type == "dispute"


def test_a_lost_dispute_keeps_its_amount_disputed_and_held(story, deliver):
    told = story()
    for event in told.lost():
        deliver(event)

    dispute = Dispute.objects.get(payment=told.payment)
    assert _final(told.payment) == ("lost", True, False, False, 0, False, 2000, 2000, "succeeded")
    assert _dispute_events(dispute) == ["dispute.created", "dispute.funds_withdrawn", "dispute.closed"]


def test_each_event_delivered_twice_or_told_again_is_applied_once(story, deliver):
    told = story()
    events = told.won()
    for event in events:
        deliver(event)
        deliver(event)  # the same delivery again: stored once
        again = copy.deepcopy(event)
        again["id"] = event["id"] + "_again"  # the same news in another event
        deliver(again)

    dispute = Dispute.objects.get(payment=told.payment)
    assert WebhookEvent.objects.count() == 2 * len(events)
    assert Dispute.objects.count() == 1
    assert _dispute_events(dispute) == [
        "dispute.created",
        "dispute.funds_withdrawn",
        "dispute.updated",
        "dispute.closed",
        "dispute.funds_reinstated",
    ]
    assert {(row.status, row.ignored_reason) for row in WebhookEvent.objects.filter(stripe_id__endswith="_again")} == {
        ("ignored", "stale")
    }
    assert Event.objects.filter(type="payment.dispute_opened").count() == 1


WON = list(itertools.permutations(range(5)))
LOST = list(itertools.permutations(range(3)))


@pytest.mark.parametrize("order", WON, ids=lambda order: "".join(map(str, order)))
def test_a_won_dispute_delivered_in_any_order_ends_as_in_order(story, deliver, order):
    told = story()
    events = told.won()

    for index in order:
        deliver(events[index])

    dispute = Dispute.objects.get(payment=told.payment)
    assert _final(told.payment) == ("won", True, True, True, 1, True, 0, 0, "succeeded")
    types = _dispute_events(dispute)
    assert types[0] == "dispute.created"
    for once in ("dispute.created", "dispute.funds_withdrawn", "dispute.closed", "dispute.funds_reinstated"):
        assert types.count(once) == 1, types
    assert Event.objects.filter(subject_id=told.payment.public_id, type="payment.dispute_opened").count() == 1


@pytest.mark.parametrize("order", LOST, ids=lambda order: "".join(map(str, order)))
def test_a_lost_dispute_delivered_in_any_order_ends_as_in_order(story, deliver, order):
    told = story()
    events = told.lost()

    for index in order:
        deliver(events[index])

    assert _final(told.payment) == ("lost", True, False, False, 0, False, 2000, 2000, "succeeded")


def test_a_late_created_after_closed_changes_nothing(story, deliver):
    told = story()
    for event in told.lost():
        deliver(event)
    dispute = Dispute.objects.get(payment=told.payment)
    before = (_final(told.payment), _dispute_events(dispute), dispute.updated_at)
    late = told.event("created", "needs_response")

    deliver(late)

    dispute.refresh_from_db()
    assert (_final(told.payment), _dispute_events(dispute), dispute.updated_at) == before
    assert (_row(late).status, _row(late).ignored_reason, _row(late).payment) == ("ignored", "stale", told.payment)


def test_news_of_the_same_status_updates_the_deadline_and_the_evidence_flags(story, deliver):
    told = story()
    deliver(told.event("created", "needs_response"))
    later = told.due_by + 3 * 86_400

    deliver(told.event("updated", "needs_response", due_by=later, has_evidence=True))

    dispute = Dispute.objects.get(payment=told.payment)
    assert (dispute.status, int(dispute.evidence_due_by.timestamp()), dispute.has_evidence) == (
        "needs_response",
        later,
        True,
    )
    assert _dispute_events(dispute) == ["dispute.created", "dispute.updated"]


def test_an_inquiry_counts_as_disputed_but_holds_nothing_back_and_closed_counts_nothing(story, deliver):
    told = story()
    deliver(told.event("created", "warning_needs_response"))
    told.payment.refresh_from_db()
    assert (told.payment.amount_disputed, told.payment.amount_dispute_held) == (2000, 0)

    deliver(told.event("closed", "warning_closed", is_charge_refundable=False))

    told.payment.refresh_from_db()
    assert (told.payment.amount_disputed, told.payment.amount_dispute_held) == (0, 0)
    assert Dispute.objects.get(payment=told.payment).status == "warning_closed"


def test_two_disputes_of_one_payment_add_up(story, deliver, paid):
    payment = paid(amount=5000)
    first, second = story(payment, amount=2000), story(payment, amount=1000)
    deliver(first.event("created", "needs_response"))
    deliver(second.event("created", "needs_response"))
    payment.refresh_from_db()
    assert payment.amount_disputed == 3000

    for event in first.won()[1:]:
        deliver(event)

    payment.refresh_from_db()
    assert (payment.amount_disputed, payment.amount_dispute_held) == (1000, 1000)
    assert Event.objects.filter(subject_id=payment.public_id, type="payment.dispute_opened").count() == 2


def test_a_dispute_of_a_payment_we_do_not_know_stores_nothing(deliver):
    obj = {
        "id": "du_notours",
        "object": "dispute",
        "amount": 2000,
        "currency": "usd",
        "charge": "ch_notours",
        "payment_intent": "pi_notours",
        "reason": "fraudulent",
        "status": "needs_response",
        "evidence": {},
        "evidence_details": {"due_by": None, "has_evidence": False, "submission_count": 0},
        "balance_transactions": [],
        "is_charge_refundable": False,
        "created": 1_700_000_000,
    }
    event = payloads.event("charge.dispute.created", obj)

    deliver(event)

    assert (_row(event).status, _row(event).ignored_reason, _row(event).payment) == ("ignored", "unknown_object", None)
    assert Dispute.objects.count() == 0
    assert Event.objects.count() == 0


def test_news_without_the_intent_is_matched_by_the_charge(story, deliver):
    told = story()
    deliver(told.event("created", "needs_response"))
    other = story(told.payment)  # a second dispute of the same charge, its object without the intent
    other.charge = told.charge

    deliver(other.event("created", "needs_response", payment_intent=None))

    assert Dispute.objects.filter(payment=told.payment).count() == 2


def test_a_dispute_of_an_invoice_payment_is_matched_by_its_intent(story, deliver, paid):
    payment = paid(invoice="in_test_invoice_1")
    told = story(payment)

    deliver(told.event("created", "needs_response"))

    dispute = Dispute.objects.get(gateway_reference=told.reference)
    assert dispute.payment == payment
