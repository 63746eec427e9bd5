"""The catalog: `sync_prices` mirrors the gateway's prices (upsert), the API lists them active first."""

from io import StringIO

import pytest
from django.core.management import call_command

from subscriptions.models import Price

pytestmark = pytest.mark.django_db


def test_sync_prices_mirrors_the_simulators_catalog_once(storefront):
    out = StringIO()
    call_command("sync_prices", stdout=out)
    assert "4 prices at the gateway, 4 new or changed here." in out.getvalue()
    call_command("sync_prices", stdout=out)
    assert "4 prices at the gateway, 0 new or changed here." in out.getvalue()
    assert Price.objects.count() == 4

    response = storefront.get("/api/v1/prices/")
    assert response.status_code == 200
    shown = {price["id"]: price for price in response.json()["results"]}
    assert shown["price_basic_monthly"] == {
        "id": "price_basic_monthly",
        "object": "price",
        "product": {"id": "prod_basic", "name": "Basic"},
        "unit_amount": 900,
        "currency": "usd",
        "recurring": {"interval": "month", "interval_count": 1},
        "trial_period_days": None,
        "active": True,
    }
    assert shown["price_jpy_monthly"]["unit_amount"] == 1000
    assert shown["price_jpy_monthly"]["currency"] == "jpy"
    assert shown["price_pro_yearly"]["recurring"] == {"interval": "year", "interval_count": 1}


def test_prices_list_active_first_and_retrieve(storefront, prices):
    Price.objects.filter(reference="price_pro_monthly").update(active=False)
    results = storefront.get("/api/v1/prices/").json()["results"]
    assert [price["active"] for price in results] == [True, True, True, False]
    assert results[-1]["id"] == "price_pro_monthly"
    assert storefront.get("/api/v1/prices/price_pro_yearly/").json()["unit_amount"] == 29000
    missing = storefront.get("/api/v1/prices/price_nope/")
    assert missing.status_code == 404
    assert missing.json()["error"]["code"] == "resource_missing"
    assert storefront.get("/api/v1/prices/?active=true").status_code == 400


def test_prices_need_an_api_client(anon, prices):
    assert anon.get("/api/v1/prices/").status_code == 401


def test_a_price_not_mirrored_yet_is_synced_on_first_use(storefront, tasks_inline):
    assert not Price.objects.exists()
    response = storefront.post(
        "/api/v1/subscriptions/",
        {"customer_id": "cus_9", "price": "price_pro_yearly", "payment_method": "pm_card_visa"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="lazy-sync-1",
    )
    assert response.status_code == 201, response.json()
    assert response.json()["price"] == "price_pro_yearly"
    assert Price.objects.count() == 4
    unknown = storefront.post(
        "/api/v1/subscriptions/",
        {"customer_id": "cus_9", "price": "price_nope"},
        format="json",
        HTTP_IDEMPOTENCY_KEY="lazy-sync-2",
    )
    assert unknown.status_code == 400
    assert unknown.json()["error"]["param"] == "price"
