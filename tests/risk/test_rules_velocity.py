"""Velocity and decline counts over HTTP: per customer, e-mail and IP, with the clock frozen at the windows' edges.

A window of W covers (now − W, now]: a payment exactly W old has left it, one a second younger still counts.
Defaults: 10 min (5 payments, 3 declines) and 24 h (20 payments, 5 declines).
"""

from datetime import timedelta

import pytest
from django.utils import timezone

from tests.risk.conftest import assessment_of, codes_of

pytestmark = pytest.mark.django_db

DECLINED = {"payment_method": "pm_card_chargeDeclined", "confirm": True}


@pytest.fixture
def start():
    return timezone.now()


def _many(create_at, moment, count, **body):
    responses = [create_at(moment, **body) for _ in range(count)]
    assert {r.status_code for r in responses} <= {201, 402}, [r.json() for r in responses]
    return responses


# --- payments per customer ---------------------------------------------------------------------------------
def test_four_earlier_payments_are_within_the_short_limit(create_at, start):
    _many(create_at, start, 4)

    response = create_at(start + timedelta(minutes=1))

    assert response.status_code == 201
    assert response.json()["risk"] == {"score": 0, "level": "normal"}


@pytest.mark.parametrize(
    ("age", "review"),
    [
        (timedelta(minutes=9, seconds=59), {"state": "pending", "reasons": ["velocity_customer_short"]}),
        (
            timedelta(minutes=10) - timedelta(microseconds=1),
            {"state": "pending", "reasons": ["velocity_customer_short"]},
        ),
        (timedelta(minutes=10), None),
    ],
    ids=["9m59s", "10m-1us", "10m"],
)
def test_the_short_window_edge(create_at, start, age, review):
    _many(create_at, start, 5)

    response = create_at(start + age)

    assert response.status_code == 201
    assert response.json()["review"] == review
    assert response.json()["risk"] == (
        {"score": 60, "level": "elevated"} if review else {"score": 0, "level": "normal"}
    )


@pytest.mark.parametrize(
    ("age", "review"),
    [
        (timedelta(hours=23, minutes=59, seconds=59), {"state": "pending", "reasons": ["velocity_customer_long"]}),
        (timedelta(hours=24), None),
    ],
    ids=["23h59m59s", "24h"],
)
def test_the_long_window_edge(create_at, start, age, review):
    # four batches of 5, each alone within the short limit of its own window
    for batch in range(4):
        _many(create_at, start + timedelta(minutes=11 * batch), 5)

    response = create_at(start + age)  # the first batch is exactly `age` old

    assert response.status_code == 201
    assert response.json()["review"] == review


def test_payments_in_every_currency_count_together(create_at, start):
    for currency, amount in [("usd", 2000), ("jpy", 2000), ("kwd", 2000), ("jpy", 500), ("usd", 50)]:
        assert create_at(start, currency=currency, amount=amount).status_code == 201

    response = create_at(start + timedelta(minutes=1), currency="kwd", amount=1500)

    assert response.json()["review"] == {"state": "pending", "reasons": ["velocity_customer_short"]}


def test_the_message_names_the_count_and_the_limit(create_at, start):
    _many(create_at, start, 7)

    response = create_at(start + timedelta(minutes=5))

    assert assessment_of(response).reasons == [
        {
            "rule": "velocity",
            "code": "velocity_customer_short",
            "points": 60,
            "message": "7 payments by this customer in 10 min (limit 5)",
        }
    ]


def test_the_same_customer_id_at_another_shop_does_not_count(create_at, start, make_client):
    other_shop = make_client("shop-b")
    _many(create_at, start, 5, user=other_shop.user)

    response = create_at(start + timedelta(minutes=1))

    assert response.json()["risk"] == {"score": 0, "level": "normal"}


def test_changed_limits_apply_to_the_next_payment(create_at, start, rules):
    rules(short_window_minutes=30, short_window_payments=2)
    _many(create_at, start, 2)

    response = create_at(start + timedelta(minutes=29))

    assert response.json()["review"] == {"state": "pending", "reasons": ["velocity_customer_short"]}
    assert assessment_of(response).reasons[0]["message"] == "2 payments by this customer in 30 min (limit 2)"


