"""Ground truth for spaces that a tabular benchmark trained exhaustively.

A `GroundTruth` holds every architecture of a space with its trained accuracy (the
benchmark's mean over seeds) and answers what a search's result is worth: the arch's
accuracy, its rank and percentile among the archs that meet a constraint, and the best
of those. Constraints are boolean masks over `GroundTruth.archs`, built from
`macs`, `params` or a latency model's predictions (`predict`), so any cost model works.

Registered benchmarks (`BENCHMARKS`): `nasbench_macro` -> NAS-Bench-Macro (Su et al.,
"Prioritized Architecture Sampling with Monte-Carlo Tree Search", CVPR 2021): 6,561
archs, CIFAR-10, 50 epochs, three seeds. Its file is read from `path`, or
`$TFNAS_SHARED_DATA/nasbench/nas-bench-macro_cifar10.json`.

Example:
  >>> space = get_space("nasbench_macro")
  >>> gt = groundtruth.load(space)
  >>> feasible = gt.macs <= np.percentile(gt.macs, 50)
  >>> gt.standing(parse_arch(space, "22212220"), feasible)["rank"]
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import json
import os
from typing import Callable

import numpy as np

from tfnas.errors import TfnasError
from tfnas.spaces.analysis import total, trainable_params
from tfnas.spaces.arch import Arch
from tfnas.spaces.spec import SearchSpace


@dataclasses.dataclass(frozen=True)
class Benchmark:
  """Where a tabular benchmark's file lives and what it measured."""
  file: str  # relative to the shared data folder
  dataset: str
  metric: str  # what `accuracy` holds, with its unit
  citation: str


BENCHMARKS = {
    "nasbench_macro": Benchmark(
        "nasbench/nas-bench-macro_cifar10.json", "cifar10",
        "CIFAR-10 test top-1 (%), mean of 3 runs, 50 epochs from scratch",
        "Su et al., Prioritized Architecture Sampling with Monte-Carlo Tree Search, CVPR 2021"),
}


def code(arch: Arch) -> str:
  """The benchmark's digit code of `arch` (one op index per choice block)."""
  return "".join(str(i) for i in arch.ops)


