"""The risk settings and thresholds in the admin: a lead's change raises the version and is a staff action."""

from typing import Any

import pytest
from django.forms.models import model_to_dict

from audit.models import StaffAction
from risk.models import CurrencyThreshold, RiskSettings
from tests.audit.conftest import logged_in
from tests.risk.admin_support import (  # noqa: F401 - fixtures
    agent_fixture,
    auditor_fixture,
    known_rules_fixture,
    lead_fixture,
    messages_of,
    rows_of,
)

pytestmark = pytest.mark.django_db

SETTINGS = "/admin/risk/risksettings/1/change/"
THRESHOLDS = "/admin/risk/currencythreshold/"


def settings_form(**changes: Any) -> dict[str, Any]:
    """The settings form as the page would post it, with `changes`."""
    current = model_to_dict(RiskSettings.objects.get(pk=1), exclude=["id", "version", "updated_at"])
    return {**current, **changes}


def test_the_settings_changelist_opens_the_single_row(lead, rules):
    response = logged_in(lead).get("/admin/risk/risksettings/")

    assert (response.status_code, response.url) == (302, SETTINGS)


def test_a_lead_changes_a_setting_the_version_rises_and_a_staff_action_is_recorded(lead, known_rules):
    # given the settings at some version
    version = RiskSettings.objects.get(pk=1).version

    # when a lead raises the review score with the admin form
    response = logged_in(lead).post(SETTINGS, settings_form(review_score=60), follow=True)

    # then the row, its version and the audit trail say so
    assert response.status_code == 200
    row = RiskSettings.objects.get(pk=1)
    assert (row.review_score, row.version) == (60, version + 1)
    action = StaffAction.objects.get()
    assert (action.actor, action.action, action.object_type, action.object_id) == (
        lead,
        "risk_settings_change",
        "risk_settings",
        "settings",
    )
    assert (action.before, action.after) == ({"review_score": 50}, {"review_score": 60, "version": version + 1})


def test_saving_unchanged_settings_does_not_raise_the_version(lead, known_rules):
    version = RiskSettings.objects.get(pk=1).version

    logged_in(lead).post(SETTINGS, settings_form())

    assert RiskSettings.objects.get(pk=1).version == version
    assert StaffAction.objects.count() == 0


def test_a_review_score_above_the_block_score_is_refused(lead, known_rules):
    version = RiskSettings.objects.get(pk=1).version

    response = logged_in(lead).post(SETTINGS, settings_form(review_score=95, block_score=90))

    assert response.status_code == 200
    assert "Constraint “risk_review_le_block” is violated." in response.content.decode()
    assert (RiskSettings.objects.get(pk=1).review_score, RiskSettings.objects.get(pk=1).version) == (50, version)
    assert StaffAction.objects.count() == 0


def test_an_agent_sees_the_settings_but_cannot_change_them(agent, known_rules):
    version = RiskSettings.objects.get(pk=1).version
    client = logged_in(agent)

    page = client.get(SETTINGS)
    posted = client.post(SETTINGS, settings_form(review_score=60))
    threshold = CurrencyThreshold.objects.get(currency="usd")
    threshold_post = client.post(
        f"{THRESHOLDS}{threshold.pk}/change/", {"review": "1.00", "block": "", "first_seen": "1.00"}
    )

    assert page.status_code == 200
    assert 'name="review_score"' not in page.content.decode()  # read-only
    assert (posted.status_code, threshold_post.status_code) == (403, 403)
    assert client.get(f"{THRESHOLDS}add/").status_code == 403
    assert (RiskSettings.objects.get(pk=1).review_score, RiskSettings.objects.get(pk=1).version) == (50, version)
    assert CurrencyThreshold.objects.get(currency="usd").review_amount == 500_000
    assert StaffAction.objects.count() == 0


