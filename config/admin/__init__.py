"""The shared admin toolkit: read-only rows, streamed CSV export, a capped paginator, fixed-choice filters."""

from config.admin.csv import CsvExportMixin, csv_stream
from config.admin.filters import FixedChoicesFilter
from config.admin.mixins import ReadOnlyAdminMixin
from config.admin.pagination import COUNT_CAP, CappedCountPaginator

__all__ = [
    "COUNT_CAP",
    "CappedCountPaginator",
    "CsvExportMixin",
    "FixedChoicesFilter",
    "ReadOnlyAdminMixin",
    "csv_stream",
]
