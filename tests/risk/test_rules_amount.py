"""The amount and first-seen rules over HTTP, at the exact edges of each currency's thresholds (minor units).

Three-decimal currencies (kwd) only take multiples of 10, so there "one below" is one valid step below.
"""

import pytest

from payments.models import Payment
from payments.money import get_currency
from risk.defaults import DEFAULT_THRESHOLDS
from risk.models import CurrencyThreshold
from tests.risk.conftest import USD_FIRST_SEEN, assessment_of, codes_of, payment_of

pytestmark = pytest.mark.django_db

CURRENCIES = ["jpy", "kwd", "usd"]  # zero, three and two decimals
# currency: (smallest valid step, review amount, block amount, first-seen amount), from the seeded defaults
EDGES = {code: (get_currency(code).step, *DEFAULT_THRESHOLDS[code]) for code in CURRENCIES}


def test_the_seeded_thresholds_are_the_defaults(rules):
    seeded = {
        row.currency: (row.review_amount, row.block_amount, row.first_seen_amount)
        for row in CurrencyThreshold.objects.filter(currency__in=CURRENCIES)
    }

    assert seeded == {code: DEFAULT_THRESHOLDS[code] for code in CURRENCIES}
    assert EDGES["kwd"][0] == 10


@pytest.fixture
def returning(create):
    """Make cus_1 a customer who paid before (a small payment), so only the amount rule speaks."""

    def make(currency: str) -> None:
        assert create(currency=currency, amount=2000).status_code == 201

    return make


@pytest.mark.parametrize("currency", CURRENCIES)
def test_one_step_below_the_review_amount_is_allowed(create, returning, currency):
    step, review, _block, _first = EDGES[currency]
    returning(currency)

    response = create(currency=currency, amount=review - step)

    assert response.status_code == 201
    assert response.json()["risk"] == {"score": 0, "level": "normal"}
    assert response.json()["review"] is None
    assert codes_of(response) == []


@pytest.mark.parametrize("currency", CURRENCIES)
def test_the_review_amount_holds_the_payment_for_review(create, returning, currency):
    _step, review, _block, _first = EDGES[currency]
    returning(currency)

    response = create(currency=currency, amount=review)

    assert response.status_code == 201
    assert response.json()["risk"] == {"score": 60, "level": "elevated"}
    assert response.json()["review"] == {"state": "pending", "reasons": ["amount_review_threshold"]}
    assert response.json()["capture_method"] == "manual"


@pytest.mark.parametrize("currency", CURRENCIES)
def test_one_step_below_the_block_amount_is_only_reviewed(create, returning, currency):
    step, _review, block, _first = EDGES[currency]
    returning(currency)

    response = create(currency=currency, amount=block - step)

    assert response.status_code == 201
    assert response.json()["risk"] == {"score": 60, "level": "elevated"}
    assert response.json()["review"] == {"state": "pending", "reasons": ["amount_review_threshold"]}


@pytest.mark.parametrize("currency", CURRENCIES)
def test_the_block_amount_blocks(create, returning, currency, simulator):
    _step, _review, block, _first = EDGES[currency]
    returning(currency)
    intents_before = simulator.call_count("create_intent")

    response = create(currency=currency, amount=block)

    assert response.status_code == 402
    assert response.json()["error"]["code"] == "blocked"
    payment = payment_of(response)
    assert (payment.status, payment.failure_code, payment.amount, payment.currency) == (
        "failed",
        "blocked",
        block,
        currency,
    )
    assessment = assessment_of(response)
    assert (assessment.score, assessment.level, assessment.decision) == (100, "highest", "block")
    assert assessment.reason_codes == ["amount_block_threshold"]
    assert simulator.call_count("create_intent") == intents_before


def test_the_amount_messages_are_in_the_currency(create, returning, threshold):
    threshold("jpy", review_amount=750_000, block_amount=7_500_000, first_seen_amount=150_000)
    threshold("kwd", review_amount=1_500_000, block_amount=15_000_000, first_seen_amount=300_000)
    returning("jpy")
    returning("kwd")

    jpy = create(currency="jpy", amount=750_000)
    kwd = create(currency="kwd", amount=15_000_000)

    assert assessment_of(jpy).reasons == [
        {
            "rule": "amount",
            "code": "amount_review_threshold",
            "points": 60,
            "message": "amount ¥750,000 is at or above the review amount ¥750,000",
        }
    ]
    assert assessment_of(kwd).reasons == [
        {
            "rule": "amount",
            "code": "amount_block_threshold",
            "points": 100,
            "message": "amount 15,000.000 KD is at or above the block amount 15,000.000 KD",
        }
    ]


