"""Fitting an additive latency model on whole-model measurements, and reporting its error.

latency(arch) ~= overhead + sum_j cost_j(op_j): one-hot features per (choice
block, op token), least squares with a small ridge toward a prior table (the
micro-benchmark LUT when given, else MACs scaled by a fitted ms-per-MAC) so
costs of rarely or never sampled ops stay sensible. The result is a `CostModel` of kind "fitted" whose table serves
the differentiable loss directly.
"""

from __future__ import annotations

import math

import numpy as np

from tfnas.errors import TfnasError
from tfnas.latency.models import CostModel
from tfnas.spaces import SearchSpace, parse_arch


def _tokens(space: SearchSpace, arch) -> list[str]:
  names = arch.op_names(space)
  if arch.channels is None:
    return names
  return [f"{n}@{s:g}" for n, s in zip(names, arch.mid_scales(space))]


def design(space: SearchSpace, archs) -> tuple[np.ndarray, list[tuple[str, str]]]:
  """One-hot design matrix over (block, token) columns that occur in `archs`."""
  columns: dict[tuple[str, str], int] = {}
  rows = []
  for arch in archs:
    row = []
    for block, token in zip(space.choice_blocks, _tokens(space, arch)):
      key = (block.name, token)
      if key not in columns:
        columns[key] = len(columns)
      row.append(columns[key])
    rows.append(row)
  x = np.zeros((len(archs), len(columns)))
  for i, row in enumerate(rows):
    x[i, row] = 1.0
  return x, list(columns)


def fit_additive(space: SearchSpace, archs, latencies_ms, prior: CostModel | None = None,
                 ridge: float = 1e-3, precision: str = "float32") -> CostModel:
  """Least-squares additive model: overhead + per-(block, op) costs.

  `latencies_ms` are measurements of `.tflite` files at `precision` (the records'
  "quantization"); the model predicts that precision. A `prior` latency table of another
  precision is refused (`CostModel.check_precision`).

  Costs and the overhead are bounded below by 0 and the `zero` op (no layers at
  all) costs exactly 0: an unconstrained fit on uniformly sampled archs can give
  negative costs that predict negative latency for archs far from the samples
  (e.g. a search's many-`zero` result).
  """
  archs = [parse_arch(space, a) for a in archs]
  y = np.asarray(latencies_ms, dtype=np.float64)
  if len(archs) != len(y) or len(y) < 2:
    raise TfnasError(f"need >= 2 measured archs to fit, got {len(y)}")
  x, cols = design(space, archs)
  if prior is None:
    prior = _macs_prior(space, archs, y, precision)
  prior.check_precision(precision, "the measured records' precision",
                        fix=f"give a --lut prior measured at {precision}")
  p0 = np.array([prior.table[b][t] for b, t in cols])
  c0 = prior.constant
  # Solve for deviations from the prior: [x 1] d = y - (x p0 + c0), ridge on the op costs only.
  a = np.hstack([x, np.ones((len(y), 1))])
  r = y - (x @ p0 + c0)
  reg = np.sqrt(ridge * len(y)) * np.eye(a.shape[1])
  reg[-1, -1] = 0.0
  from scipy.optimize import lsq_linear
  lower = -np.concatenate([p0, [c0]])  # final values p0 + d >= 0
  upper = np.full_like(lower, np.inf)
  is_zero = np.array([_is_zero_op(space, b, t) for b, t in cols] + [False])
  upper[is_zero] = lower[is_zero] + 1e-12
  d = lsq_linear(np.vstack([a, reg]), np.concatenate([r, np.zeros(a.shape[1])]),
                 bounds=(lower, upper), method="bvls").x
  costs = p0 + d[:-1]
  constant = c0 + d[-1]
  table: dict[str, dict[str, float]] = {}
  for (block, token), v in zip(cols, costs):
    table.setdefault(block, {})[token] = float(v)
  # Ops never sampled keep the prior's cost, shifted like the constant.
  for block, row in prior.table.items():
    for token, v in row.items():
      table.setdefault(block, {}).setdefault(token, float(v))
  return CostModel(space, "fitted", "ms", float(constant), table,
                   {"n_fit": len(y), "ridge": ridge, "prior": prior.kind}, precision)


