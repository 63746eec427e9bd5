"""Cursor pagination, newest first, `?page_size=` up to 100; the same `page_size` rule for hand-paged feeds."""

from collections.abc import Iterable

from rest_framework import pagination, serializers
from rest_framework.request import Request

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


class CursorPagination(pagination.CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = DEFAULT_PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE

    def get_page_size(self, request: Request) -> int:
        """`?page_size=` 1 to 100 (DRF would take `0` or `abc` for the default): anything else is a 400."""
        return page_size_param(request)


# The query parameters every paged list takes besides its filters.
PAGE_PARAMS = ("cursor", "page_size")


def known_params(request: Request, names: Iterable[str]) -> None:
    """Refuse, as Stripe does, a query parameter the endpoint does not take and one sent empty.

    A typo never filters nothing, and `?status=` is not taken for "any status" (to leave a filter out,
    leave the parameter out).

    :raises serializers.ValidationError: `parameter_invalid` on the first such parameter.
    """
    allowed = set(names)
    for name, values in request.query_params.lists():
        if name not in allowed:
            detail = serializers.ErrorDetail("unknown parameter.", code="parameter_invalid")
        elif "" in values:
            detail = serializers.ErrorDetail("must not be empty (leave the parameter out).", code="parameter_invalid")
        else:
            continue
        raise serializers.ValidationError({name or "query": [detail]})


def page_size_param(request: Request) -> int:
    """`?page_size=` of a hand-paged list (the event feed): 1 to 100, 20 when absent.

    :raises serializers.ValidationError: not a whole number in range (`parameter_invalid` on `page_size`).
    """
    raw = request.query_params.get("page_size")
    if raw is None:
        return DEFAULT_PAGE_SIZE
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_PAGE_SIZE:
        detail = serializers.ErrorDetail(f"page_size must be 1 to {MAX_PAGE_SIZE}", code="parameter_invalid")
        raise serializers.ValidationError({"page_size": [detail]})
    return int(raw)
