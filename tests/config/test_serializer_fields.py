"""`StrictSerializer` gives each instance its own fields, copied from ones built once per class."""

import threading

from rest_framework import serializers

from config.api.serializers import StrictSerializer
from payments.api import PaymentCreateSerializer

BODY = {"amount": 2000, "currency": "usd", "customer_id": "c", "payment_method": "pm_card_visa", "confirm": True}


def test_each_instance_has_its_own_fields_bound_to_it():
    first, second = PaymentCreateSerializer(data=BODY), PaymentCreateSerializer(data=BODY)

    for name in ("amount", "currency", "metadata", "capture_method"):
        assert first.fields[name] is not second.fields[name]
        assert first.fields[name].parent is first
        assert second.fields[name].parent is second
        assert first.fields[name].field_name == name
    assert first.fields["amount"].label == "Amount"


def test_changing_one_instances_field_leaves_the_others():
    changed = PaymentCreateSerializer(data={key: value for key, value in BODY.items() if key != "customer_id"})
    changed.fields["customer_id"].required = False

    assert changed.is_valid(), changed.errors
    untouched = PaymentCreateSerializer(data={key: value for key, value in BODY.items() if key != "customer_id"})
    assert not untouched.is_valid()
    assert untouched.errors["customer_id"][0].code == "required"


def test_validation_is_the_same_for_every_instance():
    for _ in range(3):
        good = PaymentCreateSerializer(data=BODY)
        assert good.is_valid(), good.errors
        assert good.validated_data["currency"] == "usd"
        assert good.validated_data["metadata"] == {}
        bad = PaymentCreateSerializer(data=BODY | {"capture_method": "later", "amount": "12"})
        assert not bad.is_valid()
        assert set(bad.errors) == {"capture_method", "amount"}


def test_instances_in_threads_validate_their_own_bodies():
    errors: list[str] = []

    def validate(amount: int) -> None:
        for _ in range(50):
            serializer = PaymentCreateSerializer(data=BODY | {"amount": amount})
            if not serializer.is_valid() or serializer.validated_data["amount"] != amount:
                errors.append(f"{amount}: {serializer.errors or serializer.validated_data}")

    threads = [threading.Thread(target=validate, args=(100 + n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert errors == []


class _Line(serializers.Serializer):
    sku = serializers.CharField()


class _Order(StrictSerializer):
    lines = _Line(many=True)
    tags = serializers.ListField(child=serializers.CharField())


class _Grant(StrictSerializer):
    users = serializers.PrimaryKeyRelatedField(many=True, read_only=True)


def test_a_class_with_nested_fields_keeps_deep_copies():
    first, second = _Order(data={"lines": [{"sku": "a"}], "tags": ["x"]}), _Order(data={"lines": [], "tags": []})

    assert first.fields["lines"].child is not second.fields["lines"].child
    assert first.fields["tags"].child.parent is first.fields["tags"]
    assert first.is_valid(), first.errors
    assert first.validated_data["lines"][0]["sku"] == "a"


def test_a_class_with_a_many_relation_keeps_deep_copies():
    first, second = _Grant(), _Grant()

    assert first.fields["users"].child_relation is not second.fields["users"].child_relation
    assert first.fields["users"].child_relation.parent is first.fields["users"]
