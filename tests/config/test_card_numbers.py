"""One card-number detector for bodies, headers, query strings and logs (docs/api.md "Conventions").

Both ways, with generated data: every notation of a valid PAN of every brand (any separators, digits of
any script, full-width and no-break characters that NFKC folds) is refused wherever it is sent, and what
is not card data (dated ids, phone numbers, EANs, timestamps, UUIDs, amounts, runtimes, trace ids) is
accepted. The brand table here is written from the contract, not imported from the implementation.
"""

import http.client
import json
import re
import unicodedata
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import urlencode

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from config.security import contains_card_number, mask_sensitive
from payments.models import Payment
from tests.conftest import new_key
from tests.live import gunicorn as live_gunicorn

# docs/api.md "Conventions": (brand, IIN ranges, lengths).
BRANDS = [
    ("visa", [(4, 4)], [13, 16, 19]),
    ("mastercard", [(51, 55), (2221, 2720)], [16]),
    ("amex", [(34, 34), (37, 37)], [15]),
    ("discover", [(6011, 6011), (644, 649), (65, 65)], [16, 17, 18, 19]),
    ("jcb", [(3528, 3589)], [16, 17, 18, 19]),
    ("diners", [(300, 305), (36, 36), (38, 39)], [14, 15, 16, 17, 18, 19]),
    ("unionpay", [(62, 62)], [16, 17, 18, 19]),
]
# Separators, one or several, including characters NFKC folds to a space, dot, slash, underscore or dash.
SEPARATORS = [" ", "  ", "\t", " \t ", "\u00a0", "\u202f", "\u3000", ".", "/", "\\", "_", "-", " - ", "\u2013"]
SEPARATORS += ["\uff0e", "\uff0f", "\uff3f", "\uff0d"]  # full-width . / _ -
# The zero of each script: ASCII, Arabic-Indic, Extended Arabic-Indic, Devanagari, Bengali, full-width, bold.
ZEROS = [0x30, 0x660, 0x6F0, 0x966, 0x9E6, 0xFF10, 0x1D7CE]


def luhn_check_digit(body: str) -> str:
    total = 0
    for index, char in enumerate(reversed(body)):
        value = int(char) * (2 if index % 2 == 0 else 1)
        total += value - 9 if value > 9 else value
    return str((10 - total % 10) % 10)


def is_gtin(digits: str) -> bool:
    return sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(reversed(digits))) % 10 == 0


@st.composite
def pans(draw) -> str:
    _brand, ranges, lengths = draw(st.sampled_from(BRANDS))
    low, high = draw(st.sampled_from(ranges))
    prefix = str(draw(st.integers(low, high)))
    length = draw(st.sampled_from(lengths))
    body = prefix + draw(st.text("0123456789", min_size=length - len(prefix) - 1, max_size=length - len(prefix) - 1))
    pan = body + luhn_check_digit(body)
    # Documented: a 13-digit Visa candidate that is also a valid EAN-13 is taken for the product code.
    assume(not (length == 13 and is_gtin(pan)))
    return pan


@st.composite
def notations(draw, pan_strategy=None) -> tuple[str, str]:
    """(pan, one way of writing it): grouped anyhow, any separators, any script, in some text."""
    pan = draw(pan_strategy or pans())
    cuts = sorted(draw(st.sets(st.integers(1, len(pan) - 1), max_size=6)))
    if draw(st.booleans()) and len(pan) >= 15:  # the usual grouping by four
        cuts = list(range(4, len(pan), 4))
    one_separator = draw(st.booleans())
    separator = draw(st.sampled_from(SEPARATORS))
    zero = draw(st.sampled_from(ZEROS))
    digits = [chr(zero + int(d)) for d in pan]
    parts, last = [], 0
    for cut in cuts:
        parts += ["".join(digits[last:cut]), separator if one_separator else draw(st.sampled_from(SEPARATORS))]
        last = cut
    parts.append("".join(digits[last:]))
    written = "".join(parts)
    # Documented: digits, one dot, digits is a decimal number ("4111111.111111111" is not looked at whole).
    assume(not (len(cuts) == 1 and unicodedata.normalize("NFKC", parts[1]) == "."))
    before = draw(st.sampled_from(["", "card ", "pan: ", "my card is ", "ref 12 ", "x"]))
    after = draw(st.sampled_from(["", " exp 12/26", " cvc 123", " thanks", "!", "y"]))
    return pan, before + written + after