# --- per e-mail and per IP ---------------------------------------------------------------------------------
def test_payments_sharing_an_email_count_whatever_its_case(create_at, start):
    spellings = ["Ann@Example.com", "ANN@EXAMPLE.COM", "ann@example.com", "aNn@eXample.Com", " ann@example.com"]
    for index, email in enumerate(spellings):
        assert create_at(start, customer_id=f"cus_{index}", customer_email=email.strip()).status_code == 201

    response = create_at(start + timedelta(minutes=9), customer_id="cus_new", customer_email="ANN@example.com")

    assert response.json()["review"] == {"state": "pending", "reasons": ["velocity_email_short"]}
    assert response.json()["customer_email"] == "ann@example.com"


def test_payments_from_another_email_do_not_count(create_at, start):
    for index in range(5):
        create_at(start, customer_id=f"cus_{index}", customer_email=f"ann{index}@example.com")

    response = create_at(start + timedelta(minutes=1), customer_id="cus_new", customer_email="ann@example.com")

    assert response.json()["risk"] == {"score": 0, "level": "normal"}


@pytest.mark.parametrize(
    ("earlier_ip", "ip"),
    [("203.0.113.9", "203.0.113.9"), ("2001:DB8:0:0::1", "2001:db8::1"), ("::ffff:203.0.113.9", "203.0.113.9")],
    ids=["ipv4", "ipv6-other-notation", "ipv4-mapped-ipv6"],
)
def test_payments_from_one_ip_count(create_at, start, earlier_ip, ip):
    for index in range(5):
        assert create_at(start, customer_id=f"cus_{index}", customer_ip=earlier_ip).status_code == 201

    response = create_at(start + timedelta(minutes=9, seconds=59), customer_id="cus_new", customer_ip=ip)

    assert response.json()["review"] == {"state": "pending", "reasons": ["velocity_ip_short"]}


def test_the_ip_short_window_edge(create_at, start):
    for index in range(5):
        create_at(start, customer_id=f"cus_{index}", customer_ip="203.0.113.9")

    response = create_at(start + timedelta(minutes=10), customer_id="cus_new", customer_ip="203.0.113.9")

    assert response.json()["review"] is None


def test_another_ip_does_not_count(create_at, start):
    for index in range(5):
        create_at(start, customer_id=f"cus_{index}", customer_ip="203.0.113.9")

    response = create_at(start + timedelta(minutes=1), customer_id="cus_new", customer_ip="203.0.113.10")

    assert response.json()["review"] is None


def test_customer_email_and_ip_all_over_the_limit_count_once(create_at, start):
    same = {"customer_email": "ann@example.com", "customer_ip": "203.0.113.9"}
    _many(create_at, start, 5, **same)

    response = create_at(start + timedelta(minutes=1), **same)

    assert response.json()["risk"] == {"score": 60, "level": "elevated"}
    assert response.json()["review"]["reasons"] == [
        "velocity_customer_short",
        "velocity_email_short",
        "velocity_ip_short",
    ]


def test_velocity_with_zero_points_is_off(create_at, start, rules):
    rules(velocity_points=0)
    _many(create_at, start, 25)

    response = create_at(start + timedelta(minutes=1))

    assert response.json()["risk"] == {"score": 0, "level": "normal"}
    assert codes_of(response) == []


# --- declines ----------------------------------------------------------------------------------------------
def test_declines_are_402_and_two_stay_within_the_limit(create_at, start):
    declines = _many(create_at, start, 2, **DECLINED)

    response = create_at(start + timedelta(minutes=1))

    assert [r.json()["error"]["code"] for r in declines] == ["card_declined", "card_declined"]
    assert response.json()["risk"] == {"score": 0, "level": "normal"}


