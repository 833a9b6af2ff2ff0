"""The LLM judge's parameters (apart from the client, so validating a config imports no HTTP code)."""

from __future__ import annotations

from pydantic import Field

from curate.steps.base import Params


class JudgeParams(Params):
    url: str = Field(
        "http://127.0.0.1:8000/v1",
        description="OpenAI-compatible base URL (vLLM, llama.cpp server, a hosted API); POST {url}/chat/completions",
    )
    model: str = Field("default", description="the model name sent to the endpoint (part of the cache key)")
    api_key_env: str = Field(
        "OPENAI_API_KEY", description="environment variable holding the API key (never in the YAML); unset: no key sent"
    )
    prompt: str = Field(
        "quality_judge.yaml",
        description="prompt template in the rules folder: system, user with {instruction} and {response}, score_pattern, scale",
    )
    concurrency: int = Field(8, ge=1, le=1024, description="requests in flight per worker")
    requests_per_minute: float | None = Field(None, gt=0, description="rate limit per worker (none: no limit)")
    max_retries: int = Field(
        4, ge=0, le=20, description="retries of a request that failed with 429, 5xx, a timeout or a dropped connection"
    )
    backoff_seconds: float = Field(
        1.0, ge=0.0, le=600.0, description="first retry's wait, doubled each retry (or the server's Retry-After)"
    )
    timeout_seconds: float = Field(60.0, gt=0, le=3600, description="per request")
    max_tokens: int = Field(32, ge=1, le=4096, description="tokens the judge may answer with")
    usd_per_1k_prompt_tokens: float = Field(0.0, ge=0.0, description="price, for the cost in stats.json")
    usd_per_1k_completion_tokens: float = Field(0.0, ge=0.0, description="price, for the cost in stats.json")
    cache_dir: str | None = Field(
        None,
        description="where answers are cached by (model, prompt); default: the run's work folder, which --resume keeps",
    )
