#!/usr/bin/env python3
"""Draws send->deliver latency percentiles against offered load, as SVG, from `echo-bench
latency --json FILE` runs (one file per backend and rate). No dependencies beyond Python.

    python3 scripts/latency-chart.py docs/latency-vs-load.svg runs/*.json

Each JSON file is a list of reports; every `latency` report in them becomes one point per
percentile, grouped into one line per (backend, percentile). The y axis is logarithmic.
"""

import json
import math
import sys

PERCENTILES = [("p50_ms", "p50", "4,0"), ("p99_ms", "p99", ""), ("max_ms", "max", "1,3")]
COLOURS = {"embedded": "#1f77b4", "real": "#d62728"}
NAMES = {"embedded": "embedded (SQLite)", "real": "PostgreSQL + NATS + Redis"}
WIDTH, HEIGHT = 760, 440
LEFT, RIGHT, TOP, BOTTOM = 70, 250, 40, 60


def points(paths):
    """{(backend, key): [(rate, ms)]}, sorted by rate."""
    lines = {}
    for path in paths:
        with open(path, encoding="utf-8") as file:
            for report in json.load(file):
                if report.get("scenario") != "latency":
                    continue
                figures = report["figures"]
                rate = figures["rate_offered"]
                for key, _, _ in PERCENTILES:
                    ms = figures["send_to_deliver"][key]
                    lines.setdefault((report["backend"], key), []).append((rate, ms))
    return {line: sorted(values) for line, values in lines.items()}


def chart(lines):
    rates = sorted({rate for values in lines.values() for rate, _ in values})
    lows = [ms for values in lines.values() for _, ms in values if ms > 0]
    y_low = 10 ** math.floor(math.log10(max(min(lows), 0.01)))
    y_high = 10 ** math.ceil(math.log10(max(lows)))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x(rate):
        if len(rates) == 1:
            return LEFT + plot_w / 2
        spread = math.log(rates[-1]) - math.log(rates[0])
        return LEFT + plot_w * (math.log(rate) - math.log(rates[0])) / spread

    def y(ms):
        ms = max(ms, y_low)
        spread = math.log10(y_high) - math.log10(y_low)
        return TOP + plot_h * (1 - (math.log10(ms) - math.log10(y_low)) / spread)

    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{HEIGHT}" '
        f'font-family="sans-serif" font-size="12">',
        f'<rect width="{WIDTH}" height="{HEIGHT}" fill="white"/>',
        f'<text x="{LEFT}" y="22" font-size="15">send→deliver latency against offered load '
        "(echo-bench latency)</text>",
    ]
    decade = y_low
    while decade <= y_high:
        out.append(
            f'<line x1="{LEFT}" x2="{LEFT + plot_w}" y1="{y(decade):.1f}" y2="{y(decade):.1f}" '
            'stroke="#ddd"/>'
        )
        label = f"{decade:g} ms"
        out.append(
            f'<text x="{LEFT - 6}" y="{y(decade) + 4:.1f}" text-anchor="end">{label}</text>'
        )
        decade *= 10
    for rate in rates:
        out.append(
            f'<line x1="{x(rate):.1f}" x2="{x(rate):.1f}" y1="{TOP}" y2="{TOP + plot_h}" '
            'stroke="#eee"/>'
        )
        out.append(
            f'<text x="{x(rate):.1f}" y="{TOP + plot_h + 18}" text-anchor="middle">{rate}</text>'
        )
    out.append(
        f'<text x="{LEFT + plot_w / 2}" y="{HEIGHT - 18}" text-anchor="middle">'
        "offered load, messages/s (1 sender → 1 recipient)</text>"
    )
    legend_y = TOP + 10
    for (backend, key), values in sorted(lines.items()):
        colour = COLOURS.get(backend, "#333")
        dash = next(d for k, _, d in PERCENTILES if k == key)
        name = next(n for k, n, _ in PERCENTILES if k == key)
        path = " ".join(f"{x(r):.1f},{y(ms):.1f}" for r, ms in values)
        out.append(
            f'<polyline points="{path}" fill="none" stroke="{colour}" stroke-width="2" '
            f'stroke-dasharray="{dash}"/>'
        )
        for r, ms in values:
            out.append(f'<circle cx="{x(r):.1f}" cy="{y(ms):.1f}" r="3" fill="{colour}"/>')
        lx = LEFT + plot_w + 20
        out.append(
            f'<line x1="{lx}" x2="{lx + 30}" y1="{legend_y}" y2="{legend_y}" stroke="{colour}" '
            f'stroke-width="2" stroke-dasharray="{dash}"/>'
        )
        out.append(
            f'<text x="{lx + 36}" y="{legend_y + 4}">{NAMES.get(backend, backend)} {name}</text>'
        )
        legend_y += 20
    out.append("</svg>")
    return "\n".join(out) + "\n"


def main():
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    lines = points(sys.argv[2:])
    if not lines:
        sys.exit("no latency reports in the given files")
    with open(sys.argv[1], "w", encoding="utf-8") as file:
        file.write(chart(lines))


if __name__ == "__main__":
    main()
