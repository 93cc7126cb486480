"""Per-layer mixed-precision search (SPOS's precision search, made deployable).

Every conv/dense layer of a trained child chooses int8, int4 weights (conv and
dense only) or float32. Candidates are scored on the actually quantized `.tflite`
(litert-quantizer, one shared calibration): top-1 on held-out validation images
run through LiteRT, file size, and host latency. Evolution is SPOS Algorithm 1
(population, top-k parents, crossover + mutation) on `tfnas.evolution`, the engine the
architecture search runs, with hard limits on
size (checked before evaluation from the weights' bit widths) and on measured
latency; every evaluated candidate is cached and kept, and the Pareto front of
(size, latency, accuracy) is reported next to uniform float32 and uniform int8.
"""

from __future__ import annotations

import dataclasses
import os
import time

import numpy as np

from tfnas.errors import TfnasError
from tfnas.evolution import Evolution, EvolutionOptions
from tfnas.export.recipe import Recipe, quantizable_layers
from tfnas.io import append_jsonl, read_jsonl

CHOICES = ("int8", "int4", "float32")
_BITS = {"int8": 8, "int4": 4, "float32": 32}


@dataclasses.dataclass
class SearchOptions:
  """The precision search's evolution (SPOS Algorithm 1 over one gene per layer) and
  its limits: the file's size in bytes (checked before evaluation) and the measured host
  latency in ms (after); accuracy on `val_images` held-out images, PTQ calibrated on
  `calibration_images` training images."""
  population: int = 16
  generations: int = 5
  top_k: int = 6
  mutation_prob: float = 0.1
  size_limit_bytes: int | None = None
  latency_limit_ms: float | None = None
  val_images: int = 500
  calibration_images: int = 128
  seed: int = 0

  def check(self):
    """Raises TfnasError naming the bad value."""
    if self.population < 2 or self.generations < 1 or not 1 <= self.top_k <= self.population:
      raise TfnasError(f"need population >= 2, generations >= 1 and 1 <= top_k <= population; "
                       f"got {self.population}, {self.generations}, {self.top_k}")
    if not 0 <= self.mutation_prob <= 1:
      raise TfnasError(f"mutation_prob {self.mutation_prob} must be in [0, 1]")


