"""product.* and price.* webhooks: the mirrored catalog follows the gateway's, in any order, once per delivery."""

import itertools
from typing import Any

import pytest

from subscriptions.models import Price, Product
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db
_ids = itertools.count(1)


def _event(event_type: str, obj: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"evt_catalog_{next(_ids)}",
        "object": "event",
        "type": event_type,
        "created": 1_790_000_000,
        "api_version": "2024-06-20",
        "livemode": False,
        "data": {"object": obj},
    }


def _product(name: str = "Coffee box", **changes: Any) -> dict[str, Any]:
    return {"id": "prod_coffee", "object": "product", "name": name, "active": True, **changes}


def _price(**changes: Any) -> dict[str, Any]:
    return {
        "id": "price_coffee_monthly",
        "object": "price",
        "product": "prod_coffee",
        "unit_amount": 1250,
        "currency": "eur",
        "type": "recurring",
        "recurring": {"interval": "month", "interval_count": 1, "trial_period_days": 14},
        "active": True,
        **changes,
    }


def _outcome(event: dict[str, Any]) -> str:
    return WebhookEvent.objects.get(stripe_id=event["id"]).status


def test_a_product_then_its_price_are_mirrored_and_served(deliver, storefront):
    deliver(_event("product.created", _product()))
    deliver(_event("price.created", _price()))

    price = Price.objects.select_related("product").get(reference="price_coffee_monthly")
    assert (price.product.name, price.unit_amount, price.currency, price.interval, price.trial_period_days) == (
        "Coffee box",
        1250,
        "eur",
        "month",
        14,
    )
    body = storefront.get("/api/v1/prices/price_coffee_monthly/").json()
    assert body["product"] == {"id": "prod_coffee", "name": "Coffee box"}
    assert body["unit_amount"] == 1250
    assert body["active"] is True


def test_a_price_before_its_product_is_named_when_the_product_comes(deliver):
    deliver(_event("price.created", _price()))
    assert Product.objects.get(reference="prod_coffee").name == "prod_coffee"

    deliver(_event("product.created", _product()))
    deliver(_event("product.updated", _product(name="Coffee box, renamed")))

    assert Price.objects.get(reference="price_coffee_monthly").product.name == "Coffee box, renamed"
    assert Product.objects.filter(reference="prod_coffee").count() == 1


def test_a_price_archived_or_deleted_is_inactive_and_cannot_be_subscribed(deliver, subscribe):
    deliver(_event("product.created", _product()))
    deliver(_event("price.created", _price()))
    deliver(_event("price.updated", _price(active=False)))
    assert Price.objects.get(reference="price_coffee_monthly").active is False

    response = subscribe(price="price_coffee_monthly")
    assert response.status_code == 400
    assert response.json()["error"]["param"] == "price"

    deliver(_event("price.updated", _price(active=True)))
    assert Price.objects.get(reference="price_coffee_monthly").active is True
    deliver(_event("price.deleted", _price()))
    assert Price.objects.get(reference="price_coffee_monthly").active is False


def test_a_deleted_product_ends_its_prices(deliver):
    deliver(_event("product.created", _product()))
    deliver(_event("price.created", _price()))
    deliver(_event("product.deleted", _product()))
    assert Price.objects.get(reference="price_coffee_monthly").active is False


def test_the_same_delivery_twice_is_applied_once_and_one_off_prices_are_not_ours(deliver):
    created = _event("price.created", _price())
    deliver(created)
    deliver(created)
    assert Price.objects.filter(reference="price_coffee_monthly").count() == 1
    assert WebhookEvent.objects.filter(stripe_id=created["id"]).count() == 1

    same = _event("price.updated", _price())
    deliver(same)
    assert _outcome(same) == "ignored"

    one_off = _event("price.created", _price(id="price_one_off", type="one_time", recurring=None))
    deliver(one_off)
    assert not Price.objects.filter(reference="price_one_off").exists()
    assert _outcome(one_off) == "ignored"
