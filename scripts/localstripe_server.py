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
- Customers, saved payment methods and setup intents as on Stripe: Stripe's test cards keep their brand, last4,
  funding and country US (`pm_card_amex`, `pm_card_discover`, `pm_card_visa_debit` too); attach refuses a decline
  card with a 402 card_error and its decline_code, a detached method (never usable again) and another customer's;
  detaching the default unsets `invoice_settings.default_payment_method`; a deleted customer's methods are
  detached and retrieving it answers Stripe's `{"deleted": true}` stub; PaymentIntents accept
  `setup_future_usage` (the card is saved to the customer on success), refuse another customer's or a detached
  method, and off session a card that needs authentication is a 402 `authentication_required`; SetupIntents
  accept `payment_method`, `confirm` and `automatic_payment_methods`, save the card to the customer on success
  and answer a decline with a 402 card_error leaving the intent in requires_payment_method.
- Prices (`/v1/prices`: create with `product` or `product_data`, `recurring[interval|interval_count|
  trial_period_days]`; retrieve; update `active`/`nickname`/`metadata`; list newest first with `active`, `product`,
  `type`, `currency`, paging; `product` an id or expanded), each recurring price being the Plan (same id) that
  localstripe bills; subscription items and invoice lines carry `price`.
- Subscriptions as Stripe creates them: `items[i][price]` (inactive or one-off refused), `default_payment_method`
  (must be the customer's; it pays the invoices), `off_session`, `trial_period_days`, `trial_from_plan` (the price's
  trial) and `trial_end` (a trial: `trialing`, trial_start/trial_end, the period is the trial, a $0 first invoice paid
  at once); without one the first invoice is finalized and charged now: paid -> `active`, declined -> `incomplete`
  with the invoice open (its PaymentIntent holds the decline), off session a card needing authentication too
  (`authentication_required`). Periods span `interval_count` intervals. Updates accept `items[i][price]`,
  `proration_behavior`, `payment_behavior`, `default_payment_method`; `cancel_at_period_end` sets `cancel_at` and
  `canceled_at`; `DELETE` cancels now (canceled_at, ended_at, `expand[]` honoured). Lists take `created`.
- Invoices: `attempt_count`/`attempted` as Stripe counts them, `amount_remaining`, `billing_reason`; `pay` accepts
  `off_session` and `payment_method` and answers a decline with a 402 card_error (the invoice stays open);
  `mark_uncollectible`; `invoice.finalized`, `invoice.paid` (beside `invoice.payment_succeeded`), `price.created`
  and `customer.subscription.updated` are sent.