class PrecisionSearch:
  """Evaluates and evolves per-layer recipes for one float model.

  Args:
    model: The trained float Keras child.
    images: Validation images (N, H, W, C), normalized; labels: (N,) ints.
    calibration: Calibration images, one per array (1, H, W, C).
    opts: `SearchOptions`.
  """

  def __init__(self, model, images, labels, calibration, opts: SearchOptions):
    from tfnas.export import quantize
    opts.check()
    self.opts = opts
    self.kinds = quantizable_layers(model)
    self.names = sorted(self.kinds)
    self.allowed = [tuple(c for c in CHOICES if not (c == "int4" and self.kinds[n] == "dwconv"))
                    for n in self.names]
    self.params = {l.name: int(sum(np.prod(w.shape) for w in l.weights))
                   for l in model.layers if l.name in self.kinds}
    self.int8_bytes = None
    self.images, self.labels = images, labels
    self.float_tflite = quantize.convert(model, "float32")
    self.quantizer = quantize.RecipeQuantizer(self.float_tflite, self.names, calibration)
    self.cache: dict[tuple, dict] = {}
    self._rows_path = None  # run() sets it: every measured row is appended there

  def recipe(self, genes: tuple) -> Recipe:
    """The `Recipe` a genome encodes (one of `CHOICES` per quantizable layer, int8 the
    default)."""
    layers = {n: c for n, c in zip(self.names, genes) if c != "int8"}
    return Recipe(default="int8", layers=tuple(sorted(layers.items())))

  def estimated_bytes(self, genes: tuple) -> float:
    """The size pre-check: the uniform-int8 file's size plus each layer's weight-byte change."""
    if self.int8_bytes is None:
      self.int8_bytes = self.evaluate(tuple("int8" for _ in self.names), "uniform")["size_bytes"]
    return self.int8_bytes + sum(self.params[n] * (_BITS[c] - 8) / 8
                                 for n, c in zip(self.names, genes))

  def feasible_before(self, genes: tuple) -> bool:
    """Whether the genome's estimated file size meets the size limit (before any
    conversion)."""
    limit = self.opts.size_limit_bytes
    return limit is None or self.estimated_bytes(genes) <= limit

  def evaluate(self, genes: tuple, tag: str = "") -> dict:
    """Quantizes, runs and times one candidate (cached by its genes)."""
    if genes in self.cache:
      return self.cache[genes]
    from tflite_bench.host import HostRunner
    from tflite_bench.protocol import Protocol
    from tfnas.export.tflite import run_tflite
    asked = genes
    if all(c == "float32" for c in genes):
      data = self.float_tflite
    else:
      # litert-quantizer keeps an int4 conv at int8 when a float layer consumes its output:
      # the candidate becomes what the file holds, re-made from that recipe so that
      # exporting the reported recipe gives this very file.
      for _ in range(3):
        if genes in self.cache:  # another request that makes the same file
          self.cache[asked] = self.cache[genes]
          if self._rows_path:  # so that a resume knows this request too
            append_jsonl(self._rows_path, [{**self.cache[genes], "requested": list(asked)}])
          return self.cache[genes]
        recipe = self.recipe(genes)
        data, got = self.quantizer.quantize(
            recipe, {n: recipe.precision(n) for n in self.names}, strict=False)
        realized = tuple(got[n] for n in self.names)
        if realized == genes:
          break
        genes = realized
      else:
        raise TfnasError(f"litert-quantizer does not settle on a recipe for {asked}")
    logits = run_tflite(data, self.images)
    acc = float(np.mean(np.argmax(logits, -1) == self.labels))
    runner = HostRunner()
    stats, info = runner.measure(data, Protocol(warmup_runs=5, warmup_secs=0.1, min_runs=30,
                                                min_secs=0.3))
    row = {"genes": list(genes), "requested": list(asked),
           "recipe": self.recipe(genes).to_json(), "accuracy": acc,
           "size_bytes": len(data), "latency_ms": stats.median_ms,
           "delegate_partitions": info["delegate_partitions"], "tag": tag,
           "feasible": self._feasible_after(len(data), stats.median_ms)}
    self.cache[genes] = self.cache[asked] = row
    if self._rows_path:
      append_jsonl(self._rows_path, [row])
    return row

  def rows(self) -> list[dict]:
    """Every evaluated candidate (file) once: the cache also keys rows by the genes each
    request asked for, and a resumed search reads one row per request."""
    return list({tuple(r["genes"]): r for r in self.cache.values()}.values())

  def _feasible_after(self, size, latency) -> bool:
    o = self.opts
    return ((o.size_limit_bytes is None or size <= o.size_limit_bytes) and
            (o.latency_limit_ms is None or latency <= o.latency_limit_ms))

  def _names(self, genes) -> tuple:
    """Choice names of a genome of indices into each layer's allowed choices."""
    return tuple(a[int(i)] for a, i in zip(self.allowed, genes))

  def _indices(self, names) -> tuple:
    return tuple(a.index(c) for a, c in zip(self.allowed, names))

  def _random(self, rng) -> tuple:
    """Uniform per layer; an over-size draw is repaired (largest float layers to int8,
    then largest int8 layers to int4) until it meets the size limit. Returns indices."""
    genes = [a[rng.integers(len(a))] for a in self.allowed]
    by_size = sorted(range(len(genes)), key=lambda i: -self.params[self.names[i]])
    for src, dst in (("float32", "int8"), ("int8", "int4")):
      for i in by_size:
        if self.feasible_before(tuple(genes)):
          return self._indices(genes)
        if genes[i] == src and dst in self.allowed[i]:
          genes[i] = dst
    if not self.feasible_before(tuple(genes)):
      raise TfnasError(f"size_limit_bytes {self.opts.size_limit_bytes} is below the smallest "
                       f"recipe (int4 wherever possible: about "
                       f"{self.estimated_bytes(self._smallest()):.0f} bytes)")
    return self._indices(genes)

  def _smallest(self) -> tuple:
    return tuple("int4" if "int4" in a else "int8" for a in self.allowed)

  def run(self, state_path: str | None = None, log=print) -> dict:
    """SPOS Algorithm 1 over one gene per layer, on `tfnas.evolution.Evolution` (the
    architecture search's engine): the size limit is a hard constraint before
    evaluation; parents are the feasible candidates only (the latency limit is measured),
    by accuracy, then smaller size (a generation without one makes random candidates);
    half of each next population are crossovers, half mutations. With `state_path` every
    evaluated candidate is appended to `<state_path>.rows.jsonl` as it is measured and the
    evolution state is saved each generation: a rerun resumes without measuring anything
    twice, and a rerun with other options or limits is refused (TfnasError).

    Returns:
      {"layers", "options", "baselines" (uniform float32 and int8), "best" (the most
      accurate feasible candidate, or None), "pareto_front", "dominates_both_uniform",
      "history", "evaluated", "seconds", "all" (every candidate's row)}.
    """
    o = self.opts
    start = time.time()
    # What fixes the rows a resume reuses, beside the evolution's options: the limits,
    # the scoring and the model.
    identity = {"size_limit_bytes": o.size_limit_bytes, "latency_limit_ms": o.latency_limit_ms,
                "val_images": int(len(self.labels)), "calibration_images": o.calibration_images,
                "layers": list(self.names)}
    self._rows_path = state_path + ".rows.jsonl" if state_path else None
    if self._rows_path:
      rows = read_jsonl(self._rows_path, "precision search rows")
      if rows and rows[0].get("identity", identity) != identity:
        raise TfnasError(f"{self._rows_path!r} holds candidates measured with "
                         f"{rows[0]['identity']}, not {identity}; rerun with those settings, "
                         "or delete it and the search state to start over")
      if not rows:
        append_jsonl(self._rows_path, [{"identity": identity}])
      for row in rows:
        if "genes" in row:
          self.cache[tuple(row["genes"])] = self.cache[tuple(row["requested"])] = row
    baselines = {"float32": self.evaluate(tuple("float32" for _ in self.names), "uniform"),
                 "int8": self.evaluate(tuple("int8" for _ in self.names), "uniform")}

    def evaluate(genes):
      return self.evaluate(self._names(genes), "search")["accuracy"]

    def rank_key(genes, accuracy):
      return (accuracy, -self.cache[self._names(genes)]["size_bytes"])

    half = o.population // 2
    engine = Evolution(
        [len(a) for a in self.allowed], lambda g: self.feasible_before(self._names(g)),
        evaluate, EvolutionOptions(o.population, o.generations, o.top_k, half,
                                   o.population - half, o.mutation_prob, o.seed),
        f"size limit {o.size_limit_bytes} bytes", sample=self._random, rank_key=rank_key,
        eligible=lambda g: self.cache[self._names(g)]["feasible"])
    known = {self._indices(r["requested"]): r["accuracy"] for r in baselines.values()}
    evo = engine.run(state_path, log, "precision", known=known, identity=identity)
    history = []
    for h in evo["history"]:
      best = None if h["best"] is None else self.cache[self._names(h["best"])]
      history.append({"generation": h["generation"],
                      "population": [list(self._names(g)) for g in h["population"]],
                      "best_accuracy": None if best is None else best["accuracy"],
                      "best_size_bytes": None if best is None else best["size_bytes"],
                      "evaluated": h["evaluated"],
                      "next": [list(self._names(g)) for g in h["next"]]})
    evaluated = self.rows()
    front = pareto_front(evaluated)
    feasible = sorted((r for r in evaluated if r["feasible"]),
                      key=lambda r: (-r["accuracy"], r["size_bytes"]))
    dominating = [r for r in evaluated if r["tag"] != "uniform" and
                  all(_dominates(r, b) for b in baselines.values())]
    return {"layers": self.names, "options": dataclasses.asdict(o), "baselines": baselines,
            "best": feasible[0] if feasible else None, "pareto_front": front,
            "dominates_both_uniform": dominating, "history": history,
            "evaluated": len(evaluated), "seconds": time.time() - start, "all": evaluated}


