"""ReportData -> one self-contained HTML page (inline CSS and SVG, no scripts, no network).

Every piece of user text goes through `e()` (html.escape); nothing from a run is ever inserted raw."""

from __future__ import annotations

from html import escape

from curate.report import svg
from curate.report.data import ReportData, thresholds
from curate.report.distributions import TOKEN_LABELS, TURN_LABELS

CSS = """
body{font:14px/1.45 system-ui,-apple-system,Segoe UI,Roboto,sans-serif;color:#1d2330;margin:0;background:#f5f6f8}
main{max-width:1180px;margin:0 auto;padding:24px}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:32px 0 10px;border-bottom:2px solid #dde2ea;padding-bottom:4px}
h3{font-size:15px;margin:18px 0 8px}
.sub{color:#5b6474}.card{background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:14px 16px;margin:10px 0}
.kpis{display:flex;gap:12px;flex-wrap:wrap}.kpi{background:#fff;border:1px solid #dde2ea;border-radius:8px;padding:10px 16px;min-width:140px}
.kpi b{display:block;font-size:22px}.kpi span{color:#5b6474;font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.ok{color:#1e7d3a}.bad{color:#b42318}
.warn{background:#fff4e5;border:1px solid #f0b45b;border-radius:8px;padding:10px 14px;margin:12px 0}
table{border-collapse:collapse;width:100%;background:#fff}th,td{border-bottom:1px solid #e6e9ef;padding:6px 8px;text-align:left;vertical-align:top}
th{background:#f0f2f6;font-weight:600}td.n{text-align:right;font-variant-numeric:tabular-nums}
pre,.text{white-space:pre-wrap;word-break:break-word;font:12.5px/1.45 ui-monospace,SFMono-Regular,Menlo,monospace;background:#f7f8fa;border:1px solid #e6e9ef;border-radius:6px;padding:8px;margin:4px 0;max-height:260px;overflow:auto}
mark{background:#ffe08a;padding:0 1px}
.grid{display:grid;grid-template-columns:repeat(auto-fill,minmax(560px,1fr));gap:12px}
.pair{display:grid;grid-template-columns:1fr 1fr;gap:10px}
.chart{max-width:100%;height:auto;background:#fff}.chart .ct{font-weight:600;font-size:12px}
.chart .xl{font-size:10px;text-anchor:middle;fill:#444}.chart .yl{font-size:10px;text-anchor:end;fill:#444}
.chart .lg{font-size:10px;fill:#333}.chart .axis{stroke:#999}.chart .thr{stroke:#e08a00;stroke-width:2;stroke-dasharray:5 3}
.chart .tl{font-size:10px;fill:#b36b00}
nav a{margin-right:12px;color:#2f6db5;text-decoration:none}
.tag{display:inline-block;background:#eef2f8;border-radius:4px;padding:0 6px;font-size:12px;color:#3a4a63}
"""


def e(value) -> str:
    return escape("" if value is None else str(value), quote=True)


def _n(v) -> str:
    return f"{v:,}" if isinstance(v, int) else e(v)


def highlight(text: str, span: str | None) -> str:
    """Escaped text with every occurrence of the span marked."""
    if not span or span not in text:
        return e(text)
    return "<mark>".join(e(part) for part in text.split(span)).replace("<mark>", f"<mark>{e(span)}</mark>")


def render(data: ReportData) -> str:
    s = data.stats
    parts = [
        f"<!doctype html><html lang=en><head><meta charset=utf-8><title>curate report: {e(data.run_dir.name)}</title>",
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<style>{CSS}</style></head><body><main>",
    ]
    parts.append(
        f"<h1>curate quality report</h1><div class=sub>{e(data.run_dir)} · runner {e(s.get('runner'))} · "
        f"{s.get('elapsed_seconds', 0):.1f} s · curate {e(data.manifest.get('curate_version', ''))}</div>"
    )
    parts += _fallbacks(data)
    parts += _overview(data)
    parts.append(
        '<nav class=card><a href="#funnel">Funnel</a><a href="#dist">Distributions</a>'
        '<a href="#rejected">Rejected rows</a>'
        + ('<a href="#dups">Duplicate clusters</a>' if data.clusters else "")
        + ('<a href="#contam">Contamination</a>' if data.contamination_counts else "")
        + '<a href="#quarantine">Quarantine</a><a href="#run">Run</a></nav>'
    )
    parts += _funnel(data)
    parts += _distributions(data)
    parts += _by_value(data)
    parts += _rejected(data)
    parts += _examples(data)
    parts += _clusters(data)
    parts += _contamination(data)
    parts += _quarantine(data)
    parts += _run(data)
    parts.append("</main></body></html>")
    return "".join(parts)