Not patched: over-refunds are accepted; `latest_charge` comes back expanded; webhooks as localstripe sends them;
no clock (no renewals, trial ends, retries or expiry), proration credits every earlier invoice in full, pre-2025 object
shapes (`invoice.payment_intent`, `invoice.subscription`, `subscription.current_period_*`).
"""

import argparse
import asyncio
import hashlib
import importlib
import logging
import operator
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web
from dateutil.relativedelta import relativedelta
from localstripe import resources
from localstripe.errors import UserError
from localstripe.resources import Charge, Customer, Event, PaymentIntent, PaymentMethod, Refund, SetupIntent, Store


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


TEST_CARDS.update({"pm_card_amex": "371449635398431", "pm_card_discover": "6011111111111117"})
_BRANDS = (("34", "amex"), ("37", "amex"), ("5", "mastercard"), ("6011", "discover"), ("4", "visa"))
_DEBIT_CARDS = {"4000056655665556"}


def _test_article(cls: type, id: str) -> Any:
    """A new PaymentMethod for one of Stripe's test tokens, with that test card's details (as Stripe clones them)."""
    number = TEST_CARDS.get(id)
    if number is None:
        return None
    # localstripe only takes 16 digits: make it with a placeholder, then give it the real test number.
    method = PaymentMethod(
        type="card", card={"number": "4242424242424242", "exp_month": "12", "exp_year": "2034", "cvc": "123"}
    )
    method._card_number = number
    method.card.update(
        brand=next(brand for prefix, brand in _BRANDS if number.startswith(prefix)),
        last4=number[-4:],
        fingerprint=resources.fingerprint(number),
        funding="debit" if number in _DEBIT_CARDS else "credit",
        country="US",
    )
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
    "automatic_payment_methods",
    "setup_future_usage",  # accepted and reported, not applied: localstripe only knows cards and SEPA
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


# --- customers, saved payment methods, setup intents -------------------------------------------------------
_deleted_customers: set[str] = set()


def _card_error(status: int, number: str | None, **extra: Any) -> UserError:
    code, decline_code, message = DECLINES.get(number or "", _GENERIC_DECLINE)
    error = UserError(status, message, {"code": code, "decline_code": decline_code})
    error.body["error"].update(type="card_error", **extra)
    return error


def _saved(id: str | None) -> Any:
    """A stored PaymentMethod (not a test token, which retrieving would clone), or None."""
    return resources.store.get(f"payment_method:{id}") if id else None


def _check_usable(method: Any, customer: str | None) -> None:
    if method is None:
        return
    if getattr(method, "_detached", False):
        raise UserError(
            400,
            f"The provided PaymentMethod {method.id} was detached from a Customer and may not be used again.",
            {"code": "payment_method_unexpected_state"},
        )
    if method.customer and method.customer != customer:
        raise UserError(
            400,
            f"The provided PaymentMethod {method.id} does not belong to the Customer {customer}.",
            {"code": "payment_method_invalid_parameter", "param": "payment_method"},
        )


def _api_attach(id: str, customer: Any = None, **kwargs: Any) -> Any:
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs))
    if not isinstance(customer, str) or not customer.startswith("cus_"):
        raise _invalid("customer", customer)
    Customer._api_retrieve(customer)  # 404 when unknown (or deleted)
    method = PaymentMethod._api_retrieve(id)  # a test token is cloned
    if getattr(method, "_detached", False):
        _check_usable(method, customer)
    if method.customer and method.customer != customer:
        raise UserError(
            400,
            "The payment method you provided has already been attached to a customer.",
            {"code": "payment_method_unexpected_state"},
        )
    if method._attaching_is_declined():
        raise _card_error(402, getattr(method, "_card_number", None))
    method.customer = customer
    return method


def _api_detach(id: str, **kwargs: Any) -> Any:
    if kwargs:
        raise UserError(400, "Unexpected " + ", ".join(kwargs))
    method = PaymentMethod._api_retrieve(id)
    if not method.customer:
        raise UserError(
            400,
            "The payment method you provided is not attached to a customer so detachment is impossible.",
            {"code": "payment_method_unexpected_state"},
        )
    owner = resources.store.get(f"customer:{method.customer}")
    if owner is not None and owner.invoice_settings.get("default_payment_method") == method.id:
        owner.invoice_settings["default_payment_method"] = None
    method.customer, method._detached = None, True
    return method


_delete_customer = Customer._api_delete


def _api_delete_customer(cls: type, id: str) -> Any:
    """Deleting a customer detaches its payment methods; retrieving it afterwards gives Stripe's stub."""
    deleted = _delete_customer(id)
    for key, method in list(resources.store.items()):
        if key.startswith("payment_method:") and method.customer == id:
            method.customer, method._detached = None, True
    _deleted_customers.add(id)
    return deleted


Customer._api_delete = classmethod(_api_delete_customer)


def _api_create_intent(cls: type, confirm: Any = None, off_session: Any = None, **data: Any) -> Any:
    """Like localstripe's, but off session a card that needs authentication fails, and saved methods are checked."""
    confirm, off_session = resources.try_convert_to_bool(confirm), resources.try_convert_to_bool(off_session)
    if off_session is not None and confirm is not True:
        raise UserError(400, "off_session can only be used when confirm=true.", {"param": "off_session"})
    _check_usable(_saved(data.get("payment_method")), data.get("customer"))
    intent = cls(**data)
    intent._off_session = bool(off_session)
    if confirm:
        intent._confirm(on_failure_now=intent._report_failure)
    return intent


PaymentIntent._api_create = classmethod(_api_create_intent)
_confirm_intent = PaymentIntent._confirm


def _confirm_off_session(self: Any, on_failure_now: Any) -> None:
    method = PaymentMethod._api_retrieve(self.payment_method)
    if getattr(self, "_off_session", False) and method._requires_authentication():
        message = "Your card was declined. This transaction requires authentication."
        self._auth_error = {
            "code": "authentication_required",
            "decline_code": "authentication_required",
            "message": message,
            "type": "card_error",
            "payment_method": {"id": method.id},
        }
        self.payment_method = None  # back in requires_payment_method, as on Stripe
        error = UserError(402, message, {"code": "authentication_required", "decline_code": "authentication_required"})
        error.body["error"].update(type="card_error", payment_intent=self._export())
        raise error
    _confirm_intent(self, on_failure_now)


