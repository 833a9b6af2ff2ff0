"""Bad input at every level: a quarantined record with its error, or one clear line; never a traceback,
and always rows in = kept + rejected + quarantined."""

from __future__ import annotations

import gzip
import json
import logging
import re
import subprocess
import sys

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from curate.errors import UserError
from tests.bad_input_cases import RECORD_CASES, record_corpus
from tests.helpers import pipeline_yaml, read_dir, run

CLEANING = "[{normalize: {}}, {format_rules: {}}, {exact_dedup: {}}]"


@pytest.fixture(scope="module", params=["local", "ray"])
def record_run(request, tmp_path_factory):
    """The record corpus through a minimal cleaning pipeline, on each runner."""
    if request.param == "ray":
        ray = request.getfixturevalue("_ray_session")
        if not ray.is_initialized():
            ray.init(
                address="local", num_cpus=2, include_dashboard=False, logging_level=logging.ERROR, log_to_driver=False
            )
    tmp = tmp_path_factory.mktemp(f"bad-{request.param}")
    src = tmp / "bad.jsonl"
    src.write_bytes(record_corpus())
    # shard_rows 40: the corpus spans three shards, so repeated ids meet across shards
    stats = run(
        pipeline_yaml(tmp / "p.yaml", src, tmp / "out", CLEANING, runner=request.param, extra="  shard_rows: 40\n")
    )
    return tmp / "out", stats


def test_record_corpus_has_enough_kinds():
    quarantined = [c for c in RECORD_CASES if c[2] != "kept" and not c[2].startswith("rejected:")]
    assert len(quarantined) >= 45 and len(RECORD_CASES) >= 90
    assert len({c[0] for c in RECORD_CASES}) == len(RECORD_CASES)


def _index(name: str) -> int:
    """A case's record index in the corpus file (record 0 is the BOM-prefixed good record)."""
    return 1 + [c[0] for c in RECORD_CASES].index(name)


def test_every_bad_record_is_quarantined_with_its_error(record_run):
    out, stats = record_run
    q = read_dir(out / "quarantine")
    by_index = {r["source_index"]: r for r in q.to_pylist()}
    rejected = {r["source_index"]: r for r in read_dir(out / "rejected").to_pylist()}
    kept = {r["source_index"]: r for r in read_dir(out / "kept").to_pylist()}
    for i, (name, _, expected) in enumerate(RECORD_CASES):
        index, line = i + 1, 2 + 2 * i
        if expected == "kept":
            assert index not in by_index, (name, by_index.get(index))
            assert (index in kept) != (index in rejected), name
        elif expected.startswith("rejected:"):
            assert rejected[index]["_curate_drop_reason"] == expected.removeprefix("rejected:"), (
                name,
                rejected.get(index),
            )
        else:
            assert index in by_index, f"{name}: not quarantined"
            assert expected in by_index[index]["error"], (name, by_index[index]["error"])
            assert by_index[index]["line"] == line, name
            assert by_index[index]["source_file"].endswith("bad.jsonl")
            assert len(by_index[index]["raw"]) <= 2000 + len("…[truncated]")
    assert stats["rows_quarantined"] == sum(
        1 for c in RECORD_CASES if c[2] != "kept" and not c[2].startswith("rejected:")
    )


def test_invalid_utf8_names_the_byte_offset_in_the_file(record_run):
    out, _ = record_run
    q = {r["source_index"]: r for r in read_dir(out / "quarantine").to_pylist()}
    data = record_corpus()
    for name in ("utf8_latin1", "utf8_ff_fe", "utf8_encoded_surrogate", "utf8_overlong", "utf8_truncated"):
        offset = int(q[_index(name)]["error"].split("byte offset ")[1].split(" ")[0])
        with pytest.raises(UnicodeDecodeError):
            data[offset : offset + 4].decode("utf-8")
        data[offset - 10 : offset].decode("utf-8")  # the bytes before it are fine


def _strict_json(text: str):
    def refuse(name):
        raise AssertionError(f"{name} written into JSON output")

    return json.loads(text, parse_constant=refuse)