def test_a_changed_threshold_applies_to_the_next_payment(create, returning, threshold):
    returning("usd")
    threshold("usd", review_amount=3000, block_amount=None, first_seen_amount=USD_FIRST_SEEN)

    response = create(amount=3000)

    assert response.json()["review"] == {"state": "pending", "reasons": ["amount_review_threshold"]}


def test_a_currency_without_thresholds_has_no_amount_rules(create):
    response = create(currency="sek", amount=99_999_999, customer_id="cus_new")

    assert response.status_code == 201
    assert response.json()["risk"] == {"score": 0, "level": "normal"}


# --- first seen ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("currency", CURRENCIES)
def test_a_new_customer_just_below_the_first_seen_amount_is_allowed(create, currency):
    step, _review, _block, first_seen = EDGES[currency]

    response = create(currency=currency, amount=first_seen - step, customer_id="cus_new")

    assert response.status_code == 201
    assert response.json()["risk"] == {"score": 0, "level": "normal"}


@pytest.mark.parametrize("currency", CURRENCIES)
def test_a_new_customer_at_the_first_seen_amount_is_reviewed(create, currency):
    _step, _review, _block, first_seen = EDGES[currency]

    response = create(currency=currency, amount=first_seen, customer_id="cus_new")

    assert response.status_code == 201
    assert response.json()["risk"] == {"score": 50, "level": "elevated"}
    assert response.json()["review"] == {"state": "pending", "reasons": ["first_seen_large_amount"]}


@pytest.mark.parametrize("currency", CURRENCIES)
def test_a_returning_customer_at_the_first_seen_amount_is_allowed(create, returning, currency):
    _step, _review, _block, first_seen = EDGES[currency]
    returning(currency)

    response = create(currency=currency, amount=first_seen)

    assert response.status_code == 201
    assert response.json()["risk"] == {"score": 0, "level": "normal"}
    assert response.json()["review"] is None


def test_a_customer_seen_in_another_currency_is_returning(create):
    assert create(currency="usd", amount=2000).status_code == 201

    response = create(currency="jpy", amount=EDGES["jpy"][3])

    assert response.json()["risk"] == {"score": 0, "level": "normal"}


def test_the_same_customer_id_at_another_shop_is_still_new(create, make_client):
    other_shop = make_client("shop-b")
    assert create(other_shop, amount=2000, customer_id="cus_shared").status_code == 201

    response = create(amount=USD_FIRST_SEEN, customer_id="cus_shared")

    assert response.json()["review"] == {"state": "pending", "reasons": ["first_seen_large_amount"]}


def test_a_new_customer_at_the_review_amount_is_held_with_both_reasons_counted_once(create):
    response = create(amount=EDGES["usd"][1], customer_id="cus_new")

    assert response.status_code == 201
    assert response.json()["review"]["state"] == "pending"
    assessment = assessment_of(response)
    assert (assessment.score, assessment.decision) == (60, "review")
    assert assessment.reason_codes == ["amount_review_threshold", "first_seen_large_amount"]
    assert [r["points"] for r in assessment.reasons] == [60, 50]


def test_first_seen_with_zero_points_is_off(create, rules):
    rules(first_seen_points=0)

    response = create(amount=USD_FIRST_SEEN, customer_id="cus_new")

    assert response.json()["risk"] == {"score": 0, "level": "normal"}
    assert codes_of(response) == []


def test_amount_review_with_zero_points_is_off(create, returning, rules):
    returning("usd")
    rules(amount_review_points=0)

    response = create(amount=EDGES["usd"][1])

    assert response.json()["risk"] == {"score": 0, "level": "normal"}
    assert Payment.objects.filter(customer_id="cus_1").count() == 2


def test_amount_block_with_zero_points_still_reviews_a_huge_amount(create, returning, rules):
    returning("usd")
    rules(amount_block_points=0)

    response = create(amount=EDGES["usd"][2])

    assert response.status_code == 201
    assert response.json()["review"] == {"state": "pending", "reasons": ["amount_review_threshold"]}
