"""Server-rendered SVG charts: no JavaScript, no CDN, readable in light and dark themes.

Text and axes take the admin's CSS variables (``--body-fg``, ``--hairline-color``), so they
follow the theme; the bars use mid-tone colours that read on both backgrounds. Each chart
is an ``<svg role="img">`` whose ``<title>``/``<desc>`` say what it shows; the template puts
the numbers in a table beside it. Every label is escaped.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString

COLOURS = {
    "processed": "#3f9142",
    "failed": "#d64545",
    "waiting": "#d39e00",
    "duplicate": "#8a8a8a",
    "turnaround": "#4a7fc1",
}
TEXT = "fill: var(--body-fg, #333); font-size: 11px"
AXIS = "stroke: var(--hairline-color, #ccc)"


def stacked_hours(
    hours: Sequence[datetime], series: dict[str, list[int]], *, title: str, desc: str
) -> SafeString:
    """One bar per hour, the outcomes stacked; a tick and a date at each midnight."""
    width, height, left, bottom, top = 860, 200, 40, 24, 10
    bar = (width - left - 10) / max(1, len(hours))
    totals = [sum(values[i] for values in series.values()) for i in range(len(hours))]
    peak = max(totals, default=0) or 1
    scale = (height - top - bottom) / peak
    rects = []
    for i, hour in enumerate(hours):
        y = float(height - bottom)
        for name, values in series.items():
            if not values[i]:
                continue
            h = values[i] * scale
            y -= h
            rects.append(
                format_html(
                    '<rect x="{}" y="{}" width="{}" height="{}" fill="{}">'
                    "<title>{} {}: {}</title></rect>",
                    _n(left + i * bar),
                    _n(y),
                    _n(max(bar - 0.5, 0.5)),
                    _n(h),
                    COLOURS[name],
                    hour.strftime("%Y-%m-%d %H:00"),
                    name,
                    values[i],
                )
            )
    ticks = [
        format_html(
            '<line x1="{x}" x2="{x}" y1="{y1}" y2="{y2}" style="{axis}"/>'
            '<text x="{x}" y="{ty}" style="{text}">{label}</text>',
            x=_n(left + i * bar),
            y1=top,
            y2=height - bottom + 4,
            ty=height - 6,
            axis=AXIS,
            text=TEXT,
            label=hour.strftime("%b %d"),
        )
        for i, hour in enumerate(hours)
        if hour.hour == 0 and left + i * bar < width - 50  # a label that fits
    ]
    return _svg(width, height, left, bottom, top, peak, title, desc, [*ticks, *rects])


def bars(labels: Sequence[str], values: Sequence[int], *, title: str, desc: str) -> SafeString:
    """One labelled bar per value (the turnaround distribution)."""
    width, height, left, bottom, top = 860, 200, 40, 24, 10
    slot = (width - left - 10) / max(1, len(values))
    peak = max(values, default=0) or 1
    scale = (height - top - bottom) / peak
    items = [
        format_html(
            '<rect x="{}" y="{}" width="{}" height="{}" fill="{}">'
            "<title>{}: {}</title></rect>"
            '<text x="{}" y="{}" text-anchor="middle" style="{}">{}</text>',
            _n(left + i * slot + 4),
            _n(height - bottom - value * scale),
            _n(slot - 8),
            _n(value * scale),
            COLOURS["turnaround"],
            label,
            value,
            _n(left + (i + 0.5) * slot),
            height - 6,
            TEXT,
            label,
        )
        for i, (label, value) in enumerate(zip(labels, values, strict=True))
    ]
    return _svg(width, height, left, bottom, top, peak, title, desc, items)


def _n(value: float) -> str:
    return f"{value:.1f}"


def _svg(
    width: int,
    height: int,
    left: int,
    bottom: int,
    top: int,
    peak: int,
    title: str,
    desc: str,
    items: list[SafeString],
) -> SafeString:
    axes = format_html(
        '<line x1="{l}" x2="{r}" y1="{b}" y2="{b}" style="{axis}"/>'
        '<text x="{tx}" y="{ty}" text-anchor="end" style="{text}">{peak}</text>'
        '<text x="{tx}" y="{b}" text-anchor="end" style="{text}">0</text>',
        l=left,
        r=width - 10,
        b=height - bottom,
        tx=left - 4,
        ty=top + 10,
        peak=peak,
        axis=AXIS,
        text=TEXT,
    )
    return format_html(
        '<svg class="topview-chart" role="img" viewBox="0 0 {w} {h}" width="100%" '
        'preserveAspectRatio="xMinYMin meet" xmlns="http://www.w3.org/2000/svg">'
        "<title>{title}</title><desc>{desc}</desc>{axes}{items}</svg>",
        w=width,
        h=height,
        title=title,
        desc=desc,
        axes=axes,
        items=format_html_join("", "{}", ((item,) for item in items)),
    )
