"""The simulator's disputes (gateways.disputes): dispute test cards, the queued events, evidence, outcomes, cost."""

import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import time_machine
from django.conf import settings

from gateways.base import IntentResult, Permanent
from gateways.disputes import EVIDENCE_FILE_FIELDS, EVIDENCE_TEXT_FIELDS, EvidenceFile
from gateways.simulator import SimulatorGateway
from gateways.simulator import store as store_module
from tests.gateways.redis_monitor import RedisMonitor, monitored

PDF = EvidenceFile(field="receipt", filename="receipt.pdf", content_type="application/pdf", content=b"%PDF-1.4 r")


@pytest.fixture(params=["redis", "memory"])
def sim(request, settings) -> SimulatorGateway:
    """The simulator on the test Redis (the cache's), and again on its in-process store."""
    if request.param == "memory":
        settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
        request.getfixturevalue("monkeypatch").setattr(store_module, "_stores", {})
    return SimulatorGateway()


DISPUTE_CARD, INQUIRY_CARD = "pm_card_createDispute", "pm_card_createDisputeInquiry"


def _pay(sim: SimulatorGateway, key: str, card: str = DISPUTE_CARD, **overrides: Any) -> IntentResult:
    params = {
        "amount": 2000,
        "currency": "usd",
        "capture_method": "automatic",
        "payment_method": card,
        "confirm": True,
        "metadata": {"payment_id": key},
        "description": "",
        "idempotency_key": f"{key}:create",
    }
    return sim.create_intent(**(params | overrides))


def _disputed(sim: SimulatorGateway, key: str, card: str = DISPUTE_CARD) -> str:
    """A disputed payment's dispute reference (its events taken off the queue)."""
    intent = _pay(sim, key, card)
    disputes = [event["data"]["object"] for event in sim.pending_dispute_events()]
    return next(dispute["id"] for dispute in disputes if dispute["payment_intent"] == intent.reference)


def _update(sim: SimulatorGateway, reference: str, key: str, **overrides: Any):
    params = {"reference": reference, "evidence": {}, "files": [], "submit": False, "idempotency_key": key}
    return sim.update_dispute(**(params | overrides))


# --- a disputed payment and its events --------------------------------------------------------------------
def test_a_dispute_card_payment_succeeds_then_is_disputed_with_created_and_funds_withdrawn_once(sim):
    # when
    before = int(datetime.now(tz=UTC).timestamp())
    intent = _pay(sim, "pay_1")
    events = sim.pending_dispute_events()

    # then: the payment went through, and the charge is disputed: created, then the funds withdrawn
    assert (intent.status, intent.amount_received) == ("succeeded", 2000)
    assert [event["type"] for event in events] == ["charge.dispute.created", "charge.dispute.funds_withdrawn"]
    assert all(event["object"] == "event" and event["livemode"] is False for event in events)
    created, withdrawn = (event["data"]["object"] for event in events)
    assert created["id"] == withdrawn["id"]
    assert created["id"].startswith("du_sim_")
    assert (withdrawn["object"], withdrawn["amount"], withdrawn["currency"]) == ("dispute", 2000, "usd")
    assert (withdrawn["payment_intent"], withdrawn["charge"]) == (intent.reference, "ch_" + intent.reference[3:])
    assert (withdrawn["reason"], withdrawn["status"], withdrawn["is_charge_refundable"]) == (
        "fraudulent",
        "needs_response",
        False,
    )
    assert withdrawn["evidence"] == dict.fromkeys((*EVIDENCE_TEXT_FIELDS, *EVIDENCE_FILE_FIELDS))
    details = withdrawn["evidence_details"]
    assert before <= withdrawn["created"] <= before + 2
    assert details == {
        "due_by": withdrawn["created"] + 7 * 86400,
        "has_evidence": False,
        "past_due": False,
        "submission_count": 0,
    }
    assert created["balance_transactions"] == []
    [txn] = withdrawn["balance_transactions"]
    assert (txn["amount"], txn["fee"], txn["net"], txn["type"]) == (-2000, 1500, -3500, "adjustment")
    assert (withdrawn["livemode"], withdrawn["metadata"]) == (False, {})
    # and: handed over once
    assert sim.pending_dispute_events() == []
    dispute = sim.retrieve_dispute(reference=created["id"])
    assert (dispute.intent_reference, dispute.amount, dispute.status, dispute.reason) == (
        intent.reference,
        2000,
        "needs_response",
        "fraudulent",
    )
    assert (dispute.funds_withdrawn, dispute.funds_reinstated, dispute.has_evidence, dispute.evidence) == (
        True,
        False,
        False,
        {},
    )
    assert dispute.evidence_due_by == datetime.fromtimestamp(details["due_by"], tz=UTC)


