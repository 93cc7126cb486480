"""Measurement protocols: how many warm-up and timed runs, and when to stop.

`FIXED` follows benchmark_model: warm-up (>= 10 runs or >= 0.5 s), then
>= 50 runs and >= 1 s. `ADAPTIVE` is for building datasets of thousands of
models: a short warm-up, then runs until the 95% CI of the median is within
+-1% (or a cap), recording how many runs it took.
"""

from __future__ import annotations

import dataclasses
import time
from typing import Callable

import numpy as np

from tflite_bench.record import Stats, median_ci_rel


@dataclasses.dataclass(frozen=True)
class Protocol:
  """Stopping rules. A phase ends when both its run and its time minimum are met
  (warm-up: either), or at the caps."""
  warmup_runs: int = 10
  warmup_secs: float = 0.5
  min_runs: int = 50
  min_secs: float = 1.0
  max_runs: int = 10000
  max_secs: float = 150.0
  target_ci_rel: float | None = None  # adaptive: stop once the median's CI is this tight

  def measure(self, invoke: Callable[[], None]) -> tuple[list[float], int]:
    """Calls `invoke` per this protocol; returns (timed samples in ms, warm-up runs)."""
    start = time.perf_counter()
    warm = 0
    while True:
      invoke()
      warm += 1
      elapsed = time.perf_counter() - start
      if warm >= self.warmup_runs or elapsed >= self.warmup_secs:
        break
    samples: list[float] = []
    start = time.perf_counter()
    while True:
      t = time.perf_counter()
      invoke()
      samples.append((time.perf_counter() - t) * 1e3)
      n, elapsed = len(samples), time.perf_counter() - start
      if n >= self.max_runs or elapsed >= self.max_secs:
        break
      if n < self.min_runs or elapsed < self.min_secs:
        continue
      if self.target_ci_rel is None:
        break
      ci = median_ci_rel(np.sort(samples))
      if ci is not None and ci <= self.target_ci_rel:
        break
    return samples, warm

  def run(self, invoke: Callable[[], None]) -> Stats:
    """`measure(invoke)` summarized: statistics of the timed runs in ms."""
    samples, warm = self.measure(invoke)
    return Stats.from_samples(samples, warm)


FIXED = Protocol()
ADAPTIVE = Protocol(warmup_runs=2, warmup_secs=1.0, min_runs=7, min_secs=0.0, max_runs=60,
                    max_secs=5.0, target_ci_rel=0.01)
PROTOCOLS = {"fixed": FIXED, "adaptive": ADAPTIVE}