# --- what is not card data ---------------------------------------------------------------------------------
dated_ids = st.builds(
    lambda prefix, sep, day, seq: f"{prefix}{sep}{day:%Y}{sep}{day:%m}{sep}{day:%d}{sep}{seq}",
    st.sampled_from(["INV", "ORD", "inv", "PO", "order", "A"]),
    st.sampled_from(["-", "/", "_", ".", " "]),
    st.dates(min_value=date(2000, 1, 1), max_value=date(2099, 12, 31)),
    st.integers(0, 999_999).map(lambda n: f"{n:06d}"),
)
phones = st.builds(
    lambda country, number, style: style(country, number),
    st.sampled_from(["1", "44", "33", "49", "353", "61", "81", "91", "971", "55"]),
    st.text("0123456789", min_size=9, max_size=11),
    st.sampled_from(
        [
            lambda c, n: f"+{c} {n[:2]} {n[2:6]} {n[6:]}",
            lambda c, n: f"+{c} ({n[:3]}) {n[3:6]}-{n[6:]}",
            lambda c, n: f"+{c}{n}",
            lambda c, n: f"00{c} {n[:3]}.{n[3:6]}.{n[6:]}",
            lambda c, n: f"+{c}-{n[:3]}-{n[3:6]}-{n[6:]}",
        ]
    ),
).filter(lambda phone: sum(ch.isdigit() for ch in phone.removeprefix("00")) <= 15)  # E.164: at most 15 digits


def _with_gtin_check_digit(body: str) -> str:
    return body + str(-sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(reversed(body), start=1)) % 10)


eans = st.text("0123456789", min_size=12, max_size=12).map(_with_gtin_check_digit)
# Until 2090: epoch milliseconds from late 2096 on are 13 digits from 4, as a 13-digit Visa is.
naive = st.datetimes(min_value=datetime(1970, 1, 1), max_value=datetime(2090, 1, 1))  # noqa: DTZ001 - as str() shows
timestamps = naive.flatmap(
    lambda moment: st.sampled_from(
        [
            moment.replace(tzinfo=UTC).isoformat(),
            moment.isoformat(timespec="milliseconds") + "Z",
            moment.strftime("%Y-%m-%dT%H:%M:%SZ"),
            str(moment),  # "2026-11-22 10:00:00.123456"
            str(int(moment.replace(tzinfo=UTC).timestamp() * 1000)),  # epoch milliseconds
        ]
    )
)
amounts = st.one_of(
    st.integers(0, 99_999_999).map(str),
    st.decimals(0, 99_999_999, places=2).map(str),
    st.integers(0, 99_999_999).map(lambda n: f"{n:,}"),
)
runtimes = st.floats(0, 10_000, allow_nan=False).map(lambda x: f"{x!r}s")  # Celery: "succeeded in 0.0567...s"
trace_ids = st.binary(min_size=16, max_size=16).map(bytes.hex)
uuids = st.uuids().map(str)
not_card_data = st.one_of(dated_ids, phones, eans, timestamps, amounts, runtimes, trace_ids, uuids)

QUICK = settings(max_examples=400, deadline=None)
API = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


def _error(response) -> dict:
    return response.json()["error"]


_RANDOM_IDS = re.compile(r"[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}")


def _echoed(text: str) -> str:
    """`text` without the request's random ids (hex UUIDs): one holds "4111" by chance now and then."""
    return _RANDOM_IDS.sub("<id>", text)


def _assert_not_echoed(response, pan: str, written: str) -> None:
    text = _echoed(response.content.decode() + json.dumps(dict(response.headers)))
    assert pan not in text
    assert written not in text
    assert pan[:6] not in text.replace(" ", "")  # not even the IIN


# --- the detector ------------------------------------------------------------------------------------------
@QUICK
@given(notations())
def test_every_notation_of_a_card_number_is_detected_and_masked(notation):
    pan, written = notation

    assert contains_card_number(written)
    masked = mask_sensitive(written)
    assert "[CARD]" in masked
    assert not contains_card_number(masked)
    assert pan[:6] not in "".join(ch for ch in unicodedata.normalize("NFKC", masked) if ch.isdigit())


