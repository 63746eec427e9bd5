"""The cross-app admin screens: the full payment page, composed from the apps that know about a payment.

The payments app's `PaymentAdmin` knows only the core. Here, at the top of the house, the page gains
the refund form and refunds inline (refunds), the webhooks that touched the payment (webhooks), and
the risk panel with its one-click blocks (risk) — each app's own piece, imported one way. The dispute desk's
page gains the disputed payment's risk assessment the same way (disputes may not import risk).
"""

from typing import Any

from django.contrib import admin
from django.http import HttpRequest

from disputes.admin import DisputeAdmin
from disputes.models import Dispute
from payments.models import Payment
from refunds.admin import PaymentRefundAdminMixin, RefundInline
from risk.admin.payment_page import payment_risk_context
from webhooks.admin import WebhookEventInline


class PaymentPageAdmin(PaymentRefundAdminMixin):
    inlines = (*PaymentRefundAdminMixin.inlines, RefundInline, WebhookEventInline)

    def page_context(self, request: HttpRequest, payment: Payment) -> dict[str, Any]:
        return {**super().page_context(request, payment), **payment_risk_context(request, payment)}


admin.site.unregister(Payment)
admin.site.register(Payment, PaymentPageAdmin)


class DisputePageAdmin(DisputeAdmin):
    def page_context(self, request: HttpRequest, dispute: Dispute) -> dict[str, Any]:
        return {**super().page_context(request, dispute), **payment_risk_context(request, dispute.payment)}


admin.site.unregister(Dispute)
admin.site.register(Dispute, DisputePageAdmin)
