"""The review queue and decision page in the admin: what staff see, and what approving or rejecting does."""

from datetime import UTC, datetime, timedelta

import pytest
import time_machine
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from audit.models import StaffAction
from gateways.simulator import SimulatorGateway
from payments.models import Payment
from risk.models import RiskAssessment
from risk.services import review_approve
from tests.audit.conftest import logged_in
from tests.conftest import client_for
from tests.risk.admin_support import (  # noqa: F401 - fixtures
    HELD_AMOUNT,
    agent_fixture,
    auditor_fixture,
    held_fixture,
    known_rules_fixture,
    lead_fixture,
    make_staff,
    messages_of,
    rows_of,
)
from tests.risk.conftest import event_types, new_key

pytestmark = pytest.mark.django_db

QUEUE = "/admin/risk/paymentreview/"
T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)


def decide_url(payment: Payment) -> str:
    return f"/admin/risk/paymentreview/{payment.risk_assessment.pk}/decide/"


def capture(storefront, payment: Payment):
    return storefront.post(f"/api/v1/payments/{payment.public_id}/capture/", {}, format="json")


def refund(storefront, payment: Payment):
    return storefront.post(
        f"/api/v1/payments/{payment.public_id}/refunds/", {}, format="json", HTTP_IDEMPOTENCY_KEY=new_key()
    )


def test_queue_lists_only_pending_reviews_oldest_first_with_age_amount_reasons_history_and_expiry(
    storefront, create_at, held, agent
):
    # given a customer with history: one payment 40 days ago (outside the window), one refunded and one declined
    create_at(T0 - timedelta(days=40), customer_id="cus_old", payment_method="pm_card_visa", confirm=True)
    with time_machine.travel(T0 - timedelta(days=2), tick=False):
        paid = create_at(T0 - timedelta(days=2), customer_id="cus_old", payment_method="pm_card_visa", confirm=True)
        assert refund(client_for(storefront.user), Payment.objects.get(public_id=paid.json()["id"])).status_code == 201
    declined = create_at(
        T0 - timedelta(days=1), customer_id="cus_old", payment_method="pm_card_chargeDeclined", confirm=True
    )
    assert declined.status_code == 402
    # and three held payments: the returning customer's large one first, then a new customer's, then one decided
    with time_machine.travel(T0, tick=False):
        first = held(
            client_for(storefront.user),
            amount=500_000,
            customer_id="cus_old",
            customer_email="old@example.com",
            customer_ip="203.0.113.7",
        )
    with time_machine.travel(T0 + timedelta(hours=1), tick=False):
        second = held(client_for(storefront.user), customer_id="cus_new")
        decided = held(client_for(storefront.user), customer_id="cus_decided")
        allowed = create_at(T0 + timedelta(hours=1), customer_id="cus_small", amount=2000)
        assert allowed.json()["review"] is None
    review_approve(payment_id=decided.pk, actor=agent, reason="Known customer")

    # when an agent opens the queue three hours after the first was held
    with time_machine.travel(T0 + timedelta(hours=3), tick=False):
        response = logged_in(agent).get(QUEUE)

    # then only the two pending reviews are listed, the oldest first, with what a reviewer needs
    assert response.status_code == 200
    rows = rows_of(response)
    assert [row["payment_display"] for row in rows] == [first.public_id, second.public_id]
    assert rows[0] == {
        "payment_display": first.public_id,
        "age_display": "3 h 0 min",
        "amount_display": "$5,000.00",
        "reasons_display": "amount $5,000.00 is at or above the review amount $5,000.00"
        " (amount_review_threshold, 60 pts)",
        "customer_display": "cus_old | old@example.com | 203.0.113.7 | storefront-a",
        "history_display": "2 payments, 1 declined, 1 refund",
        "status_display": "requires_capture",
        "authorization_display": "2026-03-09 09:00 (in 6 d 21 h)",
        "decide_display": "Decide",
    }
    assert rows[1]["age_display"] == "2 h 0 min"
    assert rows[1]["amount_display"] == "$2,000.00"
    assert rows[1]["reasons_display"].endswith("(first_seen_large_amount, 50 pts)")
    assert rows[1]["customer_display"] == "cus_new | no e-mail | no IP | storefront-a"
    assert rows[1]["history_display"] == "0 payments, 0 declined, 0 refunds"
    assert rows[1]["authorization_display"] == "2026-03-09 10:00 (in 6 d 22 h)"