@QUICK
@given(not_card_data)
def test_what_is_not_card_data_is_not_detected(text):
    assert not contains_card_number(text)
    assert mask_sensitive(text) == text


@pytest.mark.parametrize(
    "text",
    [
        "INV-2026-11-22-000007",  # 14 digits that pass Luhn, from 2026: no brand's range
        "+44 20 7946 0958",
        "+1 (555) 010-9999",
        "+49 1512 3456795",  # 13 digits from 4 that pass Luhn: a phone number, not a Visa
        "+4915123456795",
        "4006381333931",  # an EAN-13 that starts like a Visa
        "2026-11-22T10:00:00.123456+00:00",
        "0.05674327799897583s",
        "4.5678901234567891s",
        "4bf92f3577b34da6a3ce929d0e0e4736",
        "550e8400-e29b-41d4-a716-446655440000",
        "4242424242424241",  # a Visa length and range, fails Luhn
        "22001234567890121",  # 2200: Mir, not a listed brand
    ],
)
def test_documented_examples_are_not_card_data(text):
    assert not contains_card_number(text)


@pytest.mark.parametrize(
    "text",
    [
        "4111.1111.1111.1111",
        "4111/1111/1111/1111",
        "4111_1111_1111_1111",
        "4111  1111  1111  1111",
        "4111\t1111\t1111\t1111",
        "4111\u00a01111\u00a01111\u00a01111",
        "٤١١١١١١١١١١١١١١١",
        "４１１１ １１１１ １１１１ １１１１",
        "4111%201111%201111%201111",
        "card 4111111111111111 12/26",
        "3782 822463 10005",
        "2223 0031 2200 3222",
    ],
)
def test_documented_notations_are_card_data(text):
    assert contains_card_number(text)


# --- refused in a body, a header and a query string ---------------------------------------------------------
@pytest.mark.django_db
@API
@given(notation=notations(), where=st.sampled_from(["order_id", "description", "metadata", "metadata-key"]))
def test_card_numbers_in_a_body_are_refused_and_never_echoed(storefront, notation, where):
    pan, written = notation
    fields = {
        "order_id": {"order_id": written},
        "description": {"description": written},
        "metadata": {"metadata": {"note": written}},
        "metadata-key": {"metadata": {written[:40]: "x"}},
    }[where]
    assume(where != "metadata-key" or contains_card_number(written[:40]))
    before = Payment.objects.count()

    response = storefront.post(
        "/api/v1/payments/",
        {"amount": 2000, "currency": "usd", "customer_id": "cus_42", **fields},
        format="json",
        HTTP_IDEMPOTENCY_KEY=new_key(),
    )

    assert response.status_code == 400
    assert _error(response)["code"] == "card_data_not_allowed"
    _assert_not_echoed(response, pan, written)
    assert Payment.objects.count() == before


@pytest.mark.django_db
@API
@given(notation=notations(), header=st.sampled_from(["HTTP_X_REQUEST_ID", "HTTP_X_ORDER_REFERENCE", "HTTP_REFERER"]))
def test_card_numbers_in_a_header_are_refused_and_never_echoed(storefront, notation, header):
    pan, written = notation

    response = storefront.post(
        "/api/v1/payments/",
        {"amount": 2000, "currency": "usd", "customer_id": "cus_42"},
        format="json",
        HTTP_IDEMPOTENCY_KEY=new_key(),
        **{header: written},
    )

    assert response.status_code == 400
    assert _error(response)["code"] == "card_data_not_allowed"
    assert _error(response)["param"] == header[5:].replace("_", "-").title()
    _assert_not_echoed(response, pan, written)
    uuid.UUID(response["X-Request-ID"])  # a new id, not the one that held the card number


@pytest.mark.django_db
@API
@given(notation=notations(), param=st.sampled_from(["status", "order_id", "customer_id", "q"]))
def test_card_numbers_in_a_query_string_are_refused_and_never_echoed(finance, notation, param):
    pan, written = notation

    response = finance.get("/api/v1/payments/", {param: written})

    assert response.status_code == 400
    assert _error(response)["code"] == "card_data_not_allowed"
    assert _error(response)["param"] == param
    _assert_not_echoed(response, pan, written)


