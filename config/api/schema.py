"""OpenAPI helpers: the error envelope, the responses each operation can give, headers, pages, the webhook.

The views annotate themselves with `extend_schema(...)` using these helpers; `postprocess` (a
drf-spectacular postprocessing hook, `SPECTACULAR_SETTINGS["POSTPROCESSING_HOOKS"]`) adds what no DRF
view carries: the Stripe webhook (a plain Django view) and the OpenAPI links of the payment flow
(create -> confirm -> capture -> refund) that schemathesis follows as stateful tests (`make fuzz`).
"""

from typing import Any

from drf_spectacular.utils import OpenApiParameter, OpenApiResponse

# A string the service can store: no NUL (PostgreSQL text and jsonb refuse it).
NO_NUL = "^[^\\u0000]*$"
# A field of StrictCharField: no control character (C0, DEL, C1) and no surrounding whitespace.
_SAFE = "[^\\u0000-\\u001f\\u007f-\\u009f]"
_EDGE = "[^\\s\\u0000-\\u001f\\u007f-\\u009f]"
NOT_BLANK = f"^{_EDGE}({_SAFE}*{_EDGE})?$"
SAFE_OR_EMPTY = f"^({_EDGE}({_SAFE}*{_EDGE})?)?$"
# 1-255 printable ASCII characters; no leading or trailing space (HTTP strips it from a header value).
IDEMPOTENCY_KEY_PATTERN = "^[!-~]([ -~]{0,253}[!-~])?$"

ERROR_TYPES = (
    "invalid_request_error",
    "authentication_error",
    "card_error",
    "permission_error",
    "state_error",
    "idempotency_error",
    "rate_limit_error",
    "gateway_error",
    "api_error",
)

ERROR_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": 'The error envelope of docs/api.md, "Errors": every error of every /api/ path has it.',
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["type", "code", "message"],
            "properties": {
                "type": {"type": "string", "enum": list(ERROR_TYPES)},
                "code": {"type": "string", "description": "e.g. parameter_invalid, resource_missing, card_declined"},
                "message": {"type": "string"},
                "param": {"type": "string", "description": "the parameter at fault, when there is one"},
            },
        }
    },
}

ERROR = {"$ref": "#/components/schemas/Error"}

# What each status means in this API (docs/api.md, "Errors"), as the response's description.
ERROR_DESCRIPTIONS = {
    400: "invalid_request_error: parameter_missing, parameter_invalid, amount_too_small, amount_too_large, "
    "currency_not_supported, card_data_not_allowed, idempotency_key_missing, idempotency_key_invalid, "
    "body_too_large",
    401: "authentication_error: not_authenticated, token_invalid (invalid_credentials on the token endpoint)",
    402: "card_error: the gateway's decline code (card_declined, insufficient_funds, expired_card, ...) or blocked",
    403: "permission_error: permission_denied (not an API client, or the wrong role)",
    404: "invalid_request_error: resource_missing (also another client's object)",
    405: "invalid_request_error: method_not_allowed",
    409: "state_error: payment_unexpected_state, payment_in_review; idempotency_error: idempotency_key_in_use",
    415: "invalid_request_error: unsupported_media_type (bodies are JSON only)",
    422: "idempotency_error: idempotency_key_reused (the same key with another request)",
    429: "rate_limit_error: rate_limited, with Retry-After",
    502: "gateway_error: gateway_unavailable, gateway_timeout (the operation is not lost)",
    503: "service_unavailable (a dependency such as the database is down), with Retry-After",
}

RETRY_AFTER = OpenApiParameter(
    "Retry-After",
    {"type": "string", "pattern": "^[0-9]+$"},
    location=OpenApiParameter.HEADER,
    description="Seconds to wait before retrying.",
    response=[429, 503],
    required=True,
)
IDEMPOTENT_REPLAYED = OpenApiParameter(
    "Idempotent-Replayed",
    {"type": "string", "enum": ["true"]},
    location=OpenApiParameter.HEADER,
    description="Present on a repeat of a request with the same Idempotency-Key: the stored response.",
    response=True,
)

# Statuses every authenticated operation can answer, whatever it does.
COMMON = (400, 401, 403, 429, 503)


