#!/usr/bin/env bash
# The detoxify path on a GPU, through the Ray runner (issue 20): what Ray granted each actor, and texts/s.
#
#   bash benchmarks/gpu_check.sh            (from the repository root, on a machine with an NVIDIA GPU; <= 5 min)
#
# Uses the machine's torch when it sees CUDA, else tries to install a CUDA torch; builds a random-weight
# BERT-base checkpoint in detoxify's format (as benchmarks/toxicity does: no download of real weights),
# and runs `toxicity` with device: cuda on a few thousand ShareGPT conversations with runner: ray.
set -uo pipefail
cd "$(dirname "$0")/.."
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}" RAY_AUTH_MODE="${RAY_AUTH_MODE:-disabled}"
PY="${PYTHON:-python3}"
echo "== GPU"; nvidia-smi --query-gpu=index,name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi: not found"

# DEVICE=cpu SMALL=1 COPIES=1 bash benchmarks/gpu_check.sh: a dry run of the same path on CPUs with a
# 2-layer model (what was run here, without a GPU).
export DEVICE="${DEVICE:-cuda}"
if [ "$DEVICE" = cuda ] && ! "$PY" -c "import torch, sys; sys.exit(0 if torch.cuda.is_available() else 1)" 2>/dev/null; then
  echo "== torch: $("$PY" -c 'import torch; print(torch.__version__, "cuda", torch.version.cuda)' 2>&1 | tail -1) does not see a GPU; installing a CUDA torch"
  "$PY" -m pip install -q "torch>=2.2" --index-url https://download.pytorch.org/whl/cu124 || "$PY" -m pip install -q "torch>=2.2"
fi
missing=$("$PY" - <<'PY'
import importlib.util
need = {"ray": "ray[default]", "pyarrow": "pyarrow", "pydantic": "pydantic", "typer": "typer", "rich": "rich", "yaml": "PyYAML",
        "detoxify": "detoxify", "transformers": "transformers", "numba": "numba", "scipy": "scipy", "bs4": "beautifulsoup4",
        "fasttext": "fasttext-numpy2", "datasketch": "datasketch", "tokenizers": "tokenizers", "pandas": "pandas"}
print(" ".join(pkg for mod, pkg in need.items() if importlib.util.find_spec(mod) is None))
PY
)
if [ -n "$missing" ]; then echo "== installing: $missing"; "$PY" -m pip install -q $missing; fi

"$PY" - <<'PY'
import json, logging, os, sys, tempfile, time
from pathlib import Path

import ray
import torch
import transformers

print(f"== torch {torch.__version__}, cuda {torch.version.cuda}, {torch.cuda.device_count()} GPU(s):",
      [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())])
device = os.environ["DEVICE"]
if device == "cuda" and not torch.cuda.is_available():
    sys.exit("no CUDA device visible to torch: nothing to check")

tmp = Path(tempfile.mkdtemp(prefix="curate-gpu-"))
sample = [json.loads(line) for line in Path("sample_data/sharegpt_sample.jsonl").read_text().splitlines() if line.strip()]
rows = [dict(r, id=f"{r.get('id', i)}-{k}") for k in range(int(os.environ.get("COPIES", 12))) for i, r in enumerate(sample)]
(tmp / "in.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
texts = [m.get("value") for r in rows for m in (r.get("conversations") or []) if isinstance(m, dict)]
turns = sum(1 for r in rows for m in (r.get("conversations") or []) if isinstance(m, dict) and m.get("from") in ("human", "gpt", "user", "assistant"))

# A BERT-base with random weights, saved as a detoxify checkpoint (benchmarks/toxicity/precision.py's format).
words = sorted({w for t in texts if isinstance(t, str) for w in t.lower().split()})[:30000]
(tmp / "vocab.txt").write_text("\n".join(["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"] + words) + "\n", encoding="utf-8")
classes = ["toxic", "severe_toxic", "obscene", "threat", "insult", "identity_hate"]
torch.manual_seed(0)
size = {"hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 128} if os.environ.get("SMALL") else {}
model = transformers.BertForSequenceClassification(transformers.BertConfig(vocab_size=len(words) + 5, num_labels=len(classes), **size))
model.config.save_pretrained(tmp)
transformers.BertTokenizer(str(tmp / "vocab.txt")).save_pretrained(tmp)
torch.save({"config": {"arch": {"args": {"model_type": str(tmp), "model_name": "BertForSequenceClassification",
                                         "tokenizer_name": "BertTokenizer", "num_classes": len(classes)}},
                       "dataset": {"args": {"classes": classes}}}, "state_dict": model.state_dict()}, tmp / "model.ckpt")

gpus = torch.cuda.device_count() if device == "cuda" else 0
pipeline = tmp / "gpu.yaml"
pipeline.write_text(f"""\
input: {{path: {tmp / 'in.jsonl'}, shard_rows: 500}}
output: {{path: {tmp / 'out'}}}
runner: {{type: ray}}
steps:
  - toxicity: {{backend: detoxify, checkpoint: {tmp / 'model.ckpt'}, hf_config: {tmp}, device: {device}, batch_size: 64, mode: flag}}
""")
# Our own Ray, so its state is still there after the run to show what each actor was granted.
ray.init(address="local", num_cpus=min(os.cpu_count() or 1, 8), num_gpus=gpus, include_dashboard=True,  # the state API needs it
         logging_level=logging.WARNING, log_to_driver=False)
print("== Ray cluster resources:", {k: v for k, v in ray.cluster_resources().items() if not k.startswith("node:")})
from curate.config import load_pipeline
from curate.run import execute

start = time.perf_counter()
result = execute(load_pipeline(str(pipeline)), log=print)
wall = time.perf_counter() - start
stats = json.loads((result.run_dir / "stats.json").read_text())
from ray.util.state import list_actors

actors = list_actors(address=ray.get_runtime_context().gcs_address, filters=[("class_name", "=", "_Worker")], detail=True)
print(f"== {len(actors)} actor(s); resources Ray was asked for and granted per actor:")
for a in actors:
    print("  ", a.actor_id[:12], "required:", a.required_resources, "state:", a.state, "pid:", a.pid)
step = next(s for s in stats["steps"] if s["step"] == "toxicity")
print(f"== toxicity on {device}: {stats['rows_in']:,} conversations, {turns:,} turns scored; counters {step.get('counters')}")
print(f"== {turns / step['seconds']:,.0f} texts/s in the step (sum of actor time {step['seconds']:.1f} s); "
      f"end to end {wall:.1f} s ({turns / wall:,.0f} texts/s incl. Ray start-up and model load); runner timing {stats['runner_timing']}")
ok = stats["rows_in"] == stats["rows_kept"] + stats["rows_rejected"] + stats["rows_quarantined"] - stats["rows_added"]
if device == "cuda":
    ok = ok and step.get("counters", {}).get("precision:fp16") and all(a.required_resources.get("GPU") == 1 for a in actors)
print("== GPU CHECK", "PASSED" if ok else "FAILED")
ray.shutdown()
sys.exit(0 if ok else 1)
PY
