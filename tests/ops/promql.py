"""Reading PromQL just enough for the tests: the metric names an expression selects."""

import re

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"|\'(?:[^\'\\]|\\.)*\'')
_MATCHERS = re.compile(r"\{[^{}]*\}")
_RANGE = re.compile(r"\[[^\]]*\]")
_GROUPING = re.compile(r"\b(?:by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)")
_NAME = re.compile(r"(?<![\w:.$])[a-zA-Z_:][\w:]*")
_KEYWORDS = {"and", "or", "unless", "offset", "bool", "inf", "nan", "by", "without", "on", "ignoring"}


def metric_names(expr: str) -> set[str]:
    """The metric names in `expr` (not functions, label names, label values, keywords or durations)."""
    text = _STRING.sub('""', expr)
    text = _MATCHERS.sub(" ", text)
    text = _RANGE.sub(" ", text)
    text = _GROUPING.sub(" ", text)
    names = set()
    for match in _NAME.finditer(text):
        if text[match.end() :].lstrip().startswith("("):
            continue  # a function call
        if match.group().lower() in _KEYWORDS:
            continue
        names.add(match.group())
    return names


def series_names(metric_types: dict[str, str]) -> set[str]:
    """The series names a scrape can show for metric families {name: type} as `# TYPE` lines give them."""
    names = set()
    for name, kind in metric_types.items():
        if kind in {"histogram", "summary"}:
            names |= {f"{name}_bucket", f"{name}_count", f"{name}_sum"}
        names.add(name)
    return names


def exposition_types(text: str) -> dict[str, str]:
    """{family: type} from the `# TYPE` lines of a Prometheus text exposition."""
    return dict(re.findall(r"^# TYPE (\S+) (\S+)$", text, re.MULTILINE))
