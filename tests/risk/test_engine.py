"""The rules as pure functions: examples for each rule and their sum, and properties over any facts and settings."""

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from risk.engine import (
    IDENTITIES,
    RULE_NAMES,
    WINDOWS,
    Assessment,
    BlocklistHit,
    Facts,
    Reason,
    Rules,
    Threshold,
    evaluate,
)

USD = Threshold(review_amount=500_000, block_amount=5_000_000, first_seen_amount=100_000)
RULES = Rules(threshold=USD)
RANK = {"allow": 0, "review": 1, "block": 2}
LEVEL_OF = {"allow": "normal", "review": "elevated", "block": "highest"}


def _facts(**changes) -> Facts:
    return Facts(**{"amount": 2000, "currency": "usd", **changes})


def _codes(assessment: Assessment) -> list[str]:
    return [reason.code for reason in assessment.reasons]


# --- examples ----------------------------------------------------------------------------------------
def test_nothing_fired_allows_with_score_zero():
    assert evaluate(_facts(), RULES) == Assessment(0, "normal", "allow", (), 1)


def test_a_blocklisted_email_blocks():
    hit = BlocklistHit(kind="email", value="ann@example.com", entry_id=7)

    assessment = evaluate(_facts(blocklist_hits=(hit,)), RULES)

    assert (assessment.score, assessment.level, assessment.decision) == (100, "highest", "block")
    assert assessment.reasons == (
        Reason("blocklist", "blocklisted_email", 100, "email ann@example.com is blocklisted"),
    )


def test_several_blocklist_hits_count_once_but_are_all_reasons():
    hits = (BlocklistHit("email_domain", "example.com", 1), BlocklistHit("ip", "10.0.0.0/8", 2))
    rules = Rules(threshold=USD, blocklist_points=40)

    assessment = evaluate(_facts(blocklist_hits=hits), rules)

    assert assessment.score == 40
    assert assessment.decision == "allow"
    assert _codes(assessment) == ["blocklisted_email_domain", "blocklisted_ip"]


@pytest.mark.parametrize(
    ("amount", "score", "decision", "codes"),
    [
        (499_999, 0, "allow", []),
        (500_000, 60, "review", ["amount_review_threshold"]),
        (4_999_999, 60, "review", ["amount_review_threshold"]),
        (5_000_000, 100, "block", ["amount_block_threshold"]),
    ],
)
def test_amount_thresholds_are_inclusive(amount, score, decision, codes):
    assessment = evaluate(_facts(amount=amount), RULES)

    assert (assessment.score, assessment.decision, _codes(assessment)) == (score, decision, codes)


def test_amount_messages_show_the_amounts_in_the_currency():
    review = evaluate(_facts(amount=500_000), RULES)
    kwd = evaluate(Facts(amount=15_000_000, currency="kwd"), Rules(threshold=Threshold(1_500_000, 15_000_000, 300_000)))

    assert review.reasons[0].message == "amount $5,000.00 is at or above the review amount $5,000.00"
    assert kwd.reasons[0].message == "amount 15,000.000 KD is at or above the block amount 15,000.000 KD"


def test_no_threshold_for_the_currency_means_no_amount_or_first_seen_rule():
    assessment = evaluate(_facts(amount=99_999_999, first_seen=True), Rules(threshold=None))

    assert assessment == Assessment(0, "normal", "allow", (), 1)


def test_without_a_block_amount_a_large_amount_is_only_reviewed():
    rules = Rules(threshold=Threshold(review_amount=500_000, block_amount=None, first_seen_amount=100_000))

    assessment = evaluate(_facts(amount=99_999_999), rules)

    assert (assessment.score, assessment.decision, _codes(assessment)) == (60, "review", ["amount_review_threshold"])


@pytest.mark.parametrize(("first_seen", "score"), [(True, 50), (False, 0), (None, 0)])
def test_first_seen_scores_only_a_customer_never_seen(first_seen, score):
    assessment = evaluate(_facts(amount=100_000, first_seen=first_seen), RULES)

    assert assessment.score == score
    assert _codes(assessment) == (["first_seen_large_amount"] if score else [])


def test_first_seen_at_the_review_score_holds_the_payment():
    assessment = evaluate(_facts(amount=100_000, first_seen=True), RULES)

    assert (assessment.level, assessment.decision) == ("elevated", "review")
    assert assessment.reasons[0].message == "first payment of this customer, $1,000.00 (≥ $1,000.00)"


@pytest.mark.parametrize("identity", IDENTITIES)
@pytest.mark.parametrize(("window", "limit"), [("short", 5), ("long", 20)])
def test_velocity_fires_at_the_limit_not_below(identity, window, limit):
    below = evaluate(_facts(payments={(identity, window): limit - 1}), RULES)
    at = evaluate(_facts(payments={(identity, window): limit}), RULES)

    assert below.score == 0
    assert (at.score, at.decision, _codes(at)) == (60, "review", [f"velocity_{identity}_{window}"])


