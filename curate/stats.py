"""Counts per step and reason. Shards count on their own; counts merge with `+`."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

from curate.report import distributions


@dataclass
class StepStats:
    rows_in: int = 0
    rows_kept: int = 0
    rows_added: int = 0  # rows a step created (a split conversation becomes several samples)
    dropped: Counter = field(default_factory=Counter)  # reason code -> rows
    counters: Counter = field(default_factory=Counter)  # step-specific, e.g. redactions per type
    seconds: float = 0.0

    @property
    def rows_dropped(self) -> int:
        return sum(self.dropped.values())

    def __add__(self, other: StepStats) -> StepStats:
        return StepStats(
            rows_in=self.rows_in + other.rows_in,
            rows_kept=self.rows_kept + other.rows_kept,
            rows_added=self.rows_added + other.rows_added,
            dropped=self.dropped + other.dropped,
            counters=self.counters + other.counters,
            seconds=self.seconds + other.seconds,
        )

    def to_dict(self) -> dict:
        return {
            "rows_in": self.rows_in,
            "rows_kept": self.rows_kept,
            "rows_dropped": self.rows_dropped,
            "rows_added": self.rows_added,
            "dropped": dict(sorted(self.dropped.items())),
            "counters": dict(sorted(self.counters.items())),
            "seconds": round(self.seconds, 4),
        }

    @classmethod
    def from_dict(cls, d: dict) -> StepStats:
        return cls(
            rows_in=d["rows_in"],
            rows_kept=d["rows_kept"],
            rows_added=d.get("rows_added", 0),
            dropped=Counter(d.get("dropped", {})),
            counters=Counter(d.get("counters", {})),
            seconds=d.get("seconds", 0.0),
        )


@dataclass
class RunStats:
    """What one shard (or, merged, the whole run) did."""

    rows_read: int = 0  # records seen in the input: parsed rows + quarantined records
    rows_quarantined: int = 0
    rows_kept: int = 0
    rows_rejected: int = 0
    read_seconds: float = 0.0
    write_seconds: float = 0.0
    steps: dict[str, StepStats] = field(default_factory=dict)  # "position:name" -> stats
    # what reading had to adapt, e.g. ids it could not keep as written (see records._row_id)
    read_counters: Counter = field(default_factory=Counter)
    distributions: Counter = field(default_factory=Counter)  # the report's, see report/distributions.py

    def add_step(self, label: str, stats: StepStats) -> None:
        self.steps[label] = self.steps.get(label, StepStats()) + stats

    def __add__(self, other: RunStats) -> RunStats:
        merged = RunStats(
            rows_read=self.rows_read + other.rows_read,
            rows_quarantined=self.rows_quarantined + other.rows_quarantined,
            rows_kept=self.rows_kept + other.rows_kept,
            rows_rejected=self.rows_rejected + other.rows_rejected,
            read_seconds=self.read_seconds + other.read_seconds,
            write_seconds=self.write_seconds + other.write_seconds,
            steps=dict(self.steps),
            distributions=self.distributions + other.distributions,
            read_counters=self.read_counters + other.read_counters,
        )
        for label, s in other.steps.items():
            merged.add_step(label, s)
        return merged

    @property
    def rows_added(self) -> int:
        return sum(s.rows_added for s in self.steps.values())

    def identity_holds(self) -> bool:
        """rows in (+ rows steps created) = kept + rejected + quarantined."""
        return self.rows_read + self.rows_added == (self.rows_kept + self.rows_rejected + self.rows_quarantined)

    def to_dict(self) -> dict:
        return {
            "rows_in": self.rows_read,
            "rows_kept": self.rows_kept,
            "rows_rejected": self.rows_rejected,
            "rows_quarantined": self.rows_quarantined,
            "rows_added": self.rows_added,
            "identity_holds": self.identity_holds(),
            "read_seconds": round(self.read_seconds, 4),
            "write_seconds": round(self.write_seconds, 4),
            "read_counters": dict(sorted(self.read_counters.items())),
            "steps": [
                {"index": int(label.split(":", 1)[0]), "step": label.split(":", 1)[1], **s.to_dict()}
                for label, s in sorted(self.steps.items(), key=lambda kv: int(kv[0].split(":", 1)[0]))
            ],
            "distributions": distributions.nest(self.distributions),
        }

    @classmethod
    def from_dict(cls, d: dict) -> RunStats:
        return cls(
            rows_read=d["rows_in"],
            rows_quarantined=d["rows_quarantined"],
            rows_kept=d["rows_kept"],
            rows_rejected=d["rows_rejected"],
            read_seconds=d.get("read_seconds", 0.0),
            write_seconds=d.get("write_seconds", 0.0),
            steps={f"{s['index']}:{s['step']}": StepStats.from_dict(s) for s in d.get("steps", [])},
            distributions=distributions.flatten(d.get("distributions", {})),
            read_counters=Counter(d.get("read_counters", {})),
        )
