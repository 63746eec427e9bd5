"""AES-256-GCM at rest: a keyring newest first, values bound to their column, blind indexes for exact search."""

import base64

import pytest
from django.core.exceptions import ImproperlyConfigured
from hypothesis import given
from hypothesis import strategies as st

from config.encryption import (
    DecryptionError,
    Keyring,
    blind_index,
    configured_keys,
    email_index,
    ip_index,
    is_encrypted,
    key_id,
    new_key,
    parse_key,
)

OLD, NEW = new_key(), new_key()


def _ring(*keys: str) -> Keyring:
    return Keyring(tuple(parse_key(key) for key in keys))


@given(st.text(max_size=300))
def test_any_text_round_trips_and_never_shows_in_the_stored_value(text):
    ring = _ring(NEW)
    stored = ring.encrypt(text, context="customers.customer.email")
    assert is_encrypted(stored)
    assert ring.decrypt(stored, context="customers.customer.email") == text
    if len(text) >= 4:
        assert text not in stored


def test_the_same_value_twice_is_stored_differently_and_names_its_key_not_the_key_itself():
    ring = _ring(NEW)
    first, second = (ring.encrypt("ada@example.com", context="c.m.f") for _ in range(2))
    assert first != second  # a fresh nonce each time
    assert first.split(":")[1] == key_id(parse_key(NEW)) == ring.current_id
    assert NEW not in first


def test_old_rows_decrypt_while_the_newest_key_encrypts():
    before = _ring(OLD).encrypt("Ada Lovelace", context="c.m.name")
    rotated = _ring(NEW, OLD)
    assert rotated.decrypt(before, context="c.m.name") == "Ada Lovelace"
    assert not rotated.is_current(before)
    after = rotated.encrypt("Ada Lovelace", context="c.m.name")
    assert rotated.is_current(after)
    assert rotated.is_current("")
    with pytest.raises(DecryptionError, match="No key"):
        _ring(NEW).decrypt(before, context="c.m.name")  # the old key removed before rotating: refused, loudly


def test_a_value_moved_to_another_column_or_tampered_does_not_decrypt():
    ring = _ring(NEW)
    stored = ring.encrypt("203.0.113.9", context="payments.payment.customer_ip")
    with pytest.raises(DecryptionError):
        ring.decrypt(stored, context="customers.customer.email")
    body = bytearray(base64.urlsafe_b64decode(stored.split(":", 2)[2] + "=="))
    body[-1] ^= 1
    tampered = ":".join([*stored.split(":", 2)[:2], base64.urlsafe_b64encode(bytes(body)).decode().rstrip("=")])
    with pytest.raises(DecryptionError):
        ring.decrypt(tampered, context="payments.payment.customer_ip")
    for junk in ("enc1:abc", "plain text", "enc1:deadbeef:!!"):
        with pytest.raises(DecryptionError):
            ring.decrypt(junk, context="x")


@pytest.mark.parametrize(
    "raw",
    ["", "not-base64!", base64.b64encode(b"short").decode(), base64.b64encode(b"x" * 33).decode()],
)
def test_bad_keys_are_refused_at_start(raw):
    with pytest.raises(ImproperlyConfigured):
        Keyring(tuple(parse_key(key) for key in configured_keys(raw))) if raw else Keyring(())


def test_the_same_key_listed_twice_is_refused():
    with pytest.raises(ImproperlyConfigured, match="twice"):
        _ring(NEW, NEW)


def test_keys_are_read_from_a_list_or_a_file_body():
    assert configured_keys(f"{NEW}, {OLD}") == [NEW, OLD]
    assert configured_keys(f"{NEW}\n{OLD}\n") == [NEW, OLD]
    assert configured_keys([NEW, " ", OLD]) == [NEW, OLD]


def test_blind_indexes_find_equal_values_and_only_them(settings):
    settings.BLIND_INDEX_KEY = new_key()
    assert email_index("Ada@Example.com ") == email_index("ada@example.com")
    assert email_index("ada@example.com") != email_index("ada@example.org")
    assert ip_index("2001:db8::1") == ip_index("2001:0db8:0000::0001")
    assert ip_index("203.0.113.9") != email_index("203.0.113.9")  # one purpose's index is not another's
    assert email_index("") == ""
    assert ip_index(None) == ""
    first = email_index("ada@example.com")
    settings.BLIND_INDEX_KEY = new_key()
    assert email_index("ada@example.com") != first  # keyed: without the key, no dictionary of e-mails helps
    assert len(blind_index("x", purpose="other")) == 64
