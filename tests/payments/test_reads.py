"""The reads served from rows (payments/reads.py, refunds/reads.py) answer byte for byte what the ORM,
DRF's cursor pagination and the model renderers answer, in constant statements whatever the rows."""

import base64
from datetime import UTC, datetime, timedelta
from urllib.parse import urlencode

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.renderers import JSONRenderer
from rest_framework.request import Request
from rest_framework.test import APIRequestFactory

from config.api.pagination import CursorPagination
from payments.api import PaymentFilter
from payments.models import Payment, ReviewState
from payments.rendering import render_payment
from refunds.api import RefundFilter
from refunds.models import Refund
from refunds.rendering import render_refund
from refunds.selectors import refund_queryset_for
from tests.payments.factories import PaymentFactory
from tests.refunds.factories import RefundFactory

pytestmark = pytest.mark.django_db

NOON = datetime(2026, 11, 22, 10, 0, 0, tzinfo=UTC)


def _statements(call) -> tuple[object, int]:
    with CaptureQueriesContext(connection) as queries:
        response = call()
    return response, sum(1 for q in queries if not q["sql"].startswith(("SAVEPOINT", "RELEASE SAVEPOINT")))


def _orm_page(url: str, queryset, render, filterset_class=None) -> bytes:
    """What the API answered before reads came from rows: the ORM, django-filter, DRF's cursor
    pagination of the API and the model renderer, through DRF's JSON renderer."""
    request = Request(APIRequestFactory().get(url))
    if filterset_class is not None:
        filterset = filterset_class(request.query_params, queryset=queryset)
        assert filterset.is_valid()
        queryset = filterset.qs
    paginator = CursorPagination()
    page = paginator.paginate_queryset(queryset, request)
    return JSONRenderer().render(paginator.get_paginated_response([render(obj) for obj in page]).data)


def _walk(client, first_url: str, expected) -> list[str]:
    """Follow `next` to the end, then `previous` back to the start; every page as the ORM renders it."""
    seen, url = [], first_url
    while url:
        response = client.get(url)
        assert response.status_code == 200
        assert response.content == expected(url), url
        body = response.json()
        seen.extend(item["id"] for item in body["results"])
        last, url = url, body["next"]
    url = client.get(last).json()["previous"]
    while url:
        response = client.get(url)
        assert response.content == expected(url), url
        url = response.json()["previous"]
    return seen


def test_a_payment_renders_every_field_in_the_contracts_formats(storefront):
    payment = PaymentFactory(
        client=storefront.user,
        held=True,
        amount=1500,
        currency="kwd",
        customer_id="cus_1",
        order_id="ord_1",
        description="Café, “quoted”, a line\nbreak",
        metadata={"cart": "42", "note": "naïve\u2028sep"},
        client_secret="pi_1_secret_2",
        customer_email="a@example.com",
    )
    Payment.objects.filter(pk=payment.pk).update(created_at=NOON, updated_at=NOON + timedelta(microseconds=123456))

    response = storefront.get(f"/api/v1/payments/{payment.public_id}/")

    assert response.status_code == 200
    expected = {
        "id": payment.public_id,
        "object": "payment",
        "amount": 1500,
        "currency": "kwd",
        "status": "requires_capture",
        "capture_method": "manual",
        "amount_capturable": 1500,
        "amount_received": 0,
        "amount_refunded": 0,
        "amount_disputed": 0,
        "disputed": False,
        "customer_id": "cus_1",
        "order_id": "ord_1",
        "description": "Café, “quoted”, a line\nbreak",
        "metadata": {"cart": "42", "note": "naïve\u2028sep"},
        "payment_method": "pm_card_visa",
        "client_secret": "pi_1_secret_2",
        "gateway": "simulator",
        "gateway_reference": payment.gateway_reference,
        "failure_code": None,
        "failure_message": None,
        "cancellation_reason": None,
        "customer_email": "a@example.com",
        "risk": {"score": 60, "level": "elevated"},
        "review": {"state": ReviewState.PENDING, "reasons": ["first_seen_large_amount"]},
        "invoice": None,
        "created": "2026-11-22T10:00:00Z",
        "updated": "2026-11-22T10:00:00.123Z",
    }
    assert response.content == JSONRenderer().render(expected)
    assert b'"note":"na\xc3\xafve\\u2028sep"' in response.content  # UTF-8, U+2028 escaped, compact
    assert response.content == JSONRenderer().render(render_payment(Payment.objects.get(pk=payment.pk)))


def test_a_payment_without_risk_review_or_optional_fields_renders_nulls(finance):
    payment = PaymentFactory(failed=True)

    body = finance.get(f"/api/v1/payments/{payment.public_id}/").json()

    assert (body["risk"], body["review"], body["order_id"], body["description"]) == (None, None, None, None)
    assert (body["failure_code"], body["failure_message"]) == ("card_declined", "Your card was declined.")
    assert body["metadata"] == {}


def test_the_payment_list_pages_both_ways_exactly_as_drfs_cursor_pagination_over_the_orm(storefront, make_client):
    payments = PaymentFactory.create_batch(9, client=storefront.user, metadata={"n": "x"})
    PaymentFactory.create_batch(2, client=make_client("other-shop").user)  # never listed for this client
    # ties on created_at (the cursor's position) across page boundaries: the offset part of DRF's cursors
    Payment.objects.filter(pk__in=[p.pk for p in payments[:4]]).update(created_at=NOON)
    Payment.objects.filter(pk__in=[p.pk for p in payments[4:7]]).update(created_at=NOON + timedelta(seconds=1))
    ours = Payment.objects.filter(client=storefront.user)

    seen = _walk(storefront, "/api/v1/payments/?page_size=2", lambda url: _orm_page(url, ours, render_payment))

    assert sorted(seen) == sorted(p.public_id for p in payments)
    assert len(seen) == len(set(seen))


