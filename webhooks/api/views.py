"""`POST /api/v1/webhooks/stripe/`: verify the raw body, store the event once, answer 200 fast.

The only CSRF-exempt view: Stripe signs its requests instead. Not atomic: the event row commits on
its own, before any processing, so the raw event is kept even when processing later fails.
"""

from django.db import transaction
from django.http import HttpRequest, JsonResponse
from django.views.decorators.csrf import csrf_exempt

from config.api.errors import error_response
from webhooks import services
from webhooks.errors import InvalidWebhook


@csrf_exempt
@transaction.non_atomic_requests
def stripe_webhook(request: HttpRequest) -> JsonResponse:
    if request.method != "POST":
        message = f'Method "{request.method}" not allowed.'
        return error_response(405, "invalid_request_error", "method_not_allowed", message, headers={"Allow": "POST"})
    try:
        services.webhook_receive(payload=request.body, signature=request.headers.get("Stripe-Signature"))
    except InvalidWebhook as exc:
        return error_response(exc.status_code, exc.error_type, exc.code, exc.message)
    return JsonResponse({"received": True})
