"""Factories for reconciliation runs and the discrepancies they found."""

from datetime import timedelta

import factory
from django.utils import timezone

from reconciliation.models import Discrepancy, DiscrepancyKind, DiscrepancyState, ReconciliationRun, RunStatus


class ReconciliationRunFactory(factory.django.DjangoModelFactory):
    """A run of the simulator over the day before now, still running; `unresolved=True` for a finished one."""

    class Meta:
        model = ReconciliationRun

    class Params:
        unresolved = factory.Trait(
            status=RunStatus.UNRESOLVED, finished_at=factory.LazyFunction(timezone.now), duration_seconds=0.1
        )

    gateway = "simulator"
    window_end = factory.LazyFunction(timezone.now)
    window_start = factory.LazyAttribute(lambda run: run.window_end - timedelta(days=1))
    status = RunStatus.RUNNING


class DiscrepancyFactory(factory.django.DjangoModelFactory):
    """An open amount discrepancy of a run (about no payment unless `payment=` is given)."""

    class Meta:
        model = Discrepancy

    run = factory.SubFactory(ReconciliationRunFactory, unresolved=True)
    kind = DiscrepancyKind.AMOUNT
    state = DiscrepancyState.OPEN
