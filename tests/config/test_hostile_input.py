"""Input any client can send that the service cannot store or parse: a 400 in the envelope, never a 500 (issue #16).

And the other edges of `/api/`: a database outage is a 503 with `Retry-After`, CSRF and bad-Host refusals and
the error handlers answer in the envelope, responses are `no-store`, id-like fields refuse whitespace and
control characters. tests/config/test_hostile_http.py runs the same edges through gunicorn.
"""

import json
import socket
import sys

import pytest
from django.db import connection
from django.test import Client, RequestFactory
from rest_framework.test import APIClient

from config.api import views as api_views
from payments.models import Payment
from tests.conftest import new_key
from tests.payments.factories import PaymentFactory
from tests.webhooks.conftest import SECRET, sign
from webhooks.models import WebhookEvent

pytestmark = pytest.mark.django_db

DEEP = 3_000


def _error(response, status: int = 400, code: str = "parameter_invalid") -> dict:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code, body
    return body["error"]


def _post_raw(client: APIClient, path: str, text: str, **headers):
    return client.post(path, data=text.encode(), content_type="application/json", **headers)


@pytest.fixture
def payment(storefront) -> Payment:
    return PaymentFactory(client=storefront.user, succeeded=True, amount=2000)


# --- NUL in a path id or a query parameter ------------------------------------------------------
@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/api/v1/payments/%00/"),
        ("get", "/api/v1/payments/pay_%00x/events/"),
        ("get", "/api/v1/payments/%00/refunds/"),
        ("get", "/api/v1/refunds/%00/"),
        ("post", "/api/v1/payments/%00/confirm/"),
        ("post", "/api/v1/payments/%00/cancel/"),
    ],
)
def test_nul_in_a_path_id_is_400(storefront, method, path):
    error = _error(getattr(storefront, method)(path, format="json"))

    assert "\x00" not in error["message"]


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/api/v1/events/?after=p%00x", "after"),
        ("/api/v1/events/?payment=%00", "payment"),
        ("/api/v1/events/?type=payment.%00", "type"),
        ("/api/v1/payments/?status=%00", "status"),
        ("/api/v1/payments/?customer_id=cus%00", "customer_id"),
        ("/api/v1/payments/?order_id=%00", "order_id"),
        ("/api/v1/payments/?created_gte=%00", "created_gte"),
        ("/api/v1/refunds/?status=%00", "status"),
        ("/api/v1/payments/?page_size=1%00", "page_size"),
    ],
)
def test_nul_in_a_query_parameter_is_400_naming_it(finance, path, param):
    assert _error(finance.get(path))["param"] == param


def test_nul_in_a_query_parameter_name_is_400(finance):
    error = _error(finance.get("/api/v1/events/?a%00b=1"))

    assert "param" not in error


# --- query parameters as the schema states them (make fuzz's findings) ---------------------------
@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/api/v1/payments/?stauts=failed", "stauts"),
        ("/api/v1/payments/?=false", "query"),
        ("/api/v1/refunds/?page_size=5&=null", "query"),
        ("/api/v1/events/?payment_id=pay_x", "payment_id"),
        ("/api/v1/payments/pay_x/refunds/?status=failed", "status"),
    ],
)
def test_an_unknown_query_parameter_is_400_naming_it(finance, path, param):
    error = _error(finance.get(path))

    assert (error["param"], error["message"]) == (param, f"{param}: unknown parameter.")


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/api/v1/payments/?status=", "status"),
        ("/api/v1/payments/?created_lt=", "created_lt"),
        ("/api/v1/refunds/?cursor=", "cursor"),
        ("/api/v1/events/?after=", "after"),
        ("/api/v1/refunds/?page_size=0", "page_size"),
        ("/api/v1/payments/?page_size=abc", "page_size"),
        ("/api/v1/refunds/?page_size=101", "page_size"),
    ],
)
def test_an_empty_or_out_of_range_query_parameter_is_400_not_ignored(finance, path, param):
    """As on Stripe: leaving a filter out is leaving the parameter out; DRF would take page_size=0 for 20."""
    assert _error(finance.get(path))["param"] == param


@pytest.mark.parametrize(
    ("path", "param"),
    [
        ("/api/v1/payments/?customer_id=+", "customer_id"),
        ("/api/v1/payments/?order_id=%09ord", "order_id"),
        ("/api/v1/events/?payment=pay_x%20", "payment"),
        ("/api/v1/events/?type=%20payment.captured", "type"),
    ],
)
def test_an_id_filter_with_surrounding_whitespace_is_400_as_the_schema_says(finance, path, param):
    assert _error(finance.get(path))["param"] == param