def _fallbacks(data: ReportData) -> list[str]:
    notes = []
    for step in data.stats.get("steps", []):
        for counter, count in (step.get("counters") or {}).items():
            if counter.startswith("fallback:"):
                notes.append(
                    f"<li><b>{e(step['step'])}</b> used a fallback: <code>{e(counter.removeprefix('fallback:'))}</code> ({_n(count)} rows)</li>"
                )
    return [f"<div class=warn><b>Fallbacks were used in this run</b><ul>{''.join(notes)}</ul></div>"] if notes else []


def _overview(data: ReportData) -> list[str]:
    s = data.stats
    total = s["rows_kept"] + s["rows_rejected"] + s["rows_quarantined"]
    added = s.get("rows_added", 0)
    holds = s["rows_in"] + added == total
    identity = (
        f"rows in {_n(s['rows_in'])}"
        + (f" + added by splits {_n(added)}" if added else "")
        + f" = kept {_n(s['rows_kept'])} + rejected {_n(s['rows_rejected'])} + quarantined {_n(s['rows_quarantined'])}"
    )
    kpis = [
        ("rows in", s["rows_in"]),
        ("kept", s["rows_kept"]),
        ("rejected", s["rows_rejected"]),
        ("quarantined", s["rows_quarantined"]),
    ]
    html = "".join(f"<div class=kpi><span>{e(k)}</span><b>{_n(v)}</b></div>" for k, v in kpis)
    return [
        f"<div class=kpis>{html}</div>",
        f"<p class={'ok' if holds else 'bad'}><b>{'✔' if holds else '✘'} {e(identity)}</b> "
        f"{'(holds)' if holds else '(DOES NOT HOLD)'}</p>",
    ]


def _funnel(data: ReportData) -> list[str]:
    steps = data.stats.get("steps", [])
    out = ['<h2 id="funnel">Funnel</h2>']
    if not steps:
        return out + ["<p>No steps.</p>"]
    labels = ["read"] + [st["step"] for st in steps]
    kept = [data.stats["rows_in"] - data.stats["rows_quarantined"]] + [st["rows_kept"] for st in steps]
    out.append(
        "<div class=card>"
        + svg.bars(labels, [("rows alive after the step", kept, svg.AFTER)], "Rows through the pipeline", 900)
        + "</div>"
    )
    rows = [
        "<table><tr><th>#</th><th>step</th><th class=n>in</th><th class=n>kept</th><th class=n>dropped</th><th>reasons</th><th class=n>seconds</th></tr>"
    ]
    for st in steps:
        reasons = ", ".join(
            f"<span class=tag>{e(r)}</span> {_n(c)}"
            for r, c in sorted((st.get("dropped") or {}).items(), key=lambda x: -x[1])
        )
        rows.append(
            f"<tr><td>{st['index']}</td><td><b>{e(st['step'])}</b></td><td class=n>{_n(st['rows_in'])}</td>"
            f"<td class=n>{_n(st['rows_kept'])}</td><td class=n>{_n(st['rows_dropped'])}</td><td>{reasons}</td>"
            f"<td class=n>{st.get('seconds', 0):.2f}</td></tr>"
        )
    rows.append("</table>")
    out.append("".join(rows))
    by_reason = [(f"{st['step']}: {r}", c) for st in steps for r, c in (st.get("dropped") or {}).items()]
    if by_reason:
        out.append(
            "<div class=card>"
            + svg.hbars(sorted(by_reason, key=lambda x: -x[1])[:25], "Dropped rows per step and reason", width=900)
            + "</div>"
        )
    counters = [(st["step"], k, v) for st in steps for k, v in (st.get("counters") or {}).items()]
    if counters:
        out.append(
            "<details class=card><summary>Step counters</summary><table><tr><th>step</th><th>counter</th><th class=n>count</th></tr>"
            + "".join(f"<tr><td>{e(a)}</td><td>{e(b)}</td><td class=n>{_n(c)}</td></tr>" for a, b, c in counters)
            + "</table></details>"
        )
    return out


