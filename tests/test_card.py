"""DIR/README.md, the dataset card: parsed by huggingface_hub, features equal to what `datasets`
reads from kept/, the funnel and eval sets from the run; and --overwrite/--resume never delete a
README.md curate did not write (or one the user edited)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from curate.config import load_pipeline
from curate.errors import UserError
from tests.helpers import REPO, run, write_jsonl

GSM8K = json.loads(gzip.open(REPO / "curate" / "rules" / "eval_sets" / "gsm8k.jsonl.gz").readline())["question"]


def _records() -> list[dict]:
    def chat(i: int) -> list[dict]:
        return [
            {"role": "user", "content": f"Tell me fact number {i} about the moon."},
            {"role": "assistant", "content": f"Fact {i}: the moon is about 384,400 km from the Earth on average."},
        ]

    rows = [{"id": f"m{i}", "messages": chat(i)} for i in range(4)]
    rows.append({"id": "m0-copy", "messages": rows[0]["messages"]})
    rows.append(
        {
            "id": "eval",
            "messages": [
                {"role": "user", "content": GSM8K},
                {"role": "assistant", "content": "She makes 18 dollars a day."},
            ],
        }
    )
    return rows


def _pipeline(tmp: Path, out: Path, license_line: str = "  license: cc-by-4.0\n") -> Path:
    src = write_jsonl(tmp / "in.jsonl", _records())
    path = tmp / "p.yaml"
    path.write_text(
        f"input:\n  path: {src}\noutput:\n  path: {out}\n{license_line}runner:\n  type: local\n"
        "steps:\n  - exact_dedup: {}\n  - decontaminate: {eval_sets: [gsm8k]}\n",
        encoding="utf-8",
    )
    return path


@pytest.fixture(scope="module")
def finished(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("card")
    stats = run(_pipeline(tmp, tmp / "out"))
    return tmp, tmp / "out", stats


def test_huggingface_hub_parses_the_card(finished):
    from datasets import Features, load_dataset
    from huggingface_hub import DatasetCard

    _, out, stats = finished
    card = DatasetCard.load(out / "README.md")
    assert card.data.license == "cc-by-4.0"
    assert card.data.size_categories == ["n<1K"]
    assert card.data.configs == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "kept/*.parquet"}]}
    ]
    info = card.data.dataset_info
    assert info["splits"] == [{"name": "train", "num_examples": stats["rows_kept"]}] and stats["rows_kept"] == 4
    # The features are the kept set's own columns, as `datasets` loads them (step columns included).
    kept = load_dataset("parquet", data_files=str(out / "kept" / "*.parquet"), split="train")
    assert Features._from_yaml_list(info["features"]) == kept.features
    assert {"duplicate_of", "contam_eval_set"} <= {f["name"] for f in info["features"]}


def test_the_card_tells_the_run(finished):
    from curate import __version__

    _, out, stats = finished
    text = (out / "README.md").read_text()
    assert "| `exact_dedup` | 6 | 5 | 1 | exact_duplicate (1) |" in text
    assert "| `decontaminate` | 5 | 4 | 1 | contaminated_question (1) |" in text
    assert "`gsm8k` (openai/grade-school-math, MIT)" in text
    assert f"curate {__version__}, local runner" in text
    assert "6 input records = 4 kept + 2 removed" in text
    assert json.loads((out / "manifest.json").read_text())["card_sha256"]


def test_no_license_says_how_to_give_one(tmp_path):
    run(_pipeline(tmp_path, tmp_path / "out", license_line=""))
    text = (tmp_path / "out" / "README.md").read_text()
    assert "\nlicense:" not in text.split("---")[1] and "set `output.license`" in text


def test_a_bad_license_is_one_line(tmp_path):
    path = _pipeline(tmp_path, tmp_path / "out", license_line="  license: Apache 2.0\n")
    with pytest.raises(UserError) as e:
        load_pipeline(str(path))
    assert str(e.value).startswith(f"{path}:5: output.license: string should match pattern")


def _execute(path: Path, **kw):
    from curate.run import execute

    return execute(load_pipeline(str(path)), log=lambda m: None, **kw)


def test_overwrite_replaces_curates_card_but_never_a_users_readme(tmp_path):
    out = tmp_path / "out"
    path = _pipeline(tmp_path, out)
    _execute(path)
    _execute(path, overwrite=True)  # the card is curate's: replaced
    card = out / "README.md"
    card.write_text(card.read_text() + "\nMy notes on this set.\n")  # edited: now the user's
    with pytest.raises(UserError, match=r"holds files curate did not write \(README.md\); refusing to delete them"):
        _execute(path, overwrite=True)
    with pytest.raises(UserError, match="holds a README.md curate did not write"):
        _execute(path, resume=True)
    assert card.read_text().endswith("My notes on this set.\n")


def test_a_users_readme_in_the_output_folder_is_kept(tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "README.md").write_text("# my project\n")
    path = _pipeline(tmp_path, out)
    for kw in ({"overwrite": True}, {"resume": True}):
        with pytest.raises(UserError, match="README.md"):
            _execute(path, **kw)
    assert (out / "README.md").read_text() == "# my project\n"


def test_a_card_left_by_a_run_that_stopped_before_its_manifest_is_curates(tmp_path):
    out = tmp_path / "out"
    path = _pipeline(tmp_path, out)
    _execute(path)
    (out / "manifest.json").unlink()  # stopped between the card and the manifest
    _execute(path, overwrite=True)
    assert (out / "manifest.json").exists()