def test_a_time_filter_takes_any_iso_offset_and_refuses_one_before_year_one(finance):
    """PostgreSQL refuses offsets beyond +-15:59, ISO 8601 does not: the filter compares in UTC."""
    early = PaymentFactory(client=finance.user)
    wide = finance.get("/api/v1/payments/", {"created_gte": "1000-01-01T20:00:00-20:00"})
    before_year_one = finance.get("/api/v1/payments/", {"created_gte": "0001-01-01T00:00:00+01:00"})

    assert (wide.status_code, [row["id"] for row in wide.json()["results"]]) == (200, [early.public_id])
    assert _error(before_year_one)["param"] == "created_gte"


# --- JSON nested too deep -----------------------------------------------------------------------
@pytest.mark.parametrize(
    "text",
    [
        "[" * DEEP + "]" * DEEP,
        '{"amount": 2000, "currency": "usd", "customer_id": "c", "metadata": {"k": ' + "[" * DEEP + "]" * DEEP + "}}",
        '{"a":' * DEEP + "1" + "}" * DEEP,
        # Shallow enough for the JSON decoder, deep enough to exhaust the stack of anything walking it later.
        '{"amount": 2000, "currency": "usd", "customer_id": "c", "metadata": {"k": ' + "[" * 900 + "]" * 900 + "}}",
    ],
    ids=["lists", "inside-metadata", "objects", "900-levels"],
)
def test_json_nested_too_deep_is_400(storefront, text):
    error = _error(_post_raw(storefront, "/api/v1/payments/", text, HTTP_IDEMPOTENCY_KEY=new_key()))

    assert "deep" in error["message"]
    assert Payment.objects.count() == 0


def test_json_nested_too_deep_is_400_before_authentication(anon):
    """The token endpoint parses bodies of anyone: no 500 there either."""
    _error(_post_raw(anon, "/api/v1/auth/token/", '{"username": ' + "[" * DEEP + "]" * DEEP + "}"))


def test_nesting_a_body_may_need_is_accepted(storefront, create_payment):
    response = create_payment(metadata={"cart": "abc"})

    assert response.status_code == 201


# --- lone surrogates and NUL in body strings ----------------------------------------------------
@pytest.mark.parametrize(
    ("fields", "param"),
    [
        ('"metadata": {"cart": "\\ud800"}', "metadata[cart]"),
        ('"metadata": {"cart": "a\\udfffb"}', "metadata[cart]"),
        ('"metadata": {"\\ud800": "x"}', "metadata"),
        ('"description": "Order \\ud83d"', "description"),
        ('"order_id": "\\u0000"', "order_id"),
        ('"customer_email": "a\\ud800@example.com"', "customer_email"),
    ],
)
def test_unstorable_strings_in_a_create_are_400(storefront, fields, param):
    text = '{"amount": 2000, "currency": "usd", "customer_id": "cus_1", ' + fields + "}"

    error = _error(_post_raw(storefront, "/api/v1/payments/", text, HTTP_IDEMPOTENCY_KEY=new_key()))

    assert error["param"] == param
    assert Payment.objects.count() == 0


def test_a_surrogate_pair_is_one_character_and_accepted(storefront):
    text = '{"amount": 2000, "currency": "usd", "customer_id": "cus_1", "metadata": {"mood": "\\ud83d\\ude00"}}'

    response = _post_raw(storefront, "/api/v1/payments/", text, HTTP_IDEMPOTENCY_KEY=new_key())

    assert response.status_code == 201, response.content
    assert response.json()["metadata"] == {"mood": "\U0001f600"}


def test_lone_surrogate_in_refund_metadata_is_400(storefront, payment):
    text = '{"amount": 100, "metadata": {"note": "\\udc00"}}'

    error = _error(
        _post_raw(storefront, f"/api/v1/payments/{payment.public_id}/refunds/", text, HTTP_IDEMPOTENCY_KEY=new_key())
    )

    assert error["param"] == "metadata[note]"


@pytest.mark.parametrize("username", ["\\ud800", "a\\u0000b"])
def test_unstorable_credentials_are_400_not_500(anon, username):
    _error(_post_raw(anon, "/api/v1/auth/token/", '{"username": "' + username + '", "password": "x"}'))


