"""pii on Presidio's recognizer test cases and public-value variants (corpus.py): per entity type, found /
missed / partial / false positives, and the values curate keeps by design.

    python benchmarks/pii/run.py [--show]

A case's value is `found` when the output is the text with exactly that value replaced by one placeholder,
`missed` when the text is unchanged, `partial` otherwise (part of the value left visible, or the
placeholder spilling over its neighbours). A case with no value counts a false positive when the text
changes. "kept" values (private and documentation addresses, 555 numbers, sandbox cards, template
addresses) are listed apart: curate leaves them alone on purpose.
"""

from __future__ import annotations

import argparse
import re
import sys
from collections import Counter, defaultdict
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(Path(__file__).resolve().parent))
from corpus import CASES  # noqa: E402

from curate.steps.base import StepContext  # noqa: E402
from curate.steps.pii import Pii, PiiParams  # noqa: E402

PLACEHOLDER = re.compile(r"\[[A-Z_]+\]")


def outcome(text: str, value: str | None, out: str, redact) -> str:
    if value is None:
        return "true negative" if out == text else "false positive"
    if out == text:
        return "missed"
    at = text.index(value)
    before, after = redact(text[:at]), redact(text[at + len(value) :])  # other values in the sentence go too
    if (
        out.startswith(before)
        and out.endswith(after)
        and PLACEHOLDER.fullmatch(out[len(before) : len(out) - len(after)])
    ):
        return "found"
    return "partial"


def classify(redact) -> list[tuple[str, str, str, str]]:
    """(type, expectation, outcome, output) per case."""
    rows = []
    for kind, expect, text, value, _ in CASES:
        out = redact(text)
        rows.append((kind, expect, outcome(text, value, out, redact), out))
    return rows


def redactor():
    step = Pii(PiiParams(), StepContext(rules_dir=REPO / "curate" / "rules"))
    step.setup()
    return lambda text: step._redactor.redact(text)[0]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--show", action="store_true", help="print every case that is not found / a true negative")
    args = ap.parse_args()
    rows = classify(redactor())
    table: dict[str, Counter] = defaultdict(Counter)
    for (kind, expect, result, out), case in zip(rows, CASES):
        table[kind][f"{expect}:{result}"] += 1
        if args.show and result not in ("found", "true negative") and expect != "kept":
            print(f"  {kind} {expect} {result}: {case[2]!r} -> {out!r}")
    print(f"\n{len(CASES)} cases (benchmarks/pii/corpus.py: Presidio's recognizer tests and public-value variants)\n")
    print(
        "| type | to redact | found | missed | partial | no-PII cases | false positives | kept by design (of them redacted) |"
    )
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for kind, c in table.items():
        redact = sum(v for k, v in c.items() if k.startswith("redact:"))
        negatives = c["none:true negative"] + c["none:false positive"]
        kept = sum(v for k, v in c.items() if k.startswith("kept:"))
        print(
            f"| {kind} | {redact} | {c['redact:found']} | {c['redact:missed']} | {c['redact:partial']} | {negatives} "
            f"| {c['none:false positive']} | {kept} ({kept - c['kept:missed']}) |"
        )


if __name__ == "__main__":
    main()