PaymentIntent._confirm = _confirm_off_session
_error_with_decline_code = PaymentIntent.last_payment_error.fget


def _last_payment_error_off_session(self: Any) -> dict[str, Any] | None:
    if not self.payment_method and getattr(self, "_auth_error", None):
        return self._auth_error
    return _error_with_decline_code(self)


PaymentIntent.last_payment_error = property(_last_payment_error_off_session)
_on_success = PaymentIntent._on_success


def _on_success_saving(self: Any) -> None:
    """`setup_future_usage` with a customer: the card is saved to the customer when the payment succeeds."""
    if getattr(self, "setup_future_usage", None) and self.customer:
        method = PaymentMethod._api_retrieve(self.payment_method)  # a test token: the clone it becomes
        if method.customer is None and not getattr(method, "_detached", False):
            method.customer = self.customer
        self.payment_method = method.id
    _on_success(self)


PaymentIntent._on_success = _on_success_saving


def _api_create_setup_intent(
    cls: type, confirm: Any = None, payment_method: Any = None, automatic_payment_methods: Any = None, **data: Any
) -> Any:
    method = PaymentMethod._api_retrieve(payment_method) if payment_method else None  # 404 when unknown
    _check_usable(_saved(payment_method), data.get("customer"))
    setup = cls(**data)
    setup.automatic_payment_methods = automatic_payment_methods
    if method is not None:
        setup.payment_method, setup.status = method.id, "requires_confirmation"
    if resources.try_convert_to_bool(confirm):
        if method is None:
            raise UserError(400, "You must provide a payment method to confirm this SetupIntent.")
        setup._attach_pm(method)
    return setup


SetupIntent._api_create = classmethod(_api_create_setup_intent)


def _attach_setup_method(self: Any, method: Any) -> None:
    """Stripe's card check: a decline leaves the intent waiting for another card; success saves the card."""
    self.payment_method = method.id
    if method._attaching_is_declined():
        self.status, self.payment_method, self.next_action = "requires_payment_method", None, None
        raise _card_error(402, getattr(method, "_card_number", None), setup_intent=self._export())
    if method._requires_authentication():
        self.status = "requires_action"
        self.next_action = {"type": "use_stripe_sdk", "use_stripe_sdk": {"type": "three_d_secure_redirect"}}
        return
    if self.customer:
        method.customer = self.customer
    self.status, self.next_action = "succeeded", None


SetupIntent._attach_pm = _attach_setup_method
_confirm_setup = SetupIntent._api_confirm


def _api_confirm_setup(id: str, payment_method: Any = None, **data: Any) -> Any:
    setup = SetupIntent._api_retrieve(id)
    if setup.status not in ("requires_payment_method", "requires_confirmation"):
        raise UserError(
            400,
            f"You cannot confirm this SetupIntent because it has a status of {setup.status}.",
            {"code": "setup_intent_unexpected_state"},
        )
    if payment_method is None and setup.payment_method:
        payment_method = setup.payment_method
    _check_usable(_saved(payment_method), setup.customer)
    return _confirm_setup(id=id, payment_method=payment_method, **data)


@web.middleware
async def deleted_customer_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Retrieving a deleted customer answers Stripe's stub `{"id", "object": "customer", "deleted": true}`."""
    if request.method == "DELETE" and request.path == "/_config/data":
        _deleted_customers.clear()
    parts = request.path.strip("/").split("/")
    if (
        request.method == "GET"
        and len(parts) == 3
        and parts[:2] == ["v1", "customers"]
        and parts[2] in _deleted_customers
    ):
        return web.json_response({"id": parts[2], "object": "customer", "deleted": True})
    return await handler(request)


# localstripe.server registers these routes with the functions listed here, at import: swap them first.
_REPLACEMENTS = {
    _confirm: _api_confirm,
    _cancel: _api_cancel,
    _capture_intent: _api_capture,
    PaymentMethod._api_attach: _api_attach,
    PaymentMethod._api_detach: _api_detach,
    _confirm_setup: _api_confirm_setup,
}
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

# --- billing: Prices over localstripe's Plans, subscriptions and invoices as Stripe answers them -----------
INTERVALS = ("day", "week", "month", "year")
_MAX_INTERVAL = {"day": 1095, "week": 156, "month": 36, "year": 3}  # Stripe: at most three years


def _missing(kind: str, id: Any, param: str) -> UserError:
    return UserError(400, f"No such {kind}: {id!r}", {"code": "resource_missing", "param": param})


