"""Every config mistake is ONE line naming file:line, the key path and what is allowed; exit 1."""

from __future__ import annotations

import subprocess
import sys

import pytest

from curate.config import load_pipeline
from curate.errors import UserError

CASES = [
    ("input:\n  path: x.jsonl\n  shard_rows: 0\n", "{f}:3: input.shard_rows: must be >= 1 (got 0)"),
    (
        "input:\n  path: x\nsteps:\n  - exact_dedupe: {}\n",
        "{f}:4: steps[0].exact_dedupe: unknown step 'exact_dedupe'; did you mean 'exact_dedup'?",
    ),
    (
        "input:\n  path: x\nsteps:\n  - exact_dedup: {}\n  - exact_dedup: {partitions: -3}\n",
        "{f}:5: steps[1].partitions: must be >= 1 (got -3)",
    ),
    (
        "input:\n  path: x\n  bogus: 1\n",
        "{f}:3: input.bogus: unknown key; allowed: path, format, columns, shard_rows, max_record_mb",
    ),
    ("input:\n  path: [x\n", "{f}:3: invalid YAML: expected ',' or ']', but got '<stream end>'"),
    (
        "a: &a [1,2,3,4,5,6,7,8,9]\nb: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]\nc: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]\n"
        "d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]\ne: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]\n",
        "{f}:1: the YAML expands to more than 20000 nodes (anchors/aliases?)",
    ),
    ("output:\n  path: x\n", "{f}:1: input: required key is missing"),
    (
        "input:\n  path: x\nrunner:\n  type: spark\n",
        "{f}:4: runner.type: must be one of 'auto', 'ray' or 'local' (got 'spark')",
    ),
    (
        "input:\n  path: x\nsteps:\n  - exact_dedup: {normalise: maybe}\n",
        "{f}:4: steps[0].normalise: must be true or false (got 'maybe')",
    ),
    (
        "input:\n  path: x\nsteps:\n  - exact_dedup: {}\n    other: {}\n",
        "{f}:4: steps[0]: each step must be a mapping with one key, the step name, e.g. '- exact_dedup: {{}}'",
    ),
    ("input:\n  path: x\nsteps: {exact_dedup: {}}\n", "{f}:3: steps: must be a list (got {{'exact_dedup': {{}}}})"),
    ("- a\n- b\n", "{f}:1: the pipeline must be a mapping with 'input', 'output', 'runner' and 'steps'"),
    (
        "input:\n  path: x\nsteps:\n  - exact_dedup: {bogus_key: 1}\n",
        "{f}:4: steps[0].bogus_key: unknown key; allowed: turns, normalise, partitions",
    ),
    ("input:\n  path: x\nrunner:\n  num_cpus: two\n", "{f}:4: runner.num_cpus: must be an integer (got 'two')"),
    (
        "input:\n  path: x\nsteps:\n  - exact_dedup: [1]\n",
        "{f}:4: steps[0].exact_dedup: step parameters must be a mapping (got [1])",
    ),
    (
        "input: !!python/object:os.system {}\n",
        "{f}:1: YAML tag 'tag:yaml.org,2002:python/object:os.system' is not allowed in a pipeline",
    ),
    ("", "{f}:1: the pipeline is empty; it needs at least 'input' and 'steps'"),
    (
        "input:\n  path: x\n  columns: {speaker: who}\n",
        "{f}:3: input.columns: unknown column role 'speaker'; allowed: id, conversations, role, text, instruction, "
        "input, output, system, history, tools",
    ),
    (
        "input:\n  path: x\nsteps:\n  - exact_dedup: {turns: bogus}\n",
        "{f}:4: steps[0].turns: must be one of 'all', 'user' or 'first_pair' (got 'bogus')",
    ),
    (
        "input:\n  path: x\n  format: csv\n",
        "{f}:3: input.format: must be one of 'auto', 'sharegpt', 'openai', 'alpaca' or 'parquet' (got 'csv')",
    ),
    (
        "input:\n  path: x\noutput:\n  format: xml\n",
        "{f}:4: output.format: must be one of 'parquet', 'sharegpt' or 'openai' (got 'xml')",
    ),
    (
        "input:\n  path: x\nsteps:\n  - 42\n",
        "{f}:4: steps[0]: each step must be a mapping with one key, the step name, e.g. '- exact_dedup: {{}}'",
    ),
    ("input:\n  path: x\n\tsteps: []\n", None),  # a tab: YAML's own error, still one line with a line number
    ("input:\n  path: x\nsteps:\n  - <<: {exact_dedup: {}}\n", "{f}:4: YAML merge keys (<<) are not supported"),
]


@pytest.mark.parametrize("text,expected", CASES)
def test_config_error_is_one_exact_line(tmp_path, text, expected):
    f = tmp_path / "p.yaml"
    f.write_text(text)
    with pytest.raises(UserError) as exc:
        load_pipeline(str(f))
    message = str(exc.value)
    assert "\n" not in message
    if expected is None:
        assert message.startswith(f"{f}:3: invalid YAML")
    else:
        assert message == expected.format(f=f)


def test_missing_pipeline_file(tmp_path):
    with pytest.raises(UserError, match="^pipeline file not found: .*nope.yaml$"):
        load_pipeline(str(tmp_path / "nope.yaml"))


def test_pipeline_path_is_a_directory(tmp_path):
    with pytest.raises(UserError, match="^pipeline path is a directory, not a YAML file: "):
        load_pipeline(str(tmp_path))


def test_valid_pipeline_fills_defaults(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("input:\n  path: x\nsteps:\n  - exact_dedup:\n")
    pipe = load_pipeline(str(f))
    assert pipe.steps[0].params.turns == "all"
    assert pipe.resolved()["steps"] == [{"exact_dedup": {"turns": "all", "normalise": True, "partitions": 16}}]


@pytest.mark.parametrize("command", [["validate"], ["run"]])
def test_cli_prints_one_line_and_exits_1(tmp_path, command):
    """Through the real entry point: no traceback, exactly one line on stderr."""
    f = tmp_path / "p.yaml"
    f.write_text("input:\n  path: x\nsteps:\n  - exact_dedup: {partitions: -3}\n")
    p = subprocess.run([sys.executable, "-m", "curate", *command, str(f)], capture_output=True, text=True)
    assert p.returncode == 1
    assert p.stderr == f"{f}:4: steps[0].partitions: must be >= 1 (got -3)\n"
    assert "Traceback" not in p.stdout + p.stderr


def test_cli_validate_ok(tmp_path):
    f = tmp_path / "p.yaml"
    f.write_text("input:\n  path: x\nsteps:\n  - exact_dedup: {}\n")
    p = subprocess.run([sys.executable, "-m", "curate", "validate", str(f)], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    assert "OK (1 steps: exact_dedup)" in p.stdout


def test_list_steps_documents_every_parameter():
    from curate.registry import all_steps

    p = subprocess.run([sys.executable, "-m", "curate", "list-steps"], capture_output=True, text=True)
    assert p.returncode == 0, p.stderr
    for name, cls in all_steps().items():
        assert name in p.stdout
        for field in cls.Params.model_fields:
            assert f"{field}:" in p.stdout, (name, field)
