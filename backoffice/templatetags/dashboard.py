"""`{% admin_dashboard %}`: the back-office figures on the admin index."""

from typing import Any

from django import template
from django.urls import NoReverseMatch, reverse

from backoffice.charts import svg_bar_chart, svg_rate_chart
from backoffice.selectors import dashboard_data, money_formatter

register = template.Library()


@register.inclusion_tag("backoffice/dashboard.html", takes_context=True)
def admin_dashboard(context: template.Context, days: int = 30) -> dict[str, Any]:
    """Render the dashboard; money figures only for staff who may view payments."""
    user = context["request"].user
    data = dashboard_data(days=days, include_money=user.has_perm("payments.view_payment"))
    charts = [
        {
            "volume": volume,
            "svg": svg_bar_chart(
                volume.daily,
                data.days,
                label=f"Captured {volume.currency.upper()} per day",
                format_value=money_formatter(volume.currency),
            ),
        }
        for volume in data.volumes
    ]
    rate_svg = svg_rate_chart(data.daily_rates, data.days, label="Success rate per day") if data.include_money else ""
    links = {
        name: _changelist(user, app, model, query)
        for name, app, model, query in (
            ("approvals", "audit", "approvalrequest", "?status__exact=pending"),
            ("discrepancies", "reconciliation", "discrepancy", "?state__exact=open"),
            ("payments", "payments", "payment", ""),
            ("refunds", "refunds", "refund", "?needs_attention__exact=1"),
            ("subscriptions", "subscriptions", "subscription", ""),
            ("invoices", "subscriptions", "invoice", "?status__exact=open"),
            ("disputes", "disputes", "dispute", ""),
        )
    }
    return {"data": data, "charts": charts, "rate_svg": rate_svg, "links": links}


def _changelist(user: Any, app: str, model: str, query: str) -> str:
    """The admin changelist URL (with a filter) when the user may see it, else ""."""
    if not user.has_perm(f"{app}.view_{model}"):
        return ""
    try:
        return reverse(f"admin:{app}_{model}_changelist") + query
    except NoReverseMatch:
        return ""