class Price(resources.StripeObject):
    """Stripe's Price; a recurring one is also the Plan (same id) localstripe's subscriptions bill, as on Stripe."""

    object = "price"
    _id_prefix = "price_"

    def __init__(
        self,
        currency: Any = None,
        unit_amount: Any = None,
        product: Any = None,
        product_data: Any = None,
        recurring: Any = None,
        active: Any = True,
        nickname: Any = None,
        metadata: Any = None,
        lookup_key: Any = None,
        tax_behavior: Any = None,
        **kwargs: Any,
    ) -> None:
        if kwargs:
            raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs))
        unit_amount, active = resources.try_convert_to_int(unit_amount), resources.try_convert_to_bool(active)
        if not isinstance(currency, str) or len(currency) != 3 or not currency.isalpha():
            raise _invalid("currency", currency)
        if type(unit_amount) is not int or unit_amount < 0:
            raise _invalid("unit_amount", unit_amount)
        if type(active) is not bool:
            raise _invalid("active", active)
        if (product is None) == (product_data is None):
            raise UserError(400, "You must specify exactly one of product or product_data.", {"param": "product"})
        if product_data is not None and (not isinstance(product_data, dict) or not product_data.get("name")):
            raise UserError(400, "Missing required param: product_data[name].", {"param": "product_data[name]"})
        if tax_behavior not in (None, "exclusive", "inclusive", "unspecified"):
            raise _invalid("tax_behavior", tax_behavior)
        plan_args = None
        if recurring is not None:
            if not isinstance(recurring, dict) or recurring.get("interval") not in INTERVALS:
                raise _invalid(
                    "recurring[interval]",
                    (recurring or {}).get("interval") if isinstance(recurring, dict) else recurring,
                )
            count = resources.try_convert_to_int(recurring.get("interval_count", 1))
            if type(count) is not int or not 1 <= count <= _MAX_INTERVAL[recurring["interval"]]:
                raise _invalid("recurring[interval_count]", count)
            trial = recurring.get("trial_period_days")
            trial = None if trial in (None, "") else resources.try_convert_to_int(trial)
            if trial is not None and (type(trial) is not int or not 0 <= trial <= 730):
                raise _invalid("recurring[trial_period_days]", trial)
            if recurring.get("usage_type", "licensed") != "licensed":
                raise _invalid("recurring[usage_type]", recurring.get("usage_type"))
            plan_args = {"interval": recurring["interval"], "interval_count": count, "trial_period_days": trial}
        if product is not None:
            if not isinstance(product, str) or resources.store.get(f"product:{product}") is None:
                raise _missing("product", product, "product")
        else:
            product = resources.Product(name=product_data["name"], metadata=product_data.get("metadata")).id
        id = self._id_prefix + resources.random_id(24)
        if plan_args is not None:  # localstripe bills Plans: the price's twin under the same id
            resources.Plan(
                id=id,
                amount=unit_amount,
                currency=currency.lower(),
                product=product,
                active=active,
                nickname=nickname,
                **plan_args,
            )
        super().__init__(id)
        self.active, self.currency, self.unit_amount = active, currency.lower(), unit_amount
        self.unit_amount_decimal = str(unit_amount)
        self.product, self.nickname, self.lookup_key, self.metadata = product, nickname, lookup_key, metadata or {}
        self.type = "recurring" if plan_args else "one_time"
        self.recurring = None
        if plan_args:
            self.recurring = {**plan_args, "usage_type": "licensed", "aggregate_usage": None, "meter": None}
        self.billing_scheme, self.tax_behavior = "per_unit", tax_behavior or "unspecified"
        self.tiers_mode = self.transform_quantity = self.custom_unit_amount = None
        resources.schedule_webhook(Event("price.created", self))

    @classmethod
    def _api_update(cls, id: str, **data: Any) -> Any:
        """Stripe lets a price change only these; `active` stops new subscriptions to it."""
        price = cls._api_retrieve(id)
        unknown = set(data) - {"active", "nickname", "metadata", "lookup_key"}
        if unknown:
            raise UserError(400, "Received unknown parameter: " + ", ".join(sorted(unknown)))
        if "active" in data:
            data["active"] = resources.try_convert_to_bool(data["active"])
            if type(data["active"]) is not bool:
                raise _invalid("active", data["active"])
            plan = resources.store.get(f"plan:{id}")
            if plan is not None:
                plan.active = data["active"]
        price._update(**data)
        resources.schedule_webhook(Event("price.updated", price))
        return price

    @classmethod
    def _api_delete(cls, id: str) -> Any:
        raise UserError(405, "Prices cannot be deleted; set active=false instead.")

    @classmethod
    def _api_list_all(
        cls,
        url: str,
        active: Any = None,
        product: Any = None,
        type: Any = None,
        currency: Any = None,
        limit: Any = None,
        starting_after: Any = None,
        **kwargs: Any,
    ) -> Any:
        if kwargs:
            raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs))
        active = resources.try_convert_to_bool(active)
        if active is not None and not isinstance(active, bool):
            raise _invalid("active", active)
        if type not in (None, "one_time", "recurring"):
            raise _invalid("type", type)
        page = super()._api_list_all(url, limit=limit, starting_after=starting_after)
        checks = {"active": active, "product": product, "type": type, "currency": currency and currency.lower()}
        items = [p for p in reversed(page._list) if all(v is None or getattr(p, k) == v for k, v in checks.items())]
        page._list = sorted(items, key=lambda p: p.created, reverse=True)  # newest first, as on Stripe
        return page