def test_nobody_adds_or_deletes_the_settings_row(lead, known_rules):
    client = logged_in(lead)

    assert client.get("/admin/risk/risksettings/add/").status_code == 403
    assert client.post("/admin/risk/risksettings/1/delete/", {"post": "yes"}).status_code == 403
    assert RiskSettings.objects.count() == 1


def test_thresholds_are_listed_with_formatted_amounts(lead, known_rules, threshold):
    threshold("kwd", review_amount=1_500_000, block_amount=None, first_seen_amount=300_000)

    rows = {row["currency_display"]: row for row in rows_of(logged_in(lead).get(THRESHOLDS))}

    assert rows["USD"] == {
        "currency_display": "USD",
        "review_display": "$5,000.00",
        "block_display": "$50,000.00",
        "first_seen_display": "$1,000.00",
    }
    assert (rows["KWD"]["review_display"], rows["KWD"]["block_display"]) == ("1,500.000 KD", "never")


def test_a_lead_changes_a_threshold_in_major_units(lead, known_rules):
    # given the usd thresholds and the settings version
    row = CurrencyThreshold.objects.get(currency="usd")
    version = RiskSettings.objects.get(pk=1).version
    client = logged_in(lead)
    assert 'value="5,000.00"' in client.get(f"{THRESHOLDS}{row.pk}/change/").content.decode()

    # when a lead types a new review amount in dollars
    response = client.post(
        f"{THRESHOLDS}{row.pk}/change/", {"review": "6,000.50", "block": "50,000.00", "first_seen": "1,000.00"}
    )

    # then it is stored in cents, the version rises and the staff action shows the minor units
    assert response.status_code == 302
    row.refresh_from_db()
    assert (row.review_amount, row.block_amount, row.first_seen_amount) == (600_050, 5_000_000, 100_000)
    assert RiskSettings.objects.get(pk=1).version == version + 1
    action = StaffAction.objects.get()
    assert (action.action, action.object_id, action.before, action.after) == (
        "risk_settings_change",
        "threshold usd",
        {"review_amount": 500_000},
        {"review_amount": 600_050, "version": version + 1},
    )


def test_a_lead_adds_a_threshold_for_another_currency(lead, known_rules):
    version = RiskSettings.objects.get(pk=1).version

    response = logged_in(lead).post(
        f"{THRESHOLDS}add/", {"currency": "SEK", "review": "50,000", "block": "", "first_seen": "10,000.00"}
    )

    assert response.status_code == 302
    row = CurrencyThreshold.objects.get(currency="sek")
    assert (row.review_amount, row.block_amount, row.first_seen_amount) == (5_000_000, None, 1_000_000)
    assert RiskSettings.objects.get(pk=1).version == version + 1
    action = StaffAction.objects.get()
    assert (action.object_id, action.before) == ("threshold sek", {})


@pytest.mark.parametrize(
    ("data", "errors"),
    [
        (
            {"currency": "usd", "review": "1.00", "block": "", "first_seen": "1.00"},
            {"currency": ["Currency threshold with this Currency already exists."]},
        ),
        (
            {"currency": "xxx", "review": "1.00", "block": "", "first_seen": "1.00"},
            {"currency": ["XXX is not a supported currency."]},
        ),
        (
            {"currency": "sek", "review": "100.00", "block": "99.99", "first_seen": "1.00"},
            {"block": ["The block amount must be at least the review amount."]},
        ),
        (
            {"currency": "sek", "review": "1.001", "block": "", "first_seen": "0"},
            {"review": ["SEK has 2 decimal places"], "first_seen": ["Enter a positive amount."]},
        ),
    ],
)
def test_invalid_thresholds_are_refused(lead, known_rules, data, errors):
    count = CurrencyThreshold.objects.count()

    response = logged_in(lead).post(f"{THRESHOLDS}add/", data)

    assert response.status_code == 200
    assert response.context["adminform"].form.errors == errors
    assert CurrencyThreshold.objects.count() == count
    assert StaffAction.objects.count() == 0