def test_a_visa_payment_is_not_disputed_and_an_unknown_dispute_is_permanent(sim):
    _pay(sim, "pay_1", "pm_card_visa")

    assert sim.pending_dispute_events() == []
    with pytest.raises(Permanent) as refused:
        sim.retrieve_dispute(reference="du_nope")
    assert refused.value.code == "resource_missing"


def test_two_callers_at_once_each_get_every_event_at_most_once_and_together_all(sim):
    # given: five disputed payments (ten events queued)
    intents = [_pay(sim, f"pay_{n}").reference for n in range(5)]
    barrier, taken = threading.Barrier(2), [[], []]

    def take(slot: int) -> None:
        barrier.wait()
        while events := sim.pending_dispute_events():
            taken[slot].extend(events)

    # when
    threads = [threading.Thread(target=take, args=(slot,)) for slot in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)

    # then: every event once, and a dispute's created before its funds_withdrawn in whoever got them
    ids = [event["id"] for event in taken[0] + taken[1]]
    assert len(ids) == len(set(ids)) == 10
    assert sorted(e["data"]["object"]["payment_intent"] for e in taken[0] + taken[1]) == sorted(intents * 2)
    for events in taken:  # a dispute's two events were queued together: one caller gets both, in order
        for dispute in {e["data"]["object"]["id"] for e in events}:
            types = [e["type"] for e in events if e["data"]["object"]["id"] == dispute]
            assert types == ["charge.dispute.created", "charge.dispute.funds_withdrawn"]


def test_a_manual_capture_payment_is_disputed_at_capture_for_the_amount_captured(sim):
    intent = _pay(sim, "pay_1", capture_method="manual")
    assert (intent.status, sim.pending_dispute_events()) == ("requires_capture", [])

    sim.capture_intent(reference=intent.reference, amount=1500, idempotency_key="pay_1:capture")

    events = sim.pending_dispute_events()
    assert [e["type"] for e in events] == ["charge.dispute.created", "charge.dispute.funds_withdrawn"]
    assert {(e["data"]["object"]["payment_intent"], e["data"]["object"]["amount"]) for e in events} == {
        (intent.reference, 1500)
    }


def test_an_invoice_paid_with_the_dispute_card_is_disputed(sim):
    customer = sim.create_customer(email="", name="", metadata={}, idempotency_key="cu_1:create")

    sub = sim.create_subscription(
        customer_reference=customer.reference,
        price_reference="price_basic_monthly",
        quantity=1,
        default_payment_method="pm_card_createDispute",
        trial_days=None,
        metadata={},
        idempotency_key="sub_1:create",
    )

    assert sub.latest_invoice is not None
    assert sub.latest_invoice.status == "paid"
    events = sim.pending_dispute_events()
    assert [e["type"] for e in events] == ["charge.dispute.created", "charge.dispute.funds_withdrawn"]
    dispute = events[-1]["data"]["object"]
    assert (dispute["payment_intent"], dispute["amount"]) == (sub.latest_invoice.payment_intent_reference, 900)


def test_a_disputed_charge_cannot_be_refunded(sim):
    intent = _pay(sim, "pay_1")

    with pytest.raises(Permanent) as refused:
        sim.create_refund(intent_reference=intent.reference, amount=100, reason="", metadata={}, idempotency_key="r")

    assert refused.value.code == "charge_disputed"
    assert sim.performed_count("create_refund") == 0


# --- evidence ----------------------------------------------------------------------------------------------
def test_evidence_is_saved_as_a_draft_then_submitted(sim):
    reference = _disputed(sim, "pay_1")

    # when: a draft with a file
    draft = _update(
        sim,
        reference,
        "dp_1:evidence:1",
        evidence={"customer_name": "Ada", "product_description": "A lamp"},
        files=[PDF],
    )

    # then
    assert (draft.status, draft.has_evidence, draft.submission_count) == ("needs_response", True, 0)
    assert draft.evidence["customer_name"] == "Ada"
    assert draft.evidence["receipt"].startswith("file_sim_")
    assert set(draft.evidence) == {"customer_name", "product_description", "receipt"}
    [updated] = sim.pending_dispute_events()
    assert updated["type"] == "charge.dispute.updated"
    assert updated["data"]["object"]["evidence"]["receipt"] == draft.evidence["receipt"]
    assert updated["data"]["previous_attributes"]["evidence"]["customer_name"] is None

    # when: submitted, a field unset on the way
    submitted = _update(sim, reference, "dp_1:evidence:2", evidence={"product_description": ""}, submit=True)

    # then
    assert (submitted.status, submitted.submission_count, submitted.has_evidence) == ("under_review", 1, True)
    assert set(submitted.evidence) == {"customer_name", "receipt"}
    [updated] = sim.pending_dispute_events()
    assert (updated["type"], updated["data"]["object"]["status"]) == ("charge.dispute.updated", "under_review")
    assert updated["data"]["previous_attributes"]["status"] == "needs_response"
    assert sim.retrieve_dispute(reference=reference) == submitted


