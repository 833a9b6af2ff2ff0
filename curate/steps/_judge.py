"""An LLM judge behind any OpenAI-compatible chat-completions endpoint, for quality_score.

Each (instruction, answer) is rendered with the prompt template (rules/quality_judge.yaml), sent
with temperature 0, and the first match of its score pattern is the score. What keeps it cheap and
safe to rerun:
  - a cache keyed by sha256(model, messages): an SQLite file in the run's work folder (kept by
    --resume) or `cache_dir`, so a resumed or repeated run never pays for an answer twice;
  - `concurrency` requests in flight per worker, an optional requests-per-minute limit;
  - retries with exponential backoff (or the server's Retry-After) on 429, 5xx, timeouts and
    dropped connections; other HTTP errors (401, 404: a wrong key or URL) stop the run with one line;
  - a row whose request still fails, or whose answer has no score, gets no score (null), counted.
Tokens (the endpoint's `usage`) and cost go to the step's counters in stats.json.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import sqlite3
import threading
import time
import urllib.error
import urllib.request
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pyarrow as pa

from curate.errors import UserError
from curate.steps._judge_params import JudgeParams

RETRY_STATUS = {408, 409, 429, 500, 502, 503, 504}


class _Cache:
    def __init__(self, folder: Path):
        folder.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(folder / "judge.sqlite", timeout=60, check_same_thread=False)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute(
            "CREATE TABLE IF NOT EXISTS answers (key TEXT PRIMARY KEY, content TEXT, prompt_tokens INT, completion_tokens INT)"
        )
        self.lock = threading.Lock()

    def get(self, key: str):
        with self.lock:
            return self.db.execute(
                "SELECT content, prompt_tokens, completion_tokens FROM answers WHERE key = ?", (key,)
            ).fetchone()

    def put(self, key: str, content: str, prompt_tokens: int, completion_tokens: int) -> None:
        with self.lock:
            self.db.execute(
                "INSERT OR REPLACE INTO answers VALUES (?, ?, ?, ?)", (key, content, prompt_tokens, completion_tokens)
            )
            self.db.commit()


class _RateLimit:
    def __init__(self, per_minute: float | None):
        self.interval = 60.0 / per_minute if per_minute else 0.0
        self.next = 0.0
        self.lock = threading.Lock()

    def wait(self) -> None:
        if not self.interval:
            return
        with self.lock:
            now = time.monotonic()
            start = max(now, self.next)
            self.next = start + self.interval
        time.sleep(max(0.0, start - now))


class JudgeScorer:
    def __init__(self, p: JudgeParams, ctx):
        self.p = p
        template = ctx.rules_yaml(p.prompt, "the judge's prompt template")
        missing = [k for k in ("user", "score_pattern", "scale") if k not in template]
        if missing:
            raise UserError(f"{Path(ctx.rules_dir) / p.prompt}: the judge's prompt template lacks {', '.join(missing)}")
        self.system, self.user = template.get("system"), template["user"]
        self.pattern = re.compile(template["score_pattern"])
        self.scale = tuple(float(v) for v in template["scale"])
        folder = Path(p.cache_dir) if p.cache_dir else Path(ctx.cache_dir or ".") / "judge"
        self.cache = _Cache(folder)
        self.rate = _RateLimit(p.requests_per_minute)
        self.key = os.environ.get(p.api_key_env)
        self.counters: Counter = Counter()
        self.lock = threading.Lock()

    def take_counters(self) -> Counter:
        out, self.counters = self.counters, Counter()
        p = self.p
        cost = (
            out["judge_prompt_tokens"] * p.usd_per_1k_prompt_tokens
            + out["judge_completion_tokens"] * p.usd_per_1k_completion_tokens
        )
        if cost:
            out["judge_cost_microusd"] = round(cost * 1000)  # per 1k tokens x 1e6 micro-USD / 1e3
        return out

    def _messages(self, instruction: str, response: str) -> list[dict]:
        user = self.user.replace("{instruction}", instruction).replace("{response}", response)
        return ([{"role": "system", "content": self.system}] if self.system else []) + [
            {"role": "user", "content": user}
        ]

    def _count(self, **kw) -> None:
        with self.lock:
            self.counters.update(kw)

    def _post(self, messages: list[dict]) -> dict | None:
        p = self.p
        body = json.dumps(
            {"model": p.model, "messages": messages, "temperature": 0, "max_tokens": p.max_tokens}
        ).encode()
        headers = {"Content-Type": "application/json"}
        if self.key:
            headers["Authorization"] = f"Bearer {self.key}"
        url = p.url.rstrip("/") + "/chat/completions"
        for attempt in range(p.max_retries + 1):
            self.rate.wait()
            wait = p.backoff_seconds * 2**attempt
            try:
                with urllib.request.urlopen(urllib.request.Request(url, body, headers), timeout=p.timeout_seconds) as r:
                    self._count(judge_requests=1)
                    return json.loads(r.read())
            except urllib.error.HTTPError as e:
                self._count(judge_requests=1)
                if e.code not in RETRY_STATUS:
                    raise UserError(
                        f"quality_score: the judge at {url} answered HTTP {e.code} ({e.reason}); check url, model and {p.api_key_env}"
                    ) from None
                retry_after = e.headers.get("Retry-After") if e.headers else None
                if retry_after and retry_after.replace(".", "", 1).isdigit():
                    wait = float(retry_after)
            except (urllib.error.URLError, TimeoutError, ConnectionError, json.JSONDecodeError):
                pass
            if attempt < p.max_retries:
                self._count(judge_retries=1)
                time.sleep(wait)
        return None

    def _one(self, instruction: str, response: str) -> float:
        messages = self._messages(instruction, response)
        key = hashlib.sha256(json.dumps([self.p.model, messages], ensure_ascii=False).encode()).hexdigest()
        hit = self.cache.get(key)
        if hit is not None:
            self._count(judge_cache_hits=1)
            content = hit[0]
        else:
            answer = self._post(messages)
            try:
                content = answer["choices"][0]["message"]["content"] or ""
            except (TypeError, KeyError, IndexError):
                self._count(judge_failed=1)
                return np.nan
            usage = answer.get("usage") or {}
            pt, ct = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            self._count(judge_prompt_tokens=pt, judge_completion_tokens=ct)
            self.cache.put(key, content, pt, ct)
        m = self.pattern.search(content)
        value = float(m.group(1)) if m else np.nan
        if not (self.scale[0] <= value <= self.scale[1]):
            self._count(judge_unparsed=1)
            return np.nan
        return value

    def score(self, instructions: pa.Array, responses: pa.Array) -> np.ndarray:
        pairs = list(zip(instructions.to_pylist(), responses.to_pylist()))
        with ThreadPoolExecutor(self.p.concurrency) as pool:
            return np.array(list(pool.map(lambda ir: self._one(*ir), pairs)), np.float64)
