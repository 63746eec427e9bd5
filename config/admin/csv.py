"""Streamed CSV export of a changelist: constant memory at any row count, safe against CSV injection."""

import csv
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from django.contrib import admin
from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.contrib.admin.views.main import ChangeList
from django.core.exceptions import PermissionDenied
from django.db.models import QuerySet
from django.http import HttpRequest, StreamingHttpResponse
from django.urls import URLPattern, path

CSV_CHUNK_SIZE = 2000
# Cells that a spreadsheet would read as a formula (CSV injection) get a leading apostrophe.
FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")


class _Echo:
    """A write-only pseudo-buffer: csv.writer writes a row, we hand the line straight to the response."""

    def write(self, value: str) -> str:
        return value


def csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_PREFIXES):
        return f"'{value}"
    return value


def csv_stream(
    header: Iterable[str], rows: Iterable[tuple[Any, ...]], to_line: Callable[[tuple[Any, ...]], list[Any]]
) -> Iterator[str]:
    """Yield CSV lines one at a time: memory stays constant whatever the number of rows."""
    writer = csv.writer(_Echo())
    yield writer.writerow(header)
    for row in rows:
        yield writer.writerow([csv_cell(cell) for cell in to_line(row)])


def changelist_filters(request: HttpRequest) -> dict[str, str]:
    """The changelist's filters and search, as the staff member saw them (kept in the audit trail)."""
    return {key: str(value) for key, value in request.GET.items() if key not in ("o", "p")}


class CsvExportMixin:
    """A changelist button and an admin action exporting the filtered rows as a streamed CSV.

    Subclasses define `csv_columns` (header, values_list lookup), `csv_line` (row -> cells) and
    `csv_exported` (record who exported what: `audit.admin.AuditedCsvExportMixin` does it).
    Only the filters are recorded: counting would cost a full scan at millions of rows.
    """

    csv_object_type: str
    csv_columns: tuple[tuple[str, str], ...]
    # Declared here, defined by the concrete admin (a row to its cells) and by the audited mixin.
    csv_line: Callable[[tuple[Any, ...]], list[Any]]
    csv_exported: Callable[..., None]

    def csv_response(self, request: HttpRequest, queryset: QuerySet, *, after: dict[str, Any]) -> StreamingHttpResponse:
        self.csv_exported(request, after=after)
        rows = queryset.values_list(*(lookup for _, lookup in self.csv_columns)).iterator(chunk_size=CSV_CHUNK_SIZE)
        response = StreamingHttpResponse(
            csv_stream((name for name, _ in self.csv_columns), rows, self.csv_line), content_type="text/csv"
        )
        response["Content-Disposition"] = f'attachment; filename="{self.csv_object_type}s.csv"'
        return response

    def export_csv_view(self, request: HttpRequest) -> StreamingHttpResponse:
        """The changelist button: export exactly what the changelist shows, with its filters and search."""
        if not self.has_view_permission(request):  # type: ignore[attr-defined]
            raise PermissionDenied
        changelist: ChangeList = self.get_changelist_instance(request)  # type: ignore[attr-defined]
        queryset = changelist.get_queryset(request)
        return self.csv_response(request, queryset, after={"filters": changelist_filters(request)})

    @admin.action(description="Export selected rows as CSV", permissions=["view"])
    def export_csv(self, request: HttpRequest, queryset: QuerySet) -> StreamingHttpResponse:
        after: dict[str, Any] = {"filters": changelist_filters(request)}
        if request.POST.get("select_across") != "1":
            after["rows"] = len(request.POST.getlist(ACTION_CHECKBOX_NAME))
        return self.csv_response(request, queryset, after=after)

    def csv_url(self, name: str) -> URLPattern:
        return path("export-csv/", self.admin_site.admin_view(self.export_csv_view), name=name)  # type: ignore[attr-defined]
