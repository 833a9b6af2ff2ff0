"""DIR/README.md: a Hugging Face dataset card written from the run, so a cleaned set can be
published as it is (`huggingface-cli upload ORG/NAME DIR`): YAML metadata the Hub reads (features
from the kept set's own schema, size category, license, the kept files as the train split), then
the pipeline, the rows each step removed and why, the eval sets checked, and curate's version.

The run directory may hold a README.md of the user's own; `--overwrite` must never delete it. The
card is curate's only when manifest.json records its sha256 (an edited card is the user's), or,
with no manifest (a run that stopped between the card and the manifest), when it carries MARKER.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import yaml

from curate import __version__
from curate.writers import atomic_path

CARD = "README.md"
MARKER = "<!-- written by curate from this run; `curate run --overwrite` replaces it while it is unedited -->"
# The Hub's size_categories buckets.
SIZE_BUCKETS = [
    (1_000, "n<1K"),
    (10_000, "1K<n<10K"),
    (100_000, "10K<n<100K"),
    (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"),
    (100_000_000, "10M<n<100M"),
    (1_000_000_000, "100M<n<1B"),
]
# A language goes into the metadata when at least this share of the kept rows is in it.
LANGUAGE_SHARE = 0.01


def size_category(n: int) -> str:
    return next((label for limit, label in SIZE_BUCKETS if n < limit), "n>1B")


def _dtype(t: pa.DataType) -> str:
    """Arrow type -> the Hub's dtype name (datasets' Value names)."""
    names = {pa.float16(): "float16", pa.float32(): "float32", pa.float64(): "float64"}
    return names.get(t, str(t))


def _feature(t: pa.DataType):
    """The value of a feature: a dtype, or {list: ...} / {struct: [...]} (datasets' YAML form)."""
    if pa.types.is_struct(t):
        return {"struct": [{"name": f.name, **_feature(f.type)} for f in t]}
    if pa.types.is_list(t) or pa.types.is_large_list(t) or pa.types.is_fixed_size_list(t):
        inner = _feature(t.value_type)
        out = {"list": inner.get("dtype", inner.get("struct", inner))}
        if pa.types.is_fixed_size_list(t):
            out["length"] = t.list_size
        return out
    return {"dtype": _dtype(t)}


def features(schema: pa.Schema) -> list[dict]:
    """The kept set's columns in the `dataset_info.features` form the Hub and `datasets` read."""
    return [{"name": f.name, **_feature(f.type)} for f in schema]


def _kept_schema(run_dir: Path) -> pa.Schema | None:
    files = sorted((run_dir / "kept").glob("*.parquet"))
    return pq.read_schema(files[0]) if files else None


def _languages(stats: dict) -> list[str]:
    langs = stats.get("distributions", {}).get("kept", {}).get("lang", {})
    total = sum(langs.values())
    return sorted(
        code
        for code, n in langs.items()
        if code.isalpha() and code.islower() and 2 <= len(code) <= 3 and n >= LANGUAGE_SHARE * total
    )


def _eval_sets(resolved: dict, rules_dir: Path) -> list[str]:
    """What the decontaminate steps checked: registry names (with source and license) or files,
    and whether hits were removed or only flagged."""
    out: list[str] = []
    for step in resolved.get("steps", []):
        ((name, params),) = step.items()
        if name != "decontaminate":
            continue
        try:
            registry = yaml.safe_load((rules_dir / "eval_sets.yaml").read_text(encoding="utf-8")) or {}
        except (OSError, yaml.YAMLError):
            registry = {}
        wanted = params.get("eval_sets")
        if wanted is None:
            wanted = [n for n, e in registry.items() if isinstance(e, dict) and e.get("default")]
        for entry in wanted:
            src = {"name": entry} if isinstance(entry, str) else entry
            spec = registry.get(src.get("name"), {}) if src.get("name") else {}
            where = src.get("path") or (f"{spec['source']}, {spec.get('license', '')}" if spec.get("source") else "")
            flagged = " (flagged only: `contam_*` columns)" if params.get("mode") == "flag" else ""
            out.append(f"`{src.get('name') or Path(src['path']).name}`" + (f" ({where})" if where else "") + flagged)
    return out


def _funnel(stats: dict) -> list[str]:
    rows = ["| step | rows in | kept | removed | why (rows) |", "|---|---:|---:|---:|---|"]
    for s in stats.get("steps", []):
        why = ", ".join(
            f"{reason} ({n:,})" for reason, n in sorted(s["dropped"].items(), key=lambda kv: (-kv[1], kv[0]))
        )
        added = f" (+{s['rows_added']:,} made by splitting)" if s.get("rows_added") else ""
        rows.append(f"| `{s['step']}` | {s['rows_in']:,} | {s['rows_kept']:,}{added} | {s['rows_dropped']:,} | {why} |")
    return rows


def render(run_dir: Path, resolved: dict, stats: dict, manifest: dict, rules_dir: Path) -> str:
    schema = _kept_schema(run_dir)
    kept = stats["rows_kept"]
    meta: dict = {}
    if resolved.get("output", {}).get("license"):
        meta["license"] = resolved["output"]["license"]
    if _languages(stats):
        meta["language"] = _languages(stats)
    meta.update(
        size_categories=[size_category(kept)],
        task_categories=["text-generation"],
        tags=["curate", "instruction-tuning"],
        configs=[{"config_name": "default", "data_files": [{"split": "train", "path": "kept/*.parquet"}]}],
        dataset_info={
            "features": features(schema) if schema is not None else [],
            "splits": [{"name": "train", "num_examples": kept}],
        },
    )
    name = Path(resolved.get("output", {}).get("path", "dataset")).name
    steps = [next(iter(s)) for s in resolved.get("steps", [])]
    evals = _eval_sets(resolved, rules_dir)
    license_line = (
        f"License: `{meta['license']}` (the pipeline's `output.license`). The rows keep the licenses and "
        "terms of their sources."
        if "license" in meta
        else "No license was given: set `output.license` in the pipeline to the license your sources allow."
    )
    added = f" + {stats['rows_added']:,} made by splitting" if stats.get("rows_added") else ""
    lines = [
        "---",
        yaml.safe_dump(meta, sort_keys=False, allow_unicode=True).rstrip(),
        "---",
        MARKER,
        "",
        f"# {name}",
        "",
        f"{kept:,} conversations for instruction tuning, cleaned with curate {__version__}: "
        f"{stats['rows_in']:,} input records{added} = {kept:,} kept + {stats['rows_rejected']:,} removed "
        f"(each with its reason, in `rejected/`) + {stats['rows_quarantined']:,} that could not be parsed "
        "(in `quarantine/`, with the parse error).",
        "",
        "```python",
        "from datasets import load_dataset",
        "",
        'ds = load_dataset("parquet", data_files="kept/*.parquet", split="train")',
        "```",
        "",
        license_line,
        "",
        "## Pipeline",
        "",
        f"{len(steps)} steps, in order: " + ", ".join(f"`{s}`" for s in steps) + ". Every parameter, defaults "
        "filled in, is in `pipeline.yaml`; `report.html` shows the removed rows with what matched.",
        "",
        "## Rows through the pipeline",
        "",
        *_funnel(stats),
        "",
        "## Eval sets checked",
        "",
        (
            "Conversations containing a question or reference answer of these eval sets were removed, unless "
            "marked flagged: " + ", ".join(evals) + "."
        )
        if evals
        else "None: no `decontaminate` step ran, so this set was not checked against eval sets.",
        "",
        "## Provenance",
        "",
        f"- curate {manifest.get('curate_version', __version__)}, {manifest.get('runner', stats.get('runner', ''))} runner",
        *[
            f"- input `{Path(i['path']).name}` ({i['bytes']:,} bytes, sampled sha256 `{i['sampled_sha256'][:16]}…`)"
            for i in manifest.get("inputs", [])
        ],
        f"- fingerprint `{manifest.get('fingerprint', '')[:16]}`; versions of every library in `manifest.json`",
        "",
    ]
    return "\n".join(lines)


def write_card(run_dir: Path, resolved: dict, stats: dict, manifest: dict, rules_dir: Path) -> str:
    """Write DIR/README.md; return its sha256 (for the manifest: what marks the card as curate's)."""
    text = render(run_dir, resolved, stats, manifest, rules_dir)
    with atomic_path(run_dir / CARD) as tmp:
        tmp.write_text(text, encoding="utf-8")
    return hashlib.sha256(text.encode()).hexdigest()


def card_is_ours(run_dir: Path) -> bool:
    """True when DIR/README.md is absent or is an unedited card curate wrote (see the module doc)."""
    path = run_dir / CARD
    if not path.exists():
        return True
    data = path.read_bytes()
    manifest = run_dir / "manifest.json"
    if manifest.exists():
        try:
            return json.loads(manifest.read_text()).get("card_sha256") == hashlib.sha256(data).hexdigest()
        except (ValueError, AttributeError):
            return False
    return MARKER.encode() in data
