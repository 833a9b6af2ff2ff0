"""`curate models download`: fetch model weights on a connected machine, to where a pipeline's
config expects them. Nothing in curate downloads at run time; steps load from local paths only."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from curate.errors import UserError

# name -> (checkpoint URL, Hugging Face base model for config + tokenizer)
DETOXIFY = {
    "detoxify-original": (
        "https://github.com/unitaryai/detoxify/releases/download/v0.1-alpha/toxic_original-c1212f89.ckpt",
        "bert-base-uncased",
    ),
    "detoxify-unbiased": (
        "https://github.com/unitaryai/detoxify/releases/download/v0.3-alpha/toxic_debiased-c7548aa0.ckpt",
        "roberta-base",
    ),
    "detoxify-multilingual": (
        "https://github.com/unitaryai/detoxify/releases/download/v0.4-alpha/multilingual_debiased-0b549669.ckpt",
        "xlm-roberta-base",
    ),
}


def default_dir() -> Path:
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "curate" / "models"


def download(name: str, dest: Path | None = None) -> str:
    """Download `name` into dest/name/; return the YAML that points the toxicity step at it."""
    if name not in DETOXIFY:
        raise UserError(f"unknown model '{name}'; known: {', '.join(DETOXIFY)}")
    url, base = DETOXIFY[name]
    target = (dest or default_dir()) / name
    try:
        socket.create_connection(("github.com", 443), timeout=5).close()
    except OSError as e:
        raise UserError(
            f"cannot reach github.com to download {name} ({e}); run this on a machine with internet access "
            f"and copy {target} here"
        ) from None
    import torch
    import transformers

    target.mkdir(parents=True, exist_ok=True)
    ckpt = target / "checkpoint.ckpt"
    try:
        torch.hub.download_url_to_file(url, str(ckpt), progress=True)
        transformers.AutoConfig.from_pretrained(base).save_pretrained(target / "hf")
        transformers.AutoTokenizer.from_pretrained(base).save_pretrained(target / "hf")
    except Exception as e:  # noqa: BLE001 -- any network or hub failure is the user's environment, not a bug
        raise UserError(f"downloading {name} failed: {str(e).splitlines()[0][:200]}") from None
    return f"- toxicity: {{checkpoint: {ckpt}, hf_config: {target / 'hf'}}}"