def _distributions(data: ReportData) -> list[str]:
    out = [
        '<h2 id="dist">Distributions before and after</h2>',
        "<p class=sub>Before = every parsed row (kept + rejected); after = the kept set. Tokens are estimated as characters / 4.</p><div class=grid>",
    ]
    before = data.turns.kept + data.turns.rejected
    out.append(
        "<div class=card>"
        + svg.bars(
            TURN_LABELS,
            [("before", list(before), svg.BEFORE), ("after", list(data.turns.kept), svg.AFTER)],
            "Turns per conversation",
        )
        + "</div>"
    )
    tb = data.tokens.kept + data.tokens.rejected
    out.append(
        "<div class=card>"
        + svg.bars(
            TOKEN_LABELS,
            [("before", list(tb), svg.BEFORE), ("after", list(data.tokens.kept), svg.AFTER)],
            "Tokens per turn (FastChat buckets)",
        )
        + "</div>"
    )
    if data.langs["kept"] or data.langs["rejected"]:
        total = data.langs["kept"] + data.langs["rejected"]
        top = [k for k, _ in total.most_common(15)]
        out.append(
            "<div class=card>"
            + svg.bars(
                top,
                [
                    ("before", [total[k] for k in top], svg.BEFORE),
                    ("after", [data.langs["kept"][k] for k in top], svg.AFTER),
                ],
                "Languages (conversation)",
            )
            + "</div>"
        )
    limits = thresholds(data)
    for col, hist in data.scores.items():
        lo, hi = data.score_ranges[col]
        labels = [f"{v:.2g}" for v in hist.edges]
        thr = None
        if col in limits:
            value, caption = limits[col]
            if lo <= value <= hi:
                thr = ((value - lo) / (hi - lo) * len(hist.edges), caption)
        out.append(
            "<div class=card>"
            + svg.bars(
                labels,
                [("kept", list(hist.kept), svg.AFTER), ("rejected", list(hist.rejected), svg.DROPPED)],
                col,
                threshold=thr,
            )
            + "</div>"
        )
    out.append("</div>")
    return out


def _by_value(data: ReportData) -> list[str]:
    """Kept and rejected rows per value of output.stats_by (source by default), with top reasons."""
    if not data.by_value or not data.by_value[1]:
        return []
    column, values = data.by_value
    rows = "".join(
        f"<tr><td>{e(v)}</td><td class=n>{_n(k)}</td><td class=n>{_n(r)}</td>"
        f"<td>{e(', '.join(f'{reason} {n:,}' for reason, n in reasons.most_common(3)))}</td></tr>"
        for v, (k, r, reasons) in values.items()
    )
    return [
        f'<h2 id="by">Rows by {e(column)}</h2>',
        "<div class=card><table><tr>"
        f"<th>{e(column)}</th><th class=n>kept</th><th class=n>rejected</th><th>top reasons</th></tr>{rows}</table></div>",
    ]


def _rejected(data: ReportData) -> list[str]:
    out = [
        '<h2 id="rejected">Rejected rows, by step and reason</h2>',
        "<p class=sub>The first rows in file order for each reason; the turn that triggered the rule is shown with the matched text highlighted.</p>",
    ]
    if not data.samples:
        return out + ["<p>No rows were rejected.</p>"]
    order = {name: i for i, name in enumerate(data.step_names)}
    for (step, reason), rows in sorted(data.samples.items(), key=lambda kv: (order.get(kv[0][0], 99), kv[0][1])):
        out.append(f"<h3>{e(step)} · <span class=tag>{e(reason)}</span></h3>")
        for r in rows:
            out.append(
                f"<div class=card><b>{e(r['id'])}</b> · turn {e(r['turn_index'])} ({e(r['turn_role'])})"
                f"<div class=sub>{e(r.get('_curate_drop_detail'))}</div>"
                f"<div class=text>{highlight(r['turn_text'], r.get('span'))}</div></div>"
            )
    return out


