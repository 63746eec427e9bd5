"""SVG charts for the admin index dashboard: bars per day, drawn on the server."""

from collections.abc import Callable, Sequence
from datetime import date

from django.utils.html import escape
from django.utils.safestring import SafeString, mark_safe

# Drawn on the server so the admin needs no JavaScript or asset from the internet. Colours come from CSS classes
# (the admin's own variables), so the charts follow its light and dark themes.

_WIDTH = 640
_HEIGHT = 150
_TOP = 16
_BOTTOM = 22
_LEFT = 4


def _svg(label: str, body: list[str], width: int = _WIDTH, height: int = _HEIGHT) -> SafeString:
    return mark_safe(  # noqa: S308 - every interpolated text below goes through escape()
        f'<svg class="dash-chart" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="100%" role="img" aria-label="{escape(label)}"><title>{escape(label)}</title>'
        + "".join(body)
        + "</svg>"
    )


def _axis(days: Sequence[date], plot_height: int) -> list[str]:
    """Baseline and the first, middle and last dates under it."""
    y = _TOP + plot_height
    parts = [f'<line class="dash-axis" x1="{_LEFT}" y1="{y}" x2="{_WIDTH}" y2="{y}"/>']
    if not days:
        return parts
    slot = (_WIDTH - _LEFT) / len(days)
    for position, anchor in ((0, "start"), (len(days) // 2, "middle"), (len(days) - 1, "end")):
        x = _LEFT + slot * position + (slot / 2 if anchor == "middle" else slot if anchor == "end" else 0)
        label = days[position].strftime("%d %b")
        parts.append(f'<text class="dash-label" x="{x:.1f}" y="{y + 15}" text-anchor="{anchor}">{escape(label)}</text>')
    return parts


def svg_bar_chart(
    values: Sequence[int], days: Sequence[date], *, label: str, format_value: Callable[[int], str]
) -> SafeString:
    """Bars of `values` (one per day), scaled to the largest, each with a tooltip of its day and formatted value."""
    plot_height = _HEIGHT - _TOP - _BOTTOM
    peak = max(values, default=0)
    slot = (_WIDTH - _LEFT) / max(len(values), 1)
    parts = [
        f'<line class="dash-grid" x1="{_LEFT}" y1="{_TOP}" x2="{_WIDTH}" y2="{_TOP}"/>',
        f'<text class="dash-label" x="{_WIDTH}" y="{_TOP - 4}" text-anchor="end">'
        f"max {escape(format_value(peak))}/day</text>",
    ]
    for position, (value, day) in enumerate(zip(values, days, strict=True)):
        height = round(plot_height * value / peak, 1) if peak else 0
        x = _LEFT + slot * position + slot * 0.15
        parts.append(
            f'<rect class="dash-bar" x="{x:.1f}" y="{_TOP + plot_height - height:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{height}"><title>{day.isoformat()}: {escape(format_value(value))}</title></rect>'
        )
    return _svg(label, parts + _axis(days, plot_height))


def svg_rate_chart(rates: Sequence[float | None], days: Sequence[date], *, label: str) -> SafeString:
    """Success rate per day as bars from 0 to 100 %; a day with no outcome gets a dot on the baseline."""
    plot_height = _HEIGHT - _TOP - _BOTTOM
    slot = (_WIDTH - _LEFT) / max(len(rates), 1)
    middle = _TOP + plot_height / 2
    parts = [
        f'<line class="dash-grid" x1="{_LEFT}" y1="{_TOP}" x2="{_WIDTH}" y2="{_TOP}"/>',
        f'<line class="dash-grid" x1="{_LEFT}" y1="{middle}" x2="{_WIDTH}" y2="{middle}"/>',
        f'<text class="dash-label" x="{_WIDTH}" y="{_TOP - 4}" text-anchor="end">100 %</text>',
    ]
    for position, (rate, day) in enumerate(zip(rates, days, strict=True)):
        x = _LEFT + slot * position + slot * 0.15
        if rate is None:
            parts.append(
                f'<circle class="dash-empty" cx="{x + slot * 0.35:.1f}" cy="{_TOP + plot_height - 2}" r="1.5">'
                f"<title>{day.isoformat()}: no outcome</title></circle>"
            )
            continue
        height = round(plot_height * rate / 100, 1)
        parts.append(
            f'<rect class="dash-bar dash-rate" x="{x:.1f}" y="{_TOP + plot_height - height:.1f}" '
            f'width="{slot * 0.7:.1f}" height="{height}"><title>{day.isoformat()}: {rate} %</title></rect>'
        )
    return _svg(label, parts + _axis(days, plot_height))
