"""Run localstripe in memory, extended where it lacks real-Stripe behaviour our Stripe gateway relies on.

Usage: python scripts/localstripe_server.py --port 8420   (state is wiped with `DELETE /_config/data`)

The patches below follow Stripe's documented API; each says which localstripe gap it closes:
- `Idempotency-Key` is honoured: the same key on the same endpoint with the same parameters replays the
  first response (`Idempotent-Replayed: true`) and does nothing twice; other parameters -> 400
  `idempotency_error`.
- PaymentIntents accept `description`, `automatic_payment_methods`, `receipt_email`, `statement_descriptor`;
  confirm accepts `payment_method` (also after a decline) and `return_url`; cancel accepts
  `cancellation_reason`; refunds accept `reason`; PaymentIntent and Refund lists accept `created` filters
  and come newest first.
- PaymentIntents report `amount_capturable` and `amount_received`; a partial capture releases the rest
  instead of creating a refund for it.
- Stripe's test tokens `pm_card_mastercard`, `pm_card_chargeDeclined*`, `pm_card_threeDSecure2Required`,
  `pm_card_authenticationRequired` work; declines carry `decline_code` and the `payment_intent`; confirming
  or capturing in the wrong status -> 400 `payment_intent_unexpected_state`.
Not patched: over-refunds are accepted; `latest_charge` comes back expanded; webhooks as localstripe sends them.
"""

import argparse
import asyncio
import hashlib
import importlib
import logging
import operator
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web
from localstripe import resources
from localstripe.errors import UserError
from localstripe.resources import Charge, PaymentIntent, PaymentMethod, Refund, Store


# --- keep the store in memory: localstripe pickles it to the fixed file /tmp/localstripe.pickle ----------
def _no_disk(self: Store) -> None:
    return None


Store.dump_to_disk = _no_disk
Store.try_load_from_disk = _no_disk


def _unexpected_state(intent: Any, action: str) -> UserError:
    return UserError(
        400,
        f"You cannot {action} this PaymentIntent because it has a status of {intent.status}.",
        {"code": "payment_intent_unexpected_state"},
    )


def _invalid(param: str, value: Any) -> UserError:
    return UserError(400, f"Invalid {param}: {value!r}", {"code": "parameter_invalid", "param": param})


# --- Stripe's test payment-method tokens and decline codes (localstripe knows three tokens) ------------
TEST_CARDS = {
    "pm_card_visa": "4242424242424242",
    "pm_card_visa_debit": "4000056655665556",
    "pm_card_mastercard": "5555555555554444",
    "pm_card_chargeDeclined": "4000000000000002",
    "pm_card_visa_chargeDeclined": "4000000000000002",
    "pm_card_chargeCustomerFail": "4000000000000341",
    "pm_card_chargeDeclinedInsufficientFunds": "4000000000009995",
    "pm_card_chargeDeclinedLostCard": "4000000000009987",
    "pm_card_chargeDeclinedStolenCard": "4000000000009979",
    "pm_card_chargeDeclinedExpiredCard": "4000000000000069",
    "pm_card_chargeDeclinedIncorrectCvc": "4000000000000127",
    "pm_card_chargeDeclinedProcessingError": "4000000000000119",
    "pm_card_threeDSecure2Required": "4000000000003220",  # localstripe already asks 3DS for these two
    "pm_card_authenticationRequired": "4000002760003184",
}
# card number -> (code, decline_code, message), as Stripe reports them
DECLINES = {
    "4000000000000002": ("card_declined", "generic_decline", "Your card was declined."),
    "4000000000000341": ("card_declined", "generic_decline", "Your card was declined."),
    "4000000000009995": ("card_declined", "insufficient_funds", "Your card has insufficient funds."),
    "4000000000009987": ("card_declined", "lost_card", "Your card was declined."),
    "4000000000009979": ("card_declined", "stolen_card", "Your card was declined."),
    "4000000000000069": ("expired_card", "expired_card", "Your card has expired."),
    "4000000000000127": ("incorrect_cvc", "incorrect_cvc", "Your card's security code is incorrect."),
    "4000000000000119": (
        "processing_error",
        "processing_error",
        "An error occurred while processing your card. Try again in a little bit.",
    ),
}
_GENERIC_DECLINE = DECLINES["4000000000000002"]


def _test_article(cls: type, id: str) -> Any:
    number = TEST_CARDS.get(id)
    if number is None:
        return None
    method = PaymentMethod(type="card", card={"number": number, "exp_month": "12", "exp_year": "2034", "cvc": "123"})
    method.card["brand"] = "mastercard" if number.startswith("5") else "visa"
    return method