def test_the_parameter_path_never_echoes_card_data(storefront):
    text = '{"amount": 2000, "currency": "usd", "customer_id": "c", "metadata": {"4242424242424242": "\\ud800"}}'

    response = _post_raw(storefront, "/api/v1/payments/", text, HTTP_IDEMPOTENCY_KEY=new_key())

    assert response.status_code == 400  # card_data_not_allowed or parameter_invalid, whichever check runs first
    assert "4242" not in response.content.decode()


# --- id-like fields: no whitespace or control characters ----------------------------------------
@pytest.mark.parametrize(
    "value", ["pm_card_visa\n", " pm_card_visa", "pm_card_visa\t", "pm_card\x0bvisa", "pm_card_visa\r\n"]
)
def test_payment_method_with_whitespace_or_control_characters_is_400(create_payment, value):
    error = _error(create_payment(payment_method=value, confirm=True))

    assert error["param"] == "payment_method"
    assert Payment.objects.count() == 0


def test_confirm_refuses_a_payment_method_with_a_newline(storefront, create_payment):
    payment_id = create_payment().json()["id"]

    error = _error(
        storefront.post(f"/api/v1/payments/{payment_id}/confirm/", {"payment_method": "pm_card_visa\n"}, format="json")
    )

    assert error["param"] == "payment_method"
    assert Payment.objects.get(public_id=payment_id).status == "requires_payment_method"


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("customer_id", "cus_1\n"),
        ("customer_id", " cus_1"),
        ("order_id", "ord\x001"),
        ("order_id", "ord\x1b1"),
        ("currency", "usd\n"),
    ],
)
def test_other_id_like_fields_refuse_whitespace_and_control_characters(create_payment, field, value):
    assert _error(create_payment(**{field: value}))["param"] == field


def test_free_text_keeps_its_newlines(create_payment):
    response = create_payment(description="Line one\nLine two", metadata={"note": "a\tb"})

    assert response.status_code == 201, response.content
    assert response.json()["description"] == "Line one\nLine two"


# --- the webhook: signature before parsing ------------------------------------------------------
@pytest.fixture
def webhook_secret(settings) -> str:
    settings.STRIPE_WEBHOOK_SECRET = SECRET
    return SECRET


@pytest.mark.parametrize(
    "body",
    ["[" * DEEP + "]" * DEEP, '{"a":' * DEEP + "1" + "}" * DEEP, "not json at all", '{"id": "evt_\\ud800"}'],
    ids=["deep-lists", "deep-objects", "not-json", "surrogate"],
)
def test_an_unsigned_hostile_body_is_refused_for_its_signature_unparsed(webhook_secret, body):
    response = Client().post(
        "/api/v1/webhooks/stripe/", data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE="t=1,v1=00"
    )

    _error(response, code="signature_invalid")
    assert WebhookEvent.objects.count() == 0


@pytest.mark.parametrize(
    "body",
    [
        "[" * DEEP + "]" * DEEP,
        '{"id": "evt_1", "object": "event", "type": "x", "data": {"object": ' + "[" * DEEP + "]" * DEEP + "}}",
        '{"id": "evt_\\u0000", "object": "event", "type": "payment_intent.succeeded", "data": {"object": {}}}',
        '{"id": "evt_1", "object": "event", "type": "payment_intent.\\ud800", "data": {"object": {}}}',
    ],
    ids=["deep", "deep-data", "nul-id", "surrogate-type"],
)
def test_a_signed_body_that_cannot_be_stored_is_400(webhook_secret, body):
    response = Client().post(
        "/api/v1/webhooks/stripe/", data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body)
    )

    _error(response, code="payload_invalid")
    assert WebhookEvent.objects.count() == 0


# --- the database is down: 503 with Retry-After -------------------------------------------------
def _closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]  # nothing listens once the socket is closed


@pytest.fixture
def database_down(on_postgres):
    """Point this process's connection at a port nobody listens on, for the requests of one test."""
    assert on_postgres, "the outage tests need PostgreSQL (scripts/with-services.sh)"
    settings_dict = connection.settings_dict
    saved = settings_dict["HOST"], settings_dict["PORT"]

    def down() -> None:
        connection.close()
        settings_dict["HOST"], settings_dict["PORT"] = "127.0.0.1", str(_closed_port())

    yield down
    connection.close()
    settings_dict["HOST"], settings_dict["PORT"] = saved
    connection.ensure_connection()


def _unavailable(response) -> None:
    _error(response, status=503, code="service_unavailable")
    assert int(response["Retry-After"]) >= 1


