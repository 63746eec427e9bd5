"""The API's JSON parser: only what the service can store and walk safely reaches a view.

PostgreSQL cannot store a NUL (text or jsonb) nor a lone UTF-16 surrogate (not UTF-8), and JSON nested
thousands deep exhausts the stack (`RecursionError`) in the decoder or in whatever walks it next. Each is
a 400 `parameter_invalid` in the envelope, naming the parameter, before any view code runs.
"""

import re
from collections.abc import Mapping
from typing import Any

from rest_framework import parsers
from rest_framework.exceptions import ErrorDetail, ValidationError

from config.security import contains_card_number

MAX_JSON_DEPTH = 32  # the deepest body of the contract is 2 levels (metadata); generous, and far from the stack
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


class UnstorableInput(ValidationError):
    """400 `parameter_invalid` naming `param` (a DRF validation error, so the envelope renders it as any other)."""

    def __init__(self, message: str, *, param: str | None = None) -> None:
        super().__init__({param or "non_field_errors": [ErrorDetail(message, code="parameter_invalid")]})


def unstorable(text: str) -> bool:
    """True when `text` holds a NUL or a lone surrogate (a valid pair is decoded to one character)."""
    return bool(_UNSTORABLE.search(text))


def _child(path: str, key: str) -> str:
    """The parameter path of `key` under `path`, or `path` itself where naming the key would echo card data."""
    if contains_card_number(key):
        return path
    return f"{path}[{key}]" if path else key


def check_json(data: Any) -> None:
    """Walk `data` without recursion; raise `UnstorableInput` at the first unstorable string or too-deep level.

    :raises UnstorableInput: with `param` naming the place (the deepest safe-to-echo prefix of it).
    """
    stack: list[tuple[Any, str, int]] = [(data, "", 0)]
    while stack:
        value, path, depth = stack.pop()
        if depth > MAX_JSON_DEPTH:
            message = f"The body is nested too deep (at most {MAX_JSON_DEPTH} levels)."
            raise UnstorableInput(message, param=path or None)
        if isinstance(value, str):
            if unstorable(value):
                raise UnstorableInput("Strings must not contain NUL characters or lone surrogates.", param=path or None)
        elif isinstance(value, dict):
            for key, item in value.items():
                if unstorable(key):
                    message = "Keys must not contain NUL characters or lone surrogates."
                    raise UnstorableInput(message, param=path or None)
                stack.append((item, _child(path, key), depth + 1))
        elif isinstance(value, list):
            stack.extend((item, path, depth + 1) for item in value)


class JSONParser(parsers.JSONParser):
    """DRF's JSON parser, refusing bodies nested too deep or holding NUL characters or lone surrogates."""

    def parse(self, stream: Any, media_type: str | None = None, parser_context: Mapping[str, Any] | None = None) -> Any:
        try:
            data = super().parse(stream, media_type, parser_context)
        except RecursionError as exc:
            message = f"The body is nested too deep (at most {MAX_JSON_DEPTH} levels)."
            raise UnstorableInput(message) from exc
        check_json(data)
        return data
