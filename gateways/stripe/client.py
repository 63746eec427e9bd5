"""The Stripe gateway: the `Gateway` protocol over the official SDK's `StripeClient`.

PaymentIntents, Refunds, Customers, SetupIntents and PaymentMethods (attach, detach, list), Billing, and
Disputes (`gateways.disputes.DisputeGateway`; evidence files through the Files API).
"""

import io
import math
import re
from collections.abc import Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar, cast

import requests
import stripe
from django.conf import settings
from stripe.params import (
    CustomerCreateParams,
    CustomerUpdateParams,
    EventListParams,
    PaymentIntentCancelParams,
    PaymentIntentCaptureParams,
    PaymentIntentConfirmParams,
    PaymentIntentCreateParams,
    PaymentIntentListParams,
    PaymentIntentListParamsCreated,
    PaymentMethodAttachParams,
    PaymentMethodListParams,
    RefundCreateParams,
    RefundListParams,
    SetupIntentCreateParams,
)

from gateways.base import (
    CustomerResult,
    Declined,
    GatewayError,
    GatewayTimeout,
    GatewayUnavailable,
    IntentResult,
    PaymentMethodResult,
    Permanent,
    RefundResult,
    SetupIntentResult,
)
from gateways.billing import InvoiceResult, PriceResult, SubscriptionResult
from gateways.disputes import DisputeResult, EvidenceFile, check_evidence
from gateways.stripe.parsers import (
    parse_customer,
    parse_dispute,
    parse_failure_code,
    parse_intent,
    parse_invoice,
    parse_payment_method,
    parse_price,
    parse_refund,
    parse_setup_intent,
    parse_subscription,
)

T = TypeVar("T")

_SECRET = re.compile(r"\b(?:sk|rk)_[A-Za-z0-9_*]+")

# The API version every request asks for (the Stripe-Version header), whatever the SDK's own default. The parsers
# read the objects as this version shapes them: an Invoice with its `payment_intent`, a Subscription with its
# period on the object. Since 2025-03-31 ("basil", the SDK 16 default) an Invoice has no `payment_intent` (its
# payments are `invoice_payments`), so `expand=["latest_invoice.payment_intent"]` would be refused. The webhook
# endpoint must be created with the same version (`api_version` when it is made), so events come shaped alike.
API_VERSION = "2024-06-20"


