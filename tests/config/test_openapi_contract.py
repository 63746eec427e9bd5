"""docs/api.md, the project's copy of the HTTP contract, names exactly the endpoints the service serves.

The parsing rule (also written at the end of docs/api.md): an endpoint is a code span holding only an
HTTP method, one space and a path under /api/v1/ (a query string after the path is ignored), outside
fenced code blocks. A section whose first line after its heading starts with `> Not served yet:` is
planned, with all its subsections. An endpoint written in any section that is not planned must be
served; an endpoint written only in planned sections must not be. Path parameters are compared
without their names (`{id}`, `{public_id}`, `{payment_id}` and `<str:id>` are all `{}`).
"""

import re
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
from django.contrib.admindocs.views import simplify_regex
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver

ROOT = Path(__file__).resolve().parents[2]
API_DOC = ROOT / "docs" / "api.md"
BASE = "/api/v1/"
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
ENDPOINT = re.compile(r"`(" + "|".join(METHODS) + r") (/api/v1/[^`?\s]*)(?:\?[^`\s]*)?`")
HEADING = re.compile(r"^(#{1,6}) ")
FENCE = "```"
PLANNED = "> Not served yet:"
PARAMETER = re.compile(r"\{[^}/]*\}|<[^>/]*>")

# Served under /api/v1/ but absent from the OpenAPI schema. Keep it exact: the test fails when an
# entry is no longer routed, or has joined the schema.
SERVED_OUTSIDE_THE_SCHEMA: set[tuple[str, str]] = set()  # the webhook joined it (config/api/schema.py)

Endpoint = tuple[str, str]


def normalise(path: str) -> str:
    return PARAMETER.sub("{}", path)


def documented_endpoints(text: str) -> tuple[set[Endpoint], set[Endpoint]]:
    """(written in sections that are served, written only in planned sections), paths normalised."""
    served: set[Endpoint] = set()
    planned: set[Endpoint] = set()
    planned_level: int | None = None  # heading level of the planned section we are in
    heading_level: int | None = None  # set between a heading and the first line under it
    fenced = False
    for number, line in enumerate(text.splitlines(), start=1):
        if line.lstrip().startswith(FENCE):
            fenced = not fenced
            continue
        if fenced or not line.strip():
            continue
        heading = HEADING.match(line)
        if heading:
            heading_level = len(heading.group(1))
            if planned_level is not None and heading_level <= planned_level:
                planned_level = None
            continue
        if line.lstrip().startswith(PLANNED):
            assert heading_level is not None, f"docs/api.md:{number}: `{PLANNED}` must come right under a heading"
            planned_level = planned_level or heading_level
        heading_level = None
        for method, path in ENDPOINT.findall(line):
            (planned if planned_level is not None else served).add((method, normalise(path)))
    return served, planned - served


def routed_paths(patterns: Sequence[URLPattern | URLResolver], prefix: str = "") -> Iterator[str]:
    """Every route of the URLconf, whatever serves it."""
    for entry in patterns:
        route = prefix + str(entry.pattern)
        if isinstance(entry, URLResolver):
            yield from routed_paths(entry.url_patterns, route)
        else:
            yield route


@pytest.fixture(scope="module")
def schema() -> dict:
    response = Client().get("/api/schema/?format=json")
    assert response.status_code == 200
    return response.json()


@pytest.fixture(scope="module")
def schema_endpoints(schema) -> set[Endpoint]:
    return {
        (method.upper(), normalise(path))
        for path, operations in schema["paths"].items()
        if path.startswith(BASE)
        for method in operations
        if method.upper() in METHODS
    }


@pytest.fixture(scope="module")
def served(schema_endpoints) -> set[Endpoint]:
    return schema_endpoints | {(method, normalise(path)) for method, path in SERVED_OUTSIDE_THE_SCHEMA}


@pytest.fixture(scope="module")
def documented() -> tuple[set[Endpoint], set[Endpoint]]:
    return documented_endpoints(API_DOC.read_text(encoding="utf-8"))


def test_every_served_endpoint_is_documented(served, documented):
    documented_served, documented_planned = documented

    undocumented = served - documented_served - documented_planned

    assert sorted(undocumented) == []


def test_every_documented_endpoint_outside_planned_sections_is_served(served, documented):
    documented_served, _ = documented

    missing = documented_served - served

    assert sorted(missing) == []


def test_no_planned_endpoint_is_served(served, documented):
    _, documented_planned = documented

    built = documented_planned & served

    assert sorted(built) == []  # (since issue #20 every documented endpoint is served: none is planned)


def test_only_the_listed_endpoints_are_served_outside_the_schema(schema_endpoints):
    schema_paths = {path for _, path in schema_endpoints}
    routed = {normalise(simplify_regex(route)) for route in routed_paths(get_resolver().url_patterns)}

    outside = {path for path in routed if path.startswith(BASE)} - schema_paths

    assert sorted(outside) == sorted({normalise(path) for _, path in SERVED_OUTSIDE_THE_SCHEMA})
    assert sorted({(method, normalise(path)) for method, path in SERVED_OUTSIDE_THE_SCHEMA} & schema_endpoints) == []


def test_the_parser_follows_the_rule():
    text = "\n".join(
        [
            "## Payments",
            "- `GET /api/v1/payments/{id}/` → payment; `GET /api/v1/events/?type=&after=evt_...`.",
            "- `POST /api/v1/payments/` with a body, and `GET /api/v1/payments/` · `GET /api/v2/other/`.",
            "```",
            "`DELETE /api/v1/in-a-fence/`",
            "```",
            "## Customers",
            "",
            "> Not served yet: planned in issue #17.",
            "- `PUT /api/v1/customers/{customer_id}/` and `POST /api/v1/payments/` with `off_session`.",
            "### Saved payment methods",
            "- `DELETE /api/v1/payment_methods/{id}/`",
            "## Refunds",
            "- `GET /api/v1/refunds/{public_id}/` and `GET /api/v1/refunds/` plus words",
        ]
    )

    served, planned = documented_endpoints(text)

    assert served == {
        ("GET", "/api/v1/payments/{}/"),
        ("GET", "/api/v1/events/"),
        ("POST", "/api/v1/payments/"),
        ("GET", "/api/v1/payments/"),
        ("GET", "/api/v1/refunds/{}/"),
        ("GET", "/api/v1/refunds/"),
    }
    assert planned == {("PUT", "/api/v1/customers/{}/"), ("DELETE", "/api/v1/payment_methods/{}/")}


def test_a_planned_mark_away_from_a_heading_is_refused():
    text = "## Customers\n\nSome words.\n> Not served yet: planned in issue #17.\n"

    with pytest.raises(AssertionError, match="must come right under a heading"):
        documented_endpoints(text)
