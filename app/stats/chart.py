"""A line chart as inline SVG, drawn on the server: no JavaScript, no CDN.

Counts are whole messages, so the y-axis has whole-number ticks only, each once (at small counts: 0, 1 rather than
0, 0, 1). Series often coincide (everything received was forwarded): each is drawn with its own width and dash
pattern, the widest first, so one never hides another, and every point carries its value as a tooltip.
"""

from __future__ import annotations

from markupsafe import Markup, escape

COLOURS = {"received": "#2457c5", "forwarded": "#1b7a3d", "deferred": "#c98a00", "bounced": "#b3261e"}
# (stroke width, dash pattern): drawn in this order, so a thinner or dashed line stays visible on a wider one
STROKES = {"received": (5, ""), "forwarded": (2.5, ""), "deferred": (2, "6 4"), "bounced": (2, "2 3")}
WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 52, 24, 14, 30
MAX_TICKS = 5  # intervals on the y-axis at most


def nice_ceiling(value: int) -> int:
    """The smallest 1/2/5 x 10^n at or above value (at least 1)."""
    step = 1
    while True:
        for factor in (1, 2, 5):
            if step * factor >= value:
                return max(step * factor, 1)
        step *= 10


def y_ticks(highest: int) -> list[int]:
    """Whole-number ticks from 0 to a top at or above `highest`, at most MAX_TICKS intervals, none repeated."""
    step = nice_ceiling(max(1, -(-max(highest, 1) // MAX_TICKS)))
    top = step * -(-max(highest, 1) // step)
    return list(range(0, top + 1, step))


def x_label_indexes(count: int, every: int = 5) -> list[int]:
    """Which days get a date label: every `every`th and the last, without two labels colliding at the end."""
    if count <= 0:
        return []
    chosen = [i for i in range(0, count, every)]
    if count - 1 - chosen[-1] < every // 2 + 1 and len(chosen) > 1:
        chosen.pop()
    return [*chosen, count - 1] if chosen[-1] != count - 1 else chosen


def line_chart(series: list[dict], keys: tuple[str, ...]) -> Markup:
    ticks = y_ticks(max([day[k] for day in series for k in keys] or [0]))
    top = ticks[-1]
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    step = plot_w / max(len(series) - 1, 1)

    def x(i: int) -> float:
        return LEFT + i * step

    def y(v: int) -> float:
        return TOP + plot_h - v * plot_h / top

    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {WIDTH} {HEIGHT}" role="img" '
             f'aria-label="{escape(", ".join(keys))} per day">']
    for tick in ticks:
        gy = y(tick)
        parts.append(f'<line x1="{LEFT}" x2="{WIDTH - RIGHT}" y1="{gy:.1f}" y2="{gy:.1f}" stroke="#d9dee8"/>')
        parts.append(f'<text class="y-tick" x="{LEFT - 8}" y="{gy + 4:.1f}" font-size="12" text-anchor="end" '
                     f'fill="#5b6477">{tick}</text>')
    last = len(series) - 1
    for i in x_label_indexes(len(series)):
        anchor = "start" if i == 0 else "end" if i == last else "middle"  # the ends stay inside the picture
        parts.append(f'<text class="x-tick" x="{x(i):.1f}" y="{HEIGHT - 8}" font-size="12" text-anchor="{anchor}" '
                     f'fill="#5b6477">{escape(series[i]["day"][5:])}</text>')
    for key in sorted(keys, key=lambda k: -STROKES.get(k, (2, ""))[0]):
        width, dash = STROKES.get(key, (2, ""))
        colour = COLOURS.get(key, "#333")
        points = " ".join(f"{x(i):.1f},{y(day[key]):.1f}" for i, day in enumerate(series))
        dashes = f' stroke-dasharray="{dash}"' if dash else ""
        parts.append(f'<polyline class="series-{escape(key)}" fill="none" stroke="{colour}" stroke-width="{width}"'
                     f'{dashes} stroke-linejoin="round" points="{points}"><title>{escape(key)}</title></polyline>')
        parts.extend(f'<circle class="point-{escape(key)}" cx="{x(i):.1f}" cy="{y(day[key]):.1f}" r="{width / 2 + 1:.1f}" '
                     f'fill="{colour}"><title>{escape(day["day"])}: {day[key]} {escape(key)}</title></circle>'
                     for i, day in enumerate(series) if day[key])
    parts.append("</svg>")
    return Markup("".join(parts))