def _price_of(plan: Any) -> Any:
    return resources.store.get(f"price:{plan.id}") if plan is not None else None


resources.SubscriptionItem.price = property(lambda self: _price_of(self.plan))
resources.InvoiceLineItem.price = property(lambda self: _price_of(self.plan))


def _add_interval(start: int, interval: str, count: int) -> int:
    moment = datetime.fromtimestamp(start, UTC)
    step = {"day": timedelta(days=count), "week": timedelta(weeks=count)}.get(interval)
    moment += step if step is not None else relativedelta(**{f"{interval}s": count})
    return int(moment.timestamp())


def _item_period(self: Any) -> dict[str, int]:
    """The trial while it lasts, then periods of `interval_count` intervals from the trial's end (or the start)."""
    sub = resources.store.get(f"subscription:{self._subscription}") if self._subscription else None
    if sub is not None and getattr(sub, "_trial", False):
        if time.time() < sub.trial_end:
            return {"start": sub.trial_start, "end": sub.trial_end}
        start = sub.trial_end
    else:
        start = sub.start_date if sub is not None else int(time.time())
    return {"start": start, "end": _add_interval(start, self.plan.interval, self.plan.interval_count or 1)}


resources.SubscriptionItem._current_period = _item_period
resources.SubscriptionItem.current_period_start = property(lambda self: self._current_period()["start"])
resources.SubscriptionItem.current_period_end = property(lambda self: self._current_period()["end"])

# Invoices: attempts counted as Stripe counts them, amount_remaining, invoice.finalized and invoice.paid sent.
resources.Invoice.amount_remaining = property(lambda self: self.amount_due - self.amount_paid)
_invoice_status = resources.Invoice.status.fget


def _status_with_uncollectible(self: Any) -> str:
    status = _invoice_status(self)
    return "uncollectible" if status == "open" and getattr(self, "_uncollectible", False) else status


resources.Invoice.status = property(_status_with_uncollectible)
resources.Invoice.next_payment_attempt = property(lambda self: getattr(self, "_next_attempt", None))
_finalize = resources.Invoice._finalize


def _finalize_sending(self: Any) -> None:
    _finalize(self)
    resources.schedule_webhook(Event("invoice.finalized", self))


resources.Invoice._finalize = _finalize_sending
_invoice_paid = resources.Invoice._on_payment_success


def _invoice_paid_sending(self: Any) -> None:
    """Stripe sends `invoice.paid` beside localstripe's `invoice.payment_succeeded`; a trial stays trialing."""
    self.status_transitions["paid_at"] = int(time.time())
    self._next_attempt = None
    resources.schedule_webhook(Event("invoice.paid", self))
    _invoice_paid(self)


resources.Invoice._on_payment_success = _invoice_paid_sending
_initial_success = resources.Subscription._on_initial_payment_success
resources.Subscription._on_initial_payment_success = lambda self, invoice: (
    None if self.status in ("trialing", "active", "canceled") else _initial_success(self, invoice)
)


def _payment_method_for(invoice: Any, payment_method: str | None) -> Any:
    if payment_method:
        return PaymentMethod._api_retrieve(payment_method)
    sub = resources.store.get(f"subscription:{invoice.subscription}") if invoice.subscription else None
    if sub is not None and getattr(sub, "default_payment_method", None):
        return PaymentMethod._api_retrieve(sub.default_payment_method)
    return Customer._api_retrieve(invoice.customer)._get_default_payment_method_or_source()