def test_a_held_payment_not_yet_authorized_says_so(held, agent):
    # given a payment held for review that was not confirmed (no authorization yet)
    payment = held(confirm=False, payment_method=None, customer_id="cus_later")

    # when the agent opens the queue
    rows = rows_of(logged_in(agent).get(QUEUE))

    # then its authorization column says it is not authorized yet
    assert [(row["payment_display"], row["status_display"], row["authorization_display"]) for row in rows] == [
        (payment.public_id, "requires_payment_method", "not authorized yet")
    ]


def test_queue_runs_the_same_number_of_queries_for_2_and_20_reviews(storefront, held, agent):
    # given two held payments, each customer with a payment and a refund in the last 30 days
    def seed(start: int, count: int) -> None:
        for n in range(start, start + count):
            paid = storefront.post(
                "/api/v1/payments/",
                {"amount": 1500, "currency": "usd", "customer_id": f"cus_q{n}", "payment_method": "pm_card_visa"}
                | {"confirm": True},
                format="json",
                HTTP_IDEMPOTENCY_KEY=new_key(),
            )
            refund(storefront, Payment.objects.get(public_id=paid.json()["id"]))
            held(amount=500_000, customer_id=f"cus_q{n}")

    client = logged_in(agent)
    seed(0, 2)
    client.get(QUEUE)  # warm the session and the content types
    with CaptureQueriesContext(connection) as at_2:
        assert len(rows_of(client.get(QUEUE))) == 2

    # when 18 more are held
    seed(2, 18)
    with CaptureQueriesContext(connection) as at_20:
        rows = rows_of(client.get(QUEUE))

    # then the page runs exactly as many queries for 20 rows as for 2
    assert len(rows) == 20
    assert {row["history_display"] for row in rows} == {"1 payment, 0 declined, 1 refund"}
    assert len(at_20) == len(at_2)


def test_approve_closes_the_review_records_the_staff_action_and_lets_the_shop_capture(storefront, held, agent):
    # given a held payment the shop cannot capture yet
    payment = held(customer_id="cus_approve")
    refused = capture(storefront, payment)
    assert (refused.status_code, refused.json()["error"]["code"]) == (409, "payment_in_review")

    # when the agent approves it with a reason
    response = logged_in(agent).post(
        decide_url(payment), {"decision": "approve", "reason": "Known customer, called back"}, follow=True
    )

    # then the queue says so and is empty; the review, the staff action and the event are recorded
    assert messages_of(response) == [f"Payment {payment.public_id} approved: the shop can capture it now."]
    assert rows_of(response) == []
    assessment = RiskAssessment.objects.get(payment=payment)
    assert (assessment.payment.review_state, assessment.reviewed_by, assessment.review_note) == (
        "approved",
        agent,
        "Known customer, called back",
    )
    action = StaffAction.objects.get()
    assert (action.actor, action.action, action.object_id, action.reason) == (
        agent,
        "review_approve",
        payment.public_id,
        "Known customer, called back",
    )
    assert action.after == {"review_state": "approved", "capture": False}
    assert event_types(payment.public_id)[-1] == "payment.review_closed"
    assert SimulatorGateway.call_count("capture_intent") == 0
    # and the shop's capture now succeeds
    captured = capture(storefront, payment)
    assert (captured.status_code, captured.json()["status"]) == (200, "succeeded")


def test_approve_and_capture_now_captures_the_payment(held, lead):
    # given a held payment
    payment = held(customer_id="cus_capture_now")

    # when a lead approves it and captures now
    response = logged_in(lead).post(
        decide_url(payment), {"decision": "approve_capture", "reason": "Verified by phone"}, follow=True
    )

    # then the payment is captured at the gateway, and the staff action says so
    assert messages_of(response) == [
        f"Payment {payment.public_id} approved and captured ($2,000.00); the payment is succeeded."
    ]
    payment.refresh_from_db()
    assert (payment.status, payment.amount_received) == ("succeeded", HELD_AMOUNT)
    assert SimulatorGateway.call_count("capture_intent") == 1
    assert RiskAssessment.objects.get(payment=payment).payment.review_state == "approved"
    assert StaffAction.objects.get().after == {"review_state": "approved", "capture": True}
    assert event_types(payment.public_id)[-2:] == ["payment.review_closed", "payment.captured"]


