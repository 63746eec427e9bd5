"""The blocklist over HTTP: e-mails and their domains, IPs in networks, customers per shop, cards, expiry."""

from datetime import timedelta

import pytest
import time_machine
from django.utils import timezone

from risk.models import BlocklistEntry
from risk.services import blocklist_expire
from tests.conftest import client_for
from tests.risk.conftest import assessment_of, post_payment

pytestmark = pytest.mark.django_db


def _blocked_by(response) -> list[str]:
    assert response.status_code == 402, response.json()
    assert response.json()["error"]["code"] == "blocked"
    return assessment_of(response).reason_codes


def _allowed(response) -> bool:
    assert response.status_code == 201, response.json()
    return response.json()["risk"] == {"score": 0, "level": "normal"}


# --- e-mail addresses and domains --------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("entry", "email"),
    [("fraud@example.com", "fraud@example.com"), ("Fraud@Example.COM", "fRaUd@example.com")],
    ids=["same", "case"],
)
def test_a_blocklisted_email_blocks(create, block, entry, email):
    stored = block("email", entry)

    response = create(customer_email=email)

    assert stored.value == "fraud@example.com"
    assert _blocked_by(response) == ["blocklisted_email"]
    assert assessment_of(response).reasons[0]["message"] == "email fraud@example.com is blocklisted"


def test_another_email_is_not_blocked(create, block):
    block("email", "fraud@example.com")

    assert _allowed(create(customer_email="fraud2@example.com"))


@pytest.mark.parametrize(
    ("entry", "email"),
    [
        ("example.com", "ann@example.com"),
        ("example.com", "ann@mail.example.com"),
        ("example.com", "ann@a.b.mail.example.com"),
        ("EXAMPLE.Com.", "Ann@Mail.EXAMPLE.com"),
        ("@example.com", "ann@example.com"),
    ],
    ids=["domain", "parent", "grandparent", "case-and-trailing-dot", "leading-at"],
)
def test_a_blocklisted_domain_blocks_its_addresses_and_subdomains(create, block, entry, email):
    block("email_domain", entry)

    response = create(customer_email=email)

    assert _blocked_by(response) == ["blocklisted_email_domain"]


@pytest.mark.parametrize(
    "email", ["ann@notexample.com", "ann@example.com.evil.org", "example.com@gmail.com", "ann@example.co"]
)
def test_a_blocklisted_domain_does_not_block_lookalikes(create, block, email):
    block("email_domain", "example.com")

    assert _allowed(create(customer_email=email))


def test_a_subdomain_entry_does_not_block_its_parent(create, block):
    block("email_domain", "mail.example.com")

    assert _allowed(create(customer_email="ann@example.com"))


# --- IP addresses and networks ----------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("entry", "ip"),
    [
        ("198.51.100.7", "198.51.100.7"),
        ("203.0.113.0/24", "203.0.113.200"),
        ("203.0.113.77/24", "203.0.113.1"),
        ("10.0.0.0/8", "10.255.255.255"),
        ("2001:db8::5", "2001:db8::5"),
        ("2001:db8:abcd::/48", "2001:db8:abcd:12::1"),
        ("2001:DB8:ABCD::/48", "2001:db8:abcd:ffff:ffff:ffff:ffff:ffff"),
        ("203.0.113.0/24", "::ffff:203.0.113.5"),
    ],
    ids=[
        "v4-address",
        "v4-cidr",
        "v4-host-bits",
        "v4-slash-8",
        "v6-address",
        "v6-cidr",
        "v6-case-last-address",
        "v4-mapped-v6",
    ],
)
def test_an_ip_inside_a_blocklisted_network_is_blocked(create, block, entry, ip):
    block("ip", entry)

    response = create(customer_ip=ip)

    assert _blocked_by(response) == ["blocklisted_ip"]


@pytest.mark.parametrize(
    ("entry", "ip"),
    [
        ("0.0.0.0/1", "127.0.0.1"),
        ("203.0.113.6/31", "203.0.113.7"),
        ("::/1", "::1"),
        ("2001:db8:8000::/33", "2001:db8:85a3::8a2e:370:7334"),
        ("2001:db8:85a3::8a2e:370:7334/127", "2001:db8:85a3::8a2e:370:7335"),
        ("2001:db8::/96", "2001:db8::ffff:1"),
    ],
    ids=["v4-slash-1", "v4-slash-31", "v6-slash-1", "v6-slash-33", "v6-slash-127", "v6-slash-96"],
)
def test_a_network_of_any_prefix_length_blocks_the_addresses_inside_it(create, block, entry, ip):
    block("ip", entry)

    response = create(customer_ip=ip)

    assert _blocked_by(response) == ["blocklisted_ip"]


@pytest.mark.parametrize(
    ("entry", "ip"),
    [
        ("198.51.100.7", "198.51.100.8"),
        ("203.0.113.0/24", "203.0.114.0"),
        ("203.0.113.0/24", "203.0.112.255"),
        ("2001:db8:abcd::/48", "2001:db8:abce::1"),
        ("203.0.113.0/24", "::ffff:203.0.112.1"),
    ],
    ids=["v4-neighbour", "v4-after", "v4-before", "v6-outside", "v4-mapped-outside"],
)
def test_an_ip_outside_the_network_is_not_blocked(create, block, entry, ip):
    block("ip", entry)

    assert _allowed(create(customer_ip=ip))


def test_the_stored_network_is_normalized(block):
    assert block("ip", "203.0.113.77/24").value == "203.0.113.0/24"
    assert block("ip", "2001:DB8::1").value == "2001:db8::1/128"