def test_velocity_message_names_the_count_window_and_limit():
    assessment = evaluate(_facts(payments={("email", "short"): 7}), RULES)

    assert assessment.reasons[0].message == "7 payments by this email in 10 min (limit 5)"


@pytest.mark.parametrize("identity", IDENTITIES)
@pytest.mark.parametrize(("window", "limit"), [("short", 3), ("long", 5)])
def test_declines_fire_at_the_limit_not_below(identity, window, limit):
    below = evaluate(_facts(declines={(identity, window): limit - 1}), RULES)
    at = evaluate(_facts(declines={(identity, window): limit}), RULES)

    assert below.score == 0
    assert (at.score, at.decision, _codes(at)) == (80, "review", [f"declines_{identity}_{window}"])


def test_one_rule_firing_for_every_identity_and_window_counts_once():
    everything = {(identity, window): 50 for identity in IDENTITIES for window in WINDOWS}

    assessment = evaluate(_facts(payments=everything), RULES)

    assert assessment.score == 60
    assert assessment.decision == "review"
    assert len(assessment.reasons) == 6


@pytest.mark.parametrize(
    ("facts", "codes"),
    [
        (
            _facts(payments={("customer", "short"): 5}, declines={("ip", "long"): 5}),
            ["velocity_customer_short", "declines_ip_long"],
        ),
    ],
)
def test_two_rules_add_up_to_a_block_capped_at_100(facts, codes):
    # velocity 60 + declines 80 = 140, capped
    assessment = evaluate(facts, RULES)

    assert (assessment.score, assessment.level, assessment.decision) == (100, "highest", "block")
    assert _codes(assessment) == codes


def test_a_new_customers_large_order_counts_the_amount_once_and_is_held_not_blocked():
    assessment = evaluate(_facts(amount=500_000, first_seen=True), RULES)

    assert _codes(assessment) == ["amount_review_threshold", "first_seen_large_amount"]
    assert (assessment.score, assessment.decision) == (60, "review")  # max(60, 50), not 110


def test_rules_with_zero_points_are_off():
    rules = Rules(threshold=USD, blocklist_points=0, velocity_points=0, first_seen_points=0)
    facts = _facts(
        amount=100_000,
        first_seen=True,
        blocklist_hits=(BlocklistHit("ip", "10.0.0.1/32", 1),),
        payments={("customer", "short"): 9},
    )

    assert evaluate(facts, rules) == Assessment(0, "normal", "allow", (), 1)


@pytest.mark.parametrize(
    ("review_score", "block_score", "decision"), [(61, 90, "allow"), (60, 90, "review"), (40, 60, "block")]
)
def test_the_decision_follows_the_configured_scores(review_score, block_score, decision):
    rules = Rules(threshold=USD, review_score=review_score, block_score=block_score)

    assessment = evaluate(_facts(amount=500_000), rules)

    assert assessment.score == 60
    assert (assessment.decision, assessment.level) == (decision, LEVEL_OF[decision])


def test_the_settings_version_is_recorded():
    assert evaluate(_facts(), Rules(version=42)).settings_version == 42


# --- properties --------------------------------------------------------------------------------------
KEYS = [(identity, window) for identity in IDENTITIES for window in WINDOWS]
counts = st.dictionaries(st.sampled_from(KEYS), st.integers(0, 40), max_size=len(KEYS))
points = st.integers(0, 100) | st.just(0)
hits = st.lists(
    st.builds(
        BlocklistHit,
        kind=st.sampled_from(["email", "email_domain", "ip", "customer", "card_fingerprint"]),
        value=st.text(min_size=1, max_size=12),
        entry_id=st.integers(1, 10_000),
    ),
    max_size=3,
).map(tuple)


@st.composite
def thresholds(draw) -> Threshold | None:
    """Small amounts, so that drawn amounts land on every side of every threshold often."""
    if draw(st.booleans()):
        return None
    review = draw(st.integers(1, 1000))
    block = draw(st.none() | st.integers(review, 2000))
    return Threshold(review_amount=review, block_amount=block, first_seen_amount=draw(st.integers(1, 1000)))


@st.composite
def rule_sets(draw) -> Rules:
    review_score = draw(st.integers(1, 100))
    return Rules(
        version=draw(st.integers(1, 1000)),
        review_score=review_score,
        block_score=draw(st.integers(review_score, 100)),
        blocklist_points=draw(points),
        amount_review_points=draw(points),
        amount_block_points=draw(points),
        first_seen_points=draw(points),
        velocity_points=draw(points),
        decline_points=draw(points),
        short_window_payments=draw(st.integers(1, 30)),
        short_window_declines=draw(st.integers(1, 30)),
        long_window_payments=draw(st.integers(1, 30)),
        long_window_declines=draw(st.integers(1, 30)),
        threshold=draw(thresholds()),
    )


