"""The payments back office: a read-only, searchable changelist with money formatted per currency."""

import re

import pytest

from events.models import Event
from payments.models import Payment
from payments.services import payment_create
from tests.payments.factories import DeadLetterFactory

pytestmark = pytest.mark.django_db

CHANGELIST = "/admin/payments/payment/"


@pytest.fixture
def payments(shop) -> dict[str, Payment]:
    """Three payments made through the service with the simulator: one per kind of currency."""
    return {
        "usd": payment_create(
            client=shop,
            amount=2000,
            currency="usd",
            customer_id="cus_usd",
            order_id="ord_usd",
            customer_email="usd@example.com",
            payment_method="pm_card_visa",
            confirm=True,
        ),
        "jpy": payment_create(
            client=shop,
            amount=500,
            currency="jpy",
            customer_id="cus_jpy",
            order_id="ord_jpy",
            customer_email="jpy@example.com",
            payment_method="pm_card_visa",
            capture_method="manual",
            confirm=True,
        ),
        "kwd": payment_create(
            client=shop,
            amount=1500,
            currency="kwd",
            customer_id="cus_kwd",
            order_id="ord_kwd",
            customer_email="kwd@example.com",
        ),
    }


def _row(html: str, public_id: str) -> str:
    """The changelist table row of one payment."""
    rows = [row for row in re.findall(r"<tr>.*?</tr>", html, flags=re.S) if f">{public_id}</a>" in row]
    assert len(rows) == 1, f"{public_id} is in {len(rows)} rows"
    return rows[0]


def _listed(response) -> list[str]:
    return [payment.public_id for payment in response.context["cl"].result_list]


def test_changelist_formats_money_per_currency(admin_client, payments):
    response = admin_client.get(CHANGELIST)

    assert response.status_code == 200
    html = response.content.decode()
    assert '<td class="field-amount_display">$20.00</td>' in _row(html, payments["usd"].public_id)
    assert '<td class="field-refunded_display">$0.00</td>' in _row(html, payments["usd"].public_id)
    assert '<td class="field-amount_display">¥500</td>' in _row(html, payments["jpy"].public_id)
    assert '<td class="field-refunded_display">¥0</td>' in _row(html, payments["jpy"].public_id)
    assert '<td class="field-amount_display">1.500 KD</td>' in _row(html, payments["kwd"].public_id)
    assert '<td class="field-refunded_display">0.000 KD</td>' in _row(html, payments["kwd"].public_id)
    assert _listed(response) == [payments["kwd"].public_id, payments["jpy"].public_id, payments["usd"].public_id]


@pytest.mark.parametrize(
    ("currency", "query"),
    [
        ("usd", lambda p: p.public_id),
        ("jpy", lambda p: p.gateway_reference),
        ("kwd", lambda p: p.customer_id),
        ("usd", lambda p: p.order_id),
        ("jpy", lambda p: p.customer_email),
        ("kwd", lambda p: p.customer_email.upper()),
    ],
    ids=["public_id", "gateway_reference", "customer", "order", "email", "email_any_case"],
)
def test_search_finds_exactly_the_matching_payment(admin_client, payments, currency, query):
    wanted = payments[currency]

    response = admin_client.get(CHANGELIST, {"q": query(wanted)})

    assert response.status_code == 200
    assert _listed(response) == [wanted.public_id]


def test_search_is_exact_not_a_substring_match(admin_client, payments):
    response = admin_client.get(CHANGELIST, {"q": "cus_"})

    assert response.status_code == 200
    assert _listed(response) == []


def test_status_filter_lists_only_that_status(admin_client, payments):
    succeeded = admin_client.get(CHANGELIST, {"status__exact": "succeeded"})
    authorized = admin_client.get(CHANGELIST, {"status__exact": "requires_capture"})
    waiting = admin_client.get(CHANGELIST, {"status__exact": "requires_payment_method"})
    canceled = admin_client.get(CHANGELIST, {"status__exact": "canceled"})

    assert _listed(succeeded) == [payments["usd"].public_id]
    assert _listed(authorized) == [payments["jpy"].public_id]
    assert _listed(waiting) == [payments["kwd"].public_id]
    assert _listed(canceled) == []


def test_change_page_shows_money_status_history_and_events(admin_client, payments):
    payment = payments["usd"]
    events = list(Event.objects.filter(subject_id=payment.public_id).order_by("sequence"))

    response = admin_client.get(f"{CHANGELIST}{payment.pk}/change/")

    assert response.status_code == 200
    html = response.content.decode()
    assert re.search(r'<div class="readonly">\$20.00</div>', html)
    history_inline = response.context["inline_admin_formsets"][0]
    assert [(form.original.from_status, form.original.to_status, form.original.source) for form in history_inline] == [
        ("requires_confirmation", "succeeded", "api"),
        ("", "requires_confirmation", "api"),
    ]
    assert [event.public_id for event in response.context["payment_events"]] == [
        event.public_id for event in reversed(events)
    ]
    assert [event.type for event in events] == ["payment.initiated", "payment.captured"]
    for event in events:
        assert event.public_id in html
    assert "Payment status changes" in html
    assert 'name="_save"' not in html


def test_add_is_refused(admin_client, payments):
    get = admin_client.get(f"{CHANGELIST}add/")
    post = admin_client.post(f"{CHANGELIST}add/", {"amount": "100", "currency": "usd", "customer_id": "cus_x"})

    assert get.status_code == 403
    assert post.status_code == 403
    assert Payment.objects.count() == 3


def test_post_to_change_page_changes_nothing(admin_client, payments):
    payment = payments["kwd"]

    response = admin_client.post(
        f"{CHANGELIST}{payment.pk}/change/",
        {"customer_id": "cus_hacked", "capture_method": "manual", "amount": "1", "_save": "Save"},
    )

    assert response.status_code == 403
    stored = Payment.objects.get(pk=payment.pk)
    assert (stored.customer_id, stored.capture_method, stored.amount, stored.status) == (
        "cus_kwd",
        "automatic",
        1500,
        "requires_payment_method",
    )


def test_delete_is_refused(admin_client, payments):
    payment = payments["usd"]

    get = admin_client.get(f"{CHANGELIST}{payment.pk}/delete/")
    post = admin_client.post(f"{CHANGELIST}{payment.pk}/delete/", {"post": "yes"})
    bulk = admin_client.post(CHANGELIST, {"action": "delete_selected", "_selected_action": [payment.pk], "post": "yes"})

    assert get.status_code == 403
    assert post.status_code == 403
    assert bulk.status_code in {200, 302}
    assert Payment.objects.filter(pk=payment.pk).exists()
    assert Payment.objects.count() == 3


def test_api_clients_cannot_open_the_admin(client, payments, shop):
    client.force_login(shop)

    response = client.get(CHANGELIST)

    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


@pytest.mark.django_db
def test_dead_letters_and_flagged_payments_are_visible_to_staff(admin_client):
    letter = DeadLetterFactory(source="order.placed", body="{bad", error="body is not JSON")

    listing = admin_client.get("/admin/payments/deadletter/").content.decode()
    detail = admin_client.get(f"/admin/payments/deadletter/{letter.pk}/change/").content.decode()
    flagged = admin_client.get("/admin/payments/payment/?needs_attention__exact=1")

    assert "body is not JSON" in listing
    assert "{bad" in detail
    assert flagged.status_code == 200