def _dominates(a: dict, b: dict) -> bool:
  """a is no worse than b in accuracy, size and latency, and better in one."""
  ge = (a["accuracy"] >= b["accuracy"] and a["size_bytes"] <= b["size_bytes"]
        and a["latency_ms"] <= b["latency_ms"])
  gt = (a["accuracy"] > b["accuracy"] or a["size_bytes"] < b["size_bytes"]
        or a["latency_ms"] < b["latency_ms"])
  return ge and gt


def pareto_front(rows: list[dict]) -> list[dict]:
  """Rows not dominated in (accuracy up, size down, latency down), by size."""
  front = [r for r in rows if not any(_dominates(o, r) for o in rows if o is not r)]
  return sorted(front, key=lambda r: r["size_bytes"])


def plot(result: dict, path: str) -> None:
  """Accuracy vs size (colour: latency) of every candidate, front and uniform baselines."""
  from tfnas.io import new_figure, write_png
  rows = [r for r in result.get("all", [])]
  fig = new_figure(figsize=(6.4, 4.4))
  ax = fig.subplots()
  if rows:
    sc = ax.scatter([r["size_bytes"] / 1024 for r in rows], [r["accuracy"] for r in rows],
                    c=[r["latency_ms"] for r in rows], s=14, cmap="viridis", alpha=0.7,
                    label="evaluated")
    fig.colorbar(sc, ax=ax, label="host latency (ms)")
  front2d, best = [], -1.0  # accuracy-vs-size front, for the line
  for r in sorted(rows or result["pareto_front"], key=lambda r: (r["size_bytes"], -r["accuracy"])):
    if r["accuracy"] > best:
      front2d.append(r)
      best = r["accuracy"]
  ax.step([r["size_bytes"] / 1024 for r in front2d], [r["accuracy"] for r in front2d], "k-",
          where="post", label="front: accuracy vs size")
  front = result["pareto_front"]
  ax.scatter([r["size_bytes"] / 1024 for r in front], [r["accuracy"] for r in front],
             facecolors="none", edgecolors="k", s=40,
             label="Pareto front (size, latency, accuracy)")
  for name, r in result["baselines"].items():
    ax.scatter([r["size_bytes"] / 1024], [r["accuracy"]], marker="*", s=160,
               label=f"uniform {name}", edgecolors="k")
  ax.set_xlabel("file size (KiB)")
  ax.set_ylabel("validation top-1 (LiteRT)")
  ax.legend(fontsize=8, loc="lower right")
  ax.set_title("Per-layer precision search")
  fig.tight_layout()
  write_png(fig, path)