class StripeGateway:
    """The `Gateway` protocol on Stripe. Every call that changes something carries the caller's idempotency key."""

    name = "stripe"

    def __init__(self, *, api_key: str, api_base: str = "", timeout: float = 10.0, page_size: int = 100) -> None:
        self._api_key = api_key
        self._page_size = page_size  # for list_* (Stripe allows up to 100)
        self._client = stripe.StripeClient(
            api_key,
            stripe_version=API_VERSION,
            # A Stripe-compatible server (STRIPE_API_BASE) takes the uploads too (Stripe's are at files.stripe.com).
            base_addresses={"api": api_base, "files": api_base} if api_base else {},
            # No retries inside the SDK: callers retry with the same idempotency key on their own schedule.
            max_network_retries=0,
            http_client=stripe.RequestsClient(timeout=timeout),
        )

    @classmethod
    def from_settings(cls) -> "StripeGateway":
        return cls(
            api_key=settings.STRIPE_SECRET_KEY,
            api_base=settings.STRIPE_API_BASE,
            timeout=settings.STRIPE_TIMEOUT_SECONDS,
        )

    # --- payment intents ---------------------------------------------------------------------------------
    def create_intent(
        self,
        *,
        amount: int,
        currency: str,
        capture_method: str,
        payment_method: str,
        confirm: bool = False,
        metadata: dict[str, str],
        description: str,
        idempotency_key: str,
        customer: str = "",
        off_session: bool = False,
        setup_future_usage: str = "",
    ) -> IntentResult:
        """Create an intent; with `confirm`, confirm it in the same request (a decline raises `Declined`).

        `off_session` (only with `confirm`, as Stripe requires): a card that needs authentication is a 402
        `authentication_required`, translated into `Declined(code="authentication_required")`.
        """
        params: PaymentIntentCreateParams = {
            "amount": amount,
            "currency": currency.lower(),
            "capture_method": capture_method,
            # We confirm on the server without a return_url, which Stripe allows only without redirect methods.
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
        }
        if payment_method:
            params["payment_method"] = payment_method
        if confirm:
            params["confirm"] = True
        if metadata:
            params["metadata"] = metadata
        if description:
            params["description"] = description
        if customer:
            params["customer"] = customer
        if off_session:
            params["off_session"] = True
        if setup_future_usage:
            params["setup_future_usage"] = setup_future_usage
        intents = self._client.v1.payment_intents
        intent = parse_intent(self._call(lambda: intents.create(params, _options(idempotency_key))).to_dict())
        return _unless_failed(intent) if confirm else intent

    def confirm_intent(self, *, reference: str, payment_method: str, idempotency_key: str) -> IntentResult:
        """Confirm; a decline raises `Declined` (with the intent when known); 3-D Secure gives `requires_action`."""
        params: PaymentIntentConfirmParams = {"payment_method": payment_method} if payment_method else {}
        intents = self._client.v1.payment_intents
        intent = parse_intent(
            self._call(lambda: intents.confirm(reference, params, _options(idempotency_key))).to_dict()
        )
        return _unless_failed(intent)

    def capture_intent(self, *, reference: str, amount: int | None, idempotency_key: str) -> IntentResult:
        params: PaymentIntentCaptureParams = {} if amount is None else {"amount_to_capture": amount}
        intents = self._client.v1.payment_intents
        return parse_intent(self._call(lambda: intents.capture(reference, params, _options(idempotency_key))).to_dict())

    def cancel_intent(self, *, reference: str, reason: str, idempotency_key: str) -> IntentResult:
        params: PaymentIntentCancelParams = {"cancellation_reason": reason} if reason else {}
        intents = self._client.v1.payment_intents
        return parse_intent(self._call(lambda: intents.cancel(reference, params, _options(idempotency_key))).to_dict())

    def retrieve_intent(self, *, reference: str) -> IntentResult:
        return parse_intent(self._call(lambda: self._client.v1.payment_intents.retrieve(reference)).to_dict())

    def card_fingerprint(self, *, payment_method: str) -> str:
        """The PaymentMethod's `card.fingerprint`; "" for other methods or when Stripe does not know it."""
        try:
            method = self._call(lambda: self._client.v1.payment_methods.retrieve(payment_method)).to_dict()
        except Permanent:
            return ""
        card = method.get("card") or {}
        return str(card.get("fingerprint") or "")

    def list_intents(self, *, created_gte: datetime, created_lt: datetime) -> Iterator[IntentResult]:
        """Every intent created in [created_gte, created_lt), widened to whole seconds (Stripe's resolution)."""
        params: PaymentIntentListParams = {"created": _window(created_gte, created_lt), "limit": self._page_size}
        pages = self._call(lambda: self._client.v1.payment_intents.list(params)).auto_paging_iter()
        for intent in self._each(pages):
            yield parse_intent(intent.to_dict())

    # --- refunds -----------------------------------------------------------------------------------------
    def create_refund(
        self,
        *,
        intent_reference: str,
        amount: int,
        reason: str,
        metadata: dict[str, str],
        idempotency_key: str,
    ) -> RefundResult:
        params: RefundCreateParams = {"payment_intent": intent_reference, "amount": amount}
        if reason:
            params["reason"] = reason
        if metadata:
            params["metadata"] = metadata
        refunds = self._client.v1.refunds
        return parse_refund(self._call(lambda: refunds.create(params, _options(idempotency_key))).to_dict())

    def retrieve_refund(self, *, reference: str) -> RefundResult:
        return parse_refund(self._call(lambda: self._client.v1.refunds.retrieve(reference)).to_dict())

    def list_refunds(self, *, created_gte: datetime, created_lt: datetime) -> Iterator[RefundResult]:
        """Every refund created in [created_gte, created_lt), widened to whole seconds (Stripe's resolution)."""
        params: RefundListParams = {"created": _window(created_gte, created_lt), "limit": self._page_size}
        pages = self._call(lambda: self._client.v1.refunds.list(params)).auto_paging_iter()
        for refund in self._each(pages):
            yield parse_refund(refund.to_dict())

    # --- customers -----------------------------------------------------------------------------------
    def create_customer(
        self, *, email: str, name: str, metadata: dict[str, str], idempotency_key: str
    ) -> CustomerResult:
        params: CustomerCreateParams = {}
        if email:
            params["email"] = email
        if name:
            params["name"] = name
        if metadata:
            params["metadata"] = metadata
        customers = self._client.v1.customers
        return parse_customer(self._call(lambda: customers.create(params, _options(idempotency_key))).to_dict())

    def update_customer(
        self,
        *,
        reference: str,
        email: str,
        name: str,
        metadata: dict[str, str],
        default_payment_method: str | None,
        idempotency_key: str,
    ) -> CustomerResult:
        """Email and name are set ("" unsets them); metadata keys are merged as on Stripe ("" deletes a key)."""
        params: CustomerUpdateParams = {"email": email, "name": name}
        if metadata:
            params["metadata"] = metadata
        if default_payment_method is not None:
            params["invoice_settings"] = {"default_payment_method": default_payment_method}
        customers = self._client.v1.customers
        return parse_customer(
            self._call(lambda: customers.update(reference, params, _options(idempotency_key))).to_dict()
        )

    def retrieve_customer(self, *, reference: str) -> CustomerResult:
        return parse_customer(self._call(lambda: self._client.v1.customers.retrieve(reference)).to_dict())

    def delete_customer(self, *, reference: str, idempotency_key: str) -> CustomerResult:
        customers = self._client.v1.customers
        deleted = self._call(lambda: customers.delete(reference, {}, _options(idempotency_key))).to_dict()
        return parse_customer(deleted | {"deleted": True})

    # --- setup intents -------------------------------------------------------------------------------
    def create_setup_intent(
        self,
        *,
        customer_reference: str,
        metadata: dict[str, str],
        idempotency_key: str,
        payment_method: str = "",
        confirm: bool = False,
    ) -> SetupIntentResult:
        """A setup intent for off-session card use; with `confirm`, confirmed at once (a decline raises `Declined`)."""
        params: SetupIntentCreateParams = {
            "customer": customer_reference,
            "usage": "off_session",
            # Confirmed on the server without a return_url: cards only need no redirect.
            "automatic_payment_methods": {"enabled": True, "allow_redirects": "never"},
        }
        if metadata:
            params["metadata"] = metadata
        if payment_method:
            params["payment_method"] = payment_method
        if confirm:
            params["confirm"] = True
        setup_intents = self._client.v1.setup_intents
        return parse_setup_intent(self._call(lambda: setup_intents.create(params, _options(idempotency_key))).to_dict())

    def retrieve_setup_intent(self, *, reference: str) -> SetupIntentResult:
        return parse_setup_intent(self._call(lambda: self._client.v1.setup_intents.retrieve(reference)).to_dict())

    # --- payment methods -----------------------------------------------------------------------------
    def attach_payment_method(
        self, *, payment_method: str, customer_reference: str, idempotency_key: str
    ) -> PaymentMethodResult:
        """Attach (a test token is cloned: the answer's id is the saved method's); a card refused raises `Declined`."""
        params: PaymentMethodAttachParams = {"customer": customer_reference}
        methods = self._client.v1.payment_methods
        return parse_payment_method(
            self._call(lambda: methods.attach(payment_method, params, _options(idempotency_key))).to_dict()
        )

    def detach_payment_method(self, *, payment_method: str, idempotency_key: str) -> PaymentMethodResult:
        methods = self._client.v1.payment_methods
        return parse_payment_method(
            self._call(lambda: methods.detach(payment_method, {}, _options(idempotency_key))).to_dict()
        )

    def retrieve_payment_method(self, *, payment_method: str) -> PaymentMethodResult:
        methods = self._client.v1.payment_methods
        return parse_payment_method(self._call(lambda: methods.retrieve(payment_method)).to_dict())

    def list_payment_methods(self, *, customer_reference: str) -> Iterator[PaymentMethodResult]:
        """The customer's card payment methods, a page of `page_size` per request."""
        params: PaymentMethodListParams = {"customer": customer_reference, "type": "card", "limit": self._page_size}
        pages = self._call(lambda: self._client.v1.payment_methods.list(params)).auto_paging_iter()
        for method in self._each(pages):
            yield parse_payment_method(method.to_dict())

    # --- billing (gateways.billing.BillingGateway) ---------------------------------------------------------
    def list_prices(self) -> Iterator[PriceResult]:
        """Every recurring price, active or not, with its product expanded (for its name)."""
        params = cast(Any, {"type": "recurring", "limit": self._page_size, "expand": ["data.product"]})
        pages = self._call(lambda: self._client.v1.prices.list(params)).auto_paging_iter()
        for price in self._each(pages):
            yield parse_price(price.to_dict())

    def create_price(
        self,
        *,
        product_name: str,
        unit_amount: int,
        currency: str,
        interval: str,
        interval_count: int,
        trial_period_days: int | None,
        idempotency_key: str,
    ) -> PriceResult:
        """A product, then its recurring price (two requests, each with its own key derived from the caller's)."""
        products = self._client.v1.products
        product = self._call(
            lambda: products.create({"name": product_name}, _options(idempotency_key + ":product"))
        ).to_dict()
        recurring: dict[str, Any] = {"interval": interval, "interval_count": interval_count}
        if trial_period_days is not None:
            recurring["trial_period_days"] = trial_period_days
        params = cast(
            Any,
            {
                "product": product["id"],
                "unit_amount": unit_amount,
                "currency": currency.lower(),
                "recurring": recurring,
                "expand": ["product"],
            },
        )
        prices = self._client.v1.prices
        return parse_price(self._call(lambda: prices.create(params, _options(idempotency_key))).to_dict())

    def create_subscription(
        self,
        *,
        customer_reference: str,
        price_reference: str,
        quantity: int,
        default_payment_method: str,
        trial_days: int | None,
        metadata: dict[str, str],
        idempotency_key: str,
        test_clock: str = "",
    ) -> SubscriptionResult:
        """`allow_incomplete`: a decline answers the subscription `incomplete` (its invoice open), not an error."""
        params: dict[str, Any] = {
            "customer": customer_reference,
            "items": [{"price": price_reference, "quantity": quantity}],
            "payment_behavior": "allow_incomplete",
            "off_session": True,
            "expand": ["latest_invoice.payment_intent"],
        }
        if default_payment_method:
            params["default_payment_method"] = default_payment_method
        if trial_days is not None:
            params["trial_period_days"] = trial_days
        else:
            params["trial_from_plan"] = True
        if metadata:
            params["metadata"] = metadata
        subscriptions = self._client.v1.subscriptions
        created = self._call(lambda: subscriptions.create(cast(Any, params), _options(idempotency_key)))
        return parse_subscription(created.to_dict())

    def update_subscription(
        self,
        *,
        reference: str,
        price_reference: str | None,
        quantity: int | None,
        default_payment_method: str | None,
        metadata: dict[str, str] | None,
        idempotency_key: str,
    ) -> SubscriptionResult:
        """Change what is given with `create_prorations` (the proration goes on the next invoice)."""
        params: dict[str, Any] = {
            "proration_behavior": "create_prorations",
            "payment_behavior": "allow_incomplete",
            "expand": ["latest_invoice.payment_intent"],
        }
        if price_reference is not None or quantity is not None:
            current = self._call(lambda: self._client.v1.subscriptions.retrieve(reference)).to_dict()
            item = current["items"]["data"][0]
            change: dict[str, Any] = {"id": item["id"]}
            change["price"] = price_reference or parse_subscription(current).price_reference
            change["quantity"] = quantity if quantity is not None else int(item.get("quantity") or 1)
            params["items"] = [change]
        if default_payment_method is not None:
            params["default_payment_method"] = default_payment_method
        if metadata is not None:
            params["metadata"] = metadata
        subscriptions = self._client.v1.subscriptions
        updated = self._call(lambda: subscriptions.update(reference, cast(Any, params), _options(idempotency_key)))
        return parse_subscription(updated.to_dict())

    def cancel_subscription(self, *, reference: str, at_period_end: bool, idempotency_key: str) -> SubscriptionResult:
        subscriptions = self._client.v1.subscriptions
        expand = cast(Any, {"expand": ["latest_invoice.payment_intent"]})
        if at_period_end:
            params = cast(Any, {"cancel_at_period_end": True, "expand": ["latest_invoice.payment_intent"]})
            updated = self._call(lambda: subscriptions.update(reference, params, _options(idempotency_key)))
            return parse_subscription(updated.to_dict())
        canceled = self._call(lambda: subscriptions.cancel(reference, expand, _options(idempotency_key)))
        return parse_subscription(canceled.to_dict())

    def retrieve_subscription(self, *, reference: str) -> SubscriptionResult:
        params = cast(Any, {"expand": ["latest_invoice.payment_intent"]})
        return parse_subscription(
            self._call(lambda: self._client.v1.subscriptions.retrieve(reference, params)).to_dict()
        )

    def list_subscriptions(self, *, created_gte: datetime, created_lt: datetime) -> Iterator[SubscriptionResult]:
        """Every subscription created in the window, any status (`status=all`), a page per request."""
        params = cast(
            Any,
            {
                "created": _window(created_gte, created_lt),
                "status": "all",
                "limit": self._page_size,
                "expand": ["data.latest_invoice"],
            },
        )
        pages = self._call(lambda: self._client.v1.subscriptions.list(params)).auto_paging_iter()
        for subscription in self._each(pages):
            yield parse_subscription(subscription.to_dict())

    def retrieve_invoice(self, *, reference: str) -> InvoiceResult:
        params = cast(Any, {"expand": ["payment_intent"]})
        return parse_invoice(self._call(lambda: self._client.v1.invoices.retrieve(reference, params)).to_dict())

    def list_invoices(self, *, subscription_reference: str) -> Iterator[InvoiceResult]:
        params = cast(Any, {"subscription": subscription_reference, "limit": self._page_size})
        pages = self._call(lambda: self._client.v1.invoices.list(params)).auto_paging_iter()
        for invoice in self._each(pages):
            yield parse_invoice(invoice.to_dict())

    def pay_invoice(self, *, reference: str, idempotency_key: str) -> InvoiceResult:
        """Attempt it now, off session; a decline (402) leaves it open: the invoice is read back with its error."""
        invoices = self._client.v1.invoices
        params = cast(Any, {"off_session": True, "expand": ["payment_intent"]})
        try:
            paid = self._call(lambda: invoices.pay(reference, params, _options(idempotency_key)))
        except Declined:
            return self.retrieve_invoice(reference=reference)
        return parse_invoice(paid.to_dict())

    def mark_invoice_uncollectible(self, *, reference: str, idempotency_key: str) -> InvoiceResult:
        invoices = self._client.v1.invoices
        return parse_invoice(
            self._call(lambda: invoices.mark_uncollectible(reference, {}, _options(idempotency_key))).to_dict()
        )

    def void_invoice(self, *, reference: str, idempotency_key: str) -> InvoiceResult:
        invoices = self._client.v1.invoices
        return parse_invoice(
            self._call(lambda: invoices.void_invoice(reference, {}, _options(idempotency_key))).to_dict()
        )

    # --- disputes (gateways.disputes.DisputeGateway) ---------------------------------------------------
    def retrieve_dispute(self, *, reference: str) -> DisputeResult:
        return parse_dispute(self._call(lambda: self._client.v1.disputes.retrieve(reference)).to_dict())

    def list_disputes(self, *, created_gte: datetime, created_lt: datetime) -> Iterator[DisputeResult]:
        """Every dispute created in [created_gte, created_lt) (whole seconds, Stripe's resolution), any status."""
        params = cast(Any, {"created": _window(created_gte, created_lt), "limit": self._page_size})
        pages = self._call(lambda: self._client.v1.disputes.list(params)).auto_paging_iter()
        for dispute in self._each(pages):
            yield parse_dispute(dispute.to_dict())

    def update_dispute(
        self,
        *,
        reference: str,
        evidence: Mapping[str, str],
        files: Sequence[EvidenceFile],
        submit: bool,
        idempotency_key: str,
    ) -> DisputeResult:
        """Upload the files (purpose `dispute_evidence`, each with the key `<key>:file:<field>`), then save the
        evidence with their ids and `submit` in one update (the caller's key).

        :raises Permanent: evidence Stripe would refuse (checked before any upload), or Stripe's refusal
            (closed, submitted already, past due).
        """
        check_evidence(evidence=evidence, files=files)
        fields = dict(evidence)
        for item in files:
            fields[item.field] = self._upload(item, f"{idempotency_key}:file:{item.field}")
        params = cast(Any, {"evidence": fields, "submit": submit})
        disputes = self._client.v1.disputes
        updated = self._call(lambda: disputes.update(reference, params, _options(idempotency_key)))
        return parse_dispute(updated.to_dict())

    def _upload(self, item: EvidenceFile, idempotency_key: str) -> str:
        content = io.BytesIO(item.content)
        content.name = item.filename  # the SDK's multipart encoder names the part after it
        params = cast(Any, {"purpose": "dispute_evidence", "file": content})
        files = self._client.v1.files
        return str(self._call(lambda: files.create(params, _options(idempotency_key))).id)

    def close_dispute(self, *, reference: str, idempotency_key: str) -> DisputeResult:
        """Accept the dispute: Stripe closes it as lost (an inquiry: warning_closed)."""
        disputes = self._client.v1.disputes
        return parse_dispute(self._call(lambda: disputes.close(reference, {}, _options(idempotency_key))).to_dict())

    # --- events (webhook recovery) -------------------------------------------------------------------
    def list_events(self, *, created_gte: int) -> Iterator[dict[str, Any]]:
        """Every event created at or after `created_gte` (Unix seconds), as plain dicts, paging as needed.

        No `types` filter: Stripe-compatible test servers do not know it, and the caller skips the types
        it does not handle. Raises `stripe.StripeError` when Stripe fails (the caller's run is retried whole).
        """
        params: EventListParams = {"created": {"gte": created_gte}, "limit": self._page_size}
        for event in self._client.v1.events.list(params).auto_paging_iter():
            yield event.to_dict()

    # --- calls and errors --------------------------------------------------------------------------------
    def _each(self, items: Iterator[T]) -> Iterator[T]:
        """Iterate over auto-paged results, mapping the errors of the later page requests too."""
        while (item := self._call(lambda: next(items, None))) is not None:
            yield item

    def _call(self, request: Callable[[], T]) -> T:
        """Make one SDK call and translate Stripe's exceptions into the gateway's."""
        try:
            return request()
        except stripe.StripeError as exc:
            raise self._translate(exc) from exc

    def _translate(self, exc: stripe.StripeError) -> GatewayError:
        if isinstance(exc, stripe.CardError):
            error = exc.json_body.get("error", {}) if isinstance(exc.json_body, dict) else {}
            intent = error.get("payment_intent")
            return Declined(
                self._safe(exc.user_message),
                code=parse_failure_code(error.get("decline_code"), exc.code),
                intent=parse_intent(intent) if isinstance(intent, Mapping) and intent.get("id") else None,
            )
        if isinstance(exc, stripe.APIConnectionError):
            # A read timeout means the request was sent: it may have been done, so repeat it with the same key.
            if isinstance(exc.__cause__, requests.exceptions.ReadTimeout):
                return GatewayTimeout("Stripe did not answer in time.", code="gateway_timeout")
            return GatewayUnavailable("Could not connect to Stripe.", code="gateway_unavailable")
        if isinstance(exc, stripe.RateLimitError):
            return GatewayUnavailable("Stripe is rate limiting requests.", code="gateway_unavailable")
        if isinstance(exc, stripe.AuthenticationError):
            return Permanent("Stripe rejected the API key.", code="authentication_error")
        if isinstance(exc, stripe.PermissionError):
            return Permanent("The API key is not allowed to do this on Stripe.", code="permission_error")
        if isinstance(exc, stripe.APIError) and (
            exc.http_status is None or exc.http_status == 409 or exc.http_status >= 500
        ):
            # 409: a request with the same idempotency key is still running on Stripe's side.
            return GatewayUnavailable("Stripe had a problem; try again.", code="gateway_unavailable")
        # InvalidRequestError (bad parameters, unknown object, wrong state), IdempotencyError (key reused with
        # other parameters) and anything else Stripe rejects: repeating it will not help.
        code = exc.code or (exc.error.type if exc.error is not None and exc.error.type else "invalid_request_error")
        return Permanent(self._safe(exc.user_message) or "Stripe rejected the request.", code=code)

    def _safe(self, message: str | None) -> str:
        """A Stripe message with any API key in it masked (Stripe's own echo of a bad key included)."""
        text = _SECRET.sub("[redacted]", message or "")
        return text.replace(self._api_key, "[redacted]") if len(self._api_key) >= 8 else text


def _unless_failed(intent: IntentResult) -> IntentResult:
    """A confirmed intent, or `Declined` when the attempt failed.

    Stripe usually answers a decline with a 402 (translated in `_translate`), but an attempt can also fail
    with a 200 that leaves the intent in requires_payment_method with its last_payment_error.
    """
    if intent.status == "requires_payment_method" and intent.failure_code:
        raise Declined(intent.failure_message, code=intent.failure_code, intent=intent)
    return intent


def _options(idempotency_key: str) -> stripe.RequestOptions:
    return {"idempotency_key": idempotency_key}


def _window(created_gte: datetime, created_lt: datetime) -> PaymentIntentListParamsCreated:
    return {"gte": math.floor(_aware(created_gte).timestamp()), "lt": math.ceil(_aware(created_lt).timestamp())}


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