def _attempt(invoice: Any, *, payment_method: str | None = None, off_session: bool = True) -> UserError | None:
    """Charge an open invoice through its PaymentIntent (made on the first attempt); the decline, if any."""
    invoice._draft, invoice.attempted = False, True
    if invoice.total <= 0:
        invoice._on_payment_success()
        return None
    method = _payment_method_for(invoice, payment_method)
    intent = resources.store.get(f"payment_intent:{invoice.payment_intent}") if invoice.payment_intent else None
    if intent is None:
        intent = PaymentIntent(amount=invoice.total, currency=invoice.currency, customer=invoice.customer)
        intent.invoice, intent.description = invoice.id, "Subscription creation" if invoice.subscription else None
        invoice.payment_intent = intent.id
    if method is None:
        return UserError(400, "This customer has no attached payment source or default payment method.")
    intent.payment_method, intent.latest_charge, intent._off_session = method.id, None, off_session
    invoice.attempt_count += 1
    failure: list[UserError] = []

    def on_failure_now() -> None:
        resources.schedule_webhook(Event("payment_intent.payment_failed", intent))
        charge = intent.latest_charge
        failure.append(_card_error(402, getattr(method, "_card_number", None), charge=charge.id))
        invoice._on_payment_failure_now()

    try:
        intent._confirm(on_failure_now=on_failure_now)
    except UserError as error:  # off session, a card that needs authentication (our _confirm_off_session)
        invoice._on_payment_failure_now()
        return error
    if intent.status == "requires_action":  # on session: the customer must authenticate
        return None
    if failure:
        failure[0].body["error"].update(payment_intent=intent._export())
        return failure[0]
    return None


_in_trial: list[bool] = []  # set while a trial's first invoice is made: its subscription lines are $0
_calculate_amount = resources.SubscriptionItem._calculate_amount
resources.SubscriptionItem._calculate_amount = lambda self: 0 if _in_trial else _calculate_amount(self)


def _create_subscription_invoice(self: Any) -> None:
    """The first invoice as Stripe makes it: $0 and paid during a trial, otherwise charged at once."""
    first = self.latest_invoice is None
    _in_trial[:] = [True] if getattr(self, "_trial", False) else []
    try:  # localstripe adds the customer's pending invoice items itself
        invoice = resources.Invoice(
            customer=self.customer,
            subscription=self.id,
            items=list(self.items._list),
            tax_percent=self.tax_percent,
            default_tax_rates=[rate.id for rate in (self.default_tax_rates or [])],
        )
    finally:
        _in_trial.clear()
    invoice.billing_reason = "subscription_create" if first else "subscription_update"
    invoice.attempt_count, invoice.attempted = 0, False
    for line in invoice.lines._list:
        if line.type == "subscription":
            name = resources.Product._api_retrieve(line.plan.product).name
            if getattr(self, "_trial", False):
                line.description = f"Trial period for {name}"
            else:
                line.description = f"{line.quantity} × {name}"
    invoice.period_start = invoice.period_end = invoice.created  # a first invoice's own period, as on Stripe
    invoice._finalize()
    _attempt(invoice, off_session=getattr(self, "_off_session", False))
    if invoice.status == "paid" and self.status == "incomplete":
        self.status = "trialing" if getattr(self, "_trial", False) else "active"


_new_subscription: dict[str, Any] = {}  # what the create call gave that localstripe's constructor cannot take


def _apply_new_subscription(self: Any) -> None:
    asked = _new_subscription.pop("pending", None)
    if asked is None:
        return
    self.default_payment_method, self._off_session = asked["default_payment_method"], asked["off_session"]
    self.collection_method, self.description = "charge_automatically", asked["description"]
    self.trial_end, self.trial_start, self._trial = asked["trial_end"], None, asked["trial_end"] is not None
    if self._trial:
        self.trial_start, self.status = self.start_date, "trialing"
    self.billing_cycle_anchor = self.billing_cycle_anchor or self.trial_end or self.start_date
    self.cancellation_details = {"comment": None, "feedback": None, "reason": None}


_localstripe_create_invoice = resources.Subscription._create_invoice


def _create_invoice_as_stripe(self: Any) -> None:
    _apply_new_subscription(self)
    _create_subscription_invoice(self)


resources.Subscription._create_invoice = _create_invoice_as_stripe


