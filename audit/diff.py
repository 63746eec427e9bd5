"""django-auditlog's diff for a row just created, with what depends only on the model worked out once.

For a creation, `auditlog.diff.model_instance_diff(None, new)` lists the model's fields (reverse relations
included) and filters them by the model's registration, then compares each field's value with a missing
old instance's, which is "None" for every field (None when changes are stored as JSON) and costs an
exception per field; a reverse many-to-one relation reads as the name of its manager ("refunds.Refund.None"),
the same for every instance. `creation_diff` gives the same dict at a fraction of the cost (about 190 → 40 µs
for a payment's 50 fields): the filtered fields listed once per model, the old side as that constant, each
reverse many-to-one relation read once per model; every other field is still read by auditlog's own
`get_field_value`, and masked fields masked by auditlog's own function. `tests/audit/test_diff.py` compares
the two on every model registered with auditlog.
"""

import threading
from dataclasses import dataclass, field
from typing import Any

from auditlog.diff import get_field_value, get_mask_function, is_primitive, track_field
from auditlog.registry import auditlog
from django.db.models import Model
from django.utils.encoding import smart_str


@dataclass
class _Plan:
    fields: list[tuple[Any, bool]]  # the fields auditlog compares for a creation, in its order; instance-free?
    masked: frozenset[str]
    mask_callable: str | None
    constants: dict[tuple[str, bool], Any] = field(default_factory=dict)  # (reverse relation, json): its value


_plans: dict[type[Model], _Plan] = {}
_lock = threading.Lock()


def _plan(model: type[Model]) -> _Plan:
    plan = _plans.get(model)
    if plan is None:
        with _lock:
            plan = _plans.get(model) or _plans.setdefault(model, _build(model))
    return plan


def _build(model: type[Model]) -> _Plan:
    """The fields as `model_instance_diff(None, new)` selects them (`get_fields_in_model`, then the registration)."""
    fields: Any = {f for f in model._meta.get_fields() if track_field(f)}
    model_fields = auditlog.get_model_fields(model)
    if model_fields and (model_fields["include_fields"] or model_fields["exclude_fields"]) and fields:
        if model_fields["include_fields"]:
            fields = [f for f in fields if f.name in model_fields["include_fields"]]
        if model_fields["exclude_fields"]:
            fields = [f for f in fields if f.name not in model_fields["exclude_fields"]]
    masked = frozenset(model_fields["mask_fields"]) if model_fields else frozenset()
    mask_callable = model_fields.get("mask_callable") if model_fields else None
    return _Plan(fields=[(f, _instance_free(f)) for f in fields], masked=masked, mask_callable=mask_callable)


def _instance_free(model_field: Any) -> bool:
    """A reverse many-to-one relation: its value is its manager's name (or None), whatever the instance."""
    return bool(model_field.auto_created and not model_field.concrete and model_field.one_to_many)


def creation_diff(new: Model, *, use_json_for_changes: bool = False) -> dict[str, Any] | None:
    """`auditlog.diff.model_instance_diff(None, new, use_json_for_changes=…)`, the same dict (or None)."""
    plan = _plan(type(new))
    old_value = None if use_json_for_changes else "None"  # `get_field_value(None, field)`, for every field
    diff: dict[str, Any] = {}
    for model_field, instance_free in plan.fields:
        if instance_free:
            key = (model_field.name, use_json_for_changes)
            if key not in plan.constants:
                plan.constants[key] = get_field_value(new, model_field, use_json_for_changes)
            new_value = plan.constants[key]
        else:
            new_value = get_field_value(new, model_field, use_json_for_changes)
        if old_value == new_value:
            continue
        if model_field.name in plan.masked:
            mask = get_mask_function(plan.mask_callable)
            diff[model_field.name] = (mask(smart_str(old_value)), mask(smart_str(new_value)))
        elif not use_json_for_changes:
            diff[model_field.name] = (smart_str(old_value), smart_str(new_value))
        else:
            diff[model_field.name] = (
                old_value if is_primitive(old_value) else smart_str(old_value),
                new_value if is_primitive(new_value) else smart_str(new_value),
            )
    return diff or None
