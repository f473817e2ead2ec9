"""A line chart as inline SVG, drawn on the server: no JavaScript, no CDN."""

from __future__ import annotations

from markupsafe import Markup, escape

COLOURS = {"received": "#2457c5", "forwarded": "#1b7a3d", "deferred": "#c98a00", "bounced": "#b3261e"}
WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 12, 28


def nice_ceiling(value: int) -> int:
    """The smallest 1/2/5 x 10^n at or above value (at least 1), for the y-axis top."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return max(step * factor, 1)
        step *= 10


def line_chart(series: list[dict], keys: tuple[str, ...]) -> Markup:
    top = nice_ceiling(max([day[k] for day in series for k in keys] or [0]))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(series) - 1, 1)

    def x(i: int) -> float:
        return LEFT + i * step

    def y(v: int) -> float:
        return TOP + plot_h - v * plot_h / top

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{escape(", ".join(keys))} per day">']
    for frac in (0, 0.5, 1):
        gy = y(top * frac)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{gy:.1f}" y2="{gy:.1f}" stroke="#d9dee8"/>')
        parts.append(f'<text x="{LEFT - 6}" y="{gy + 4:.1f}" font-size="11" text-anchor="end" fill="#5b6477">'
                     f'{int(top * frac)}</text>')
    for i, day in enumerate(series):
        if i % 5 == 0 or i == len(series) - 1:
            parts.append(f'<text x="{x(i):.1f}" y="{HEIGHT - 8}" font-size="11" text-anchor="middle" '
                         f'fill="#5b6477">{escape(day["day"][5:])}</text>')
    for key in keys:
        points = " ".join(f"{x(i):.1f},{y(day[key]):.1f}" for i, day in enumerate(series))
        parts.append(f'<polyline class="series-{escape(key)}" fill="none" stroke="{COLOURS.get(key, "#333")}" '
                     f'stroke-width="2" points="{points}"><title>{escape(key)}</title></polyline>')
    parts.append("</svg>")
    return Markup("".join(parts))
