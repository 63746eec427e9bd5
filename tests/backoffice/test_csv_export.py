"""CSV export of the payment and refund changelists: streamed, filtered like the changelist, audited."""

import csv
import io

import pytest
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME

from audit.models import StaffAction
from refunds.models import Refund
from refunds.services import refund_create
from tests.audit.conftest import logged_in

pytestmark = pytest.mark.django_db

PAYMENT_HEADER = [
    "id",
    "created_at",
    "status",
    "amount_minor",
    "amount",
    "currency",
    "refunded_minor",
    "refunded",
    "customer_id",
    "order_id",
    "gateway",
    "gateway_reference",
]


def _rows(response) -> list[list[str]]:
    body = b"".join(response.streaming_content).decode()
    return list(csv.reader(io.StringIO(body)))


@pytest.fixture
def three(captured):
    return {
        "usd": captured(123_456, "usd", order_id="ord_usd"),
        "jpy": captured(500, "jpy", order_id="ord_jpy"),
        "kwd": captured(1_500, "kwd", order_id="ord_kwd"),
    }


def test_payment_export_streams_every_row_with_amounts_formatted_per_currency(agent, three):
    # when an agent exports the unfiltered payment changelist
    response = logged_in(agent).get("/admin/payments/payment/export-csv/")

    # then the CSV is streamed, newest first, minor units and major units per currency, no card data
    assert response.status_code == 200
    assert response.streaming is True
    assert response["Content-Type"] == "text/csv"
    assert response["Content-Disposition"] == 'attachment; filename="payments.csv"'
    rows = _rows(response)
    assert rows[0] == PAYMENT_HEADER
    assert [row[0] for row in rows[1:]] == [three["kwd"].public_id, three["jpy"].public_id, three["usd"].public_id]
    by_id = {row[0]: row for row in rows[1:]}
    usd, jpy, kwd = (three[code] for code in ("usd", "jpy", "kwd"))
    assert by_id[usd.public_id] == [
        usd.public_id,
        usd.created_at.isoformat(),
        "succeeded",
        "123456",
        "1,234.56",
        "usd",
        "0",
        "0.00",
        "cus_audit",
        "ord_usd",
        usd.gateway,
        usd.gateway_reference,
    ]
    assert by_id[jpy.public_id][2:8] == ["succeeded", "500", "500", "jpy", "0", "0"]
    assert by_id[kwd.public_id][2:8] == ["succeeded", "1500", "1.500", "kwd", "0", "0.000"]


def test_payment_export_keeps_the_changelist_filters_and_records_them(agent, three):
    # when the agent exports the changelist filtered on JPY
    response = logged_in(agent).get("/admin/payments/payment/export-csv/?currency=jpy")

    # then only the JPY payment is exported, and the export is audited with its filters
    rows = _rows(response)
    assert [row[0] for row in rows[1:]] == [three["jpy"].public_id]
    action = StaffAction.objects.get()
    assert (action.actor, action.action, action.object_type, action.object_id) == (
        agent,
        "export_csv",
        "payment",
        "-",
    )
    assert action.after == {"filters": {"currency": "jpy"}}


def test_payment_export_search_respects_the_search_box(agent, three):
    response = logged_in(agent).get(f"/admin/payments/payment/export-csv/?q={three['kwd'].public_id}")

    assert [row[0] for row in _rows(response)[1:]] == [three["kwd"].public_id]


def test_payment_export_action_exports_the_selected_rows(agent, three):
    # when the agent selects two payments and runs the export action
    selected = [three["usd"].pk, three["kwd"].pk]
    response = logged_in(agent).post(
        "/admin/payments/payment/", {"action": "export_csv", ACTION_CHECKBOX_NAME: selected, "index": "0"}
    )

    # then exactly those two are streamed, and the staff action counts them
    assert response.streaming is True
    assert [row[0] for row in _rows(response)[1:]] == [three["kwd"].public_id, three["usd"].public_id]
    assert StaffAction.objects.get().after == {"filters": {}, "rows": 2}


def test_payment_changelist_links_to_the_export_with_its_filters(agent, three):
    response = logged_in(agent).get("/admin/payments/payment/?currency=usd")

    assert 'href="/admin/payments/payment/export-csv/?currency=usd" id="export-csv-link"' in (response.content.decode())


def test_refund_export_streams_refunds_with_their_payment(agent, three):
    # given a partial refund of the KWD payment
    refund = refund_create(payment_id=three["kwd"].pk, requested_by=agent, amount=250)

    # when the agent exports the refund changelist filtered on pending refunds
    response = logged_in(agent).get("/admin/refunds/refund/export-csv/?status__exact=pending")

    # then the refund is exported in minor and major units, with its payment, and the export is audited
    assert response.streaming is True
    rows = _rows(response)
    assert rows == [
        [
            "id",
            "created_at",
            "status",
            "amount_minor",
            "amount",
            "currency",
            "reason",
            "payment_id",
            "customer_id",
            "order_id",
            "payment_refunded_minor",
            "needs_attention",
            "attempts",
        ],
        [
            refund.public_id,
            Refund.objects.get().created_at.isoformat(),
            "pending",
            "250",
            "0.250",
            "kwd",
            "",
            three["kwd"].public_id,
            "cus_audit",
            "ord_kwd",
            "0",
            "False",
            "0",
        ],
    ]
    action = StaffAction.objects.get()
    assert (action.action, action.object_type, action.after) == (
        "export_csv",
        "refund",
        {"filters": {"status__exact": "pending"}},
    )


def test_export_cells_that_look_like_formulas_are_neutralised(agent, captured):
    payment = captured(1000, "usd", order_id="=HYPERLINK(1)")

    rows = _rows(logged_in(agent).get("/admin/payments/payment/export-csv/"))

    assert rows[1][0] == payment.public_id
    assert rows[1][9] == "'=HYPERLINK(1)"


def test_export_needs_the_view_permission(make_staff, three):
    nobody = make_staff("staff-without-group", "finance_agent")
    nobody.groups.clear()

    response = logged_in(nobody).get("/admin/payments/payment/export-csv/")

    assert response.status_code == 403
    assert not StaffAction.objects.exists()
