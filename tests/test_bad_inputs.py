"""Bad input at every level: a quarantined record with its error, or one clear line; never a traceback,
and always rows in = kept + rejected + quarantined."""

from __future__ import annotations

import gzip
import json
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.errors import UserError
from tests.bad_input_cases import RECORD_CASES, record_corpus
from tests.helpers import pipeline_yaml, read_dir, run


@pytest.fixture(scope="module")
def record_run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bad")
    src = tmp / "bad.jsonl"
    src.write_bytes(record_corpus())
    stats = run(pipeline_yaml(tmp / "p.yaml", src, tmp / "out", "[{exact_dedup: {}}]"))
    return tmp / "out", stats


def test_record_corpus_has_enough_kinds():
    quarantined = [c for c in RECORD_CASES if c[2] != "kept"]
    assert len(quarantined) >= 25 and len(RECORD_CASES) >= 40


def test_every_bad_record_is_quarantined_with_its_error(record_run):
    out, stats = record_run
    q = read_dir(out / "quarantine")
    by_line = {r["line"]: r for r in q.to_pylist()}
    for i, (name, _, expected) in enumerate(RECORD_CASES):
        line = 2 + 2 * i
        if expected == "kept":
            assert line not in by_line, (name, by_line.get(line))
        else:
            assert line in by_line, f"{name}: not quarantined"
            assert expected in by_line[line]["error"], (name, by_line[line]["error"])
            assert by_line[line]["source_file"].endswith("bad.jsonl")
            assert len(by_line[line]["raw"]) <= 2000 + len("…[truncated]")
    assert stats["rows_quarantined"] == sum(1 for c in RECORD_CASES if c[2] != "kept")


def test_odd_but_valid_records_are_kept_not_lost(record_run):
    out, stats = record_run
    kept = read_dir(out / "kept")
    rejected = read_dir(out / "rejected")
    n_valid = 1 + sum(1 for c in RECORD_CASES if c[2] == "kept")
    assert stats["rows_in"] == len(RECORD_CASES) + 1  # blank lines are not records
    assert stats["rows_kept"] + stats["rows_rejected"] == n_valid
    seen = kept.num_rows + (rejected.num_rows if rejected is not None else 0)
    assert seen == n_valid
    ids = kept.column("id").to_pylist()
    assert ids.count("dup") == 2  # duplicate ids are kept (they are different conversations)
    assert "7" in ids  # integer id kept as a string
    rows = {r["id"]: r for r in kept.to_pylist()}
    extra_row = next(r for r in kept.to_pylist() if r["model"] == "gpt-4")  # provenance: a column
    assert json.loads(extra_row["extra"]) == {"score": 0.5}  # the rest carried through
    assert rows  # the 10 MB turn and the 100k-turn conversation survived intact
    lengths = sorted(len(r["messages"]) for r in kept.to_pylist())
    assert lengths[-1] == 100_000


def _expect_user_error(tmp_path, input_paths, fragment, **kw):
    y = pipeline_yaml(tmp_path / "p.yaml", input_paths, tmp_path / "out", "[]")
    with pytest.raises(UserError) as exc:
        run(y, **kw)
    assert fragment in str(exc.value)
    assert "\n" not in str(exc.value)


def test_missing_file_names_the_path(tmp_path):
    _expect_user_error(tmp_path, tmp_path / "nope.jsonl", f"input file not found: {tmp_path / 'nope.jsonl'}")


def test_glob_matching_nothing(tmp_path):
    _expect_user_error(tmp_path, str(tmp_path / "*.jsonl"), "input.path: no files match")


def test_directory_without_inputs(tmp_path):
    (tmp_path / "empty").mkdir()
    _expect_user_error(tmp_path, tmp_path / "empty", "has no .jsonl/.json")


def test_broken_symlink_is_a_missing_file(tmp_path):
    (tmp_path / "link.jsonl").symlink_to(tmp_path / "gone.jsonl")
    _expect_user_error(tmp_path, tmp_path / "link.jsonl", "input file not found")


def test_corrupt_gzip(tmp_path):
    (tmp_path / "x.jsonl.gz").write_bytes(b"\x1f\x8b\x08\x00garbage")
    _expect_user_error(tmp_path, tmp_path / "x.jsonl.gz", "cannot read")


