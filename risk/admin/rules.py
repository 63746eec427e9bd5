"""The rules' settings (one row) and the per-currency thresholds: finance_lead edits them, every save raises the
settings version and records a staff action (`risk_settings_changed`) in the saving transaction."""

from typing import Any

from django import forms
from django.contrib import admin
from django.core.exceptions import PermissionDenied
from django.db import models, transaction
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect
from django.urls import reverse

from payments.money import UnknownCurrency, format_amount, format_decimal, is_supported, parse_major
from risk import checks
from risk.locks import lock_stored
from risk.models import CurrencyThreshold, RiskSettings
from risk.services import risk_settings_changed


def field_changes(before: models.Model | None, after: models.Model) -> tuple[dict[str, Any], dict[str, Any]]:
    """The editable fields whose value differs between the stored row and the one about to be saved."""
    names = [field.attname for field in after._meta.concrete_fields if field.editable and not field.primary_key]
    changed = [name for name in names if before is None or getattr(before, name) != getattr(after, name)]
    return (
        {name: getattr(before, name) for name in changed} if before is not None else {},
        {name: getattr(after, name) for name in changed},
    )


class SettingsChangeMixin:
    """Save, then raise the version and record the staff action, in one transaction (nothing changed: no bump)."""

    def settings_object_id(self, obj: Any) -> str:
        """What the staff action names as changed: "settings" (the single row); thresholds name their currency."""
        return "settings"

    def save_model(self, request: HttpRequest, obj: Any, form: forms.ModelForm, change: bool) -> None:
        with transaction.atomic():
            stored = lock_stored(obj) if change else None
            before, after = field_changes(stored, obj)
            if stored is None:
                obj.save()
            elif after:
                # Only the changed fields: `version` is raised by the service, never written back from the form.
                updated = [name for name in ("updated_at",) if hasattr(obj, name)]
                obj.save(update_fields=[*after, *updated])
            if after:
                risk_settings_changed(
                    actor=request.user,  # type: ignore[arg-type]
                    what=self.settings_object_id(obj),
                    before=before,
                    after=after,
                    remote_addr=request.META.get("REMOTE_ADDR"),
                )

    def has_delete_permission(self, request: HttpRequest, obj: Any = None) -> bool:
        return False


@admin.register(RiskSettings)
class RiskSettingsAdmin(SettingsChangeMixin, admin.ModelAdmin):
    """One row: the changelist opens it; nobody adds or deletes it."""

    fieldsets = (
        (None, {"fields": ("version", "updated_at")}),
        ("Decision", {"fields": ("review_score", "block_score")}),
        (
            "Points per rule",
            {
                "fields": (
                    "blocklist_points",
                    "amount_review_points",
                    "amount_block_points",
                    "first_seen_points",
                    "velocity_points",
                    "decline_points",
                )
            },
        ),
        (
            "Velocity windows",
            {
                "fields": (
                    "short_window_minutes",
                    "short_window_payments",
                    "short_window_declines",
                    "long_window_hours",
                    "long_window_payments",
                    "long_window_declines",
                )
            },
        ),
        ("Manual review", {"fields": ("review_remind_hours", "review_cancel_hours")}),
    )
    readonly_fields = ("version", "updated_at")

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def changelist_view(self, request: HttpRequest, extra_context: dict[str, Any] | None = None) -> HttpResponse:
        if not self.has_view_or_change_permission(request):
            raise PermissionDenied
        row = checks.settings_ensure()
        return HttpResponseRedirect(reverse("admin:risk_risksettings_change", args=[row.pk]))


class CurrencyThresholdForm(forms.ModelForm):
    """Amounts typed in major units of the row's currency (`5,000.00` usd), stored in minor units."""

    review = forms.CharField(label="Review at", help_text="Hold for review at or above this amount, e.g. 5,000.00")
    block = forms.CharField(
        label="Block at", required=False, help_text="Block at or above this amount. Empty: never block by amount."
    )
    first_seen = forms.CharField(
        label="First-seen amount", help_text="A customer's first payment at or above this scores the first-seen points."
    )
    AMOUNTS = (("review", "review_amount"), ("block", "block_amount"), ("first_seen", "first_seen_amount"))

    class Meta:
        model = CurrencyThreshold
        fields = ("currency",)
        help_texts = {"currency": "ISO code, e.g. usd."}

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk:
            self.fields["currency"].disabled = True  # a row is one currency; add another row for another one
            for name, attname in self.AMOUNTS:
                amount = getattr(self.instance, attname)
                self.initial[name] = "" if amount is None else format_decimal(amount, self.instance.currency)

    def clean_currency(self) -> str:
        code = self.cleaned_data["currency"].strip().lower()
        if not is_supported(code):
            raise forms.ValidationError(f"{code.upper()} is not a supported currency.")
        return code

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean() or {}
        currency = cleaned.get("currency") or self.instance.currency
        if not currency:
            return cleaned
        amounts: dict[str, int | None] = {}
        for name, attname in self.AMOUNTS:
            text = (cleaned.get(name) or "").strip()
            try:
                amount = parse_major(text, currency) if text else None
            except ValueError as exc:
                self.add_error(name, str(exc))
                continue
            if amount is not None and amount <= 0:
                self.add_error(name, "Enter a positive amount.")
            amounts[attname] = amount
        block, review = amounts.get("block_amount"), amounts.get("review_amount")
        if block is not None and review is not None and 0 < block < review:
            self.add_error("block", "The block amount must be at least the review amount.")
        if not self.errors:
            for attname, amount in amounts.items():
                setattr(self.instance, attname, amount)
        return cleaned


@admin.register(CurrencyThreshold)
class CurrencyThresholdAdmin(SettingsChangeMixin, admin.ModelAdmin):
    form = CurrencyThresholdForm
    list_display = ("currency_display", "review_display", "block_display", "first_seen_display")
    ordering = ("currency",)
    search_fields = ("currency",)

    def settings_object_id(self, obj: Any) -> str:
        return f"threshold {obj.currency}"

    @admin.display(description="currency", ordering="currency")
    def currency_display(self, obj: CurrencyThreshold) -> str:
        return obj.currency.upper()

    @admin.display(description="review at", ordering="review_amount")
    def review_display(self, obj: CurrencyThreshold) -> str:
        return _money(obj.review_amount, obj.currency)

    @admin.display(description="block at", ordering="block_amount")
    def block_display(self, obj: CurrencyThreshold) -> str:
        return "never" if obj.block_amount is None else _money(obj.block_amount, obj.currency)

    @admin.display(description="first-seen amount", ordering="first_seen_amount")
    def first_seen_display(self, obj: CurrencyThreshold) -> str:
        return _money(obj.first_seen_amount, obj.currency)


def _money(amount: int, currency: str) -> str:
    try:
        return format_amount(amount, currency)
    except UnknownCurrency:
        return f"{amount} {currency.upper()} (minor units)"
