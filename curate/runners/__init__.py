"""Runners schedule the engine's pieces (shards, partitions); they hold no step logic."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Protocol

from curate.engine import RunPlan


class Runner(Protocol):
    name: str

    def run_shards(self, plan: RunPlan, segment: int, shards: list[int], label: str, actors: bool) -> list[dict]:
        """Run one segment on these shards; return each shard's stats."""

    def resolve_partitions(self, plan: RunPlan, step: int, partitions: list[int], label: str) -> None:
        """Resolve a global step's summaries, one partition per task."""

    def close(self) -> None: ...


def make_runner(kind: str, address: str | None = None, num_cpus: int | None = None, progress: bool = False) -> Runner:
    if kind == "local":
        from curate.runners.local import LocalRunner

        return LocalRunner(progress=progress)
    if address or os.environ.get("RAY_ADDRESS"):
        _use_token_if_given()
    from curate.runners.ray import RayRunner

    return RayRunner(address=address, num_cpus=num_cpus, progress=progress)


def _use_token_if_given() -> None:
    """Ray (2.5x) clusters may require a token, and a driver sends one only in RAY_AUTH_MODE=token,
    which Ray reads when it is imported. A user who gave a token (RAY_AUTH_TOKEN, RAY_AUTH_TOKEN_PATH
    or ~/.ray/auth_token) means to use it: turn the mode on for them. A cluster without
    authentication accepts a driver that sends a token, so this never locks anyone out."""
    if "RAY_AUTH_MODE" in os.environ:
        return
    token_file = os.environ.get("RAY_AUTH_TOKEN_PATH") or Path.home() / ".ray" / "auth_token"
    if os.environ.get("RAY_AUTH_TOKEN") or Path(token_file).is_file():
        os.environ["RAY_AUTH_MODE"] = "token"