def test_ids_are_unique_and_follow_the_rule(record_run):
    out, stats = record_run
    kept = read_dir(out / "kept").to_pylist()
    ids = [r["id"] for r in kept]
    assert len(ids) == len(set(ids))
    by_index = {r["source_index"]: r for r in kept}

    def row(name):
        return by_index[_index(name)]

    assert row("id_5000_digits")["id"] == "7" * 5000
    assert row("id_negative_5000_digits")["id"] == "-" + "8" * 5000
    assert row("id_float")["id"] == "1.5" and row("id_negative_zero")["id"] == "-0.0"
    for name, original in (
        ("id_nan", "NaN"),
        ("id_minus_infinity", "-Infinity"),
        ("id_1e400", "Infinity"),
        ("id_list", [1, 2]),
        ("id_bool", True),
        ("id_object", {"a": 1}),
    ):
        assert row(name)["id"] == f"bad:{_index(name)}", name
        assert _strict_json(row(name)["extra"])["original_id"] == original, name
    # 1 and "1" collide; "1#2" is taken by another record, so the later "1" becomes "1#3"
    assert (row("id_int_one")["id"], row("id_str_one")["id"], row("id_suffix_taken")["id"]) == ("1", "1#3", "1#2")
    assert _strict_json(row("id_str_one")["extra"]) == {"original_id": "1"}
    assert (row("duplicate_id_1")["id"], row("duplicate_id_2")["id"]) == ("dup", "dup#2")
    counters = stats["read_counters"]
    assert counters["id_replaced:non_finite"] == 3 and counters["id_replaced:bool"] == 1
    assert counters["id_replaced:list"] == 1 and counters["id_replaced:dict"] == 1
    assert counters["id_from_float"] == 2 and counters["id_renamed:repeated"] == 2


def test_no_nan_or_infinity_reaches_json_output(record_run):
    out, _ = record_run
    kept = read_dir(out / "kept").to_pylist()
    by_index = {r["source_index"]: r for r in kept}
    for r in kept:
        if r["extra"]:
            _strict_json(r["extra"])
        for m in r["messages"]:
            if m["extra"]:
                _strict_json(m["extra"])
    assert _strict_json(by_index[_index("nan_in_extra")]["extra"]) == {
        "score": "NaN",
        "w": ["Infinity", "-Infinity", "Infinity"],
    }
    assert _strict_json(by_index[_index("bigint_in_extra")]["extra"]) == {"n": "9" * 4400}
    assert _strict_json(by_index[_index("nan_in_message_extra")]["messages"][0]["extra"]) == {"weight": "NaN"}


def test_odd_but_valid_records_are_kept_not_lost(record_run):
    out, stats = record_run
    kept = read_dir(out / "kept")
    rejected = read_dir(out / "rejected")
    n_valid = 1 + sum(1 for c in RECORD_CASES if c[2] == "kept" or c[2].startswith("rejected:"))
    assert stats["rows_in"] == len(RECORD_CASES) + 1  # blank lines are not records
    assert stats["rows_kept"] + stats["rows_rejected"] == n_valid
    seen = kept.num_rows + (rejected.num_rows if rejected is not None else 0)
    assert seen == n_valid
    ids = kept.column("id").to_pylist()
    assert "7" in ids  # integer id kept as a string
    extra_row = next(r for r in kept.to_pylist() if r["model"] == "gpt-4")  # provenance: a column
    assert json.loads(extra_row["extra"]) == {"score": 0.5}  # the rest carried through
    lengths = sorted(len(r["messages"]) for r in kept.to_pylist())
    assert lengths[-1] == 100_000  # the 100k-turn conversation survived intact
    emoji = next(r for r in kept.to_pylist() if r["source_index"] == _index("turn_zwj_inside_emoji_kept"))
    assert emoji["messages"][1]["content"] == "\U0001f469\u200d\U0001f4bb"


def test_ray_keeps_the_same_rows_as_local(record_run, tmp_path_factory):
    out, stats = record_run
    if stats["runner"] == "local":
        pytest.skip("compared on the ray run, against this one")
    local = next(tmp_path_factory.getbasetemp().glob("bad-local*")) / "out"  # pytest runs the local param first
    for part in ("kept", "rejected", "quarantine"):
        a, b = read_dir(local / part), read_dir(out / part)
        # The two runs read copies of the corpus in different folders: their paths differ, also
        # inside a quarantined row's raw text.
        a, b = a.drop_columns(["source_file"]).to_pylist(), b.drop_columns(["source_file"]).to_pylist()
        for row in a + b:
            if "raw" in row:
                row["raw"] = re.sub(r'"source_file": "[^"]*"', "", row["raw"])
        assert a == b, part


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
    assert {
        "truncated_array.json",
        "mixed_array.json",
        "not_closed.json",
        "wrong_schema.parquet",
        "ok.jsonl.gz",
    } <= files
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


def _good(text: str) -> dict:
    return {"conversations": [{"from": "human", "value": text}, {"from": "gpt", "value": "ok"}]}


def _line(text: str) -> bytes:
    return json.dumps(_good(text)).encode() + b"\n"


