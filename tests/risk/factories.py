"""Factories for the risk rules' settings row and per-currency amount thresholds."""

from typing import Any

import factory

from risk import checks
from risk.models import CurrencyThreshold, RiskSettings


class RiskSettingsFactory(factory.django.DjangoModelFactory):
    """The settings are one row (pk 1, seeded with the defaults): "creating" it sets the given fields on that row.

    The row is made first when missing (a transactional test's flush empties it). Fields not given keep
    their current values; the version is not raised (a staff change through the admin raises it).
    """

    class Meta:
        model = RiskSettings

    @classmethod
    def _create(cls, model_class: type[RiskSettings], *args: Any, **fields: Any) -> RiskSettings:
        checks.settings_ensure()
        model_class.objects.filter(pk=1).update(**fields)
        return model_class.objects.get(pk=1)


class CurrencyThresholdFactory(factory.django.DjangoModelFactory):
    """One currency's thresholds (minor units); a seeded currency's row is updated rather than added again.

    The defaults are the usd thresholds the back-office tests were written against.
    """

    class Meta:
        model = CurrencyThreshold

    currency = "usd"
    review_amount = 500_000
    block_amount = 5_000_000
    first_seen_amount = 100_000

    @classmethod
    def _create(cls, model_class: type[CurrencyThreshold], *args: Any, **fields: Any) -> CurrencyThreshold:
        checks.settings_ensure()  # seeds the default currencies first, so they cannot come back over these
        row, _ = model_class.objects.update_or_create(currency=fields.pop("currency"), defaults=fields)
        return row