PaymentMethod._try_get_canonical_test_article = classmethod(_test_article)

_charging_is_declined = PaymentMethod._charging_is_declined
PaymentMethod._charging_is_declined = lambda self: (
    getattr(self, "_card_number", None) in DECLINES or _charging_is_declined(self)
)


def _set_auth_failure(self: Any) -> None:
    number = getattr(PaymentMethod._api_retrieve(self.payment_method), "_card_number", None)
    self.failure_code, self._decline_code, self.failure_message = DECLINES.get(number, _GENERIC_DECLINE)
    self.status = "failed"


Charge._set_auth_failure = _set_auth_failure

_last_payment_error = PaymentIntent.last_payment_error.fget


def _last_payment_error_with_decline_code(self: Any) -> dict[str, Any] | None:
    error = _last_payment_error(self)
    if error and self.latest_charge is not None and self.latest_charge.status == "failed":
        error.update(type="card_error", decline_code=getattr(self.latest_charge, "_decline_code", None))
    return error


PaymentIntent.last_payment_error = property(_last_payment_error_with_decline_code)

_report_failure = PaymentIntent._report_failure


def _report_failure_with_intent(self: Any) -> None:
    """Stripe's 402 on confirm carries decline_code and the PaymentIntent (now requires_payment_method)."""
    try:
        _report_failure(self)
    except UserError as error:
        error.body["error"].update(self.last_payment_error or {}, payment_intent=self._export())
        raise


PaymentIntent._report_failure = _report_failure_with_intent


# --- amounts Stripe reports and localstripe leaves out -------------------------------------------------
def _amount_captured(charge: Any) -> int:
    return getattr(charge, "_amount_captured", None) or charge.amount


PaymentIntent.amount_capturable = property(lambda self: self.amount if self.status == "requires_capture" else 0)
PaymentIntent.amount_received = property(
    lambda self: _amount_captured(self.latest_charge) if self.status == "succeeded" else 0
)


def _capture(self: Any, amount: Any, on_success: Callable[[], None] | None = None) -> None:
    """Like localstripe's, but a partial capture releases the rest (Stripe) instead of refunding it."""
    amount = self.amount if amount is None else resources.try_convert_to_int(amount)
    if type(amount) is not int or not 0 < amount <= self.amount:
        raise _invalid("amount_to_capture", amount)
    if self.captured or self.status != "succeeded":
        raise UserError(400, "This charge has already been captured.", {"code": "charge_already_captured"})

    def on_captured() -> None:
        self.captured = True
        self._amount_captured = amount
        if on_success:
            on_success()

    self._trigger_payment(on_success=on_captured)


Charge._capture = _capture

# --- real parameters localstripe rejects with 400 "Unexpected ..." --------------------------------------
_EXTRA_INTENT_FIELDS = (
    "automatic_payment_methods",  # accepted and reported, not applied: localstripe only knows cards and SEPA
    "description",
    "receipt_email",
    "statement_descriptor",
    "statement_descriptor_suffix",
)
_intent_init = PaymentIntent.__init__


def _intent_init_with_extras(self: Any, **data: Any) -> None:
    extras = {name: data.pop(name, None) for name in _EXTRA_INTENT_FIELDS}
    _intent_init(self, **data)
    vars(self).update(extras, cancellation_reason=None, canceled_at=None)


PaymentIntent.__init__ = _intent_init_with_extras

_refund_init = Refund.__init__
REFUND_REASONS = ("duplicate", "fraudulent", "requested_by_customer")


def _refund_init_with_reason(self: Any, reason: str | None = None, **data: Any) -> None:
    if reason is not None and reason not in REFUND_REASONS:
        raise _invalid("reason", reason)
    _refund_init(self, **data)
    self.reason = reason


Refund.__init__ = _refund_init_with_reason

_confirm, _cancel, _capture_intent = PaymentIntent._api_confirm, PaymentIntent._api_cancel, PaymentIntent._api_capture
CANCELLATION_REASONS = ("abandoned", "duplicate", "fraudulent", "requested_by_customer")


def _api_confirm(id: str, payment_method: str | None = None, return_url: str | None = None, **data: Any) -> Any:
    """Stripe lets confirm set (or, after a decline, replace) the payment method; localstripe answers 500."""
    intent = PaymentIntent._api_retrieve(id)
    confirmable = ("requires_confirmation", "requires_payment_method") if payment_method else ("requires_confirmation",)
    if intent.status not in confirmable:
        raise _unexpected_state(intent, "confirm")
    if payment_method:
        intent.payment_method = PaymentMethod._api_retrieve(payment_method).id  # 404 when unknown
        if intent.latest_charge is not None and intent.latest_charge.status == "failed":
            intent.latest_charge = None  # a new attempt makes a new charge
    return _confirm(id=id, **data)