def test_three_declines_hold_the_next_payment(create_at, start):
    _many(create_at, start, 3, **DECLINED)

    response = create_at(start + timedelta(minutes=9, seconds=59))

    assert response.json()["risk"] == {"score": 80, "level": "elevated"}
    assert response.json()["review"] == {"state": "pending", "reasons": ["declines_customer_short"]}
    assert assessment_of(response).reasons[0]["message"] == "3 declines for this customer in 10 min (limit 3)"


def test_declines_exactly_10_minutes_old_have_left_the_short_window(create_at, start):
    _many(create_at, start, 3, **DECLINED)

    response = create_at(start + timedelta(minutes=10))

    assert response.json()["review"] is None


@pytest.mark.parametrize(
    ("age", "review"),
    [
        (timedelta(minutes=10), {"state": "pending", "reasons": ["declines_customer_long"]}),
        (timedelta(hours=23, minutes=59, seconds=59), {"state": "pending", "reasons": ["declines_customer_long"]}),
        (timedelta(hours=24), None),
    ],
    ids=["10m", "23h59m59s", "24h"],
)
def test_five_declines_count_in_the_long_window(create_at, start, age, review):
    _many(create_at, start, 5, **DECLINED)

    response = create_at(start + age)

    assert response.json()["review"] == review


@pytest.mark.parametrize(
    ("shared", "code"),
    [
        ({"customer_email": "Ann@Example.com"}, "declines_email_short"),
        ({"customer_ip": "2001:db8::7"}, "declines_ip_short"),
    ],
    ids=["email", "ip"],
)
def test_declines_count_per_email_and_ip(create_at, start, shared, code):
    for index in range(3):
        create_at(start, customer_id=f"cus_{index}", **shared, **DECLINED)

    response = create_at(start + timedelta(minutes=1), customer_id="cus_new", **shared)

    assert response.json()["review"] == {"state": "pending", "reasons": [code]}


def test_our_own_blocks_are_not_declines(create_at, start):
    create_at(start, amount=2000)  # cus_1 is a returning customer: only the amount rule speaks below
    blocked = _many(create_at, start, 3, amount=5_000_000)

    response = create_at(start + timedelta(minutes=1))

    assert [r.json()["error"]["code"] for r in blocked] == ["blocked", "blocked", "blocked"]
    assert response.json()["risk"] == {"score": 0, "level": "normal"}


def test_blocked_attempts_still_count_as_payments(create_at, start):
    create_at(start, amount=2000)
    _many(create_at, start, 4, amount=5_000_000)

    response = create_at(start + timedelta(minutes=1))

    assert response.json()["review"] == {"state": "pending", "reasons": ["velocity_customer_short"]}


def test_declines_with_zero_points_are_off(create_at, start, rules):
    rules(decline_points=0)
    _many(create_at, start, 4, **DECLINED)

    response = create_at(start + timedelta(minutes=1))

    assert response.json()["risk"] == {"score": 0, "level": "normal"}


def test_too_many_payments_and_declines_together_block(create_at, start, simulator):
    _many(create_at, start, 2)
    _many(create_at, start, 3, **DECLINED)
    intents_before = simulator.call_count("create_intent")

    response = create_at(start + timedelta(minutes=1))

    assert response.status_code == 402
    assessment = assessment_of(response)
    assert (assessment.score, assessment.level, assessment.decision) == (100, "highest", "block")
    assert assessment.reason_codes == ["velocity_customer_short", "declines_customer_short"]
    assert simulator.call_count("create_intent") == intents_before


def test_a_window_changed_after_this_process_read_the_rules_counts_with_the_new_window(create_at, start, rules):
    # given: this process has read the rules (10 min), and two payments are 20 min old
    rules(short_window_payments=2)
    _many(create_at, start, 2)
    assert create_at(start + timedelta(minutes=20)).json()["review"] is None  # out of the 10 min window

    # when: staff widen the window (in the database: as another process would), then a payment comes
    rules(short_window_minutes=30)
    response = create_at(start + timedelta(minutes=21))

    # then: it was counted with the window as stored now, not the one this process knew
    assert response.json()["review"] == {"state": "pending", "reasons": ["velocity_customer_short"]}
    assert assessment_of(response).reasons[0]["message"] == "3 payments by this customer in 30 min (limit 2)"