def test_a_card_number_in_the_status_filter_is_not_echoed(finance):
    response = finance.get("/api/v1/payments/?status=5555555555554444")

    assert response.status_code == 400
    assert response.json() == {
        "error": {
            "type": "invalid_request_error",
            "code": "card_data_not_allowed",
            "message": "Card numbers must never be sent to this API; use a gateway payment method token.",
            "param": "status",
        }
    }


@pytest.mark.parametrize(
    ("request_kwargs", "param"),
    [
        pytest.param(
            {"data": "amount=2000&card=4111+1111+1111+1111", "content_type": "application/x-www-form-urlencoded"},
            "body",
            id="form",
        ),
        pytest.param(
            {"data": '{"amount": 4111111111111111, "currency": "usd"}', "content_type": "application/json"},
            "amount",
            id="json-number",
        ),
        pytest.param(
            {"data": '{"metadata": {"n": "\\u0034111111111111111"}}', "content_type": "application/json"},
            "metadata[n]",
            id="json-escape",
        ),
        pytest.param({"data": "4111 1111 1111 1111", "content_type": "text/plain"}, "body", id="text"),
    ],
)
def test_card_numbers_in_any_body_are_refused_before_parsing(storefront, request_kwargs, param):
    response = storefront.generic("POST", "/api/v1/payments/", HTTP_IDEMPOTENCY_KEY=new_key(), **request_kwargs)

    assert response.status_code == 400
    assert _error(response)["code"] == "card_data_not_allowed"
    assert _error(response)["param"] == param
    assert "4111" not in _echoed(response.content.decode())


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/payments/?status=4111+1111+1111+1111",
        "/api/v1/payments/?status=4111%C2%A01111%C2%A01111%C2%A01111",
        "/api/v1/payments/4111111111111111/",
        "/api/v1/payments/?4111.1111.1111.1111",
    ],
)
def test_card_numbers_in_a_url_are_refused(finance, path):
    response = finance.get(path)

    assert response.status_code == 400
    assert _error(response)["code"] == "card_data_not_allowed"
    assert "4111" not in _echoed(response.content.decode())
    assert "4111" not in _echoed(json.dumps(dict(response.headers)))


# --- accepted: what is not card data ------------------------------------------------------------------------
@pytest.mark.django_db
@API
@given(order_id=dated_ids, phone=phones, ean=eans, moment=timestamps, other=not_card_data)
@example(
    order_id="INV-2000-01-01-000000",
    phone="+1 00 0000 000",
    ean="0000000000000",
    moment="2000-01-01T00:00:00+00:00",
    other="+4433334949517",  # in the query as %2B…: a phone number, not a 13-digit card after `+` became a space
)
def test_what_is_not_card_data_is_accepted_everywhere(storefront, order_id, phone, ean, moment, other):
    metadata = {"phone": phone, "ean": ean, "at": moment, "other": other}

    response = storefront.post(
        "/api/v1/payments/?" + urlencode({"source": other}),
        {"amount": 2000, "currency": "usd", "customer_id": "cus_42", "order_id": order_id, "metadata": metadata},
        format="json",
        HTTP_IDEMPOTENCY_KEY=new_key(),
        HTTP_X_REQUEST_ID=order_id.replace(" ", "-").replace("/", "-"),
        HTTP_X_ORDER_REFERENCE=other,
    )

    assert response.status_code == 201, response.json()
    assert response.json()["order_id"] == order_id
    assert response.json()["metadata"] == metadata
    assert response["X-Request-ID"] == order_id.replace(" ", "-").replace("/", "-")
    listed = storefront.get("/api/v1/payments/", {"order_id": order_id})
    assert listed.status_code == 200
    assert response.json()["id"] in [payment["id"] for payment in listed.json()["results"]]


# --- the two examples of the issue ---------------------------------------------------------------------------
def test_a_dated_order_id_whose_digits_pass_luhn_creates_a_payment(create_payment):
    assert luhn_check_digit("2026112200000") == "7"  # the 14 digits of the id pass Luhn

    response = create_payment(order_id="INV-2026-11-22-000007")

    assert response.status_code == 201, response.json()
    assert response.json()["order_id"] == "INV-2026-11-22-000007"


