"""The blocklist in the admin: adding (normalized, audited), refusing bad values, expiring, and one-click blocks."""

from datetime import timedelta

import pytest
from django.utils import timezone

from audit.models import StaffAction
from gateways.simulator import SimulatorGateway
from risk.models import BlocklistEntry
from risk.services import blocklist_add
from tests.audit.conftest import logged_in
from tests.risk.admin_support import (  # noqa: F401 - fixtures
    agent_fixture,
    auditor_fixture,
    held_fixture,
    known_rules_fixture,
    lead_fixture,
    messages_of,
    rows_of,
)
from tests.risk.conftest import post_payment

pytestmark = pytest.mark.django_db

ADD = "/admin/risk/blocklistentry/add/"
LIST = "/admin/risk/blocklistentry/"


def from_payment(payment, kind: str) -> str:
    return f"/admin/risk/blocklistentry/from-payment/{payment.pk}/{kind}/"


def test_an_added_entry_is_normalized_and_recorded_as_a_staff_action(agent):
    # when an agent adds an e-mail typed with spaces and capitals
    response = logged_in(agent).post(
        ADD, {"kind": "email", "value": "  Fraud@Example.COM ", "reason": "Chargeback ring"}, follow=True
    )

    # then the entry holds the normalized value, and the staff action says who, what and why
    assert messages_of(response) == ["Blocked E-mail address: fraud@example.com."]
    entry = BlocklistEntry.objects.get()
    assert (entry.kind, entry.value, entry.client, entry.created_by, entry.expires_at) == (
        "email",
        "fraud@example.com",
        None,
        agent,
        None,
    )
    action = StaffAction.objects.get()
    assert (action.actor, action.action, action.object_type, action.object_id, action.reason) == (
        agent,
        "blocklist_add",
        "blocklist_entry",
        str(entry.pk),
        "Chargeback ring",
    )
    assert action.after == {"kind": "email", "value": "fraud@example.com", "client": None, "expires_at": None}
    assert [row["value"] for row in rows_of(response)] == ["fraud@example.com"]


def test_an_ip_is_stored_as_its_network(agent):
    logged_in(agent).post(ADD, {"kind": "ip", "value": "10.1.2.3/8", "reason": "Abusive network"})

    assert list(BlocklistEntry.objects.values_list("kind", "value")) == [("ip", "10.0.0.0/8")]


def test_a_duplicate_entry_is_refused_and_nothing_is_added(agent):
    # given an active entry
    client = logged_in(agent)
    client.post(ADD, {"kind": "email", "value": "fraud@example.com", "reason": "First"})

    # when the same address is added again in another case
    response = client.post(ADD, {"kind": "email", "value": "FRAUD@example.com", "reason": "Again"})

    # then the form says it is already there; one entry, one staff action
    assert response.status_code == 200
    assert response.context["form"].errors == {"value": ["fraud@example.com is already on the blocklist."]}
    assert BlocklistEntry.objects.count() == 1
    assert StaffAction.objects.count() == 1


def test_an_invalid_ip_is_refused_and_nothing_is_added(agent):
    response = logged_in(agent).post(ADD, {"kind": "ip", "value": "999.1.2.3", "reason": "Bad network"})

    assert response.status_code == 200
    assert response.context["form"].errors == {"value": ["'999.1.2.3' does not appear to be an IPv4 or IPv6 network"]}
    assert BlocklistEntry.objects.count() == 0
    assert StaffAction.objects.count() == 0


def test_an_entry_needs_a_reason(agent):
    response = logged_in(agent).post(ADD, {"kind": "customer", "value": "cus_1", "reason": "  "})

    assert response.context["form"].errors == {"reason": ["A reason is required."]}
    assert BlocklistEntry.objects.count() == 0


def test_an_auditor_cannot_add_entries(auditor):
    client = logged_in(auditor)

    assert client.get(ADD).status_code == 403
    assert client.post(ADD, {"kind": "email", "value": "a@example.com", "reason": "x"}).status_code == 403
    assert BlocklistEntry.objects.count() == 0


