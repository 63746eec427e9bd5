"""Saved methods for the payment core: the customers app's implementation of `payments.ports.SavedMethods`.

Named by `PAYMENTS_SAVED_METHODS`; the core never imports this app.
"""

from accounts.models import User
from customers import services
from customers.models import CustomerGatewayToken, PaymentMethod, PaymentMethodStatus
from gateways import get_gateway
from payments.ports import SavedMethod, SavedMethodRefused


class SavedMethodsForPayments:
    """Charge a customer's saved method, and save the card of a payment made with `setup_future_usage`."""

    def method_for_charge(self, *, client: User, customer_id: str, payment_method: str) -> SavedMethod:
        """The active saved method `payment_method` of this client's customer, read here only (no gateway call).

        :raises SavedMethodRefused: unknown, another customer's or client's, detached, or of a deleted customer.
        """
        gateway = get_gateway().name
        method = (
            PaymentMethod.objects.filter(
                public_id=payment_method,
                status=PaymentMethodStatus.ACTIVE,
                gateway=gateway,
                customer__client=client,
                customer__customer_id=customer_id,
                customer__deleted_at__isnull=True,
            )
            .values_list("customer_id", "gateway_reference", "fingerprint")
            .first()
        )
        if method is None:
            raise SavedMethodRefused()
        customer_pk, reference, fingerprint = method
        customer_reference = (
            CustomerGatewayToken.objects.filter(customer_id=customer_pk, gateway=gateway)
            .values_list("reference", flat=True)
            .first()
        )
        if not customer_reference:
            raise SavedMethodRefused()
        return SavedMethod(
            customer_reference=customer_reference, payment_method_reference=reference, card_fingerprint=fingerprint
        )

    def customer_for_saving(self, *, client: User, customer_id: str) -> str:
        """The gateway customer of this client's `customer_id`, made here and at the gateway when needed."""
        customer, _ = services.customer_ensure(client=client, customer_id=customer_id)
        return services.customer_gateway_reference(customer=customer)

    def saved_after_payment(self, *, client: User, customer_id: str, payment_method_reference: str) -> None:
        """Save the card a payment attached (idempotent: the `payment_method.attached` webhook may save it first)."""
        customer, _ = services.customer_ensure(client=client, customer_id=customer_id)
        services.payment_method_save(customer=customer, gateway=get_gateway(), reference=payment_method_reference)