def test_a_second_submission_is_refused_and_changes_nothing(sim):
    reference = _disputed(sim, "pay_1")
    submitted = _update(sim, reference, "dp_1:evidence:1", evidence={"customer_name": "Ada"}, submit=True)
    sim.pending_dispute_events()

    with pytest.raises(Permanent) as refused:
        _update(sim, reference, "dp_1:evidence:2", evidence={"customer_name": "Bob"}, submit=True)

    assert refused.value.code == "dispute_submitted"
    assert sim.retrieve_dispute(reference=reference) == submitted
    assert sim.pending_dispute_events() == []
    assert sim.performed_count("update_dispute") == 1


def test_evidence_past_its_due_date_is_refused(sim):
    reference = _disputed(sim, "pay_1")

    later = datetime.now(tz=UTC) + timedelta(days=7, minutes=1)
    with time_machine.travel(later), pytest.raises(Permanent) as refused:
        _update(sim, reference, "dp_1:evidence:1", evidence={"customer_name": "Ada"}, submit=True)

    assert refused.value.code == "dispute_past_due"
    assert sim.retrieve_dispute(reference=reference).status == "needs_response"
    assert sim.pending_dispute_events() == []


@pytest.mark.parametrize(
    ("evidence", "files", "code"),
    [
        ({"favourite_colour": "blue"}, [], "parameter_unknown"),
        ({"uncategorized_text": "x" * 20_001}, [], "parameter_invalid"),
        ({}, [EvidenceFile("customer_name", "a.pdf", "application/pdf", b"x")], "parameter_invalid"),
        ({}, [EvidenceFile("receipt", "a.exe", "application/octet-stream", b"x")], "file_invalid"),
    ],
)
def test_evidence_stripe_would_refuse_is_permanent_and_nothing_is_done(sim, evidence, files, code):
    reference = _disputed(sim, "pay_1")

    with pytest.raises(Permanent) as refused:
        _update(sim, reference, "dp_1:evidence:1", evidence=evidence, files=files)

    assert refused.value.code == code
    assert (sim.call_count("update_dispute"), sim.pending_dispute_events()) == (0, [])


def test_the_same_key_twice_is_one_update_with_the_answer_replayed(sim):
    reference = _disputed(sim, "pay_1")
    params = {"evidence": {"customer_name": "Ada"}, "files": [PDF], "submit": True}

    first = _update(sim, reference, "dp_1:evidence:1", **params)
    again = _update(sim, reference, "dp_1:evidence:1", **params)

    assert again == first
    assert (first.status, first.submission_count) == ("under_review", 1)
    assert [e["type"] for e in sim.pending_dispute_events()] == ["charge.dispute.updated"]
    assert (sim.calls_for_key("dp_1:evidence:1"), sim.performed_count("update_dispute")) == (2, 1)


# --- outcomes ------------------------------------------------------------------------------------------------
def test_a_dispute_won_is_closed_and_the_funds_reinstated(sim):
    reference = _disputed(sim, "pay_1")
    _update(sim, reference, "dp_1:evidence:1", evidence={"customer_name": "Ada"}, submit=True)
    sim.pending_dispute_events()

    events = sim.close_dispute_as(reference=reference, outcome="won")

    assert [e["type"] for e in events] == ["charge.dispute.closed", "charge.dispute.funds_reinstated"]
    assert events[0]["data"]["object"]["status"] == "won"
    amounts = [txn["amount"] for txn in events[1]["data"]["object"]["balance_transactions"]]
    assert amounts == [-2000, 2000]
    dispute = sim.retrieve_dispute(reference=reference)
    assert (dispute.status, dispute.funds_withdrawn, dispute.funds_reinstated) == ("won", True, True)
    assert sim.pending_dispute_events() == []  # handed to the caller, not queued
    with pytest.raises(Permanent):
        sim.close_dispute_as(reference=reference, outcome="lost")


def test_a_dispute_lost_is_closed_with_the_funds_kept_withdrawn(sim):
    reference = _disputed(sim, "pay_1")

    events = sim.close_dispute_as(reference=reference, outcome="lost")

    assert [(e["type"], e["data"]["object"]["status"]) for e in events] == [("charge.dispute.closed", "lost")]
    dispute = sim.retrieve_dispute(reference=reference)
    assert (dispute.status, dispute.funds_withdrawn, dispute.funds_reinstated) == ("lost", True, False)


