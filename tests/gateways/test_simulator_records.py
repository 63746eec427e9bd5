"""The simulator stores intents and refunds as `dataclasses.asdict` gives them, and reads them back whole."""

from dataclasses import asdict
from datetime import UTC, datetime

from hypothesis import given
from hypothesis import strategies as st

from gateways.base import IntentResult, RefundResult
from gateways.simulator import gateway as simulator

words = st.text(max_size=12)
moments = st.one_of(st.none(), st.datetimes(timezones=st.just(UTC), min_value=datetime(2000, 1, 1)))  # noqa: DTZ001
metadata = st.dictionaries(words, words, max_size=4)
intents = st.builds(
    IntentResult,
    reference=words,
    status=st.sampled_from(["requires_confirmation", "succeeded", "requires_capture"]),
    amount=st.integers(min_value=0),
    currency=st.sampled_from(["usd", "eur", "jpy"]),
    capture_method=st.sampled_from(["automatic", "manual"]),
    amount_capturable=st.integers(min_value=0),
    amount_received=st.integers(min_value=0),
    client_secret=words,
    payment_method=words,
    failure_code=words,
    failure_message=words,
    created_at=moments,
    metadata=metadata,
)
refunds = st.builds(
    RefundResult,
    reference=words,
    intent_reference=words,
    status=st.sampled_from(["pending", "succeeded", "failed"]),
    amount=st.integers(min_value=1),
    currency=st.sampled_from(["usd", "eur"]),
    failure_reason=words,
    created_at=moments,
    metadata=metadata,
)


def _as_asdict(result) -> dict:
    data = asdict(result)
    data["created_at"] = result.created_at.isoformat() if result.created_at else None
    return data


@given(intents)
def test_an_intent_is_stored_as_asdict_gives_it_and_read_back_equal(intent):
    stored = simulator._dump(intent)

    assert stored == _as_asdict(intent)
    assert stored["metadata"] is not intent.metadata
    assert simulator._load(stored) == intent


@given(refunds)
def test_a_refund_is_stored_as_asdict_gives_it_and_read_back_equal(refund):
    stored = simulator._dump_refund(refund)

    assert stored == _as_asdict(refund)
    assert simulator._load_refund(stored) == refund