def _examples(data: ReportData) -> list[str]:
    if not data.examples:
        return []
    out = [
        '<h2 id="examples">What the scores prefer</h2>',
        "<p class=sub>The highest, middle and lowest scored rows (kept and rejected together; first turn and first answer).</p>",
    ]
    for col, parts in data.examples.items():
        for part, rows in parts.items():
            out.append(f"<h3>{e(col)} · {e(part)}</h3>")
            out += [
                f"<div class='card pair'><div><b>{e(r['id'])}</b> · {r['score']:.3f} · {'kept' if r['kept'] else 'rejected'}"
                f"<div class=text>{e(r.get('first_text', ''))}</div></div><div class=text>{e(r.get('answer_text', ''))}</div></div>"
                for r in rows
            ]
    return out


def _clusters(data: ReportData) -> list[str]:
    if not data.clusters:
        return []
    out = [
        '<h2 id="dups">Duplicate clusters</h2>',
        "<p class=sub>The kept row beside the rows removed as its duplicates (first turn shown).</p>",
    ]
    for kept_id, members in data.clusters.items():
        kept = data.cluster_kept.get(kept_id, {"id": kept_id, "first_text": "(not found)"})
        removed = "".join(
            f"<div><b>{e(m['id'])}</b> · {e(m['_curate_drop_step'])}"
            + (f" · similarity {m['dup_similarity']:.2f}" if m.get("dup_similarity") is not None else "")
            + (f" · semantic score {m['semantic_similarity']:.3f}" if m.get("semantic_similarity") is not None else "")
            + f"<div class=text>{e(m['first_text'])}</div></div>"
            for m in members
        )
        out.append(
            f"<div class='card pair'><div><b>kept: {e(kept['id'])}</b><div class=text>{e(kept['first_text'])}</div></div>"
            f"<div>{removed}</div></div>"
        )
    return out


def _contamination(data: ReportData) -> list[str]:
    if not data.contamination_counts:
        return []
    out = ['<h2 id="contam">Contamination hits</h2><table><tr><th>eval set</th><th class=n>rows</th></tr>']
    out += [f"<tr><td>{e(k)}</td><td class=n>{_n(v)}</td></tr>" for k, v in data.contamination_counts.most_common()]
    out.append("</table>")
    for eval_set, rows in sorted(data.contamination.items()):
        out.append(f"<h3>{e(eval_set)}</h3>")
        for r in rows:
            score = r.get("contam_score")
            out.append(
                f"<div class='card pair'><div><b>{e(r['id'])}</b> · turn {e(r['turn_index'])} ({e(r['turn_role'])})"
                + (f" · score {score:.2f}" if score is not None else "")
                + f"<div class=text>{highlight(r['turn_text'], r.get('span'))}</div></div>"
                f"<div><b>eval item {e(r.get('contam_item_id'))}</b><div class=text>{e(r.get('contam_eval_text'))}</div></div></div>"
            )
    return out


def _quarantine(data: ReportData) -> list[str]:
    out = ['<h2 id="quarantine">Quarantined records</h2>']
    if not data.quarantine:
        return out + ["<p>No record was quarantined.</p>"]
    out.append(
        f"<p class=sub>{_n(data.stats['rows_quarantined'])} records could not be parsed; the first {len(data.quarantine)}:</p>"
    )
    out.append("<table><tr><th>file</th><th>line</th><th>error</th><th>raw</th></tr>")
    for q in data.quarantine:
        out.append(
            f"<tr><td>{e(q.get('source_file'))}</td><td class=n>{e(q.get('line') or q.get('source_index'))}</td>"
            f"<td>{e(q.get('error'))}</td><td><div class=text>{e(q.get('raw'))}</div></td></tr>"
        )
    out.append("</table>")
    return out


def _run(data: ReportData) -> list[str]:
    m = data.manifest
    out = ['<h2 id="run">The run</h2>']
    inputs = m.get("inputs") or []
    if inputs:
        out.append(
            "<table><tr><th>input file</th><th class=n>bytes</th><th>sampled sha256</th></tr>"
            + "".join(
                f"<tr><td>{e(i.get('path'))}</td><td class=n>{_n(i.get('bytes'))}</td><td><code>{e(i.get('sampled_sha256') or i.get('sha256'))}</code></td></tr>"
                for i in inputs
            )
            + "</table>"
        )
    versions = m.get("versions") or {}
    if versions:
        out.append("<p class=sub>" + " · ".join(f"{e(k)} {e(v)}" for k, v in versions.items()) + "</p>")
    out.append(f"<h3>Resolved pipeline</h3><pre>{e(data.pipeline_text)}</pre>")
    return out
