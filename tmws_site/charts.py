"""Charts for the operator dashboard, drawn on the server as inline SVG: no script, no file to fetch, nothing from
outside, readable by screen readers (each chart has a title and each bar a tooltip with its figure).

Two shapes cover the dashboard: columns over days (stacked by series, e.g. memories per day by access level, or
side by side lines of figures such as latency percentiles) and horizontal bars (top agents, categories, statuses).
"""
from __future__ import annotations

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

# One colour per series, distinguishable in the admin's light and dark themes.
PALETTE = ("#417690", "#79aec8", "#e0a040", "#9b59b6", "#5b8a3c", "#c0504d", "#7f7f7f")
WIDTH, HEIGHT = 560, 180
LEFT, BOTTOM, TOP = 40, 24, 8
BAR_ROW = 20


def _nice_ceiling(value: float) -> float:
    """The axis top: 1, 2 or 5 times a power of ten, at least `value` (1 for an empty chart)."""
    if value <= 0:
        return 1
    magnitude = 10 ** (len(str(int(value))) - 1)
    for step in (1, 2, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def _n(coordinate: float) -> str:
    """A coordinate with one decimal: enough for a chart, short in the page."""
    return f"{coordinate:.1f}"


def _figure_of(value: float) -> str:
    """A figure as people read it: whole numbers without decimals, others with at most one."""
    return f"{value:g}" if float(value).is_integer() else f"{value:.1f}"


def _legend(series: list[str]) -> SafeString:
    return format_html_join("", '<span class="legend-item"><i style="background:{}"></i>{}</span>', (
        (PALETTE[index % len(PALETTE)], name) for index, name in enumerate(series)))


def stacked_columns(title: str, labels: list[str], series: dict[str, list[float]], unit: str = "") -> SafeString:
    """Columns over `labels` (days), each stacked from `series` ({name: one value per label})."""
    names = list(series)
    totals = [sum(series[name][i] for name in names) for i in range(len(labels))]
    top = _nice_ceiling(max(totals, default=0))
    plot_width, plot_height = WIDTH - LEFT, HEIGHT - BOTTOM - TOP
    slot = plot_width / max(len(labels), 1)
    bars = []
    for i, label in enumerate(labels):
        base = 0.0
        for index, name in enumerate(names):
            value = series[name][i]
            if not value:
                continue
            height = value / top * plot_height
            y = TOP + plot_height - (base + height)
            bars.append(format_html(
                '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {} {}{}</title></rect>',
                _n(LEFT + i * slot + 1), _n(y), _n(max(slot - 2, 1)), _n(height), PALETTE[index % len(PALETTE)], label,
                _figure_of(value), name, unit))
            base += height
    axis = _axis(top, unit) + _day_ticks(labels, slot)
    return _figure(title, mark_safe("".join(bars)) + axis, names if len(names) > 1 else [])


def lines(title: str, labels: list[str], series: dict[str, list[float | None]], unit: str = "") -> SafeString:
    """One polyline per series over `labels` (days); a None value leaves a gap."""
    names = list(series)
    top = _nice_ceiling(max((v for values in series.values() for v in values if v is not None), default=0))
    plot_width, plot_height = WIDTH - LEFT, HEIGHT - BOTTOM - TOP
    slot = plot_width / max(len(labels), 1)
    drawn = []
    for index, name in enumerate(names):
        colour = PALETTE[index % len(PALETTE)]
        points = [(LEFT + (i + 0.5) * slot, TOP + plot_height - (value / top * plot_height), labels[i], value)
                  for i, value in enumerate(series[name]) if value is not None]
        if len(points) > 1:
            drawn.append(format_html('<polyline fill="none" stroke="{}" stroke-width="2" points="{}"/>', colour,
                                     " ".join(f"{x:.1f},{y:.1f}" for x, y, _, _ in points)))
        drawn += [format_html('<circle cx="{}" cy="{}" r="2.5" fill="{}"><title>{}: {} {}{}</title></circle>',
                              _n(x), _n(y), colour, label, _figure_of(value), name, unit)
                  for x, y, label, value in points]
    return _figure(title, mark_safe("".join(drawn)) + _axis(top, unit) + _day_ticks(labels, slot), names)


def horizontal_bars(title: str, rows: list[tuple[str, float]], unit: str = "") -> SafeString:
    """One bar per (label, value), longest first as given."""
    top = _nice_ceiling(max((value for _, value in rows), default=0))
    label_width, bar_space = 170, WIDTH - 170 - 50
    height = max(len(rows), 1) * BAR_ROW + 4
    bars = format_html_join("", (
        '<text x="{}" y="{}" text-anchor="end" class="label">{}</text>'
        '<rect x="{}" y="{}" width="{}" height="{}" fill="{}"><title>{}: {}{}</title></rect>'
        '<text x="{}" y="{}" class="value">{}</text>'), (
        (label_width - 6, i * BAR_ROW + 15, label[:28], label_width, i * BAR_ROW + 4,
         _n(max(value / top * bar_space, 1 if value else 0)), BAR_ROW - 6, PALETTE[0], label, _figure_of(value), unit,
         _n(label_width + value / top * bar_space + 4), i * BAR_ROW + 15, _figure_of(value))
        for i, (label, value) in enumerate(rows)))
    if not rows:
        bars = format_html('<text x="{}" y="16" class="label">nothing yet</text>', label_width)
    return format_html('<figure class="chart"><figcaption>{}</figcaption>'
                       '<svg viewBox="0 0 {} {}" width="100%" role="img" aria-label="{}">{}</svg></figure>',
                       title, WIDTH, height, title, bars)


def _axis(top: float, unit: str) -> SafeString:
    plot_height = HEIGHT - BOTTOM - TOP
    return format_html(
        '<line x1="{}" y1="{}" x2="{}" y2="{}" class="axis"/><line x1="{}" y1="{}" x2="{}" y2="{}" class="axis"/>'
        '<text x="{}" y="{}" text-anchor="end" class="label">{}{}</text>'
        '<text x="{}" y="{}" text-anchor="end" class="label">0</text>',
        LEFT, TOP, LEFT, TOP + plot_height, LEFT, TOP + plot_height, WIDTH, TOP + plot_height,
        LEFT - 4, TOP + 10, f"{top:g}", unit, LEFT - 4, TOP + plot_height)


def _day_ticks(labels: list[str], slot: float) -> SafeString:
    """A label under the first column and every seventh after it."""
    y = HEIGHT - 6
    return format_html_join("", '<text x="{}" y="{}" text-anchor="middle" class="label">{}</text>', (
        (_n(LEFT + (i + 0.5) * slot), y, label[5:]) for i, label in enumerate(labels) if i % 7 == 0))


def _figure(title: str, body: SafeString, legend: list[str]) -> SafeString:
    return format_html('<figure class="chart"><figcaption>{}</figcaption>'
                       '<svg viewBox="0 0 {} {}" width="100%" role="img" aria-label="{}">{}</svg>{}</figure>',
                       title, WIDTH, HEIGHT, title, body,
                       format_html('<div class="legend">{}</div>', _legend(legend)) if legend else "")