def _items_on_prices(items: Any, param: str = "items") -> Any:
    """`items[i][price]` -> the Plan localstripe bills (the same id); an inactive or one-off price is refused."""
    if not isinstance(items, list):
        return items
    for index, item in enumerate(items):
        if not isinstance(item, dict) or "price" not in item:
            continue
        reference = item.pop("price")
        price = resources.store.get(f"price:{reference}") if isinstance(reference, str) else None
        if price is None:
            raise _missing("price", reference, f"{param}[{index}][price]")
        if price.type != "recurring":
            raise UserError(
                400,
                "The price specified is set to `type=one_time` but this field only accepts prices with "
                "`type=recurring`.",
                {"code": "parameter_invalid", "param": f"{param}[{index}][price]"},
            )
        if not price.active:
            raise UserError(
                400,
                "The price specified is inactive. This field only accepts active prices.",
                {"code": "parameter_invalid", "param": f"{param}[{index}][price]"},
            )
        item["plan"] = price.id
    return items


def _customer_method(customer: Any, payment_method: Any) -> str | None:
    if payment_method in (None, ""):
        return None
    method = _saved(payment_method)
    if method is None or method.customer != customer or getattr(method, "_detached", False):
        raise UserError(
            400,
            f"The customer does not have a payment method with the ID {payment_method}. "
            "The payment method must be attached to the customer.",
            {"code": "resource_missing", "param": "default_payment_method"},
        )
    return method.id


def _api_create_subscription(
    cls: type,
    items: Any = None,
    default_payment_method: Any = None,
    off_session: Any = None,
    trial_period_days: Any = None,
    trial_from_plan: Any = None,
    trial_end: Any = None,
    collection_method: Any = None,
    description: Any = None,
    **data: Any,
) -> Any:
    off_session, trial_from_plan = (resources.try_convert_to_bool(v) for v in (off_session, trial_from_plan))
    if collection_method not in (None, "charge_automatically"):
        raise UserError(500, "Not implemented: collection_method=send_invoice")
    if data.get("payment_behavior") not in (None, "allow_incomplete", "error_if_incomplete"):
        raise UserError(500, f"Not implemented: payment_behavior={data['payment_behavior']}")
    items = _items_on_prices(items)
    Customer._api_retrieve(data.get("customer") or "")  # 404 when unknown
    method = _customer_method(data.get("customer"), default_payment_method)
    days = resources.try_convert_to_int(trial_period_days) if trial_period_days not in (None, "") else None
    if days is not None and (type(days) is not int or not 0 <= days <= 730):
        raise _invalid("trial_period_days", trial_period_days)
    if trial_from_plan and (days is not None or trial_end is not None):
        raise UserError(400, "You cannot set trial_from_plan together with trial_end or trial_period_days.")
    if trial_from_plan and isinstance(items, list) and items and isinstance(items[0], dict):
        plan = resources.store.get(f"plan:{items[0].get('plan')}")
        days = plan.trial_period_days if plan is not None else None
    now = int(time.time())
    end = now + days * 86400 if days else None
    if trial_end is not None and trial_end != "now":  # "now": no trial
        end = resources.try_convert_to_int(trial_end)
        if type(end) is not int or end <= now:
            raise _invalid("trial_end", trial_end)
    _new_subscription["pending"] = {
        "default_payment_method": method,
        "off_session": bool(off_session),
        "trial_end": end,
        "description": description,
    }
    try:
        return cls(items=items, **data)  # without trial arguments: localstripe then always makes the first invoice
    finally:
        _new_subscription.clear()


resources.Subscription._api_create = classmethod(_api_create_subscription)
_update_subscription = resources.Subscription._api_update


def _api_update_subscription(
    cls: type,
    id: str,
    items: Any = None,
    proration_behavior: Any = None,
    payment_behavior: Any = None,
    default_payment_method: Any = None,
    off_session: Any = None,
    cancellation_details: Any = None,
    **data: Any,
) -> Any:
    sub = cls._api_retrieve(id)
    if sub.status in ("canceled", "incomplete_expired") and (set(data) - {"metadata"} or items is not None):
        raise UserError(400, "A canceled subscription can only update its cancellation_details and metadata.")
    if proration_behavior not in (None, "create_prorations", "none", "always_invoice"):
        raise _invalid("proration_behavior", proration_behavior)
    if payment_behavior not in (None, "allow_incomplete", "error_if_incomplete", "pending_if_incomplete"):
        raise _invalid("payment_behavior", payment_behavior)
    items = _items_on_prices(items)
    method = _customer_method(sub.customer, default_payment_method)
    if items is not None:
        data["items"] = items
    if data:
        sub._update(**data)
    if default_payment_method is not None:
        sub.default_payment_method = method
    if isinstance(cancellation_details, dict):
        sub.cancellation_details = {**getattr(sub, "cancellation_details", {}), **cancellation_details}
    if "cancel_at_period_end" in data:  # Stripe: cancel_at is the period's end and canceled_at the request's time
        ending = bool(sub.cancel_at_period_end)
        sub.cancel_at = sub.current_period_end if ending else None
        sub.canceled_at = int(time.time()) if ending else None
    resources.schedule_webhook(Event("customer.subscription.updated", sub))
    return sub