def idempotency_key(*, required: bool) -> OpenApiParameter:
    needed = "Required" if required else "Optional"
    return OpenApiParameter(
        "Idempotency-Key",
        {"type": "string", "minLength": 1, "maxLength": 255, "pattern": IDEMPOTENCY_KEY_PATTERN},
        location=OpenApiParameter.HEADER,
        required=required,
        description=f"{needed}: 1-255 printable ASCII characters, kept 24 h per API client. A repeat with the "
        "same key and request replays the first response (`Idempotent-Replayed: true`); the same key "
        "with another request is 422 idempotency_key_reused.",
    )


def text(*, max_length: int | None = None, blank: bool = False, **extra: Any) -> dict[str, Any]:
    """A string parameter or field as the serializers take it: no NUL, not blank unless `blank`."""
    schema: dict[str, Any] = {"type": "string", "pattern": SAFE_OR_EMPTY if blank else NOT_BLANK}
    if not blank:
        schema["minLength"] = 1
    if max_length is not None:
        schema["maxLength"] = max_length
    return {**schema, **extra}


def query(name: str, schema: dict[str, Any], description: str = "") -> OpenApiParameter:
    return OpenApiParameter(name, schema, location=OpenApiParameter.QUERY, description=description)


def path_id(name: str, description: str) -> OpenApiParameter:
    return OpenApiParameter(
        name, {"type": "string", "pattern": NO_NUL}, location=OpenApiParameter.PATH, description=description
    )


PAGE_SIZE = query("page_size", {"type": "integer", "minimum": 1, "maximum": 100}, "1 to 100 (default 20)")
CURSOR = query(
    "cursor",
    {"type": "string", "minLength": 1, "pattern": NO_NUL},
    "the `next` or `previous` link's cursor (an unknown one is 404)",
)


def responses(success: dict[int, Any], *errors: int) -> dict[int, Any]:
    """`success` (status -> schema) and the error statuses `errors` (plus COMMON), each with the envelope."""
    answer: dict[int, Any] = dict(success)
    for status in sorted({*COMMON, *errors}):
        answer[status] = OpenApiResponse(response=ERROR, description=ERROR_DESCRIPTIONS[status])
    return answer


def page_of(item: dict[str, Any], description: str = "") -> dict[str, Any]:
    return {
        "type": "object",
        "x-page": True,  # not an item: `postprocess` undoes drf-spectacular's wrapping of list responses
        "description": description or "A page: DRF cursor pagination.",
        "required": ["next", "previous", "results"],
        "properties": {
            "next": {"type": "string", "nullable": True},
            "previous": {"type": "string", "nullable": True},
            "results": {"type": "array", "items": item},
        },
    }


# An ISO 8601 time the filters parse (django-filter's IsoDateTimeFilter); days up to 28 so that every match exists.
ISO_DATETIME: dict[str, Any] = {
    "type": "string",
    "pattern": "^[1-9][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])T([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9]"
    "(\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])$",
    "description": "ISO 8601, e.g. 2026-11-22T10:00:00Z",
}

COMPONENTS: dict[str, dict[str, Any]] = {"Error": ERROR_SCHEMA}


def component(name: str, schema: dict[str, Any]) -> dict[str, str]:
    """Register a schema under components/schemas (added by `postprocess`); returns its $ref."""
    COMPONENTS[name] = schema
    return {"$ref": f"#/components/schemas/{name}"}


# --- postprocessing: the webhook, and the links of the payment flow ------------------------------------
WEBHOOK_PATH = "/api/v1/webhooks/stripe/"


def _webhook_operation() -> dict[str, Any]:
    error = {"application/json": {"schema": ERROR}}
    return {
        "operationId": "webhooks_stripe_create",
        "tags": ["webhooks"],
        "summary": "Stripe's webhook (no JWT: Stripe signs the raw body)",
        "description": "A plain Django view (CSRF-exempt). The raw body is verified against `Stripe-Signature` "
        "with STRIPE_WEBHOOK_SECRET (tolerance 300 s both ways) before it is parsed; a verified event is "
        "stored once by its Stripe id and processed by a worker. Not rate-limited.",
        "security": [],
        "parameters": [
            {
                "name": "Stripe-Signature",
                "in": "header",
                "required": True,
                "description": "`t=<unix time>,v1=<hex HMAC-SHA256 of '<t>.<body>'>`",
                "schema": {"type": "string"},
            }
        ],
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "description": "A Stripe event, as Stripe sends it.",
                        "required": ["id", "type", "data"],
                        "properties": {
                            "id": {"type": "string"},
                            "object": {"type": "string", "enum": ["event"]},
                            "type": {"type": "string"},
                            "created": {"type": "integer"},
                            "data": {"type": "object"},
                        },
                    }
                }
            },
        },
        "responses": {
            "200": {
                "description": "Verified and stored (or a duplicate delivery).",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "required": ["received"],
                            "properties": {"received": {"type": "boolean", "enum": [True]}},
                        }
                    }
                },
            },
            "400": {"description": "Bad, missing or stale signature, or not a Stripe event.", "content": error},
            "503": {"description": ERROR_DESCRIPTIONS[503], "content": error},
        },
    }


