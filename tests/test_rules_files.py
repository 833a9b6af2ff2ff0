"""Broken files under rules/: one line naming the file and the problem, exit 1, on the local runner
and from inside Ray workers (where steps load their rules), never a traceback."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys

import pytest

from curate.errors import UserError
from tests.helpers import REPO, pipeline_yaml, run

# (name, step YAML, how to break the rules folder, the exact line after "<rules>/")
BROKEN = [
    (
        "wordlist_missing",
        "{toxicity: {backend: wordlist}}",
        lambda r: (r / "toxicity_words_en.txt").unlink(),
        "toxicity_words_en.txt: file not found (the toxicity word list; the rules folder is set by `rules:` in the pipeline)",
    ),
    (
        "wordlist_empty",
        "{toxicity: {backend: wordlist}}",
        lambda r: (r / "toxicity_words_en.txt").write_text("\n \n"),
        "toxicity_words_en.txt: the toxicity word list is empty",
    ),
    (
        "eval_sets_malformed",
        "{decontaminate: {}}",
        lambda r: (r / "eval_sets.yaml").write_text("gsm8k:\n  path: [unclosed\n"),
        "eval_sets.yaml:3: cannot read the eval-set registry: expected ',' or ']', but got '<stream end>'",
    ),
    (
        "eval_sets_a_list",
        "{decontaminate: {}}",
        lambda r: (r / "eval_sets.yaml").write_text("- gsm8k\n- mmlu\n"),
        "eval_sets.yaml: the eval-set registry must be a mapping (key: value), not a list",
    ),
    (
        "eval_set_entry_a_string",
        "{decontaminate: {}}",
        lambda r: (r / "eval_sets.yaml").write_text("gsm8k: eval_sets/gsm8k.jsonl\n"),
        "eval_sets.yaml: eval set 'gsm8k' must be a mapping (path, question, answer, ...), not a str",
    ),
    (
        "format_rules_missing",
        "{format_rules: {}}",
        lambda r: (r / "format_rules.yaml").unlink(),
        "format_rules.yaml: file not found (the error-reply phrases; the rules folder is set by `rules:` in the pipeline)",
    ),
    (
        "quality_not_utf8",
        "{quality_heuristics: {}}",
        lambda r: (r / "quality_heuristics.yaml").write_bytes(b"rules: \xff\n"),
        "quality_heuristics.yaml: cannot read the quality heuristics thresholds: invalid UTF-8 at byte 7",
    ),
    (
        "pii_a_directory",
        "{pii: {}}",
        lambda r: ((r / "pii.yaml").unlink(), (r / "pii.yaml").mkdir()),
        "pii.yaml: is a directory, not a file (the PII rules)",
    ),
    (
        "boilerplate_tab_indent",
        "{ai_boilerplate: {}}",
        lambda r: (r / "ai_boilerplate.yaml").write_text("refusals:\n\t- x\n"),
        "ai_boilerplate.yaml:2: cannot read the phrase lists: found character '\\t' that cannot start any token",
    ),
]


def _setup(tmp_path, step, breaker, runner):
    rules = tmp_path / "rules"
    shutil.copytree(REPO / "curate" / "rules", rules)
    breaker(rules)
    src = tmp_path / "in.jsonl"
    src.write_text(
        json.dumps({"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}) + "\n"
    )
    y = pipeline_yaml(tmp_path / "p.yaml", src, tmp_path / "out", f"[{step}]", runner=runner)
    y.write_text(y.read_text() + f"rules: {json.dumps(str(rules))}\n")
    return y, rules


@pytest.mark.parametrize("name,step,breaker,message", BROKEN, ids=[b[0] for b in BROKEN])
def test_broken_rules_file_is_one_line_local(tmp_path, name, step, breaker, message):
    y, rules = _setup(tmp_path, step, breaker, "local")
    with pytest.raises(UserError) as e:
        run(y)
    assert str(e.value) == f"{rules}/{message}"


@pytest.mark.parametrize(
    "name,step,breaker,message",
    [b for b in BROKEN if b[0] in ("wordlist_missing", "eval_sets_malformed")],
    ids=["wordlist_missing", "eval_sets_malformed"],
)
def test_user_error_in_a_ray_worker_comes_back_as_itself(tmp_path, ray_cluster, name, step, breaker, message):
    """Steps load their rules inside the Ray worker: the UserError raised there reaches the driver
    as the same UserError (through Ray's RayTaskError.cause), not as Ray's wrapper."""
    y, rules = _setup(tmp_path, step, breaker, "ray")
    with pytest.raises(UserError) as e:
        run(y)
    assert str(e.value) == f"{rules}/{message}"


def test_cli_on_ray_prints_the_line_and_exits_1(tmp_path):
    y, rules = _setup(
        tmp_path, "{toxicity: {backend: wordlist}}", lambda r: (r / "toxicity_words_en.txt").unlink(), "ray"
    )
    env = {**os.environ, "PYTHONPATH": str(REPO), "RAY_ADDRESS": "local"}
    p = subprocess.run(
        [sys.executable, "-m", "curate", "run", str(y), "--no-progress"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert p.returncode == 1, p.stderr[-2000:]
    assert p.stderr == f"{rules}/{BROKEN[0][3]}\n"
