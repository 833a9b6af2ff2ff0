"""Small static SVG charts: bars and before/after histograms.

Hand-written rather than a plotting library: the report must be one self-contained file with no
scripts, and ~100 lines of SVG cover the charts it needs (Vega/Plotly bundles add 1-3 MB of
JavaScript to every report)."""

from __future__ import annotations

from html import escape

BEFORE, AFTER, DROPPED = "#9db4d6", "#2f6db5", "#d9534f"


def _fmt(v: float) -> str:
    if v >= 1e6:
        return f"{v / 1e6:.1f}M"
    if v >= 1e4:
        return f"{v / 1e3:.0f}k"
    return f"{v:,.0f}" if float(v).is_integer() else f"{v:.2f}"


def bars(
    labels: list[str],
    series: list[tuple[str, list[float], str]],
    title: str,
    width: int = 560,
    threshold: tuple[float, str] | None = None,
) -> str:
    """Grouped vertical bars: one group per label, one bar per series (name, values, colour).

    threshold: (position in label units, caption) draws a dashed vertical line, e.g. a rule's limit."""
    n, k = len(labels), len(series)
    if n == 0:
        return ""
    top = max((max(v) for _, v, _ in series if v), default=0) or 1
    h, pad_l, pad_b, pad_t = 190, 46, 44, 26
    plot_w = width - pad_l - 10
    group = plot_w / n
    # Labels wider than their group (step names in the funnel) go on two staggered rows.
    stagger = 12 if max(len(label) for label in labels) * 6 > group and n <= 16 else 0
    pad_b += stagger
    bar_w = max(1.0, group * 0.8 / k)
    out = [
        f'<svg class="chart" viewBox="0 0 {width} {h + pad_b + pad_t}" width="{width}" role="img" aria-label="{escape(title)}">',
        f'<text x="{pad_l}" y="16" class="ct">{escape(title)}</text>',
        f'<line x1="{pad_l}" y1="{pad_t + h}" x2="{width - 10}" y2="{pad_t + h}" class="axis"/>',
        f'<text x="{pad_l - 4}" y="{pad_t + 4}" class="yl">{_fmt(top)}</text>',
        f'<text x="{pad_l - 4}" y="{pad_t + h}" class="yl">0</text>',
    ]
    for i, label in enumerate(labels):
        x0 = pad_l + i * group + group * 0.1
        for j, (name, values, colour) in enumerate(series):
            v = values[i] if i < len(values) else 0
            bh = h * v / top
            out.append(
                f'<rect x="{x0 + j * bar_w:.1f}" y="{pad_t + h - bh:.1f}" width="{bar_w:.1f}" height="{bh:.1f}" '
                f'fill="{colour}"><title>{escape(name)} {escape(label)}: {_fmt(v)}</title></rect>'
            )
        if n <= 16 or i % max(1, n // 12) == 0:
            y = pad_t + h + 14 + (stagger if i % 2 else 0)
            x = min(pad_l + (i + 0.5) * group, width - 3 * len(label) - 2)  # the last label stays inside
            out.append(f'<text x="{x:.1f}" y="{y}" class="xl">{escape(label)}</text>')
    if threshold is not None:
        x = pad_l + threshold[0] * group
        out.append(
            f'<line x1="{x:.1f}" y1="{pad_t}" x2="{x:.1f}" y2="{pad_t + h}" class="thr"/>'
            f'<text x="{x + 3:.1f}" y="{pad_t + 10}" class="tl">{escape(threshold[1])}</text>'
        )
    lx = pad_l
    for name, _, colour in series:
        out.append(
            f'<rect x="{lx}" y="{pad_t + h + 26 + stagger}" width="10" height="10" fill="{colour}"/>'
            f'<text x="{lx + 14}" y="{pad_t + h + 35 + stagger}" class="lg">{escape(name)}</text>'
        )
        lx += 16 + 7 * len(name) + 14
    out.append("</svg>")
    return "".join(out)


def hbars(rows: list[tuple[str, float]], title: str, colour: str = DROPPED, width: int = 560) -> str:
    """Horizontal bars (label, value), e.g. dropped rows per reason."""
    if not rows:
        return ""
    top = max(v for _, v in rows) or 1
    line, pad_l = 20, 210
    out = [
        f'<svg class="chart" viewBox="0 0 {width} {len(rows) * line + 30}" width="{width}" role="img" aria-label="{escape(title)}">',
        f'<text x="0" y="14" class="ct">{escape(title)}</text>',
    ]
    for i, (label, v) in enumerate(rows):
        y = 24 + i * line
        w = (width - pad_l - 60) * v / top
        out.append(
            f'<text x="{pad_l - 6}" y="{y + 12}" class="yl">{escape(label[:34])}</text>'
            f'<rect x="{pad_l}" y="{y}" width="{w:.1f}" height="{line - 6}" fill="{colour}"/>'
            f'<text x="{pad_l + w + 4:.1f}" y="{y + 12}" class="lg">{_fmt(v)}</text>'
        )
    out.append("</svg>")
    return "".join(out)
