"""Planted faults in real tool-call and reasoning records, through the real readers and the local
runner: >= 98% rejected with the right reason, <= 0.5% of the clean records rejected (issue 17).
benchmarks/post_training/planted.py prints the full table over every record."""

from __future__ import annotations

import importlib.util
import sys

from tests.helpers import REPO


def _planted():
    path = REPO / "benchmarks" / "post_training" / "planted.py"
    sys.path.insert(0, str(path.parent))
    spec = importlib.util.spec_from_file_location("planted", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_planted_faults_are_rejected_with_their_reason_and_clean_rows_kept():
    table, clean = _planted().evaluate(per_kind=15)
    planted = sum(t["planted"] for t in table)
    right = sum(t.get("right", 0) for t in table)
    kinds = {t["fault"] for t in table}
    assert len(kinds) == 12 and planted >= 300
    assert right / planted >= 0.98, [t for t in table if t.get("right", 0) < t["planted"]]
    assert clean["records"] >= 1200 and clean["lost"] == 0
    assert (clean["records"] - clean["kept"]) / clean["records"] <= 0.005, clean
