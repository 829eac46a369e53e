"""In-process metrics, served at ``/v1/metrics`` in the shape of Nomad's (go-metrics'
in-memory sink: ``Timestamp``, ``Gauges``, ``Counters``, ``Samples``). Caravan's figures
are cumulative since the agent started rather than per 10-second window."""
from __future__ import annotations

import math
import time
from dataclasses import dataclass


@dataclass
class Aggregate:
    count: int = 0
    sum: float = 0.0
    sumsq: float = 0.0
    min: float = math.inf
    max: float = -math.inf

    def add(self, value: float) -> None:
        self.count += 1
        self.sum += value
        self.sumsq += value * value
        self.min = min(self.min, value)
        self.max = max(self.max, value)

    def summary(self, name: str) -> dict:
        mean = self.sum / self.count if self.count else 0.0
        var = max(0.0, self.sumsq / self.count - mean * mean) if self.count else 0.0
        return {"Name": name, "Count": self.count, "Sum": self.sum,
                "Min": self.min if self.count else 0.0,
                "Max": self.max if self.count else 0.0,
                "Mean": mean, "Stddev": math.sqrt(var), "Labels": {}}


class Metrics:
    def __init__(self):
        self.counters: dict[str, Aggregate] = {}
        self.samples: dict[str, Aggregate] = {}

    def incr(self, name: str, value: float = 1) -> None:
        self.counters.setdefault(name, Aggregate()).add(value)

    def sample(self, name: str, value: float) -> None:
        self.samples.setdefault(name, Aggregate()).add(value)

    def snapshot(self) -> dict:
        return {"Timestamp": time.strftime("%Y-%m-%d %H:%M:%S +0000 UTC", time.gmtime()),
                "Gauges": [],
                "Counters": [a.summary(n) for n, a in sorted(self.counters.items())],
                "Samples": [a.summary(n) for n, a in sorted(self.samples.items())]}


METRICS = Metrics()


def count_collected(kind: str, n: int) -> None:
    """Objects the garbage collector deleted, by kind (``caravan.gc.evals`` ...)."""
    METRICS.incr(f"caravan.gc.{kind.lower()}", n)