@pytest.mark.django_db(transaction=True)
def test_a_database_outage_is_503_with_retry_after(storefront, database_down, webhook_secret):
    body = json.dumps({"id": "evt_1", "object": "event", "type": "payment_intent.succeeded", "data": {"object": {}}})
    database_down()

    _unavailable(storefront.get("/api/v1/payments/"))
    _unavailable(
        storefront.post(
            "/api/v1/payments/", {"amount": 2000, "currency": "usd", "customer_id": "c"}, HTTP_IDEMPOTENCY_KEY=new_key()
        )
    )
    _unavailable(APIClient().post("/api/v1/auth/token/", {"username": "storefront-a", "password": "x"}, format="json"))
    # The webhook is a plain Django view: the middleware renders it.
    _unavailable(
        Client().post(
            "/api/v1/webhooks/stripe/", data=body, content_type="application/json", HTTP_STRIPE_SIGNATURE=sign(body)
        )
    )


# --- JSON on every /api/ path: CSRF, bad Host, the error handlers --------------------------------
def test_a_post_without_the_trailing_slash_is_a_json_404_not_a_csrf_page():
    response = Client(enforce_csrf_checks=True).post("/api/v1/payments", data="{}", content_type="application/json")

    error = _error(response, status=404, code="resource_missing")
    assert "/" in error["message"]


@pytest.mark.urls("tests.config.hostile_urls")
def test_a_csrf_failure_under_api_is_json():
    response = Client(enforce_csrf_checks=True).post(
        "/api/v1/_test/csrf-protected/", data="{}", content_type="application/json"
    )

    assert _error(response, status=403, code="permission_denied")["type"] == "permission_error"


@pytest.mark.urls("tests.config.hostile_urls")
def test_a_csrf_failure_elsewhere_keeps_django_s_page(admin_user):
    response = Client(enforce_csrf_checks=True).post("/admin/login/", {"username": "a", "password": "b"})

    assert response.status_code == 403
    assert response["Content-Type"].startswith("text/html")


def test_a_disallowed_host_under_api_is_json(storefront):
    response = storefront.get("/api/v1/payments/", HTTP_HOST="evil.example")

    _error(response, status=400)


def test_a_disallowed_host_elsewhere_keeps_django_s_page():
    response = Client().get("/admin/login/", HTTP_HOST="evil.example")

    assert response.status_code == 400
    assert not response["Content-Type"].startswith("application/json")


@pytest.mark.parametrize(
    ("handler", "status", "code"),
    [
        ("handler400", 400, "parameter_invalid"),
        ("handler403", 403, "permission_denied"),
        ("handler404", 404, "resource_missing"),
    ],
)
def test_the_error_handlers_answer_json_under_api(handler, status, code):
    from config import urls

    response = getattr(urls, handler)(RequestFactory().get("/api/v1/payments/"), Exception("x"))

    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    assert json.loads(response.content)["error"]["code"] == code


def test_the_error_handlers_keep_django_s_pages_elsewhere():
    from config import urls

    response = urls.handler404(RequestFactory().get("/admin/nope/"), Exception("x"))

    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_the_500_handler_answers_json_under_api_and_maps_an_outage_to_503():
    from django.db import OperationalError

    from config import urls

    request = RequestFactory().get("/api/v1/payments/")
    try:
        raise OperationalError("connection refused")
    except OperationalError:
        assert sys.exc_info()[0] is OperationalError
        outage = urls.handler500(request)
    try:
        raise KeyError("bug")
    except KeyError:
        bug = urls.handler500(request)

    assert outage.status_code == 503
    assert outage["Retry-After"]
    assert json.loads(outage.content)["error"]["code"] == "service_unavailable"
    assert bug.status_code == 500
    assert json.loads(bug.content)["error"]["code"] == "internal_error"
    assert api_views.handler500(RequestFactory().get("/admin/")).status_code == 500


# --- Cache-Control: no-store --------------------------------------------------------------------
def test_responses_carrying_a_client_secret_are_no_store(storefront, create_payment):
    created = create_payment()
    payment_id = created.json()["id"]

    responses = [
        created,
        storefront.get(f"/api/v1/payments/{payment_id}/"),
        storefront.get("/api/v1/payments/"),
        storefront.post(f"/api/v1/payments/{payment_id}/confirm/", {"payment_method": "pm_card_visa"}, format="json"),
    ]

    for response in responses:
        assert response.status_code in {200, 201}, response.content
        assert "client_secret" in response.content.decode()
        assert response["Cache-Control"] == "no-store"


def test_error_responses_under_api_v1_are_no_store_too(anon):
    assert anon.get("/api/v1/payments/")["Cache-Control"] == "no-store"
