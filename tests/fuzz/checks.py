"""schemathesis hooks of `make fuzz` (loaded through SCHEMATHESIS_HOOKS by tests/fuzz/run.py).

`positive_data_accepted` is schemathesis' experimental `positive_data_acceptance` (a request the schema
calls valid must be accepted) made exact about the 400s: it allows only those whose error code names
state or a rule JSON Schema cannot say, never one about the request's shape. Allowed:

- any 2xx; 401/403/404 (no such object, or another client's); 402 (a decline); 409 (wrong state, key
  in use); 422 (a key reused with another body) — the answers that depend on state;
- 400 `amount_too_large` (more than is left to capture or refund: the payment's state), 400
  `resource_missing` (an `after=` cursor naming no event), 400 `card_data_not_allowed` (a run of
  digits that is a card number: a Luhn and IIN rule no schema pattern states);
- 400 `parameter_invalid` on `payment_method` for a payment made with a saved method (`pmt_…`) the
  customer does not have (the fuzzer cannot know which saved methods exist: state);
- on the Stripe webhook, 400 `signature_missing`/`signature_invalid`: the fuzzer does not hold the
  signing secret (the signed deliveries are tested in tests/webhooks).

`filter_query` drops the generated queries a query string cannot carry: a parameter whose value is null,
a list or an object is serialized away (`?page_size=1` for `{"page_size": 1, "customer_id": []}`), so the
service receives a valid request that schemathesis counts as a negative one it should have refused.
`filter_path_parameters` does the same for path segments, which have no type: the "negative" integer 0
arrives as the valid id "0" (`GET /api/v1/customers/0/` then finds the customer a PUT made as "0"). The
hook sees the segments after schemathesis has quoted them with `quote_plus`, which writes a space as "+";
a path does not decode "+" (only a query does), so the "negative" id " " arrived as the valid id "+" and
was created. A "+" of its own is quoted as %2B, so a "+" in a quoted segment is always a space.
"""

import json

import schemathesis

import tests.fuzz.compat  # noqa: F401 - hypothesis-jsonschema with this hypothesis

STATE_STATUSES = {401, 402, 403, 404, 409, 422}
STATE_CODES = {"amount_too_large", "resource_missing", "card_data_not_allowed"}
WEBHOOK_PATH = "/api/v1/webhooks/stripe/"
WEBHOOK_CODES = {"signature_missing", "signature_invalid"}


def _error(response) -> dict:
    try:
        error = json.loads(response.content)["error"]
    except (ValueError, KeyError, TypeError):
        return {}
    return error if isinstance(error, dict) else {}


def _unknown_saved_method(case, error: dict) -> bool:
    body = case.body if isinstance(case.body, dict) else {}
    method = body.get("payment_method")
    return (
        isinstance(method, str)
        and method.startswith("pmt_")
        and error.get("code") == "parameter_invalid"
        and error.get("param") == "payment_method"
    )


@schemathesis.check
def positive_data_accepted(ctx, response, case) -> None:
    method = case.data_generation_method
    if method is None or not method.is_positive:
        return
    if case.meta and case.meta.description and case.meta.description.startswith("Unspecified HTTP method"):
        return
    status = response.status_code
    if 200 <= status < 300 or status in STATE_STATUSES:
        return
    error = _error(response)
    code = error.get("code")
    allowed = STATE_CODES | (WEBHOOK_CODES if case.operation.path == WEBHOOK_PATH else set())
    if status == 400 and (code in allowed or _unknown_saved_method(case, error)):
        return
    raise AssertionError(f"A request the schema calls valid was refused: {status} {code or ''}".rstrip())


@schemathesis.hook
def filter_query(context, query) -> bool:
    return not query or all(not isinstance(value, list | dict) and value is not None for value in query.values())


@schemathesis.hook
def filter_path_parameters(context, path_parameters) -> bool:
    return not path_parameters or all(isinstance(value, str) and "+" not in value for value in path_parameters.values())
