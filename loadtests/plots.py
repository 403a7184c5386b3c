"""Small, dependency-free SVG line charts for the load-test report."""

from __future__ import annotations

import html
import math

__all__ = ["line_chart"]

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#17becf", "#7f7f7f"]


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = min((m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw), default=raw)
    start = math.floor(low / step) * step
    ticks = [start]
    while ticks[-1] < high - step * 0.01:  # the last tick is at or beyond the data
        ticks.append(ticks[-1] + step)
    return ticks


def _fmt(value: float) -> str:
    return f"{value:g}" if abs(value) >= 0.01 or value == 0 else f"{value:.3f}"


def line_chart(title: str, series: dict[str, list[tuple[float, float]]], y_label: str,
               lines: dict[str, float] | None = None, width: int = 760, height: int = 240,
               x_unit: str = "s") -> str:
    """An SVG chart of ``series`` (name -> [(x, y)], x in seconds unless ``x_unit`` says) with
    dashed horizontal ``lines``."""
    lines = lines or {}
    points = [p for values in series.values() for p in values]
    left, right, top, bottom = 60, 150, 30, 35
    plot_w, plot_h = width - left - right, height - top - bottom
    x_max = max((p[0] for p in points), default=1) or 1
    data_max = max([p[1] for p in points if p[1] == p[1]] + [0])
    # A threshold far above the data would flatten it against the axis: keep the data
    # readable and list such lines in the legend as "above the chart" instead.
    shown = {k: v for k, v in lines.items() if data_max == 0 or v <= data_max * 5}
    above = {k: v for k, v in lines.items() if k not in shown}
    lines = shown
    y_max = max([data_max, *lines.values()]) * 1.1 or 1
    y_ticks = _ticks(0, y_max)
    y_top = y_ticks[-1] if y_ticks else y_max
    x_ticks = _ticks(0, x_max)

    def sx(x: float) -> float:
        return left + plot_w * x / max(x_ticks[-1], 1e-9)

    def sy(y: float) -> float:
        return top + plot_h * (1 - y / y_top)

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" '
           f'role="img" aria-label="{html.escape(title)}" font-family="sans-serif" font-size="11">',
           f'<text x="{left}" y="18" font-size="13" font-weight="bold">{html.escape(title)}</text>']
    for y in y_ticks:
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" '
                   'stroke="#e5e5e5"/>')
        out.append(f'<text x="{left - 6}" y="{sy(y) + 4:.1f}" text-anchor="end">{_fmt(y)}</text>')
    for x in x_ticks:
        out.append(f'<text x="{sx(x):.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
                   f'{_fmt(x)}{html.escape(x_unit)}</text>')
    out.append(f'<text x="14" y="{top + plot_h / 2}" transform="rotate(-90 14 {top + plot_h / 2})" '
               f'text-anchor="middle">{html.escape(y_label)}</text>')
    out.append(f'<rect x="{left}" y="{top}" width="{plot_w}" height="{plot_h}" fill="none" '
               'stroke="#999"/>')
    legend_y = top + 4
    for i, (name, values) in enumerate(series.items()):
        color = COLORS[i % len(COLORS)]
        if values:
            path = " ".join(f"{'M' if j == 0 else 'L'}{sx(x):.1f},{sy(y):.1f}"
                            for j, (x, y) in enumerate(values))
            out.append(f'<path d="{path}" fill="none" stroke="{color}" stroke-width="1.8"/>')
        out.append(f'<rect x="{left + plot_w + 12}" y="{legend_y}" width="10" height="10" '
                   f'fill="{color}"/><text x="{left + plot_w + 26}" y="{legend_y + 9}">'
                   f'{html.escape(name)}</text>')
        legend_y += 16
    for name, y in lines.items():
        out.append(f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(y):.1f}" y2="{sy(y):.1f}" '
                   'stroke="#d62728" stroke-dasharray="6 4"/>')
        out.append(f'<text x="{left + plot_w + 12}" y="{legend_y + 9}" fill="#d62728">'
                   f'- - {html.escape(name)}</text>')
        legend_y += 16
    for name, y in above.items():
        out.append(f'<text x="{left + plot_w + 12}" y="{legend_y + 9}" fill="#d62728">'
                   f'{html.escape(name)} {_fmt(y)} (above)</text>')
        legend_y += 16
    out.append("</svg>")
    return "".join(out)


def bar_chart(title: str, rows: list[tuple[str, float, float, bool]], labels: tuple[str, str],
              width: int = 900) -> str:
    """Side-by-side horizontal bars: (name, first, second, flagged) per row; flagged rows in red."""
    height = 40 + 26 * max(len(rows), 1)
    left, right = 200, 90
    plot_w = width - left - right
    top = max([v for _, a, b, _ in rows for v in (a, b)] + [0]) or 1
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img" '
           f'aria-label="{html.escape(title)}" font-family="sans-serif" font-size="11">',
           f'<text x="{left}" y="16" font-size="13" font-weight="bold">{html.escape(title)}</text>',
           f'<rect x="{width - right + 8}" y="6" width="10" height="8" fill="#9aa5b1"/>'
           f'<text x="{width - right + 22}" y="14">{html.escape(labels[0])}</text>',
           f'<rect x="{width - right + 8}" y="20" width="10" height="8" fill="#1f77b4"/>'
           f'<text x="{width - right + 22}" y="28">{html.escape(labels[1])}</text>']
    for i, (name, first, second, flagged) in enumerate(rows):
        y = 34 + 26 * i
        emphasis = ' fill="#cf222e" font-weight="bold"' if flagged else ""
        out.append(f'<text x="{left - 6}" y="{y + 14}" text-anchor="end"{emphasis}>'
                   f'{html.escape(name)}</text>')
        for j, (value, color) in enumerate(((first, "#9aa5b1"),
                                            (second, "#cf222e" if flagged else "#1f77b4"))):
            w = plot_w * value / top
            out.append(f'<rect x="{left}" y="{y + 11 * j}" width="{w:.1f}" height="10" fill="{color}"/>'
                       f'<text x="{left + w + 4:.1f}" y="{y + 11 * j + 9}">{_fmt(value)}</text>')
    out.append("</svg>")
    return "".join(out)