resources.Subscription._api_update = classmethod(_api_update_subscription)


def _api_cancel_subscription(
    id: str, invoice_now: Any = None, prorate: Any = None, cancellation_details: Any = None, **kwargs: Any
) -> Any:
    """DELETE /v1/subscriptions/{id} as on Stripe: canceled now, canceled_at and ended_at set, `expand[]` honoured."""
    if kwargs:
        raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs))
    sub = resources.Subscription._api_retrieve(id)
    if sub.status in ("canceled", "incomplete_expired"):
        raise UserError(400, f"The subscription {id} has already been canceled.")
    now = int(time.time())
    resources.Subscription._api_delete(id)  # status canceled, ended_at, customer.subscription.deleted
    sub.canceled_at = sub.ended_at = now
    sub.cancel_at_period_end = False
    if isinstance(cancellation_details, dict):
        sub.cancellation_details = {**getattr(sub, "cancellation_details", {}), **cancellation_details}
    return sub


resources.extra_apis.append(("DELETE", "/v1/subscriptions/{id}", _api_cancel_subscription))
resources.Subscription._api_list_all = _with_created_filter(resources.Subscription._api_list_all)
_pay_invoice = resources.Invoice._api_pay_invoice


def _api_pay_invoice(
    id: str, off_session: Any = None, payment_method: Any = None, paid_out_of_band: Any = None, **kwargs: Any
) -> Any:
    """Pay an open invoice now: a decline is a 402 card_error (the invoice stays open, its intent carries it)."""
    if kwargs:
        raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs))
    invoice = resources.Invoice._api_retrieve(id)
    if invoice.status == "paid":
        raise UserError(400, "Invoice is already paid", {"code": "invoice_already_paid"})  # Stripe: same message
    if invoice.status not in ("draft", "open", "uncollectible"):
        raise UserError(400, f"You cannot pay this invoice because it has a status of {invoice.status}.")
    if invoice._draft:
        invoice._finalize()
    if resources.try_convert_to_bool(paid_out_of_band):
        raise UserError(500, "Not implemented: paid_out_of_band")
    error = _attempt(
        invoice, payment_method=payment_method, off_session=bool(resources.try_convert_to_bool(off_session))
    )
    if error is not None:
        raise error
    return invoice


def _api_mark_uncollectible(id: str, **kwargs: Any) -> Any:
    if kwargs:
        raise UserError(400, "Received unknown parameter: " + ", ".join(kwargs))
    invoice = resources.Invoice._api_retrieve(id)
    if invoice.status != "open":
        raise UserError(400, f"You can only mark an open invoice uncollectible; this one is {invoice.status}.")
    invoice._uncollectible, invoice._next_attempt = True, None
    invoice.status_transitions["marked_uncollectible_at"] = int(time.time())
    resources.schedule_webhook(Event("invoice.marked_uncollectible", invoice))
    return invoice


resources.extra_apis.append(("POST", "/v1/invoices/{id}/mark_uncollectible", _api_mark_uncollectible))
resources.extra_apis[:] = [(m, u, _api_pay_invoice if f == _pay_invoice else f) for m, u, f in resources.extra_apis]


def add_price_routes(server: Any) -> None:
    """localstripe.server routes its own classes at import; Prices get the same five handlers here."""
    url = "/v1/prices"
    router = server.app.router
    router.add_route("POST", url, server.api_create(Price, url))
    router.add_route("GET", url, server.api_list_all(Price, url))
    router.add_route("GET", url + "/{id}", server.api_retrieve(Price, url))
    router.add_route("POST", url + "/{id}", server.api_update(Price, url))
    router.add_route("DELETE", url + "/{id}", server.api_delete(Price, url))


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
    server.app.middlewares.insert(1, deleted_customer_middleware)
    add_price_routes(server)
    access_log = logging.getLogger("aiohttp.access")
    if args.verbose:
        logging.basicConfig(level=logging.INFO)
    web.run_app(server.app, host=args.host, port=args.port, access_log=access_log if args.verbose else None, print=None)


if __name__ == "__main__":
    main()
