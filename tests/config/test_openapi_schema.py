"""The served OpenAPI schema tells the truth that docs/api.md tells: codes, envelope, bodies, headers, bounds.

`make fuzz` (tests/fuzz/run.py) holds the live service to this schema; these tests hold the schema to the
contract, so that neither can drift quietly.
"""

import re

import pytest
from django.test import Client

from payments.money import CURRENCIES, MAX_AMOUNT
from tests.config.test_openapi_contract import API_DOC

POSTS_WITH_REQUIRED_KEY = {
    ("post", "/api/v1/payments/"),
    ("post", "/api/v1/payments/{payment_id}/refunds/"),
    ("post", "/api/v1/subscriptions/"),
}
WEBHOOK = "/api/v1/webhooks/stripe/"
TOKEN_PATHS = {"/api/v1/auth/token/", "/api/v1/auth/token/refresh/"}


@pytest.fixture(scope="module")
def schema() -> dict:
    response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


def operations(schema: dict):
    for path, item in schema["paths"].items():
        for method, operation in item.items():
            if method in {"get", "post", "put", "patch", "delete"}:
                yield method, path, operation


def resolve(schema: dict, node: dict) -> dict:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[1]]
    return node


def body_schema(schema: dict, path: str) -> dict:
    return resolve(schema, schema["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"])


def documented_error_table() -> dict[int, set[str]]:
    """docs/api.md "Errors": HTTP status -> error types."""
    table: dict[int, set[str]] = {}
    for status, error_type in re.findall(r"^  \| (\d{3}) \| `([a-z_]+)` \|", API_DOC.read_text(), re.MULTILINE):
        table.setdefault(int(status), set()).add(error_type)
    return table


def test_every_error_response_has_the_envelope(schema):
    for method, path, operation in operations(schema):
        for status, response in operation["responses"].items():
            if int(status) >= 400:
                content = response.get("content", {}).get("application/json", {}).get("schema", {})
                assert content == {"$ref": "#/components/schemas/Error"}, (method, path, status)
    envelope = schema["components"]["schemas"]["Error"]
    assert envelope["required"] == ["error"]
    assert envelope["properties"]["error"]["required"] == ["type", "code", "message"]
    documented_types = set().union(*documented_error_table().values())
    assert documented_types <= set(envelope["properties"]["error"]["properties"]["type"]["enum"])


def test_every_operation_lists_the_errors_it_can_answer(schema):
    for method, path, operation in operations(schema):
        codes = {int(status) for status in operation["responses"]}
        if path == WEBHOOK:
            assert codes == {200, 400, 503}
            continue
        assert {400, 429, 503} <= codes, (method, path)  # bad input, rate limits, a database outage
        assert 401 in codes, (method, path)
        if path not in TOKEN_PATHS:
            assert 403 in codes, (method, path)
        # a customer's writes make the customer when it is not there yet (the contract): never a 404
        makes_customer = method in {"put", "post"} and path.startswith("/api/v1/customers/{customer_id}/")
        if "{" in path and not makes_customer:
            assert 404 in codes, (method, path)
        if method == "post" and path not in TOKEN_PATHS:
            assert {409, 415, 422, 502} <= codes, (method, path)  # state, JSON only, key reused, gateway
    responses = {
        path: {int(code) for code in item["post"]["responses"]}
        for path, item in schema["paths"].items()
        if "post" in item
    }
    assert 402 in responses["/api/v1/payments/"]  # confirm: true and a decline
    assert 402 in responses["/api/v1/payments/{id}/confirm/"]


def test_429_and_503_carry_retry_after(schema):
    for method, path, operation in operations(schema):
        if path == WEBHOOK:
            continue
        headers = operation["responses"]["429"].get("headers", {})
        assert headers.get("Retry-After", {}).get("required") is True, (method, path)


def test_the_idempotency_key_is_required_on_creates_and_optional_on_other_posts(schema):
    for method, path, operation in operations(schema):
        if method != "post" or path in TOKEN_PATHS or path == WEBHOOK:
            continue
        (header,) = [p for p in operation["parameters"] if p["in"] == "header" and p["name"] == "Idempotency-Key"]
        assert header.get("required", False) is ((method, path) in POSTS_WITH_REQUIRED_KEY), path
        assert (header["schema"]["minLength"], header["schema"]["maxLength"]) == (1, 255)
        pattern = re.compile(header["schema"]["pattern"])
        assert [bool(pattern.search(key)) for key in ("order-1001 retry 2", "k", "é", "tab\there", " padded")] == [
            True,
            True,
            False,
            False,
            False,
        ]


