"""Public ids: letters and digits, each character uniform over the 62, every position alike."""

from collections import Counter

from config.ids import ALPHABET, random_token
from events.models import new_event_id
from payments.models import new_payment_id


def test_ids_have_their_prefix_length_and_alphabet():
    for made in (new_payment_id(), new_event_id()):
        assert made[:4] in {"pay_", "evt_"}
        assert len(made) == 28
        assert set(made[4:]) <= set(ALPHABET)
    assert random_token(1) in ALPHABET
    assert len(random_token(40)) == 40


def test_every_position_takes_every_character_about_equally():
    tokens = [random_token(24) for _ in range(6200)]  # 100 expected per character and position

    for position in range(24):
        counts = Counter(token[position] for token in tokens)
        assert set(counts) == set(ALPHABET), position
        assert min(counts.values()) > 40, (position, counts.most_common()[-1])
        assert max(counts.values()) < 170, (position, counts.most_common(1))


def test_no_two_ids_repeat():
    assert len({new_payment_id() for _ in range(20000)}) == 20000