# (operationId of the response's operation, status) -> links: name -> (operationId, parameters)
LINKS: dict[tuple[str, str], dict[str, tuple[str, dict[str, str]]]] = {}


def link(operation_id: str, status: int, name: str, target: str, **parameters: str) -> None:
    """Declare an OpenAPI link from a response to the operation `target` (a link is a stateful step)."""
    LINKS.setdefault((operation_id, str(status)), {})[name] = (target, parameters)


def postprocess(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: add the webhook and the links."""
    result.setdefault("paths", {}).setdefault(WEBHOOK_PATH, {})["post"] = _webhook_operation()
    result.setdefault("components", {}).setdefault("schemas", {}).update(COMPONENTS)
    operations = {
        operation["operationId"]: operation
        for item in result["paths"].values()
        for operation in item.values()
        if isinstance(operation, dict) and "operationId" in operation
    }
    for operation in operations.values():
        for answer in operation.get("responses", {}).values():
            media = answer.get("content", {}).get("application/json", {})
            wrapped = media.get("schema", {})
            results = wrapped.get("properties", {}).get("results", {})  # DRF's paginator's own wrapper
            if results.get("type") == "array" and results.get("items", {}).get("x-page"):
                media["schema"] = {k: v for k, v in results["items"].items() if k != "x-page"}
            elif wrapped.get("type") == "array" and wrapped.get("items", {}).get("x-page"):
                media["schema"] = {k: v for k, v in wrapped["items"].items() if k != "x-page"}
            elif wrapped.get("x-page"):
                media["schema"] = {k: v for k, v in wrapped.items() if k != "x-page"}
    for name, component in result["components"]["schemas"].items():
        if name.startswith(("TokenObtain", "TokenRefresh", "RotatingTokenRefresh")):
            for field in component.get("required", []):  # simplejwt's fields refuse a blank string
                prop = component["properties"].get(field, {})
                if prop.get("type") == "string" and prop.get("writeOnly"):
                    prop.setdefault("minLength", 1)
    for operation_id in ("auth_token_create", "auth_token_refresh_create"):
        answers = operations.get(operation_id, {}).get("responses", {})
        for code in (400, 401, 429, 503):
            error_answer: dict[str, Any] = {
                "description": ERROR_DESCRIPTIONS[code],
                "content": {"application/json": {"schema": ERROR}},
            }
            if code in (429, 503):
                error_answer["headers"] = {
                    "Retry-After": {"schema": {"type": "string", "pattern": "^[0-9]+$"}, "required": True}
                }
            answers.setdefault(str(code), error_answer)
    for operation in operations.values():
        body = operation.get("requestBody")
        if body:
            for media_type in list(body["content"]):
                if media_type != "application/json":  # JSON only: anything else is 415
                    del body["content"][media_type]
            schema = body["content"].get("application/json", {}).get("schema", {})
            if "$ref" in schema:  # a serializer's component: its own `required` says
                schema = result["components"]["schemas"].get(schema["$ref"].rsplit("/", 1)[-1], {})
            # an object with no required property may be left out: an empty body counts as {}
            body["required"] = bool(schema.get("required") or schema.get("oneOf") or schema.get("$ref"))
    for (operation_id, status), links in LINKS.items():
        response = operations.get(operation_id, {}).get("responses", {}).get(status)
        if response is None:
            continue
        response["links"] = {
            name: {"operationId": target, "parameters": parameters}
            for name, (target, parameters) in links.items()
            if target in operations
        }
    return result
