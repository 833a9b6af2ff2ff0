"""Scorers that run a transformers model from a local folder (no download: local_files_only).

  perplexity  PPL(answer | instruction) of a causal LM: how predictable the answer is (lower is
              more fluent; Superfiltering showed a GPT-2-size model ranks data like large ones).
  ifd         Cherry LLM's Instruction-Following Difficulty: PPL(answer | instruction) / PPL(answer).
              Near or above 1: the instruction does not help predict the answer (noise); the
              paper keeps the highest IFD below 1.
  classifier  a sequence classifier / reward model on (instruction, answer): one logit -> the logit
              (a reward), several labels -> the expected label index under the softmax (Deita's
              quality and complexity scorers rate 1..6 this way).
Texts are sorted by length and batched (less padding); inputs longer than max_length keep the
instruction's end and the answer's start.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa

from curate.errors import UserError


def _load(kind: str, path: str | None, device: str, threads: int):
    import torch
    import transformers

    if not path or not Path(path).is_dir():
        raise UserError(
            f"quality_score: scorer {kind} needs model_path: a local folder with a transformers model and tokenizer (got {path})"
        )
    transformers.utils.logging.disable_progress_bar()
    torch.set_num_threads(threads)
    auto = (
        transformers.AutoModelForSequenceClassification if kind == "classifier" else transformers.AutoModelForCausalLM
    )
    try:
        tokenizer = transformers.AutoTokenizer.from_pretrained(path, local_files_only=True)
        model = auto.from_pretrained(path, local_files_only=True)
    except (OSError, ValueError) as e:
        raise UserError(
            f"quality_score: cannot load {kind} model from {path}: {str(e).splitlines()[0][:200]}"
        ) from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
        model.config.pad_token_id = tokenizer.pad_token_id
    return torch, tokenizer, model.eval().to(device)


class CausalLMScorer:
    """perplexity or ifd with a causal LM."""

    def __init__(
        self,
        kind: str,
        path: str | None,
        device: str = "cpu",
        batch_size: int = 8,
        max_length: int = 512,
        threads: int = 1,
    ):
        self.kind, self.device, self.batch_size, self.max_length = kind, device, batch_size, max_length
        self.torch, self.tokenizer, self.model = _load(kind, path, device, threads)

    def _answer_nll(self, prompts: list[list[int]], answers: list[list[int]]) -> np.ndarray:
        """Mean negative log-likelihood of each answer's tokens after its prompt's."""
        torch = self.torch
        out = np.full(len(answers), np.nan)
        order = np.argsort([len(p) + len(a) for p, a in zip(prompts, answers)], kind="stable")
        pad = self.tokenizer.pad_token_id
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            seqs, first = [], []
            for i in idx:
                a = answers[i][: self.max_length - 1]
                p = prompts[i][-(self.max_length - len(a)) :] if self.max_length > len(a) else []
                seqs.append(p + a)
                first.append(len(p))
            width = max(len(s) for s in seqs)
            ids = torch.full((len(seqs), width), pad, dtype=torch.long)
            mask = torch.zeros((len(seqs), width), dtype=torch.long)
            for j, s in enumerate(seqs):
                ids[j, : len(s)] = torch.tensor(s)
                mask[j, : len(s)] = 1
            with torch.inference_mode():
                logits = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device)).logits.float()
            logp = torch.log_softmax(logits[:, :-1], dim=-1)
            token_lp = logp.gather(2, ids[:, 1:].unsqueeze(-1).to(self.device)).squeeze(-1).cpu().numpy()
            for j, i in enumerate(idx):
                # token t is predicted at position t-1; the first token has no prediction
                lo, hi = max(first[j], 1), len(seqs[j])
                if hi > lo:
                    out[i] = -token_lp[j, lo - 1 : hi - 1].mean()
        return out

    def score(self, instructions: pa.Array, responses: pa.Array) -> np.ndarray:
        tok = self.tokenizer
        answers = tok(responses.to_pylist(), add_special_tokens=False)["input_ids"]
        prompts = tok([s + "\n" for s in instructions.to_pylist()], add_special_tokens=False)["input_ids"]
        conditioned = self._answer_nll(prompts, answers)
        if self.kind == "perplexity":
            return np.exp(conditioned)
        bos = [tok.bos_token_id] if tok.bos_token_id is not None else []
        alone = self._answer_nll([bos] * len(answers), answers)
        return np.exp(conditioned - alone)


class ClassifierScorer:
    """A sequence classifier or reward model on (instruction, answer) pairs."""

    def __init__(
        self, path: str | None, device: str = "cpu", batch_size: int = 8, max_length: int = 512, threads: int = 1
    ):
        self.device, self.batch_size, self.max_length = device, batch_size, max_length
        self.torch, self.tokenizer, self.model = _load("classifier", path, device, threads)

    def score(self, instructions: pa.Array, responses: pa.Array) -> np.ndarray:
        torch = self.torch
        instr, resp = instructions.to_pylist(), responses.to_pylist()
        out = np.zeros(len(resp))
        order = np.argsort([len(a) + len(b) for a, b in zip(instr, resp)], kind="stable")
        for start in range(0, len(order), self.batch_size):
            idx = order[start : start + self.batch_size]
            enc = self.tokenizer(
                [instr[i] for i in idx],
                [resp[i] for i in idx],
                truncation=True,
                max_length=self.max_length,
                padding=True,
                return_tensors="pt",
            )
            with torch.inference_mode():
                logits = self.model(**{k: v.to(self.device) for k, v in enc.items()}).logits.float().cpu()
            if logits.shape[1] == 1:
                values = logits[:, 0].numpy()
            else:
                values = (torch.softmax(logits, dim=-1) * torch.arange(logits.shape[1])).sum(-1).numpy()
            out[idx] = values
        return out