facts_st = st.builds(
    Facts,
    amount=st.integers(1, 2500),
    currency=st.sampled_from(["usd", "jpy", "kwd"]),
    blocklist_hits=hits,
    payments=counts,
    declines=counts,
    first_seen=st.none() | st.booleans(),
)


def _expected_decision(score: int, rules: Rules) -> str:
    if score >= rules.block_score:
        return "block"
    return "review" if score >= rules.review_score else "allow"


@given(facts=facts_st, rules=rule_sets())
def test_the_score_is_always_between_0_and_100(facts, rules):
    assert 0 <= evaluate(facts, rules).score <= 100


@given(facts=facts_st, rules=rule_sets())
def test_level_and_decision_always_agree(facts, rules):
    assessment = evaluate(facts, rules)

    assert assessment.level == LEVEL_OF[assessment.decision]
    assert assessment.settings_version == rules.version


@given(first=facts_st, second=facts_st, rules=rule_sets())
def test_the_decision_is_monotone_in_the_score(first, second, rules):
    low, high = sorted((evaluate(first, rules), evaluate(second, rules)), key=lambda a: a.score)

    assert RANK[low.decision] <= RANK[high.decision]
    assert high.decision == _expected_decision(high.score, rules)
    assert low.decision == _expected_decision(low.score, rules)


@given(facts=facts_st, rules=rule_sets())
def test_the_score_is_the_best_points_of_each_rule_summed_and_capped(facts, rules):
    assessment = evaluate(facts, rules)

    best: dict[str, int] = {}
    for reason in assessment.reasons:
        group = "amount" if reason.rule == "first_seen" else reason.rule  # both score the large amount
        best[group] = max(best.get(group, 0), reason.points)
    assert assessment.score == min(100, sum(best.values()))
    assert {reason.rule for reason in assessment.reasons} <= set(RULE_NAMES)


POINT_FIELDS = {
    "blocklist_points": ("blocklist", None),
    "amount_review_points": ("amount", "amount_review_threshold"),
    "amount_block_points": ("amount", "amount_block_threshold"),
    "first_seen_points": ("first_seen", None),
    "velocity_points": ("velocity", None),
    "decline_points": ("declines", None),
}


@given(facts=facts_st, rules=rule_sets())
def test_a_rule_with_zero_points_never_appears_in_the_reasons(facts, rules):
    assessment = evaluate(facts, rules)

    assert all(reason.points > 0 for reason in assessment.reasons)
    for field, (rule, code) in POINT_FIELDS.items():
        if getattr(rules, field) == 0:
            assert not [r for r in assessment.reasons if r.rule == rule and (code is None or r.code == code)]


@given(
    facts=facts_st,
    rules=rule_sets(),
    extra_hit=hits,
    more_payments=counts,
    more_declines=counts,
    now_first_seen=st.booleans(),
)
def test_more_evidence_never_lowers_the_score(facts, rules, extra_hit, more_payments, more_declines, now_first_seen):
    def add(base, extra):
        return {key: base.get(key, 0) + extra.get(key, 0) for key in set(base) | set(extra)}

    worse = Facts(
        amount=facts.amount,
        currency=facts.currency,
        blocklist_hits=facts.blocklist_hits + extra_hit,
        payments=add(facts.payments, more_payments),
        declines=add(facts.declines, more_declines),
        first_seen=True if now_first_seen else facts.first_seen,
    )

    assert evaluate(worse, rules).score >= evaluate(facts, rules).score


@given(facts=facts_st, rules=rule_sets(), field=st.sampled_from(sorted(POINT_FIELDS)), value=st.integers(1, 100))
def test_turning_a_rule_on_never_lowers_the_score(facts, rules, field, value):
    # the block tier of the amount rule replaces its review tier: sensible settings give it at least as many points
    assume(field != "amount_block_points" or value >= rules.amount_review_points)
    off = Rules(**{**rules.__dict__, field: 0})
    on = Rules(**{**rules.__dict__, field: value})

    assert evaluate(facts, on).score >= evaluate(facts, off).score


def test_with_the_block_amount_rule_off_a_huge_amount_is_still_reviewed():
    rules = Rules(threshold=USD, amount_block_points=0)

    assessment = evaluate(_facts(amount=5_000_000), rules)

    assert (assessment.score, assessment.decision, _codes(assessment)) == (60, "review", ["amount_review_threshold"])


@given(rules=rule_sets(), amounts=st.lists(st.integers(1, 2500), min_size=2, max_size=2), first_seen=st.booleans())
def test_a_larger_amount_never_lowers_the_score(rules, amounts, first_seen):
    assume(rules.amount_block_points == 0 or rules.amount_block_points >= rules.amount_review_points)
    smaller, larger = sorted(amounts)

    def score(amount: int) -> int:
        return evaluate(Facts(amount=amount, currency="usd", first_seen=first_seen), rules).score

    assert score(larger) >= score(smaller)