@dataclasses.dataclass
class GroundTruth:
  """Every arch of `space` with its benchmark accuracy and costs.

  Attributes:
    space: The (default-sized) space the benchmark trained.
    benchmark: Its description.
    archs: All archs, in code order ("00000000", "00000001", ...).
    accuracy: (N,) mean accuracy in %, aligned with `archs`.
    macs: (N,) multiply-accumulates (the spec's count).
    params: (N,) trained parameters (the spec's `trainable_params`).
    runs: (N, R) accuracy in % of each of the benchmark's R independent trainings, or None
      when its file gives only the mean.
  """
  space: SearchSpace
  benchmark: Benchmark
  archs: list[Arch]
  accuracy: np.ndarray
  macs: np.ndarray
  params: np.ndarray
  runs: np.ndarray | None = None

  def __post_init__(self):
    self._index = {a.ops: i for i, a in enumerate(self.archs)}

  def index(self, arch: Arch) -> int:
    """Position of `arch` in `archs`; TfnasError for an arch of another space."""
    if arch.space != self.space.name or arch.ops not in self._index:
      raise TfnasError(f"arch {arch.key()!r} is not an arch of {self.space.name!r}")
    return self._index[arch.ops]

  def accuracy_of(self, arch: Arch) -> float:
    """The benchmark's mean accuracy (%) of `arch`."""
    return float(self.accuracy[self.index(arch)])

  def predict(self, predict: Callable[[Arch], float]) -> np.ndarray:
    """(N,) `predict(arch)` for every arch, e.g. a latency model's `predict` (in its unit)."""
    return np.array([predict(a) for a in self.archs], dtype=np.float64)

  def best(self, feasible: np.ndarray | None = None) -> tuple[Arch, float]:
    """The most accurate arch among `feasible` (a boolean (N,) mask; None: all)."""
    mask = self._mask(feasible)
    i = int(np.flatnonzero(mask)[np.argmax(self.accuracy[mask])])
    return self.archs[i], float(self.accuracy[i])

  def standing(self, arch: Arch, feasible: np.ndarray | None = None) -> dict:
    """What `arch` is worth among the archs that meet a constraint.

    Args:
      arch: An arch of the space (it need not meet the constraint; `feasible` says).
      feasible: Boolean (N,) mask over `archs`; None for the whole space.

    Returns:
      {"accuracy" (%), "feasible" (whether `arch` meets it), "rank" (1 = best, among
      the feasible archs plus `arch`), "of" (feasible count), "percentile" (share of
      feasible archs it is at least as accurate as, in %), "best_arch", "best_accuracy",
      "gap" (best minus its accuracy, in points)}.
    """
    mask = self._mask(feasible)
    acc = self.accuracy_of(arch)
    pool = self.accuracy[mask]
    best_arch, best_acc = self.best(mask)
    return {"arch": code(arch), "accuracy": acc, "feasible": bool(mask[self.index(arch)]),
            "rank": int(np.sum(pool > acc)) + 1, "of": int(mask.sum()),
            "percentile": float(100.0 * np.mean(pool <= acc)),
            "best_arch": code(best_arch), "best_accuracy": best_acc, "gap": best_acc - acc}

  def noise_ceiling(self, indices: np.ndarray) -> dict:
    """How well *any* evaluator can rank `archs[indices]` against `accuracy`, given the
    benchmark's own training noise: the archs' accuracies in one training run ranked
    against another run, and against the mean of the other runs (Kendall tau and
    Spearman, averaged over runs). A supernet's tau against `accuracy` near these is as
    good as training every arch from scratch once.

    Args:
      indices: (M,) positions in `archs`, M >= 2.

    Raises:
      TfnasError: the benchmark's file gave no per-run accuracies (`runs` is None) or
        fewer than 2 runs.
    """
    from scipy import stats
    runs = self._runs()[np.asarray(indices)]
    r = runs.shape[1]
    pairs = list(itertools.combinations(range(r), 2))
    others = [np.delete(runs, i, axis=1).mean(axis=1) for i in range(r)]
    return {
        "archs": int(runs.shape[0]), "runs": r,
        "kendall_tau_run_vs_run": float(np.mean(
            [stats.kendalltau(runs[:, i], runs[:, j]).statistic for i, j in pairs])),
        "spearman_run_vs_run": float(np.mean(
            [stats.spearmanr(runs[:, i], runs[:, j]).statistic for i, j in pairs])),
        "kendall_tau_run_vs_mean_of_others": float(np.mean(
            [stats.kendalltau(runs[:, i], others[i]).statistic for i in range(r)])),
    }

  def one_run_oracle(self, feasible: np.ndarray | None = None) -> list[dict]:
    """What a search would find whose evaluator were one from-scratch training of every
    feasible arch: for each of the benchmark's runs, `standing` (against the mean
    accuracy) of the arch that run scored best. The gap of these is the least a search
    guided by any single noisy training can be expected to miss by."""
    mask = self._mask(feasible)
    runs, where = self._runs(), np.flatnonzero(mask)
    return [self.standing(self.archs[int(where[np.argmax(runs[mask, i])])], mask)
            for i in range(runs.shape[1])]

  def _runs(self) -> np.ndarray:
    if self.runs is None or self.runs.ndim != 2 or self.runs.shape[1] < 2:
      raise TfnasError(f"the {self.space.name!r} benchmark file gives no per-run accuracies "
                       "(need at least 2 runs per arch for a noise ceiling)")
    return self.runs

  def _mask(self, feasible):
    if feasible is None:
      return np.ones(len(self.archs), bool)
    mask = np.asarray(feasible, bool)
    if mask.shape != (len(self.archs),):
      raise TfnasError(f"feasible mask has shape {mask.shape}; expected ({len(self.archs)},)")
    if not mask.any():
      raise TfnasError("no architecture of the benchmark meets the constraint")
    return mask


