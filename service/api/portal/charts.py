"""Small inline SVG drawings made on the server: an order's timeline and the metrics charts.

No JavaScript and no chart library: the page stays readable without scripts, and Jinja's autoescaping
covers every label (the SVG is built from escaped text, then marked safe as a whole).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

from markupsafe import Markup

STATUS_COLOURS = {
    "Pending": "#b58900",
    "Confirmed": "#268bd2",
    "Used": "#2aa198",
    "Cancelled": "#6c71c4",
    "Failed": "#dc322f",
    "NotClaimed": "#cb4b16",
}


@dataclass(frozen=True)
class Step:
    """One status event on the timeline."""

    sequence: int
    status_name: str
    at: str
    reason: str | None


def timeline(steps: Sequence[Step]) -> Markup:
    """The order's status events left to right, evenly spaced (their order matters more than their gaps)."""
    gap = 150
    width = max(1, len(steps)) * gap + 40
    label = "Timeline: " + ", ".join(f"{s.sequence}. {s.status_name}" for s in steps)
    parts = [
        f'<svg class="timeline" role="img" aria-label="{escape(label)}" viewBox="0 0 {width} 120" '
        f'width="{width}" height="120" xmlns="http://www.w3.org/2000/svg">',
        f'<line x1="20" y1="50" x2="{width - 20}" y2="50" stroke="#888" stroke-width="2"/>',
    ]
    for index, step in enumerate(steps):
        x = 20 + gap // 2 + index * gap
        colour = STATUS_COLOURS.get(step.status_name, "#555")
        reason = f" ({step.reason})" if step.reason else ""
        parts += [
            f"<g><title>{escape(f'{step.sequence}. {step.status_name}{reason} at {step.at}')}</title>",
            f'<circle cx="{x}" cy="50" r="12" fill="{colour}"/>',
            f'<text x="{x}" y="55" text-anchor="middle" font-size="12" fill="#fff">{step.sequence}</text>',
            f'<text x="{x}" y="25" text-anchor="middle" font-size="13">{escape(step.status_name)}</text>',
            f'<text x="{x}" y="82" text-anchor="middle" font-size="11">{escape(step.at[:19])}</text>',
            f'<text x="{x}" y="100" text-anchor="middle" font-size="11">{escape(step.reason or "")}</text>',
            "</g>",
        ]
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(title: str, bars: Sequence[tuple[str, float]], unit: str = "") -> Markup:
    """Labelled bars, one per (label, value), scaled to the largest."""
    height = 24 * max(1, len(bars)) + 10
    top = max([value for _, value in bars] + [0.0]) or 1.0
    # Room for the longest label (about 7 px a character at this size), then the bars.
    left = max([140] + [7 * len(label) + 10 for label, _ in bars])
    width = left + 380
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>'
    ]
    for index, (label, value) in enumerate(bars):
        y = 5 + index * 24
        length = int(300 * value / top)
        parts += [
            f'<text x="0" y="{y + 15}" font-size="12">{escape(label)}</text>',
            f'<rect x="{left}" y="{y}" width="{length}" height="18" fill="#268bd2"/>',
            f'<text x="{left + 6 + length}" y="{y + 14}" font-size="12">{value:g}{escape(unit)}</text>',
        ]
    parts.append("</svg>")
    return Markup("".join(parts))


def line_chart(title: str, points: Sequence[tuple[str, float]], unit: str = "") -> Markup:
    """A line through (label, value) points in their order, with the first and last labels on the axis."""
    width, height, pad = 520, 160, 30
    top = max([value for _, value in points] + [0.0]) or 1.0
    step = (width - 2 * pad) / max(1, len(points) - 1)
    xy = [
        (pad + i * step, height - pad - (height - 2 * pad) * value / top)
        for i, (_, value) in enumerate(points)
    ]
    path = " ".join(f"{x:.1f},{y:.1f}" for x, y in xy)
    parts = [
        f'<svg class="chart" role="img" aria-label="{escape(title)}" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>',
        f'<line x1="{pad}" y1="{height - pad}" x2="{width - pad}" y2="{height - pad}" stroke="#888"/>',
        f'<text x="{pad}" y="{pad - 8}" font-size="11">max {top:.3g}{escape(unit)}</text>',
    ]
    if points:
        parts += [
            f'<polyline points="{path}" fill="none" stroke="#268bd2" stroke-width="2"/>',
            *(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="3" fill="#268bd2"/>' for x, y in xy),
            f'<text x="{pad}" y="{height - 10}" font-size="11">{escape(points[0][0])}</text>',
            f'<text x="{width - pad}" y="{height - 10}" font-size="11" text-anchor="end">'
            f"{escape(points[-1][0])}</text>",
        ]
    parts.append("</svg>")
    return Markup("".join(parts))