def _file_edges(d):
    """{file name: (kept record indexes, {quarantined record index: error fragment})} for files
    written into d: whole-file edges the one-file record corpus cannot hold."""
    d.mkdir()
    cases = {}
    # A record cut in two by a gzip member boundary (`cat a.gz b.gz`) is one record.
    whole = _line("first") + _line("split across members") + _line("third")
    cut = whole.index(b"across")
    (d / "members.jsonl.gz").write_bytes(gzip.compress(whole[:cut]) + gzip.compress(whole[cut:]))
    cases["members.jsonl.gz"] = ({0, 1, 2}, {})
    # A raw CRLF inside a JSON string ends the line: both halves are quarantined, the rest read on.
    (d / "crlf.jsonl").write_bytes(
        _line("a") + b'{"conversations": [{"from": "human", "value": "one\r\ntwo"}]}\n' + _line("b")
    )
    cases["crlf.jsonl"] = ({0, 3}, {1: "Unterminated string", 2: "invalid JSON"})
    # Lines past input.max_record_mb (1 here) are quarantined without being held; blank ones are not records.
    long_line = json.dumps(_good("x" * 1_500_000)).encode() + b"\n"
    body = _line("before") + long_line + b" " * 2_000_000 + b"\n" + _line("after")
    (d / "long.jsonl").write_bytes(body)
    (d / "long.jsonl.gz").write_bytes(gzip.compress(body))
    for name in ("long.jsonl", "long.jsonl.gz"):
        cases[name] = ({0, 2}, {1: f"record too long: {len(long_line):,} bytes at byte offset {len(_line('before'))}"})
    # JSON arrays: invalid UTF-8, a repeated key, an element past the limit each cost one element.
    (d / "array_utf8.json").write_bytes(
        b"["
        + json.dumps(_good("a")).encode()
        + b', {"conversations": [{"from": "human", "value": "caf\xe9"}]}, '
        + json.dumps(_good("c")).encode()
        + b"]"
    )
    cases["array_utf8.json"] = ({0, 2}, {1: "invalid UTF-8"})
    (d / "array_repeated.json").write_bytes(
        b'[{"id": "x", "id": "y", "conversations": []}, ' + json.dumps(_good("b")).encode() + b"]"
    )
    cases["array_repeated.json"] = ({1}, {0: "key 'id' repeated in one object"})
    (d / "array_long.json").write_text(json.dumps([_good("a"), _good("x" * 1_500_000), _good("c")]))
    cases["array_long.json"] = ({0, 2}, {1: "record longer than the limit"})
    (d / "stream_repeated.json").write_bytes(b'{"a": 1, "a": 2}\n' + json.dumps(_good("s")).encode())
    cases["stream_repeated.json"] = ({1}, {0: "key 'a' repeated in one object"})
    (d / "array_nan.json").write_bytes(b"[NaN, " + json.dumps(_good("n")).encode() + b"]")
    cases["array_nan.json"] = ({1}, {0: "record must be a JSON object (got float)"})
    # A .json whose first line is a record with a 5,000-digit id is sniffed as JSONL, not refused.
    (d / "big_id.json").write_bytes(b'{"id": ' + b"5" * 5000 + b", " + _line("big")[1:])
    cases["big_id.json"] = ({0}, {})
    # A UTF-16 file: the first line says so; the rest (NUL-led after each 0x0A byte) are not JSON.
    (d / "utf16.jsonl").write_bytes((json.dumps(_good("u")) + "\n" + json.dumps(_good("v")) + "\n").encode("utf-16"))
    cases["utf16.jsonl"] = (set(), {0: "the file looks like UTF-16", 1: "invalid JSON", 2: "invalid JSON"})
    # BOMs: a file that is only a BOM holds one unreadable record; BOM + blank lines hold none.
    (d / "bom_only.jsonl").write_bytes(b"\xef\xbb\xbf")
    cases["bom_only.jsonl"] = (set(), {0: "Expecting value"})
    (d / "bom_mid.jsonl").write_bytes(b"\xef\xbb\xbf" + _line("p") + b"\xef\xbb\xbf" + _line("q") + b"\n\n")
    cases["bom_mid.jsonl"] = ({0, 1}, {})
    return cases


@pytest.mark.parametrize("runner", ["local", "ray"])
def test_file_level_edges(tmp_path, runner, request):
    if runner == "ray":
        request.getfixturevalue("ray_cluster")
    cases = _file_edges(tmp_path / "in")
    stats = run(
        pipeline_yaml(
            tmp_path / "p.yaml", tmp_path / "in", tmp_path / "out", "[]", runner=runner, extra="  max_record_mb: 1\n"
        )
    )
    kept = read_dir(tmp_path / "out" / "kept").to_pylist()
    q = read_dir(tmp_path / "out" / "quarantine").to_pylist()
    for name, (want_kept, want_quarantined) in cases.items():
        got_kept = {r["source_index"] for r in kept if r["source_file"].endswith("/" + name)}
        got_q = {r["source_index"]: r["error"] for r in q if r["source_file"].endswith("/" + name)}
        assert got_kept == want_kept, (name, got_kept)
        assert set(got_q) == set(want_quarantined), (name, got_q)
        for index, fragment in want_quarantined.items():
            assert fragment in got_q[index], (name, got_q[index])
    assert stats["rows_in"] == sum(len(k) + len(v) for k, v in cases.values())
    assert all(len(r["raw"]) <= 2000 + len("…[truncated]") for r in q)
