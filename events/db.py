"""Database expressions of the outbox: which transaction wrote a row, and which may still be running."""

from typing import Any

from django.db import models


class CurrentTransactionId(models.Func):
    """The id of the writing transaction on PostgreSQL (`pg_current_xact_id()`); 0 elsewhere.

    Used as a column default so every event row records which transaction wrote it.
    """

    output_field = models.BigIntegerField()
    template = "0"

    def as_postgresql(self, compiler: Any, connection: Any, **extra_context: Any) -> Any:
        return self.as_sql(compiler, connection, template="(pg_current_xact_id()::text::bigint)", **extra_context)


class SnapshotXmin(models.Func):
    """The oldest transaction id still running when the statement's snapshot was taken (PostgreSQL)."""

    output_field = models.BigIntegerField()
    template = "(pg_snapshot_xmin(pg_current_snapshot())::text::bigint)"


class OwnTransactionId(models.Func):
    """The reading transaction's own id if it has written anything, else NULL (PostgreSQL)."""

    output_field = models.BigIntegerField()
    template = "(pg_current_xact_id_if_assigned()::text::bigint)"