def test_expire_now_needs_a_reason_then_expires_and_records_the_staff_action(agent):
    # given two active entries
    entries = [blocklist_add(kind="customer", value=f"cus_{n}", reason="fraud", actor=agent) for n in range(2)]
    client = logged_in(agent)
    selected = {"action": "expire_selected", "_selected_action": [entries[0].pk], "index": 0}

    # when the agent expires the first without a reason, then with one
    refused = client.post(LIST, {**selected, "reason": ""}, follow=True)
    done = client.post(LIST, {**selected, "reason": "Customer cleared by the bank"}, follow=True)

    # then the first attempt changed nothing; the second expired the entry and recorded it
    assert messages_of(refused) == ["Give a reason in the Reason field next to the action."]
    assert messages_of(done) == ["1 entries expired; 0 had already expired."]
    entries[0].refresh_from_db()
    entries[1].refresh_from_db()
    assert entries[0].expires_at is not None
    assert entries[0].expires_at <= timezone.now()
    assert entries[1].expires_at is None
    expired = StaffAction.objects.get(action="blocklist_expire")
    assert (expired.actor, expired.object_id, expired.reason) == (
        agent,
        str(entries[0].pk),
        "Customer cleared by the bank",
    )
    # and the filters tell active from expired entries
    assert [row["value"] for row in rows_of(client.get(LIST, {"state": "active"}))] == ["cus_1"]
    assert [row["value"] for row in rows_of(client.get(LIST, {"state": "expired"}))] == ["cus_0"]


def test_search_finds_entries_by_value_or_reason(agent):
    blocklist_add(kind="email", value="ann@example.com", reason="chargeback ring", actor=agent)
    blocklist_add(kind="email_domain", value="mailinator.com", reason="disposable", actor=agent)
    client = logged_in(agent)

    assert [row["value"] for row in rows_of(client.get(LIST, {"q": "ring"}))] == ["ann@example.com"]
    assert [row["value"] for row in rows_of(client.get(LIST, {"q": "mailinator"}))] == ["mailinator.com"]
    assert [row["value"] for row in rows_of(client.get(LIST, {"kind__exact": "email_domain"}))] == ["mailinator.com"]


def test_nobody_deletes_or_edits_entries(lead, admin_client):
    # given an entry
    entry = blocklist_add(kind="customer", value="cus_1", reason="fraud", actor=lead)

    for client in (logged_in(lead), admin_client):
        # when a lead, or even a superuser, tries to delete or edit it
        deleted = client.post(f"{LIST}{entry.pk}/delete/", {"post": "yes"})
        edited = client.post(f"{LIST}{entry.pk}/change/", {"value": "cus_2", "reason": "edited"})
        bulk = client.post(LIST, {"action": "delete_selected", "_selected_action": [entry.pk], "post": "yes"})

        # then both are refused, and the changelist has no delete action
        assert (deleted.status_code, edited.status_code) == (403, 403)
        assert messages_of(client.get(bulk.url)) == ["No action selected."]
    entry.refresh_from_db()
    assert (entry.value, entry.reason, entry.expires_at) == ("cus_1", "fraud", None)
    assert BlocklistEntry.objects.count() == 1