def test_not_a_parquet_file(tmp_path):
    (tmp_path / "x.parquet").write_bytes(b"PAR1 this is not parquet")
    _expect_user_error(tmp_path, tmp_path / "x.parquet", "cannot read Parquet file")


def test_output_path_is_a_file(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"conversations": [{"from": "human", "value": "hi"}]}) + "\n")
    (tmp_path / "out").write_text("I am a file")
    _expect_user_error(tmp_path, src, "exists and is not a directory")


def test_existing_results_are_refused_then_overwritten(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"conversations": [{"from": "human", "value": "hi"}]}) + "\n")
    y = pipeline_yaml(tmp_path / "p.yaml", src, tmp_path / "out", "[]")
    run(y)
    with pytest.raises(UserError, match="already holds results; pass --overwrite"):
        run(y)
    assert run(y, overwrite=True)["rows_kept"] == 1


def test_overwrite_never_deletes_foreign_files(tmp_path):
    src = tmp_path / "in.jsonl"
    src.write_text(json.dumps({"conversations": [{"from": "human", "value": "hi"}]}) + "\n")
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "thesis.tex").write_text("precious")
    y = pipeline_yaml(tmp_path / "p.yaml", src, tmp_path / "out", "[]")
    with pytest.raises(UserError, match="holds files curate did not write"):
        run(y, overwrite=True)
    assert (tmp_path / "out" / "thesis.tex").read_text() == "precious"


def test_file_level_cases_are_quarantined_not_fatal(tmp_path):
    """Empty files, whitespace-only files, broken JSON arrays, wrong-schema Parquet, non-object
    array elements: the run goes on, and every record is accounted for."""
    d = tmp_path / "in"
    d.mkdir()
    (d / "empty.jsonl").write_bytes(b"")
    (d / "blank.json").write_bytes(b"   \n\n")
    good = {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]}
    (d / "truncated_array.json").write_text(json.dumps([good, good, good])[:-30])
    (d / "trailing_comma.json").write_text("[" + json.dumps(good) + ",]")
    (d / "mixed_array.json").write_text(json.dumps([1, good, "x", None]))
    (d / "not_closed.json").write_text("[" + json.dumps(good))
    pq.write_table(pa.table({"text": ["a", "b"], "n": [1, 2]}), d / "wrong_schema.parquet")
    with gzip.open(d / "ok.jsonl.gz", "wt") as f:
        f.write(json.dumps(good) + "\n" + "{bad\n")
    stats = run(pipeline_yaml(tmp_path / "p.yaml", d, tmp_path / "out", "[]"))
    q = read_dir(tmp_path / "out" / "quarantine").to_pylist()
    errors = {(r["source_file"].rsplit("/", 1)[-1], r["error"]) for r in q}
    files = {f for f, _ in errors}
    assert {"truncated_array.json", "mixed_array.json", "not_closed.json", "wrong_schema.parquet", "ok.jsonl.gz"} <= files
    assert any("not closed" in e for f, e in errors if f == "not_closed.json")
    wrong = [r for r in q if r["source_file"].endswith("wrong_schema.parquet")]
    assert len(wrong) == 2 and "cannot tell the format" in wrong[0]["error"]
    # truncated array: the complete elements are kept, the cut-off tail is one quarantined record
    kept = read_dir(tmp_path / "out" / "kept").to_pylist()
    by_file = {}
    for r in kept:
        by_file.setdefault(r["source_file"].rsplit("/", 1)[-1], 0)
        by_file[r["source_file"].rsplit("/", 1)[-1]] += 1
    assert by_file["truncated_array.json"] == 2
    assert by_file["mixed_array.json"] == 1
    assert by_file["ok.jsonl.gz"] == 1
    assert by_file["trailing_comma.json"] == 1  # a trailing comma is tolerated: nothing is lost
    assert stats["rows_in"] == stats["rows_kept"] + stats["rows_quarantined"]


def test_cli_bad_input_no_traceback(tmp_path):
    y = pipeline_yaml(tmp_path / "p.yaml", tmp_path / "missing.jsonl", tmp_path / "out", "[]")
    p = subprocess.run([sys.executable, "-m", "curate", "run", str(y)], capture_output=True, text=True)
    assert p.returncode == 1
    assert p.stderr == f"input file not found: {tmp_path / 'missing.jsonl'}\n"
