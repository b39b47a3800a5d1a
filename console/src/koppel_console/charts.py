"""The overview's charts, drawn on the server as SVG (pygal) and put inline in the page: readable
without JavaScript and with nothing fetched from elsewhere (``js=[]`` leaves out pygal's tooltip
script, which it would otherwise load from a CDN)."""

from __future__ import annotations

import re
from typing import Any

import pygal
from markupsafe import Markup
from pygal.style import Style

STYLE = Style(
    background="#ffffff",
    plot_background="#ffffff",
    foreground="#1d2433",
    foreground_strong="#1d2433",
    foreground_subtle="#6b7280",
    colors=("#0f62fe", "#067647", "#b54708", "#6941c6"),
    font_family="system-ui, sans-serif",
)
COMMON: dict[str, Any] = {
    "js": [],
    "disable_xml_declaration": True,
    "style": STYLE,
    "width": 1200,
    "height": 320,
    "legend_at_bottom": True,
    "x_label_rotation": 45,
    "show_minor_x_labels": False,
    "truncate_legend": -1,
    "no_data_text": "Nothing yet",
}


def _render(chart: Any, title: str) -> Markup:
    svg: str = chart.render(is_unicode=True)
    # pygal still writes its tooltip script's settings inline; without the script they do nothing
    svg = re.sub(r"<script[^>]*>.*?</script>", "", svg, flags=re.S)
    # the chart's accessible name, for screen readers and the browser tests
    return Markup(svg.replace("<svg ", f'<svg role="img" aria-label="{title}" ', 1))


def per_day(days: list[dict[str, Any]]) -> Markup:
    """Collected, paid and booked per day (counts)."""
    title = "Collected, paid and booked per day"
    chart = pygal.Bar(title=title, **COMMON)
    chart.x_labels = [str(d["day"])[5:] for d in days]
    chart.x_labels_major = chart.x_labels[::7]
    for key, label in (("collected", "collected"), ("paid", "paid"), ("booked", "booked")):
        chart.add(label, [d.get(key) or 0 for d in days])
    return _render(chart, title)


def latency(days: list[dict[str, Any]]) -> Markup:
    """Paid → booked latency percentiles per day, in seconds (a day without bookings is a gap)."""
    title = "Paid → booked latency per day (seconds)"
    chart = pygal.Line(title=title, allow_interruptions=True, **COMMON)
    chart.x_labels = [str(d["day"])[5:] for d in days]
    chart.x_labels_major = chart.x_labels[::7]
    for p in ("p50", "p90", "p99"):
        values = [d.get(f"latency_{p}_seconds") for d in days]
        chart.add(p, [round(v, 1) if v is not None else None for v in values])
    return _render(chart, title)