def _api_cancel(id: str, cancellation_reason: str | None = None, **data: Any) -> Any:
    if cancellation_reason is not None and cancellation_reason not in CANCELLATION_REASONS:
        raise _invalid("cancellation_reason", cancellation_reason)
    intent = PaymentIntent._api_retrieve(id)
    if intent.status in ("succeeded", "canceled"):
        raise _unexpected_state(intent, "cancel")
    intent = _cancel(id=id, **data)
    intent.cancellation_reason, intent.canceled_at = cancellation_reason, int(time.time())
    return intent


def _api_capture(id: str, **data: Any) -> Any:
    intent = PaymentIntent._api_retrieve(id)
    if intent.status != "requires_capture":
        raise _unexpected_state(intent, "capture")
    return _capture_intent(id=id, **data)


# localstripe.server registers these routes with the functions listed here, at import: swap them first.
_REPLACEMENTS = {_confirm: _api_confirm, _cancel: _api_cancel, _capture_intent: _api_capture}
resources.extra_apis[:] = [(method, url, _REPLACEMENTS.get(func, func)) for method, url, func in resources.extra_apis]

_COMPARE = {"gt": operator.gt, "gte": operator.ge, "lt": operator.lt, "lte": operator.le, "eq": operator.eq}


def _with_created_filter(list_all: Callable[..., Any]) -> classmethod:
    """`created` (an int or {gt, gte, lt, lte}) filters the list, which comes newest first as on Stripe."""

    def list_with_filter(cls: type, url: str, created: Any = None, **data: Any) -> Any:
        bounds = {} if created is None else created if isinstance(created, dict) else {"eq": created}
        try:
            checks = [(_COMPARE[op], int(value)) for op, value in bounds.items()]
        except (KeyError, TypeError, ValueError):
            raise _invalid("created", created) from None
        page = list_all(url, **data)
        items = [item for item in reversed(page._list) if all(op(item.created, v) for op, v in checks)]
        page._list = sorted(items, key=lambda item: item.created, reverse=True)  # stable: ties stay newest first
        return page

    return classmethod(list_with_filter)


PaymentIntent._api_list_all = _with_created_filter(PaymentIntent._api_list_all)
Refund._api_list_all = _with_created_filter(Refund._api_list_all)

# --- Idempotency-Key --------------------------------------------------------------------------------------
_replays: dict[str, tuple[tuple[str, str], int, bytes]] = {}  # key -> ((path, body digest), status, body)
_locks: dict[str, asyncio.Lock] = {}


@web.middleware
async def idempotency_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Replay the first response to a POST with the same key; keys are scoped to the API key, as on Stripe."""
    if request.method == "DELETE" and request.path == "/_config/data":
        _replays.clear()
        _locks.clear()
    key = request.headers.get("Idempotency-Key")
    if request.method != "POST" or not key or not request.path.startswith("/v1/"):
        return await handler(request)
    scope = hashlib.sha256(request.headers.get("Authorization", "").encode()).hexdigest()
    key = f"{scope}:{key}"
    fingerprint = (request.path, hashlib.sha256(await request.read()).hexdigest())
    async with _locks.setdefault(key, asyncio.Lock()):
        if key in _replays:
            first, status, body = _replays[key]
            if first != fingerprint:
                error = UserError(
                    400,
                    "Keys for idempotent requests can only be used with the same parameters they were first used with.",
                )
                error.body["error"]["type"] = "idempotency_error"
                return error.to_response()
            replay = web.Response(body=body, status=status, content_type="application/json")
            replay.headers["Idempotent-Replayed"] = "true"
            return replay
        response = await handler(request)
        # Stripe saves results once the endpoint started executing: successes and declines, not errors
        # in validation or on its side.
        if isinstance(response, web.Response) and response.body is not None and response.status in (200, 402):
            _replays[key] = (fingerprint, response.status, bytes(response.body))
        return response


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8420)
    parser.add_argument("--verbose", action="store_true", help="log every request")
    args = parser.parse_args()

    server = importlib.import_module("localstripe.server")  # after the patches: it registers routes at import
    server.app.middlewares.insert(0, idempotency_middleware)  # outermost: sees error responses too
    access_log = logging.getLogger("aiohttp.access")
    if args.verbose:
        logging.basicConfig(level=logging.INFO)
    web.run_app(server.app, host=args.host, port=args.port, access_log=access_log if args.verbose else None, print=None)


if __name__ == "__main__":
    main()
