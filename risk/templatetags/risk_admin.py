"""`{% review_queue_url as url %}`: the review queue's address for the current staff member, or "" if not theirs."""

from typing import Any

from django import template
from django.urls import reverse

register = template.Library()


@register.simple_tag(takes_context=True)
def review_queue_url(context: template.Context) -> str:
    """Works inside inclusion tags too: their context keeps the request."""
    request: Any = getattr(context, "request", None) or context.get("request")
    user = getattr(request, "user", None)
    if user is None or not (user.is_active and user.is_staff and user.has_perm("risk.view_riskassessment")):
        return ""
    return reverse("admin:risk_paymentreview_changelist")
