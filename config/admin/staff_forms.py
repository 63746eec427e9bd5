"""The back office's staff actions that take a reason: the form, and the POST that runs one service call.

Every such page (cancel a subscription, retry an invoice, accept a dispute, detach a card, erase a customer…)
asks why (kept in the audit trail), makes one call into the owning app's service, and then either goes back to
the object's page with a message or stays on the form with the gateway's failure. The apps pass what their
service raises (config sits below the gateways and the apps, so it names none of their errors).
"""

from collections.abc import Callable
from typing import Any, Protocol

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse, HttpResponseRedirect

REASON_HELP = "Why (kept in the audit trail)."


class ReasonForm(forms.Form):
    """A required reason, stripped (subclass it to add fields or change the help text)."""

    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 3}), help_text=REASON_HELP)

    def clean_reason(self) -> str:
        reason = self.cleaned_data["reason"].strip()
        if not reason:
            raise forms.ValidationError("A reason is required.")
        return reason


class _MessageUser(Protocol):
    def message_user(self, request: HttpRequest, message: str, level: int = ...) -> None: ...


def submit_reason_form(
    admin: _MessageUser,
    request: HttpRequest,
    form: forms.Form,
    *,
    back_to: str,
    run: Callable[[dict[str, Any]], Any],
    done: Callable[[Any], tuple[str, int]],
    refused: tuple[type[Exception], ...] = (),
    failed: tuple[type[Exception], ...] = (),
    failed_hint: str = "Trying again is safe.",
) -> HttpResponse | None:
    """Run `run(cleaned_data)` for a valid POST and go back to `back_to` with `done(result)`'s message and level.

    An exception of `refused` (the object moved on meanwhile: nothing to do) is a warning and the way back; one
    of `failed` (the gateway did not answer, or refused) stays on the form with the error and `failed_hint`.
    None: render the form (a GET, an invalid form, or a failure to show).
    """
    if request.method != "POST" or not form.is_valid():
        return None
    try:
        result = run(form.cleaned_data)
    except refused as exc:
        admin.message_user(request, str(getattr(exc, "message", exc)), messages.WARNING)
        return HttpResponseRedirect(back_to)
    except failed as exc:
        form.add_error(None, f"The gateway did not answer: {exc}. {failed_hint}")
        return None
    text, level = done(result)
    admin.message_user(request, text, level)
    return HttpResponseRedirect(back_to)