def default_path(space_name: str) -> str:
  """Where the benchmark file of `space_name` is read from: under $TFNAS_SHARED_DATA,
  else ../shared/data."""
  root = os.environ.get("TFNAS_SHARED_DATA", os.path.join("..", "shared", "data"))
  return os.path.join(root, BENCHMARKS[space_name].file)


def load(space: SearchSpace, path: str | None = None) -> GroundTruth:
  """The ground truth of `space` from its benchmark's file.

  Raises:
    TfnasError: `space` has no tabular benchmark, is not at the size the benchmark
      trained, or the file is missing, damaged or lacks an arch of the space.
  """
  if space.name not in BENCHMARKS:
    raise TfnasError(f"space {space.name!r} has no ground truth; spaces with a tabular "
                     f"benchmark: {sorted(BENCHMARKS)}")
  from tfnas.spaces.registry import get_space
  if space != get_space(space.name):
    raise TfnasError(f"the benchmark trained {space.name!r} at its default size (resolution, "
                     "width, classes); this space differs, so its accuracies do not apply")
  path = path or default_path(space.name)
  if not os.path.exists(path):
    raise TfnasError(f"ground-truth file {path!r} does not exist (set TFNAS_SHARED_DATA to "
                     "the shared data folder, or pass its path)")
  try:
    with open(path) as f:
      table = json.load(f)
    archs = [Arch.create(space, ops) for ops in
             itertools.product(*(range(len(b.ops)) for b in space.choice_blocks))]
    accuracy = np.array([float(table[code(a)]["mean_acc"]) for a in archs])
    runs = [table[code(a)].get("test_acc") for a in archs]
    runs = (np.array(runs, np.float64) if all(isinstance(r, list) for r in runs)
            and len({len(r) for r in runs}) == 1 else None)
  except (OSError, ValueError) as e:
    raise TfnasError(f"ground-truth file {path!r} cannot be read: {e}") from None
  except (KeyError, TypeError) as e:
    raise TfnasError(f"ground-truth file {path!r} lacks arch {e} or its 'mean_acc'") from None
  cost = [total(space, a) for a in archs]
  return GroundTruth(space, BENCHMARKS[space.name], archs, accuracy,
                     np.array([c.macs for c in cost], np.int64),
                     np.array([trainable_params(space, a) for a in archs], np.int64), runs)


def search_standing(space: SearchSpace, arch: Arch, meets: Callable[[Arch], bool],
                    path: str | None = None) -> dict | None:
  """What a search's result is worth, for its report: `GroundTruth.standing` of `arch`
  among the archs for which `meets(arch)` (the search's own budget) holds.

  Returns None when `space` (at its size) has no tabular benchmark, so a report on any
  other space is unchanged; {"unavailable": why} when it has one but the file cannot be
  read or no arch meets the budget (a finished search is never failed for its report).
  """
  if space.name not in BENCHMARKS:
    return None
  from tfnas.spaces.registry import get_space
  if space != get_space(space.name):
    return None
  try:
    gt = _load_once(space, path or default_path(space.name))
    out = gt.standing(arch, np.array([bool(meets(a)) for a in gt.archs]))
  except TfnasError as e:
    return {"unavailable": str(e)}
  return {**out, "benchmark": space.name, "metric": gt.benchmark.metric}


@functools.lru_cache(maxsize=2)
def _load_once(space: SearchSpace, path: str) -> GroundTruth:
  """`load`, once per (space, file) in a process: a SPOS run reports on every one of its
  searches, and loading computes the costs of all 6,561 archs (3.7 s here)."""
  return load(space, path)
