"""Row locks of customers. Lock order everywhere: the customer first, then its payment methods (by pk)."""

from customers.models import Customer, PaymentMethod


def lock_customer(customer_id: int) -> Customer:
    """Lock a customer row until the surrounding transaction ends. Call inside `transaction.atomic()`."""
    return Customer.objects.select_for_update(of=("self",)).get(pk=customer_id)


def lock_payment_method(method_id: int) -> PaymentMethod:
    """Lock a saved method (after its customer) until the surrounding transaction ends."""
    return PaymentMethod.objects.select_for_update(of=("self",)).get(pk=method_id)