def test_reject_cancels_the_payment_and_releases_the_authorization(storefront, held, agent):
    # given a held, authorized payment
    payment = held(customer_id="cus_reject")

    # when the agent rejects it
    response = logged_in(agent).post(
        decide_url(payment), {"decision": "reject", "reason": "Stolen card reported"}, follow=True
    )

    # then the review is rejected, the payment canceled and the authorization released at the gateway
    assert messages_of(response) == [f"Payment {payment.public_id} rejected; the payment is canceled."]
    payment.refresh_from_db()
    assert (payment.status, payment.cancellation_reason) == ("canceled", "fraudulent")
    assert SimulatorGateway.call_count("cancel_intent") == 1
    assessment = RiskAssessment.objects.get(payment=payment)
    assert (assessment.payment.review_state, assessment.reviewed_by, assessment.review_note) == (
        "rejected",
        agent,
        "Stolen card reported",
    )
    assert list(StaffAction.objects.values_list("action", "reason")) == [("review_reject", "Stolen card reported")]
    assert event_types(payment.public_id)[-2:] == ["payment.review_closed", "payment.canceled"]
    # and the shop cannot capture it
    assert capture(storefront, payment).status_code == 409


def test_staff_without_the_review_permission_get_403_and_nothing_changes(held, auditor):
    # given a held payment and an auditor (may view the queue, may not decide)
    payment = held(customer_id="cus_auditor")
    nobody = make_staff("staff-no-group", None)

    # when the auditor opens the decision page or posts a decision, and a staff member without any group tries too
    auditor_client = logged_in(auditor)
    page = auditor_client.get(decide_url(payment))
    posted = auditor_client.post(decide_url(payment), {"decision": "approve", "reason": "Looks fine"})
    nobody_post = logged_in(nobody).post(decide_url(payment), {"decision": "reject", "reason": "x"})
    queue = auditor_client.get(QUEUE)

    # then both are refused, the review is still pending, and the auditor's queue has no decide column
    assert (page.status_code, posted.status_code, nobody_post.status_code) == (403, 403, 403)
    assert RiskAssessment.objects.get(payment=payment).payment.review_state == "pending"
    assert StaffAction.objects.count() == 0
    assert SimulatorGateway.call_count("cancel_intent") == 0
    assert queue.status_code == 200
    assert [set(row) for row in rows_of(queue)] == [
        {
            "payment_display",
            "age_display",
            "amount_display",
            "reasons_display",
            "customer_display",
            "history_display",
            "status_display",
            "authorization_display",
        }
    ]
    assert logged_in(nobody).get(QUEUE).status_code == 403


def test_a_decision_needs_a_reason(held, agent):
    # given a held payment
    payment = held(customer_id="cus_no_reason")

    # when the agent approves it with a blank reason
    response = logged_in(agent).post(decide_url(payment), {"decision": "approve", "reason": "   "})

    # then the page asks for a reason and nothing happened
    assert response.status_code == 200
    assert response.context["form"].errors == {"reason": ["A reason is required."]}
    assert "A reason is required." in response.content.decode()
    assert RiskAssessment.objects.get(payment=payment).payment.review_state == "pending"
    assert StaffAction.objects.count() == 0