def test_accepting_a_dispute_loses_it_at_once_and_a_closed_one_cannot_be_changed(sim):
    reference = _disputed(sim, "pay_1")

    accepted = sim.close_dispute(reference=reference, idempotency_key="dp_1:accept")

    assert (accepted.status, accepted.is_charge_refundable) == ("lost", False)
    assert [(e["type"], e["data"]["previous_attributes"]) for e in sim.pending_dispute_events()] == [
        ("charge.dispute.closed", {"status": "needs_response"})
    ]
    assert sim.close_dispute(reference=reference, idempotency_key="dp_1:accept") == accepted  # replayed
    with pytest.raises(Permanent) as closed:
        sim.close_dispute(reference=reference, idempotency_key="dp_1:accept:2")
    assert closed.value.code == "dispute_closed"
    with pytest.raises(Permanent):
        _update(sim, reference, "dp_1:evidence:1", evidence={"customer_name": "Ada"})
    assert sim.pending_dispute_events() == []


def test_an_inquiry_moves_no_money_and_the_charge_can_still_be_refunded(sim):
    intent = _pay(sim, "pay_1", INQUIRY_CARD)

    [created] = sim.pending_dispute_events()

    inquiry = created["data"]["object"]
    assert (created["type"], inquiry["status"], inquiry["balance_transactions"]) == (
        "charge.dispute.created",
        "warning_needs_response",
        [],
    )
    assert inquiry["is_charge_refundable"] is True
    submitted = _update(sim, inquiry["id"], "dp_1:evidence:1", evidence={"customer_name": "Ada"}, submit=True)
    assert (submitted.status, submitted.funds_withdrawn) == ("warning_under_review", False)
    refund = sim.create_refund(
        intent_reference=intent.reference, amount=500, reason="", metadata={}, idempotency_key="pay_1:refund"
    )
    assert refund.status == "succeeded"
    assert sim.close_dispute(reference=inquiry["id"], idempotency_key="dp_1:accept").status == "warning_closed"


def test_an_inquiry_decided_by_the_bank(sim):
    won, lost = (
        _disputed(sim, "pay_1", INQUIRY_CARD),
        _disputed(sim, "pay_2", INQUIRY_CARD),
    )

    assert [e["type"] for e in sim.close_dispute_as(reference=won, outcome="won")] == ["charge.dispute.closed"]
    assert [e["type"] for e in sim.close_dispute_as(reference=lost, outcome="lost")] == [
        "charge.dispute.funds_withdrawn",
        "charge.dispute.closed",
    ]
    assert sim.retrieve_dispute(reference=won).status == "warning_closed"
    assert (sim.retrieve_dispute(reference=lost).status, sim.retrieve_dispute(reference=lost).funds_withdrawn) == (
        "lost",
        True,
    )


# --- listing -------------------------------------------------------------------------------------------------
def test_disputes_are_listed_by_their_created_time(sim):
    now = datetime.now(tz=UTC)
    made = {}
    for hours in (3, 2, 1):
        with time_machine.travel(now - timedelta(hours=hours)):
            made[hours] = _disputed(sim, f"pay_{hours}")
    lost = _disputed(sim, "pay_now")
    sim.close_dispute_as(reference=lost, outcome="lost")

    listed = sim.list_disputes(created_gte=now - timedelta(hours=2, minutes=1), created_lt=now + timedelta(minutes=1))

    assert [(d.reference, d.status) for d in listed] == [
        (made[2], "needs_response"),
        (made[1], "needs_response"),
        (lost, "lost"),
    ]


# --- cost ---------------------------------------------------------------------------------------------------
@pytest.fixture
def monitor() -> Iterator[RedisMonitor]:
    with monitored(settings.REDIS_URL) as redis_monitor:
        yield redis_monitor


def test_each_dispute_call_is_at_most_two_redis_commands(simulator, monitor):
    simulator.card_fingerprint(payment_method="pm_card_visa")  # a warm process: the scripts loaded
    intent = _pay(simulator, "pay_1")

    calls = {
        "pending": lambda: simulator.pending_dispute_events(),
        "retrieve": lambda: simulator.retrieve_dispute(reference=dispute),
        "update": lambda: _update(simulator, dispute, "k1", evidence={"customer_name": "A"}, files=[PDF]),
        "replayed": lambda: _update(simulator, dispute, "k1", evidence={"customer_name": "A"}, files=[PDF]),
        "accept": lambda: simulator.close_dispute(reference=dispute, idempotency_key="k2"),
    }
    dispute = simulator.list_disputes(
        created_gte=datetime.now(tz=UTC) - timedelta(minutes=1), created_lt=datetime.now(tz=UTC) + timedelta(minutes=1)
    )
    dispute = next(iter(dispute)).reference
    assert dispute
    assert intent.status == "succeeded"

    sent = {name: monitor.count(call).names for name, call in calls.items()}

    assert sent == {
        "pending": ["EVALSHA"],
        "retrieve": ["EVALSHA"],
        "update": ["EVALSHA", "EVALSHA"],
        "replayed": ["EVALSHA"],
        "accept": ["EVALSHA", "EVALSHA"],
    }
