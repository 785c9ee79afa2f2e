"""Inline SVG charts for the evaluation pages (no chart library, no CDN): the
quality-vs-latency scatter with its Pareto front, and the reliability diagram."""

from __future__ import annotations

from typing import Any

from django.utils.html import format_html, format_html_join
from django.utils.safestring import SafeString, mark_safe

W, H, PAD_L, PAD_B, PAD_T, PAD_R = 520, 300, 60, 40, 16, 20


def n(value: float, digits: str = ".1f") -> str:
    """Numbers are formatted before format_html (it escapes its arguments into strings)."""
    return format(value, digits)


def _scale(lo: float, hi: float, a: float, b: float):
    span = (hi - lo) or 1.0

    def f(v: float) -> float:
        return a + (v - lo) / span * (b - a)

    return f


def _padded(values: list[float]) -> tuple[float, float]:
    lo, hi = min(values), max(values)
    pad = (hi - lo) * 0.1 or abs(hi) * 0.1 or 1.0
    return lo - pad, hi + pad


def scatter_svg(scatter: dict[str, Any]) -> SafeString:
    """Each evaluation a dot (x = p50 latency, y = quality); the Pareto front is joined by
    a line and its dots are filled. Every dot carries its evaluation id for tests and
    links to its evaluation page."""
    points, quality = scatter.get("points") or [], scatter.get("quality")
    if not points or quality is None:
        return format_html(
            '<p class="muted" id="scatter-empty">{}</p>', "No timed evaluations to plot."
        )
    xlo, xhi = _padded([p["x"] for p in points])
    ylo, yhi = _padded([p["y"] for p in points])
    sx = _scale(xlo, xhi, PAD_L, W - PAD_R)
    sy = _scale(ylo, yhi, H - PAD_B, PAD_T)
    front_ids = set(scatter.get("pareto") or [])
    front = sorted((p for p in points if p["id"] in front_ids), key=lambda p: p["x"])
    line = " ".join(f"{sx(p['x']):.1f},{sy(p['y']):.1f}" for p in front)
    dots = format_html_join(
        "",
        '<a href="/evaluations/{}/"><circle class="point{}" data-evaluation="{}" cx="{}" '
        'cy="{}" r="6" fill="{}" stroke="#1d4ed8" stroke-width="2"><title>{}: {} {}, '
        "p50 {} ms</title></circle></a>"
        '<text x="{}" y="{}" font-size="11" fill="#344054">{}</text>',
        (
            (
                p["id"],
                " pareto" if p["id"] in front_ids else "",
                p["id"],
                n(sx(p["x"])),
                n(sy(p["y"])),
                "#1d4ed8" if p["id"] in front_ids else "#fff",
                p["label"],
                quality["label"],
                n(p["y"], ".4g"),
                n(p["x"], ".3g"),
                n(sx(p["x"]) + 9),
                n(sy(p["y"]) - 8),
                p["label"],
            )
            for p in points
        ),
    )
    better = "higher is better" if quality["higher_is_better"] else "lower is better"
    axes = format_html(
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#98a2b3"/>'
        '<line x1="{}" y1="{}" x2="{}" y2="{}" stroke="#98a2b3"/>'
        '<text x="{}" y="{}" font-size="12" text-anchor="middle" fill="#475467">'
        "latency p50 (ms, batch 1), lower is better</text>"
        '<text x="14" y="{}" font-size="12" text-anchor="middle" fill="#475467" '
        'transform="rotate(-90 14 {})">{} ({})</text>'
        '<text x="{}" y="{}" font-size="10" fill="#667085">{}</text>'
        '<text x="{}" y="{}" font-size="10" fill="#667085" text-anchor="end">{}</text>'
        '<text x="{}" y="{}" font-size="10" fill="#667085" text-anchor="end">{}</text>'
        '<text x="{}" y="{}" font-size="10" fill="#667085" text-anchor="end">{}</text>',
        PAD_L,
        H - PAD_B,
        W - PAD_R,
        H - PAD_B,
        PAD_L,
        PAD_T,
        PAD_L,
        H - PAD_B,
        (PAD_L + W - PAD_R) / 2,
        H - 8,
        (PAD_T + H - PAD_B) / 2,
        (PAD_T + H - PAD_B) / 2,
        quality["label"],
        better,
        PAD_L,
        H - PAD_B + 14,
        xlo,
        W - PAD_R,
        H - PAD_B + 14,
        xhi,
        PAD_L - 4,
        H - PAD_B,
        ylo,
        PAD_L - 4,
        PAD_T + 8,
        yhi,
    )
    front_line = (
        format_html(
            '<polyline id="pareto-front" points="{}" fill="none" stroke="#1d4ed8" '
            'stroke-dasharray="4 3" stroke-width="1.5"/>',
            line,
        )
        if len(front) > 1
        else mark_safe("")  # noqa: S308 - a constant empty string
    )
    return format_html(
        '<svg id="scatter" viewBox="0 0 {} {}" width="100%" style="max-width:{}px" '
        'role="img" aria-label="quality versus latency">{}{}{}</svg>',
        W,
        H,
        W,
        axes,
        front_line,
        dots,
    )


def reliability_svg(bins: list[dict[str, Any]]) -> SafeString:
    """Accuracy per confidence bin against the diagonal of perfect calibration."""
    if not bins:
        return mark_safe("")  # noqa: S308 - a constant empty string
    size, pad = 220, 30
    inner = size - 2 * pad
    bar = inner / len(bins)
    bars = format_html_join(
        "",
        '<rect x="{}" y="{}" width="{}" height="{}" fill="#93c5fd" '
        'stroke="#1d4ed8"><title>{}-{}: {} rows, accuracy {}</title></rect>',
        (
            (
                n(pad + i * bar),
                n(pad + inner * (1 - (b["accuracy"] or 0))),
                n(bar),
                n(inner * (b["accuracy"] or 0)),
                n(b["lower"]),
                n(b["upper"]),
                b["count"],
                "—" if b["accuracy"] is None else f"{b['accuracy']:.2f}",
            )
            for i, b in enumerate(bins)
        ),
    )
    return format_html(
        '<svg id="reliability" viewBox="0 0 {} {}" width="{}" role="img" '
        'aria-label="reliability diagram">{}<line x1="{}" y1="{}" x2="{}" y2="{}" '
        'stroke="#f97316" stroke-dasharray="4 3"/><text x="{}" y="{}" font-size="10" '
        'text-anchor="middle" fill="#475467">confidence</text></svg>',
        size,
        size,
        size,
        bars,
        pad,
        size - pad,
        size - pad,
        pad,
        size / 2,
        size - 8,
    )
