"""toxicity: score every turn of the chosen roles, keep the row's maximum per label, reject rows at
or above a label's threshold (or only annotate them).

Backends:
  fasttext  the default when no detoxify weights are given: a classifier curate ships
            (curate/models/toxicity_fasttext.ftz, with its lexicon and calibration in the .json beside
            it), tens of thousands of texts/s on one core; the score is calibrated (Platt).
  wordlist  LDNOOBW's English list (rules/toxicity_words_en.txt): a row scores 1.0 if it uses a word.
  detoxify  Detoxify's Jigsaw models from a local checkpoint and Hugging Face config folder (no
            download at run time; `curate models download` fetches them on a connected machine).
            Loaded once per Ray actor; texts sorted by length and batched; long turns scored in
            overlapping windows of the model's length, max over windows; on CPUs with native bf16 the
            matrix products run in bf16 (about 3x fp32; benchmarks/toxicity/precision.py measures
            what that changes), int8 on request.
A fallback is never silent: asking for detoxify without weights under `backend: auto` scores with
fasttext and says so (`fallback:detoxify_weights_missing`), which the report shows at the top.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
from pydantic import Field

from curate.errors import UserError
from curate.registry import register
from curate.resources import MODELS_DIR as MODELS
from curate.schema import Part, parts_param, turns_of
from curate.steps._fasttext import open_predictor
from curate.steps._memo import TextMemo
from curate.steps._toxicity_text import calibrate, lexicon_pattern, prepare, toxic_probability
from curate.steps.base import MapStep, Params, Resources, StepOutput, read_rules_lines, set_column

DETOXIFY_LABELS = ("toxicity", "severe_toxicity", "obscene", "threat", "insult", "identity_attack", "sexual_explicit")
DOWNLOAD_HINT = "run `curate models download detoxify-original` on a machine with internet access, or set checkpoint:"


class ToxicityParams(Params):
    backend: Literal["auto", "fasttext", "wordlist", "detoxify"] = Field(
        "auto", description="auto: detoxify when checkpoint is set and exists, else fasttext (said in stats)"
    )
    checkpoint: str | None = Field(None, description="detoxify checkpoint file (.ckpt) on local disk")
    hf_config: str | None = Field(None, description="local Hugging Face config + tokenizer folder for the checkpoint")
    thresholds: dict[str, float] = Field({}, description="label -> threshold (rules/toxicity.yaml gives the defaults)")
    parts: list[Part] = parts_param(
        ["user", "assistant", "reasoning"],
        "what is scored (a refusal to a toxic request may be worth keeping: parts: [assistant])",
    )
    mode: Literal["drop", "flag"] = Field("drop", description="drop rows over a threshold, or only annotate")
    batch_size: int = Field(
        8,
        ge=1,
        le=4096,
        description="detoxify: texts per forward pass (sorted by length; 8 measured fastest on one CPU thread)",
    )
    torch_threads: int = Field(1, ge=1, le=256, description="detoxify: torch threads per actor")
    device: Literal["cpu", "cuda"] = Field("cpu", description="detoxify: cuda runs fp16 on a GPU")
    gpus: float = Field(
        1.0, gt=0, le=8, description="detoxify on cuda: GPUs per worker; a fraction (0.5) lets workers share one GPU"
    )
    precision: Literal["auto", "fp32", "bf16", "int8"] = Field(
        "auto",
        description="detoxify on CPU: auto = bf16 where the CPU computes it natively (avx512_bf16/AMX), else fp32; "
        "int8 = dynamic quantisation of the linear layers",
    )
    max_length: int = Field(
        256, ge=16, le=512, description="detoxify: tokens per window; longer turns are scored in windows"
    )


class _FastText:
    name = "fasttext"

    def __init__(self):
        path = MODELS / "toxicity_fasttext.ftz"
        meta_path = path.with_suffix(".json")
        if not path.exists() or not meta_path.exists():
            raise UserError(
                f"toxicity: the offline model is missing: {path if not path.exists() else meta_path} (reinstall curate)"
            )
        self.model = open_predictor(path)
        # the model's sidecar: the word list its `__lexicon__` feature was trained with and the Platt
        # map that turns its over-confident softmax into a calibrated score (train_offline.py)
        meta = json.loads(meta_path.read_text(encoding="utf-8"))
        self.lexicon = lexicon_pattern(meta["lexicon"])
        self.calibration = (meta["calibration"]["a"], meta["calibration"]["b"])
        prepare(
            pa.array(["load the compiled kernel"]), self.lexicon
        )  # numba's one-off load lands in setup, once per worker

    def score(self, texts: pa.Array) -> dict[str, np.ndarray]:
        raw = toxic_probability(self.model, prepare(texts, self.lexicon))
        return {"toxicity": calibrate(raw, *self.calibration).astype(np.float32)}


class _WordList:
    name = "wordlist"

    def __init__(self, rules_dir: Path):
        words = [w.lower() for w in read_rules_lines(rules_dir / "toxicity_words_en.txt", "the toxicity word list")]
        self.pattern = r"(?i)\b(" + "|".join(re.escape(w) for w in sorted(words, key=len, reverse=True)) + r")\b"

    def score(self, texts: pa.Array) -> dict[str, np.ndarray]:
        hit = pc.match_substring_regex(texts, self.pattern).fill_null(False).to_numpy(zero_copy_only=False)
        return {"toxicity": hit.astype(np.float32)}


def native_bf16() -> bool:
    """True when the CPU has bf16 arithmetic (x86 avx512_bf16 or AMX, Arm bf16); elsewhere bf16 is
    emulated and slower than fp32."""
    try:
        flags = Path("/proc/cpuinfo").read_text().split()
    except OSError:
        return False
    return any(f in flags for f in ("avx512_bf16", "amx_bf16", "bf16"))


class _Detoxify:
    name = "detoxify"

    def __init__(self, p: ToxicityParams):
        import torch
        import transformers
        from detoxify.detoxify import get_model_and_tokenizer

        transformers.utils.logging.disable_progress_bar()  # "Loading weights" bars, once per actor

        ckpt = Path(p.checkpoint)
        if not ckpt.is_file():
            raise UserError(f"toxicity: detoxify checkpoint not found: {ckpt}; {DOWNLOAD_HINT}")
        if not p.hf_config or not Path(p.hf_config).is_dir():
            raise UserError(
                f"toxicity: hf_config must be a local folder with the model's config and tokenizer (got {p.hf_config}); {DOWNLOAD_HINT}"
            )
        torch.set_num_threads(p.torch_threads)
        loaded = torch.load(ckpt, map_location="cpu", weights_only=False)
        if "config" not in loaded or "state_dict" not in loaded:
            raise UserError(f"toxicity: {ckpt} is not a detoxify checkpoint (needs 'config' and 'state_dict')")
        rename = {"toxic": "toxicity", "identity_hate": "identity_attack", "severe_toxic": "severe_toxicity"}
        self.labels = [rename.get(c, c) for c in loaded["config"]["dataset"]["args"]["classes"]]
        args = dict(loaded["config"]["arch"]["args"])
        # detoxify reads the base config from model_type (a hub name); point it at the local folder
        args["model_type"] = str(p.hf_config)
        model, self.tokenizer = get_model_and_tokenizer(
            **args, state_dict=loaded["state_dict"], huggingface_config_path=str(p.hf_config)
        )
        model.eval()
        if p.device == "cuda":
            model = model.half().to("cuda")
            self.precision = "fp16"
        else:
            self.precision = p.precision if p.precision != "auto" else ("bf16" if native_bf16() else "fp32")
        if self.precision == "int8":
            model = torch.quantization.quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)
        self.model, self.p, self.torch = model, p, torch

    def score(self, texts: pa.Array) -> dict[str, np.ndarray]:
        torch, p = self.torch, self.p
        values = texts.to_pylist()
        out = np.zeros((len(values), len(self.labels)), np.float32)
        order = np.argsort([len(v) for v in values], kind="stable")  # similar lengths share a batch: less padding
        for start in range(0, len(order), p.batch_size):
            idx = order[start : start + p.batch_size]
            enc = self.tokenizer(
                [values[i] or "" for i in idx],
                truncation=True,
                max_length=p.max_length,
                padding=True,
                return_overflowing_tokens=True,
                stride=p.max_length // 8,
                return_tensors="pt",
            )
            owner = enc.pop("overflow_to_sample_mapping").numpy()
            enc = {k: v.to(p.device) for k, v in enc.items()}
            # autocast keeps layer norms and softmax in fp32; only matrix products drop to bf16
            with torch.inference_mode(), torch.autocast("cpu", torch.bfloat16, enabled=self.precision == "bf16"):
                probs = torch.sigmoid(self.model(**enc)[0]).float().cpu().numpy()
            np.maximum.at(out, idx[owner], probs)  # max over a turn's windows
        return {label: out[:, j] for j, label in enumerate(self.labels)}


@register
class Toxicity(MapStep):
    """Toxicity per turn (offline fastText by default, LDNOOBW word list, or detoxify), max per row."""

    name = "toxicity"
    Params = ToxicityParams

    def __init__(self, params, ctx):
        super().__init__(params, ctx)
        self.backend = None
        self._thresholds: dict[str, float] | None = None
        self.fallback: str | None = None
        self.kind = self._choose()
        self._memo = TextMemo(1)

    def resources(self) -> Resources:
        """detoxify holds a transformer (an actor, loaded once) and its torch threads; on cuda, `gpus`
        of a GPU (1: one actor per GPU). The other backends are light: the default task."""
        p = self.params
        if self.kind != "detoxify":
            return self.default_resources
        return Resources(cpus=p.torch_threads, gpus=p.gpus if p.device == "cuda" else 0.0, memory_gb=1.0, model=True)

    def _choose(self) -> str:
        p = self.params
        if p.backend != "auto":
            return p.backend
        if p.checkpoint and Path(p.checkpoint).is_file():
            return "detoxify"
        if p.checkpoint:
            self.fallback = "detoxify_weights_missing"
        return "fasttext"

    def output_columns(self) -> dict[str, pa.DataType]:
        labels = DETOXIFY_LABELS if self.kind == "detoxify" else ("toxicity",)
        return {**{f"tox_{label}": pa.float32() for label in labels}, "tox_max": pa.float32()}

    def thresholds(self) -> dict[str, float]:
        """Label -> threshold: rules/toxicity.yaml for this backend, then the params (read once)."""
        if self._thresholds is None:
            file = self.ctx.rules_yaml("toxicity.yaml", "the toxicity thresholds")
            self._thresholds = {**file.get(self.kind, {}), **self.params.thresholds}
        return self._thresholds

    def setup(self) -> None:
        if self.backend is None:
            self.backend = {
                "fasttext": _FastText,
                "wordlist": lambda: _WordList(Path(self.ctx.rules_dir)),
                "detoxify": lambda: _Detoxify(self.params),
            }[self.kind]()

    def _score(self, texts: pa.Array) -> dict[str, np.ndarray]:
        """Label -> score per text. fasttext and wordlist score each text on its own, so the memo
        serves repeated texts; detoxify pads each batch to its longest text, which may move a
        score in its last bits, so it always scores the batch it is given."""
        if self.kind == "detoxify":
            return self.backend.score(texts)
        tox = self._memo.resolve(texts, lambda i: self.backend.score(texts.take(pa.array(i, pa.int64())))["toxicity"])
        return {"toxicity": tox[:, 0].astype(np.float32)}

    def process(self, table: pa.Table) -> StepOutput:
        self.setup()
        n = table.num_rows
        t = turns_of(table, self.params.parts)
        sel = np.isin(t.role, self.params.parts)
        rows = t.row[sel]
        texts = t.text.filter(pa.array(sel))
        scores = self._score(texts) if len(texts) else {}
        counters = Counter({f"backend:{self.kind}": n})
        if self.fallback:
            counters[f"fallback:{self.fallback}"] = n
        if self.kind == "detoxify":
            counters[f"precision:{self.backend.precision}"] = n
        per_row = {}
        for label in (c.removeprefix("tox_") for c in self.output_columns() if c != "tox_max"):
            col = np.full(n, np.nan, np.float32)
            if label in scores:
                col = np.zeros(n, np.float32)
                np.maximum.at(col, rows, scores[label])
                scored = np.zeros(n, bool)
                scored[rows] = True
                col[~scored] = np.nan  # no turn of the chosen roles: no score
            per_row[label] = col
        worst_turn = {}
        limits = self.thresholds()
        reason, detail, turn = [None] * n, [None] * n, [None] * n
        for label, limit in limits.items():
            if label not in scores or label not in per_row:
                continue
            over = np.nonzero(per_row[label] >= limit)[0]
            counters[f"over:{label}"] += len(over)
            for r in over:
                if reason[r] is None:
                    which = np.nonzero((rows == r) & (scores[label] >= limit))[0]
                    worst_turn[r] = int(t.position[np.nonzero(sel)[0][which[np.argmax(scores[label][which])]]])
                    if self.params.mode == "drop":
                        reason[r] = f"toxic_{label}"
                        detail[r] = (
                            f"{label} {per_row[label][r]:.2f} >= {limit:g} ({self.kind}) in turn {worst_turn[r]}"
                        )
                        turn[r] = worst_turn[r]
        out = table
        stacked = np.vstack([v for v in per_row.values()]) if per_row else np.zeros((1, n), np.float32)
        for label, col in per_row.items():
            out = set_column(out, f"tox_{label}", pa.array(col, pa.float32(), from_pandas=True))
        tox_max = np.nanmax(np.where(np.isnan(stacked), -1, stacked), axis=0) if n else np.zeros(0)
        out = set_column(
            out, "tox_max", pa.array(np.where(tox_max < 0, np.nan, tox_max).astype(np.float32), from_pandas=True)
        )
        return StepOutput(out, reason=reason, detail=detail, turn=turn, counters=counters)