# --- customers, per shop -----------------------------------------------------------------------------------
def test_a_customer_entry_of_another_shop_does_not_block(create, block, make_client):
    other_shop = make_client("shop-b")
    block("customer", "cus_1", client=other_shop.user)

    assert _allowed(create(customer_id="cus_1"))
    assert _blocked_by(create(other_shop, customer_id="cus_1")) == ["blocklisted_customer"]


def test_a_customer_entry_of_this_shop_blocks(create, block, storefront):
    block("customer", "cus_1", client=storefront.user)

    assert _blocked_by(create(customer_id="cus_1")) == ["blocklisted_customer"]
    assert _allowed(create(customer_id="cus_2"))


def test_a_customer_entry_for_every_shop_blocks_at_any_shop(create, block, make_client):
    block("customer", "cus_1")

    assert _blocked_by(create(customer_id="cus_1")) == ["blocklisted_customer"]
    assert _blocked_by(create(make_client("shop-b"), customer_id="cus_1")) == ["blocklisted_customer"]


# --- cards ---------------------------------------------------------------------------------------------------
def test_a_blocklisted_card_fingerprint_blocks_that_card(create, block, simulator):
    fingerprint = simulator.card_fingerprint(payment_method="pm_card_visa")
    block("card_fingerprint", fingerprint)

    response = create(payment_method="pm_card_visa", confirm=True)

    assert _blocked_by(response) == ["blocklisted_card_fingerprint"]
    assert assessment_of(response).card_fingerprint == fingerprint
    assert simulator.call_count("create_intent") == 0
    assert simulator.call_count("confirm_intent") == 0


def test_another_card_is_not_blocked_by_a_fingerprint(create, block, simulator):
    block("card_fingerprint", simulator.card_fingerprint(payment_method="pm_card_visa"))

    response = create(payment_method="pm_card_mastercard", confirm=True)

    assert _allowed(response)
    assert response.json()["status"] == "succeeded"
    assert assessment_of(response).card_fingerprint == simulator.card_fingerprint(payment_method="pm_card_mastercard")


def test_the_card_is_not_looked_up_while_no_fingerprint_is_blocklisted(create, block, simulator):
    block("email", "fraud@example.com")

    response = create(payment_method="pm_card_visa", confirm=True)

    assert _allowed(response)
    assert simulator.call_count("card_fingerprint") == 0
    assert assessment_of(response).card_fingerprint == ""


# --- expiry and points ------------------------------------------------------------------------------------
def test_an_expired_entry_no_longer_blocks(create, block):
    block("email", "fraud@example.com", expires_at=timezone.now() - timedelta(seconds=1))

    assert _allowed(create(customer_email="fraud@example.com"))


def test_an_entry_blocks_until_its_expiry(storefront, block):
    expires_at = timezone.now() + timedelta(hours=1)
    block("ip", "203.0.113.0/24", expires_at=expires_at)

    with time_machine.travel(expires_at - timedelta(microseconds=1), tick=False):
        before = post_payment(client_for(storefront.user), customer_ip="203.0.113.5")
    with time_machine.travel(expires_at, tick=False):
        at = post_payment(client_for(storefront.user), customer_ip="203.0.113.5")

    assert _blocked_by(before) == ["blocklisted_ip"]
    assert _allowed(at)


def test_an_entry_expired_by_staff_no_longer_blocks(create, block, reviewer):
    entry = block("email_domain", "example.com")
    assert _blocked_by(create(customer_email="ann@example.com")) == ["blocklisted_email_domain"]

    assert blocklist_expire(entry_id=entry.pk, actor=reviewer, reason="false positive") is True

    assert _allowed(create(customer_email="ann@example.com"))
    assert BlocklistEntry.objects.get(pk=entry.pk).expires_at is not None


def test_several_entries_are_all_reasons_and_count_once(create, block, simulator):
    block("email_domain", "example.com")
    block("ip", "203.0.113.0/24")
    block("card_fingerprint", simulator.card_fingerprint(payment_method="pm_card_visa"))

    response = create(customer_email="ann@example.com", customer_ip="203.0.113.1", payment_method="pm_card_visa")

    assert sorted(_blocked_by(response)) == [
        "blocklisted_card_fingerprint",
        "blocklisted_email_domain",
        "blocklisted_ip",
    ]
    assert assessment_of(response).score == 100


def test_blocklist_with_zero_points_is_off(create, block, rules):
    rules(blocklist_points=0)
    block("email", "fraud@example.com")

    assert _allowed(create(customer_email="fraud@example.com"))


def test_blocklist_points_below_the_block_score_hold_for_review(create, block, rules):
    rules(blocklist_points=70)
    block("ip", "203.0.113.0/24")

    response = create(customer_ip="203.0.113.1")

    assert response.status_code == 201
    assert response.json()["risk"] == {"score": 70, "level": "elevated"}
    assert response.json()["review"] == {"state": "pending", "reasons": ["blocklisted_ip"]}


def test_a_card_blocklisted_after_this_process_read_the_rules_blocks_its_next_payment(create, block, simulator):
    # given: this process read the rules while no fingerprint was blocklisted (so it looked no card up)
    assert _allowed(create(payment_method="pm_card_visa", confirm=True))
    assert simulator.call_count("card_fingerprint") == 0

    # when: staff blocklist the card's fingerprint, then it pays again
    block("card_fingerprint", simulator.card_fingerprint(payment_method="pm_card_visa"))
    looked_up_by_staff = simulator.call_count("card_fingerprint")
    response = create(payment_method="pm_card_visa", confirm=True)

    # then: the creation prepared again, looked the card up, and the rule blocked it
    assert _blocked_by(response) == ["blocklisted_card_fingerprint"]
    assert simulator.call_count("card_fingerprint") == looked_up_by_staff + 1
