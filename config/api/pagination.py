"""Cursor pagination, newest first, `?page_size=` up to 100; the same `page_size` rule for hand-paged feeds."""

from rest_framework import pagination, serializers
from rest_framework.request import Request

DEFAULT_PAGE_SIZE = 20
MAX_PAGE_SIZE = 100


class CursorPagination(pagination.CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = DEFAULT_PAGE_SIZE
    page_size_query_param = "page_size"
    max_page_size = MAX_PAGE_SIZE


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