def _is_zero_op(space: SearchSpace, block_name: str, token: str) -> bool:
  block = next(b for b in space.blocks if b.name == block_name)
  name = token.split("@")[0]
  return any(op.name == name and op.kind == "zero" for op in block.ops)


def _macs_prior(space: SearchSpace, archs, y, precision: str) -> CostModel:
  """latency ~ c + a * MACs, as a prior table in ms (MACs are additive over blocks)."""
  from tfnas.latency.models import spec_model
  macs = spec_model(space, "macs")
  m = macs.predict_many(archs)
  a = np.vstack([m, np.ones_like(m)]).T
  (slope, intercept), *_ = np.linalg.lstsq(a, y, rcond=None)
  slope = max(float(slope), 0.0)
  table = {b: {t: slope * v for t, v in row.items()} for b, row in macs.table.items()}
  constant = float(np.mean(y - slope * (m - macs.constant)))
  return CostModel(space, "macs-scaled", "ms", constant, table, {"ms_per_mmac": slope},
                   precision)


def metrics(pred, true) -> dict:
  """RMSE (ms), RMSPE, share within +-5% / +-10%, Spearman, Kendall."""
  from scipy import stats
  pred, true = np.asarray(pred, float), np.asarray(true, float)
  rel = (pred - true) / true
  out = {"n": int(len(true)), "rmse_ms": float(np.sqrt(np.mean((pred - true) ** 2))),
         "rmspe": float(np.sqrt(np.mean(rel ** 2))),
         "mape": float(np.mean(np.abs(rel))),
         "within_5pct": float(np.mean(np.abs(rel) <= 0.05)),
         "within_10pct": float(np.mean(np.abs(rel) <= 0.10)),
         "spearman": float("nan"), "kendall": float("nan")}
  if len(true) > 2:
    out["spearman"] = float(stats.spearmanr(pred, true).statistic)
    out["kendall"] = float(stats.kendalltau(pred, true).statistic)
  return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in out.items()}


def plot(pred, true, path: str, title: str = "", extra: dict | None = None) -> None:
  """Predicted vs measured latency (ms), one point per held-out arch, with the y = x line
  and a +-5 % band; each series' legend entry carries its RMSPE and Spearman (`metrics`).
  `extra`: optional {name: (pred, true)} of further series (e.g. a lookup table's
  predictions). Writes a PNG atomically to `path` (matplotlib, outside pyplot)."""
  from tfnas.io import new_figure, write_png
  series = {"fitted model": (pred, true), **(extra or {})}
  fig = new_figure(figsize=(5.2, 5.0))
  ax = fig.subplots()
  lo, hi = math.inf, -math.inf
  for name, (p, t) in series.items():
    p, t = np.asarray(p, float), np.asarray(t, float)
    m = metrics(p, t)
    ax.scatter(t, p, s=8, alpha=0.6,
               label=f"{name}: RMSPE {100 * m['rmspe']:.1f} %, Spearman "
                     + (f"{m['spearman']:.3f}" if m["spearman"] is not None else "n/a"))
    lo, hi = min(lo, t.min(), p.min()), max(hi, t.max(), p.max())
  line = np.array([lo * 0.95, hi * 1.05])
  ax.plot(line, line, "k-", lw=0.8)
  ax.fill_between(line, line * 0.95, line * 1.05, color="k", alpha=0.08, label="+-5 %")
  ax.set_xlabel("measured latency (ms)")
  ax.set_ylabel("predicted latency (ms)")
  ax.set_title(title or f"{len(np.atleast_1d(true))} held-out archs", fontsize=9)
  ax.legend(fontsize=7, loc="upper left")
  fig.tight_layout()
  write_png(fig, path)


def split(n: int, n_test: int | None, seed: int) -> tuple[np.ndarray, np.ndarray]:
  """Seeded fit/test split: 1,000 test of 5,000 by default (20%)."""
  if n_test is None:
    n_test = n // 5
  if not 1 <= n_test < n:
    raise TfnasError(f"test split size {n_test} must be in [1, {n})")
  perm = np.random.default_rng(seed).permutation(n)
  return np.sort(perm[n_test:]), np.sort(perm[:n_test])