def test_filtered_lists_match_django_filter_over_the_orm(storefront):
    PaymentFactory.create_batch(3, client=storefront.user, customer_id="cus_a", succeeded=True)
    PaymentFactory.create_batch(2, client=storefront.user, customer_id="cus_a")
    PaymentFactory(client=storefront.user, customer_id="cus_b", order_id="ord_9", succeeded=True)
    ours = Payment.objects.filter(client=storefront.user)
    after = (Payment.objects.order_by("created_at")[1].created_at).isoformat()

    for query in (
        {"status": "succeeded", "page_size": 2},
        {"customer_id": "cus_a", "status": "requires_payment_method"},
        {"order_id": "ord_9"},
        {"created_gte": after, "page_size": 3},
        {"created_lt": after},
    ):
        url = f"/api/v1/payments/?{urlencode(query)}"
        _walk(storefront, url, lambda url: _orm_page(url, ours, render_payment, PaymentFilter))


def test_a_forged_cursor_position_is_refused_as_before(storefront):
    PaymentFactory(client=storefront.user)
    cursor = base64.b64encode(b"p=not-a-time").decode()

    response = storefront.get(f"/api/v1/payments/?cursor={cursor}")

    assert response.status_code == 400
    assert response.json()["error"]["code"] == "parameter_invalid"


@pytest.mark.parametrize("rows", [1, 100])
def test_payment_reads_cost_the_same_statements_for_1_and_100_rows(storefront, rows):
    payments = PaymentFactory.create_batch(rows, client=storefront.user)

    retrieved, retrieve_statements = _statements(lambda: storefront.get(f"/api/v1/payments/{payments[0].public_id}/"))
    listed, list_statements = _statements(lambda: storefront.get("/api/v1/payments/?page_size=100"))

    assert (retrieved.status_code, len(listed.json()["results"])) == (200, rows)
    assert (retrieve_statements, list_statements) == (2, 2)  # the JWT client, then one statement


# --- refunds --------------------------------------------------------------------------------------------
def test_a_refund_renders_as_the_model_renderer_does(storefront):
    refund = RefundFactory(
        payment__client=storefront.user, failed=True, reason="requested_by_customer", metadata={"ticket": "T-1"}
    )
    Refund.objects.filter(pk=refund.pk).update(created_at=NOON, updated_at=NOON + timedelta(milliseconds=5))

    response = storefront.get(f"/api/v1/refunds/{refund.public_id}/")

    assert response.status_code == 200
    assert response.content == JSONRenderer().render(
        render_refund(Refund.objects.select_related("payment").get(pk=refund.pk))
    )
    assert response.json()["payment"] == refund.payment.public_id
    assert response.json()["updated"] == "2026-11-22T10:00:00.005Z"


def test_another_storefronts_refund_is_404(make_client):
    refund = RefundFactory(payment__client=make_client("shop-one").user)

    response = make_client("shop-two").get(f"/api/v1/refunds/{refund.public_id}/")

    assert response.status_code == 404
    assert response.json()["error"]["code"] == "resource_missing"


def test_refund_lists_page_and_filter_exactly_as_the_orm(storefront, finance, make_client):
    payment = PaymentFactory(client=storefront.user, succeeded=True, amount=9000)
    refunds = RefundFactory.create_batch(5, payment=payment, amount=1000)
    RefundFactory.create_batch(2, payment=payment, amount=500, succeeded=True)
    RefundFactory(payment__client=make_client("other-shop").user)
    Refund.objects.filter(pk__in=[r.pk for r in refunds[:3]]).update(created_at=NOON)
    ours = refund_queryset_for(client=storefront.user)

    def expected(queryset, filterset_class=None):
        return lambda url: _orm_page(url, queryset, render_refund, filterset_class)

    listed = _walk(storefront, "/api/v1/refunds/?page_size=2", expected(ours, RefundFilter))
    _walk(storefront, "/api/v1/refunds/?status=succeeded&page_size=1", expected(ours, RefundFilter))
    _walk(finance, "/api/v1/refunds/?page_size=3", expected(refund_queryset_for(client=finance.user), RefundFilter))
    of_payment = _walk(
        storefront, f"/api/v1/payments/{payment.public_id}/refunds/?page_size=2", expected(ours.filter(payment=payment))
    )

    assert len(listed) == 7
    assert sorted(of_payment) == sorted(listed)


def test_refund_lists_cost_the_same_statements_for_1_and_30_rows(storefront):
    payment = PaymentFactory(client=storefront.user, succeeded=True, amount=9000)
    RefundFactory(payment=payment, amount=100)
    _, few = _statements(lambda: storefront.get("/api/v1/refunds/?page_size=100"))
    RefundFactory.create_batch(29, payment=payment, amount=100)
    response, many = _statements(lambda: storefront.get("/api/v1/refunds/?page_size=100"))
    of_payment, of_payment_statements = _statements(
        lambda: storefront.get(f"/api/v1/payments/{payment.public_id}/refunds/")
    )
    retrieved, retrieve_statements = _statements(
        lambda: storefront.get(f"/api/v1/refunds/{response.json()['results'][0]['id']}/")
    )

    assert (len(response.json()["results"]), len(of_payment.json()["results"]), retrieved.status_code) == (30, 20, 200)
    assert few == many == retrieve_statements == 2
    assert of_payment_statements == 3  # the client, the payment (404 unless visible), the page