def test_the_create_body_bounds_the_amount_per_currency(schema):
    create = body_schema(schema, "/api/v1/payments/")
    variants = create["oneOf"]
    for code, currency in CURRENCIES.items():
        matching = [v for v in variants if re.search(v["properties"]["currency"]["pattern"], code.upper())]
        if not currency.supported:
            assert matching == [], code
            continue
        assert len(matching) == 4, code  # a token or a saved pmt_..., without and with confirm: true
        for variant in matching:
            amount = variant["properties"]["amount"]
            assert amount["type"] == "integer"
            assert amount["maximum"] == MAX_AMOUNT
            assert amount["minimum"] == max(currency.minimum or 1, currency.step)
            assert amount.get("multipleOf", 1) == currency.step
            assert set(variant["required"]) >= {"amount", "currency", "customer_id"}
            assert variant["additionalProperties"] is False
            assert variant["properties"]["customer_id"]["maxLength"] == 255
            assert variant["properties"]["metadata"]["maxProperties"] == 50
    confirming = [v for v in variants if v["properties"]["confirm"]["enum"] == [True]]
    assert confirming
    assert all("payment_method" in v["required"] for v in confirming)


def test_actions_have_their_own_bodies(schema):
    confirm = body_schema(schema, "/api/v1/payments/{id}/confirm/")
    capture = body_schema(schema, "/api/v1/payments/{id}/capture/")
    cancel = body_schema(schema, "/api/v1/payments/{id}/cancel/")
    refund = body_schema(schema, "/api/v1/payments/{payment_id}/refunds/")
    assert set(confirm["properties"]) == {"payment_method"}
    assert set(capture["properties"]) == {"amount"}
    assert capture["properties"]["amount"]["minimum"] == 1
    assert set(cancel["properties"]["reason"]["enum"]) == {
        "requested_by_customer",
        "duplicate",
        "fraudulent",
        "abandoned",
    }
    assert set(refund["properties"]) == {"amount", "reason", "metadata"}
    for body in (confirm, capture, cancel, refund):
        assert body["additionalProperties"] is False
    for path in ("/api/v1/payments/{id}/confirm/", "/api/v1/payments/{id}/capture/", "/api/v1/payments/{id}/cancel/"):
        assert schema["paths"][path]["post"]["requestBody"]["required"] is False  # an empty body is {}
    assert schema["paths"]["/api/v1/payments/"]["post"]["requestBody"]["required"] is True


def test_lists_document_pagination(schema):
    for path in ("/api/v1/payments/", "/api/v1/refunds/", "/api/v1/payments/{payment_id}/refunds/", "/api/v1/events/"):
        operation = schema["paths"][path]["get"]
        names = {p["name"]: p for p in operation["parameters"] if p["in"] == "query"}
        assert names["page_size"]["schema"] == {"type": "integer", "minimum": 1, "maximum": 100}, path
        assert ("cursor" in names) != (path == "/api/v1/events/"), path  # the feed resumes with after=
        page = resolve(schema, operation["responses"]["200"]["content"]["application/json"]["schema"])
        assert page["required"] == ["next", "previous", "results"], path


def test_the_webhook_is_documented_without_jwt(schema):
    operation = schema["paths"][WEBHOOK]["post"]
    assert operation["security"] == []
    assert [p["name"] for p in operation["parameters"] if p["in"] == "header" and p["required"]] == ["Stripe-Signature"]
    received = operation["responses"]["200"]["content"]["application/json"]["schema"]
    assert received["required"] == ["received"]


def test_the_payment_flow_is_linked(schema):
    by_id = {operation["operationId"]: operation for _, _, operation in operations(schema)}

    def targets(operation_id: str, status: str) -> set[str]:
        links = by_id[operation_id]["responses"][status].get("links", {})
        return {link["operationId"] for link in links.values()}

    assert "payments_confirm_create" in targets("payments_create", "201")
    assert "payments_capture_create" in targets("payments_confirm_create", "200")
    assert "payments_refunds_create" in targets("payments_capture_create", "200")
    assert "refunds_retrieve" in targets("payments_refunds_create", "201")


def test_the_schema_matches_a_real_payment_and_refund(schema, create_payment, storefront):
    """The Payment and Refund components name every field the API renders, with the right nullability."""
    payment = create_payment(payment_method="pm_card_visa", confirm=True).json()
    refund = storefront.post(
        f"/api/v1/payments/{payment['id']}/refunds/", {"amount": 500}, format="json", HTTP_IDEMPOTENCY_KEY="r-1"
    ).json()
    for name, rendered in (("Payment", payment), ("Refund", refund)):
        component = schema["components"]["schemas"][name]
        assert set(component["required"]) == set(rendered), name
        for field, value in rendered.items():
            assert value is not None or component["properties"][field].get("nullable") is True, (name, field)