def test_a_dotted_card_number_in_metadata_is_refused(create_payment):
    response = create_payment(metadata={"note": "4111.1111.1111.1111"})

    assert response.status_code == 400
    assert _error(response)["code"] == "card_data_not_allowed"
    assert _error(response)["param"] == "metadata[note]"
    assert "4111" not in _echoed(response.content.decode())
    assert Payment.objects.count() == 0


# --- gunicorn as deployed: the access log, the app's log lines and the answers ------------------------------
ROOT = Path(__file__).resolve().parents[2]
ARABIC_PAN = "".join(chr(0x660 + int(d)) for d in "4111111111111111")


@contextmanager
def _gunicorn(log_path: Path) -> Iterator[int]:
    """gunicorn with config/gunicorn.conf.py (tests/live.py; DEBUG=false, the access log on stdout) into `log_path`."""
    env = {"WEB_CONCURRENCY": "1", "GUNICORN_THREADS": "2", "GUNICORN_ACCESS_LOG": "-", "LOG_LEVEL": "INFO"}
    with live_gunicorn(log_path, env) as port:
        yield port


def _send(port: int, method: str, target: str, headers: dict[str, str | bytes] | None = None):
    connection_ = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    try:
        connection_.putrequest(method, target, skip_accept_encoding=True)
        for name, value in (headers or {}).items():
            connection_.putheader(name, value)  # bytes go on the wire as they are (UTF-8 digits of other scripts)
        body = b'{"amount": 2000, "currency": "usd", "customer_id": "cus_42"}' if method == "POST" else b""
        connection_.putheader("Content-Type", "application/json")
        connection_.putheader("Content-Length", str(len(body)))
        connection_.endheaders(body)
        response = connection_.getresponse()
        return response.status, response.read().decode(), dict(response.getheaders())
    finally:
        connection_.close()


@pytest.mark.django_db
def test_gunicorn_refuses_card_data_in_headers_and_queries_and_logs_none(tmp_path):
    log_path = tmp_path / "gunicorn.log"
    with _gunicorn(log_path) as port:
        health = [
            _send(port, "GET", "/health/live?card=4111.1111.1111.1111")[0],
            _send(port, "GET", "/health/live?card=4111%201111%201111%201111")[0],
            _send(port, "GET", "/health/live?card=4111+1111+1111+1111")[0],
            _send(port, "GET", "/health/live", {"Referer": "https://shop.example/?c=4111+1111+1111+1111"})[0],
        ]
        refused = [
            _send(port, "GET", "/api/v1/payments/?status=5555555555554444"),
            _send(port, "GET", "/api/v1/payments/?status=5555%C2%A05555%C2%A05555%C2%A04444"),
            _send(port, "POST", "/api/v1/payments/", {"X-Request-ID": "4111.1111.1111.1111"}),
            _send(port, "POST", "/api/v1/payments/", {"X-Request-ID": ARABIC_PAN.encode()}),
        ]
        accepted = _send(port, "GET", "/api/v1/payments/?order_id=INV-2026-11-22-000007")
    log = log_path.read_bytes().decode("utf-8", "replace")

    assert health == [200, 200, 200, 200]
    assert [status for status, _body, _headers in refused] == [400, 400, 400, 400]
    assert [json.loads(body)["error"]["code"] for _status, body, _headers in refused] == ["card_data_not_allowed"] * 4
    assert [json.loads(body)["error"]["param"] for _status, body, _headers in refused] == [
        "status",
        "status",
        "X-Request-Id",
        "X-Request-Id",
    ]
    for _status, body, headers in refused:
        assert "4111" not in _echoed(body + json.dumps(headers))
        assert "5555" not in _echoed(body + json.dumps(headers))
        uuid.UUID(headers["X-Request-ID"])
    assert accepted[0] == 401  # past the detector: the dated id is no card number (and the request has no token)
    access_lines = [line for line in log.splitlines() if '"GET /' in line or '"POST /' in line]
    assert len(access_lines) >= 9, log
    assert log.count("[CARD]") == 6, log  # 4 health requests (3 queries, 1 Referer) and 2 API queries
    assert [line for line in log.splitlines() if contains_card_number(line, url=True)] == []
    for written in ("4111.1111", "4111%20", "4111+1111", "5555555555554444", "5555%C2%A0", "٤١١١", "Ù¤Ù¡"):
        assert written not in log, log
    assert "INV-2026-11-22-000007" in log  # what is not card data is logged as it is
