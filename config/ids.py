"""Random public ids (`pay_…`, `evt_…`): letters and digits, each drawn uniformly from the 62, unguessable.

One draw from the operating system's generator per id (`secrets.randbelow(62 ** length)`, written in base
62) instead of one per character: the same distribution, with a 24-character id costing one read of
`os.urandom` rather than 24 (a create + confirm makes three ids: the payment and two events).
"""

import secrets
import string

ALPHABET = string.ascii_letters + string.digits


def random_token(length: int) -> str:
    """`length` characters of `ALPHABET`, each uniform and independent of the others."""
    number = secrets.randbelow(len(ALPHABET) ** length)
    chars = []
    for _ in range(length):
        number, digit = divmod(number, len(ALPHABET))
        chars.append(ALPHABET[digit])
    return "".join(chars)
