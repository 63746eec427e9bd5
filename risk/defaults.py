"""Default amount thresholds (minor units), seeded by the migration and again after a flush.

Roughly USD 5,000 to review, USD 50,000 to block and USD 2,500 for a customer's first payment, in
each currency's own unit (rounded). Currencies without a row have no amount rules until finance
adds one in the admin.
"""

# currency: (review_amount, block_amount, first_seen_amount)
DEFAULT_THRESHOLDS: dict[str, tuple[int, int | None, int]] = {
    "usd": (500_000, 5_000_000, 250_000),
    "eur": (500_000, 5_000_000, 250_000),
    "gbp": (400_000, 4_000_000, 200_000),
    "chf": (450_000, 4_500_000, 225_000),
    "cad": (700_000, 7_000_000, 350_000),
    "aud": (750_000, 7_500_000, 375_000),
    "jpy": (750_000, 7_500_000, 375_000),
    "krw": (7_000_000, 70_000_000, 3_500_000),
    "kwd": (1_500_000, 15_000_000, 750_000),
    "bhd": (1_900_000, 19_000_000, 950_000),
    "omr": (1_900_000, 19_000_000, 950_000),
    "jod": (3_500_000, 35_000_000, 1_750_000),
}
