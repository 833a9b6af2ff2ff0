"""For people writing steps: canonical rows from plain records (as the readers make them), one
step applied to them the way a run applies it, in-process, without Ray, and real model files built
offline (a tokenizer.json, a detoxify checkpoint) for tests that load them as a run does. docs/writing_a_step.md."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pyarrow as pa

from curate.readers import row_key, rows_to_table
from curate.records import FieldNames, detect_format, to_row
from curate.resources import RULES_DIR
from curate.steps.base import GlobalStep, MapStep, StepContext, apply_decisions, apply_map_step


def table_from_records(records: list[dict], fmt: str = "auto") -> pa.Table:
    """ShareGPT, OpenAI-messages or Alpaca records -> the table a step receives (ids r0, r1, ...
    unless a record has its own)."""
    names = FieldNames()
    rows = []
    for i, record in enumerate(records):
        row = to_row(record, detect_format(record, names) if fmt == "auto" else fmt, names, f"r{i}")
        rows.append({**row, "source_file": "test", "source_index": i, "_curate_key": row_key(0, i)})
    return rows_to_table(rows)


def apply_step(step_cls: type, table: pa.Table, rules_dir: Path | None = None, **params) -> pa.Table:
    """`table` after the step: every row still there, the rejected ones with `_curate_drop_reason`
    set, the step's score columns added. A global step runs its summarize, resolve and finalize here."""
    step = step_cls(step_cls.Params(**params), StepContext(rules_dir=Path(rules_dir or RULES_DIR)))
    step.setup()
    if isinstance(step, MapStep):
        return apply_map_step(step, table)[0]
    assert isinstance(step, GlobalStep)
    summary = step.summarize(table)
    parts = summary.column("_partition").to_numpy() if summary.num_rows else []
    partials = [
        step.resolve_partition(summary.filter(pa.array(parts == p)) if summary.num_rows else summary)
        for p in range(step.num_partitions())
    ]
    return apply_decisions(step, table, step.finalize(partials))[0]


def byte_level_tokenizer(path: Path, texts: Iterable[str], vocab_size: int, added_tokens: Sequence[str] = ()) -> Path:
    """A real byte-level BPE tokenizer.json (GPT-2 style) trained on `texts`, nothing downloaded,
    with `added_tokens` (a chat template's control tokens) kept whole; saved at `path`."""
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    tok.train_from_iterator(texts, trainer)
    if added_tokens:
        tok.add_special_tokens([AddedToken(s, normalized=False) for s in added_tokens])
    tok.save(str(path))
    return Path(path)


def save_detoxify_checkpoint(model, tokenizer, folder: Path, classes: Sequence[str], name: str = "model.ckpt") -> Path:
    """A BertForSequenceClassification saved in detoxify's own checkpoint format (what `toxicity:
    {checkpoint, hf_config: folder}` loads): the config and tokenizer in `folder`, the checkpoint at
    folder / name."""
    import torch

    folder = Path(folder)
    model.config.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    arch = {
        "model_type": str(folder),
        "model_name": "BertForSequenceClassification",
        "tokenizer_name": "BertTokenizer",
        "num_classes": len(classes),
    }
    config = {"arch": {"args": arch}, "dataset": {"args": {"classes": list(classes)}}}
    torch.save({"config": config, "state_dict": model.state_dict()}, folder / name)
    return folder / name
