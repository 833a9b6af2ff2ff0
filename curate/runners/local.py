"""In-process runner: the same pieces, one after another (small inputs, tests, debugging)."""

from __future__ import annotations

import os
import time

from curate.runners import Timeline, progress_bar
from curate.steps.base import Resources


class LocalRunner:
    name = "local"

    def __init__(self, progress: bool = False):
        self.progress = progress
        self.timeline = Timeline()

    def map(self, fn, shared, items: list, label: str, resources: Resources) -> list:
        out = []
        with self.timeline.map() as pieces, progress_bar(label, len(items), self.progress) as advance:
            for item in items:
                start = time.time()
                out.append(fn(shared, item))
                pieces.append((os.getpid(), start, time.time()))
                advance()
        return out

    def close(self) -> None:
        pass

    def timing(self) -> dict:
        return self.timeline.summary()