def test_deciding_twice_shows_that_the_review_is_no_longer_pending(held, agent, lead):
    # given a payment the agent approved
    payment = held(customer_id="cus_twice")
    logged_in(agent).post(decide_url(payment), {"decision": "approve", "reason": "Fine"})

    # when a lead, with the page still open, rejects it
    response = logged_in(lead).post(decide_url(payment), {"decision": "reject", "reason": "Fraud"}, follow=True)

    # then they are told it is no longer pending, and nothing was canceled
    assert messages_of(response) == [
        f"Payment {payment.public_id}: This payment has no pending review (someone may have decided it already)."
    ]
    payment.refresh_from_db()
    assert payment.status == "requires_capture"
    assert RiskAssessment.objects.get(payment=payment).payment.review_state == "approved"
    assert SimulatorGateway.call_count("cancel_intent") == 0
    assert list(StaffAction.objects.values_list("actor__username", "action")) == [("agent-ann", "review_approve")]
    # and the decision page itself says so instead of offering the buttons
    page = logged_in(lead).get(decide_url(payment)).content.decode()
    assert 'id="not-pending"' in page
    assert 'id="decision-approve"' not in page


def test_a_gateway_error_on_capture_is_shown_and_the_approval_stands(held, agent, simulator):
    # given a held payment and a gateway that refuses the next capture
    payment = held(customer_id="cus_gateway_error")
    simulator.inject_fault("capture_intent", "permanent")

    # when the agent approves and captures now
    response = logged_in(agent).post(
        decide_url(payment), {"decision": "approve_capture", "reason": "Verified"}, follow=True
    )

    # then the page shows the gateway's error; the approval stands, the payment is still to capture
    [message] = messages_of(response)
    assert message.startswith(f"Payment {payment.public_id} approved, but the capture failed: ")
    assert message.endswith("(gateway_rejected).")
    payment.refresh_from_db()
    assert payment.status == "requires_capture"
    assert RiskAssessment.objects.get(payment=payment).payment.review_state == "approved"


def test_decision_page_shows_the_review(held, agent):
    # given a held payment
    payment = held(customer_id="cus_page", customer_email="page@example.com")

    # when the agent opens its decision page from the queue
    page = logged_in(agent).get(decide_url(payment)).content.decode()

    # then it shows the payment, the reasons and the three decisions
    assert payment.public_id in page
    assert "$2,000.00" in page
    assert "page@example.com" in page
    assert "first_seen_large_amount, 50 pts" in page
    assert "0 payments, 0 declined, 0 refunds" in page
    for decision in ("approve", "approve_capture", "reject"):
        assert f'id="decision-{decision}"' in page


def test_dashboard_card_counts_open_reviews_and_links_to_the_queue(held, agent):
    # given two held payments
    held(customer_id="cus_dash_1")
    held(customer_id="cus_dash_2")

    # when the agent opens the admin index
    page = logged_in(agent).get("/admin/").content.decode()

    # then the card shows 2, in the alert style, linked to the queue; the queue is in the app list too
    card = page[page.index('id="dash-reviews"') - 40 : page.index('id="dash-approvals"')]
    assert 'class="dash-card dash-alert" id="dash-reviews"' in card
    assert f'<a href="{QUEUE}">2</a>' in card
    assert "not built yet" not in page
    assert f'href="{QUEUE}"' in page[page.index('id="content-main"') :]


def test_payment_page_shows_the_risk_assessment_and_a_decide_link(held, agent):
    # given a held payment
    payment = held(customer_id="cus_payment_page")

    # when the agent opens the payment's page
    page = logged_in(agent).get(f"/admin/payments/payment/{payment.pk}/change/").content.decode()

    # then the risk panel shows the score, level, decision, reasons and the pending review with a link to decide
    assert '<div class="readonly" id="risk-score">50</div>' in page
    assert '<div class="readonly" id="risk-level">Elevated</div>' in page
    assert '<div class="readonly" id="risk-decision">Review</div>' in page
    assert "first_seen_large_amount, 50 pts" in page
    assert f'href="{decide_url(payment)}"' in page


def test_a_decision_without_the_csrf_token_is_refused(held, agent):
    # given a held payment and a browser session without the page's CSRF token
    payment = held(customer_id="cus_csrf")
    client = Client(enforce_csrf_checks=True)
    client.force_login(agent)

    # when a decision is posted straight to the page
    response = client.post(decide_url(payment), {"decision": "reject", "reason": "Forged"})

    # then it is refused and nothing happened
    assert response.status_code == 403
    assert RiskAssessment.objects.get(payment=payment).payment.review_state == "pending"
    assert StaffAction.objects.count() == 0
