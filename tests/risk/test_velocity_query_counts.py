"""The risk check costs a fixed number of SQL statements, whatever the customer's history.

Statements are counted without the SAVEPOINT/RELEASE pairs of the test's own wrapping transaction (as in
tests/payments/test_query_counts.py). The risk part of a create, in a warm process, with a payment method and
an amount that asks the first-seen question: before the transaction none (the settings as this process read
them last, and the card's fingerprint asked of the gateway when a fingerprint is blocklisted); inside it, the
identity locks (1: run here through the port alone; an API create takes them in its idempotency key's
statement), the blocklist, the velocity and decline counts and the settings as stored now together (1) —
the rules' two —, whether the customer paid before (1, only at the first-seen amount), and the assessment
row (1) — 4. A cold process reads the settings once before its first transaction (1 more).
"""

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from gateways.simulator import SimulatorGateway
from payments.models import Payment
from payments.ports import RiskRequest
from risk.assessor import RulesAssessor
from tests.payments.factories import PaymentFactory
from tests.risk.conftest import USD_FIRST_SEEN, post_payment

pytestmark = pytest.mark.django_db

RISK_STATEMENTS = 4
RISK_STATEMENTS_WITHOUT_CARD_OR_FIRST_SEEN = 3
NO_LIMITS = {
    "short_window_payments": 100_000,
    "long_window_payments": 100_000,
    "short_window_declines": 100_000,
    "long_window_declines": 100_000,
}


def _statements(queries) -> list[str]:
    return [q["sql"] for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT"))]


def _history(client_user, *, customer_id: str, email: str, ip: str, count: int) -> None:
    """`count` payments of this customer, e-mail and IP, created now (inside both windows), a third declined."""
    Payment.objects.bulk_create(
        [
            PaymentFactory.build(
                failed=index % 3 == 0,
                succeeded=index % 3 != 0,
                client=client_user,
                amount=1000,
                customer_id=customer_id,
                customer_email=email,
                customer_ip=ip,
            )
            for index in range(count)
        ],
        batch_size=500,
    )


def _measured_create(storefront, *, customer_id: str, email: str, ip: str):
    body = {
        "amount": USD_FIRST_SEEN,
        "customer_id": customer_id,
        "customer_email": email,
        "customer_ip": ip,
        "payment_method": "pm_card_visa",
        "confirm": True,
    }
    with CaptureQueriesContext(connection) as queries:
        response = post_payment(storefront, **body)
    assert response.status_code == 201, response.json()
    return response, _statements(queries)


def test_a_create_costs_the_same_for_a_customer_with_1_or_1000_earlier_payments(storefront, rules, block):
    rules(**NO_LIMITS)
    block("card_fingerprint", SimulatorGateway().card_fingerprint(payment_method="pm_card_amex"))
    _history(storefront.user, customer_id="cus_one", email="one@example.com", ip="203.0.113.1", count=1)
    _history(storefront.user, customer_id="cus_many", email="many@example.com", ip="203.0.113.2", count=1000)
    # warm the process up (auditlog looks up and caches its content type on the first audited write)
    _measured_create(storefront, customer_id="cus_warm", email="warm@example.com", ip="203.0.113.3")

    small, few = _measured_create(storefront, customer_id="cus_one", email="one@example.com", ip="203.0.113.1")
    large, many = _measured_create(storefront, customer_id="cus_many", email="many@example.com", ip="203.0.113.2")

    assert len(few) == len(many)
    for response in (small, large):
        assert response.json()["status"] == "succeeded"
        assert response.json()["risk"] == {"score": 0, "level": "normal"}
    assert Payment.objects.filter(customer_id="cus_many").count() == 1001


def _risk_part(client_user, *, payment_method: str, amount: int) -> int:
    """Run the risk port as `payment_create` does (prepare, then assess and record inside the transaction)."""
    assessor = RulesAssessor()
    request = {"amount": amount, "currency": "usd", "customer_id": "cus_many", "email": "many@example.com"}
    with CaptureQueriesContext(connection) as before_transaction:
        prepared = assessor.prepare(gateway=SimulatorGateway(), payment_method=payment_method, currency="usd")
    with transaction.atomic():
        with CaptureQueriesContext(connection) as assess:
            verdict = assessor.assess(
                RiskRequest(
                    client=client_user,
                    ip="203.0.113.2",
                    card_fingerprint=prepared.card_fingerprint,
                    prepared=prepared,
                    **request,
                )
            )
        payment = PaymentFactory(
            requires_confirmation=True,
            client=client_user,
            amount=amount,
            customer_id="cus_many",
            customer_email="many@example.com",
            customer_ip="203.0.113.2",
        )
        with CaptureQueriesContext(connection) as record:
            assessor.record(payment=payment, verdict=verdict, card_fingerprint=prepared.card_fingerprint)
    assert verdict.decision == "allow"
    return sum(len(_statements(queries)) for queries in (before_transaction, assess, record))


@pytest.mark.parametrize("history", [1, 1000])
def test_the_risk_check_adds_a_fixed_number_of_statements(storefront, rules, block, history):
    rules(**NO_LIMITS)
    block("card_fingerprint", SimulatorGateway().card_fingerprint(payment_method="pm_card_amex"))
    _history(storefront.user, customer_id="cus_many", email="many@example.com", ip="203.0.113.2", count=history)

    cold = _risk_part(storefront.user, payment_method="pm_card_visa", amount=USD_FIRST_SEEN)
    full = _risk_part(storefront.user, payment_method="pm_card_visa", amount=USD_FIRST_SEEN)
    light = _risk_part(storefront.user, payment_method="", amount=2000)

    assert cold == RISK_STATEMENTS + 1  # the settings, read once per process before its first transaction
    assert full == RISK_STATEMENTS
    assert light == RISK_STATEMENTS_WITHOUT_CARD_OR_FIRST_SEEN