def test_one_click_blocks_from_a_payment_page_create_normalized_entries(storefront, known_rules, agent):
    # given a payment with an e-mail, an IP, a customer and a card
    response = post_payment(
        storefront,
        customer_id="cus_fraud",
        customer_email="Mallory@Example.com",
        customer_ip="203.0.113.7",
        payment_method="pm_card_visa",
        confirm=True,
    )
    payment = storefront.user.payments.get(public_id=response.json()["id"])
    client = logged_in(agent)

    # when the agent opens the payment page
    page = client.get(f"/admin/payments/payment/{payment.pk}/change/").content.decode()

    # then it offers the four blocks
    for kind, label in (
        ("email", "Block e-mail"),
        ("ip", "Block IP"),
        ("customer", "Block customer"),
        ("card_fingerprint", "Block card"),
    ):
        assert f'<a href="{from_payment(payment, kind)}" id="block-{kind}-link">{label}</a>' in page

    # when they confirm each one with a reason
    for kind in ("email", "ip", "customer", "card_fingerprint"):
        confirm_page = client.get(from_payment(payment, kind))
        assert confirm_page.status_code == 200
        done = client.post(from_payment(payment, kind), {"reason": "Confirmed fraud"}, follow=True)
        assert done.redirect_chain[-1][0] == f"/admin/payments/payment/{payment.pk}/change/"

    # then the entries hold the payment's values, normalized, the customer at the payment's API client
    fingerprint = SimulatorGateway().card_fingerprint(payment_method="pm_card_visa")
    assert fingerprint.startswith("fp_sim_")
    assert list(BlocklistEntry.objects.order_by("id").values_list("kind", "value", "client__username")) == [
        ("email", "mallory@example.com", None),
        ("ip", "203.0.113.7/32", None),
        ("customer", "cus_fraud", "storefront-a"),
        ("card_fingerprint", fingerprint, None),
    ]
    assert list(StaffAction.objects.values_list("action", "reason")) == [("blocklist_add", "Confirmed fraud")] * 4
    # and the next payment with that card is blocked
    blocked = post_payment(storefront, customer_id="cus_other", payment_method="pm_card_visa", confirm=True)
    assert blocked.status_code == 402


def test_the_confirm_page_shows_the_value_and_the_scope(storefront, known_rules, agent):
    response = post_payment(storefront, customer_id="cus_scope", payment_method="pm_card_visa", confirm=True)
    payment = storefront.user.payments.get(public_id=response.json()["id"])

    page = logged_in(agent).get(from_payment(payment, "customer")).content.decode()

    assert '<td class="block-value"><code>cus_scope</code></td>' in page
    assert '<td class="block-scope">customers of storefront-a</td>' in page


def test_blocking_a_card_the_gateway_has_no_fingerprint_for_says_so(storefront, known_rules, agent):
    # given a payment whose method the gateway gives no fingerprint for (not confirmed yet)
    response = post_payment(storefront, customer_id="cus_unknown_card", payment_method="pm_card_unknown")
    payment = storefront.user.payments.get(public_id=response.json()["id"])

    # when the agent asks to block its card
    done = logged_in(agent).get(from_payment(payment, "card_fingerprint"), follow=True)

    # then they are told why, on the payment page, and nothing is added
    assert messages_of(done) == ["The gateway gives no fingerprint for pm_card_unknown: the card cannot be blocked."]
    assert done.redirect_chain[-1][0] == f"/admin/payments/payment/{payment.pk}/change/"
    assert BlocklistEntry.objects.count() == 0


def test_one_click_block_of_a_value_already_blocked_is_refused(storefront, known_rules, agent):
    response = post_payment(storefront, customer_id="cus_twice", customer_ip="198.51.100.9")
    payment = storefront.user.payments.get(public_id=response.json()["id"])
    blocklist_add(kind="ip", value="198.51.100.9", reason="earlier", actor=agent)

    again = logged_in(agent).post(from_payment(payment, "ip"), {"reason": "again"})

    assert again.status_code == 200
    assert again.context["form"].non_field_errors() == ["198.51.100.9/32 is already on the blocklist."]
    assert BlocklistEntry.objects.count() == 1


def test_an_auditor_gets_no_block_buttons_and_403(storefront, known_rules, auditor):
    response = post_payment(storefront, customer_id="cus_auditor", customer_email="a@example.com")
    payment = storefront.user.payments.get(public_id=response.json()["id"])
    client = logged_in(auditor)

    page = client.get(f"/admin/payments/payment/{payment.pk}/change/").content.decode()

    assert "block-email-link" not in page
    assert client.post(from_payment(payment, "email"), {"reason": "x"}).status_code == 403
    assert BlocklistEntry.objects.count() == 0


def test_an_expired_entry_can_be_added_again(agent):
    blocklist_add(
        kind="email",
        value="back@example.com",
        reason="old",
        actor=agent,
        expires_at=timezone.now() - timedelta(seconds=1),
    )

    response = logged_in(agent).post(ADD, {"kind": "email", "value": "back@example.com", "reason": "Again"})

    assert response.status_code == 302
    assert BlocklistEntry.objects.filter(value="back@example.com").count() == 2
