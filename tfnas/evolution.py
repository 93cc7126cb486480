"""Evolutionary search (SPOS Algorithm 1) and the random-search baseline: the one engine
of the architecture search (`tfnas.search.spos`) and the per-layer precision search
(`tfnas.export.precision_search`).

Genomes are tuples of ints, gene i taking values 0..choices[i]-1. Constraints are
checked before evaluation (`feasible(genes)`), hard: an infeasible genome is never
evaluated. Each generation evaluates the population, keeps the top-k of everything
evaluated so far, and makes the next population from `crossovers` crossovers
(each gene from one of two random top-k parents) and `mutations` mutations (each
gene of a random top-k parent resampled with `mutation_prob`), new genomes only,
topped up with random feasible ones. One random stream per generation and the state
saved after every generation, so a killed search resumes and ends exactly as an
uninterrupted one would. A search whose random genomes are not uniform (the precision
search repairs an over-size draw) passes its own `sample`; one that ranks by more than
the score (a tie-break) passes `rank_key`, and one whose limits are only known after
evaluation (a measured latency) passes `eligible`: only eligible genomes become parents.
A state file records the options (and the caller's `identity`) it was made with; a rerun
with other values is refused rather than resumed into a different search.
"""

from __future__ import annotations

import dataclasses
import json
import os
import time
from typing import Callable, Sequence

import numpy as np

from tfnas.errors import TfnasError
from tfnas.io import atomic_write_json, read_json

Genes = tuple[int, ...]


@dataclasses.dataclass
class EvolutionOptions:
  """Algorithm 1 of SPOS: each generation keeps the `top_k` best evaluated so far and
  makes the next population of `population` from `crossovers` crossovers and `mutations`
  mutations (each gene re-drawn with `mutation_prob`) of them, the rest random; `seed`
  fixes every draw. The SPOS paper: population 50, 20 generations, top 10, 25 + 25, 0.1."""
  population: int = 50
  generations: int = 20
  top_k: int = 10
  crossovers: int = 25
  mutations: int = 25
  mutation_prob: float = 0.1
  seed: int = 0
  max_tries: int = 10000  # per random genome / per child, before giving up

  def check(self):
    """Raises TfnasError naming the values when the options cannot make a population."""
    if self.population < 1 or self.generations < 1 or not 1 <= self.top_k:
      raise TfnasError(f"need population >= 1, generations >= 1, top_k >= 1; got "
                       f"{self.population}, {self.generations}, {self.top_k}")
    if self.crossovers < 0 or self.mutations < 0 or self.crossovers + self.mutations > \
        self.population:
      raise TfnasError(f"crossovers {self.crossovers} + mutations {self.mutations} must be "
                       f"between 0 and the population {self.population}")
    if not 0 <= self.mutation_prob <= 1:
      raise TfnasError(f"mutation_prob {self.mutation_prob} must be in [0, 1]")


def random_genes(rng, choices: Sequence[int], feasible: Callable[[Genes], bool],
                 max_tries: int = 10000, what: str = "constraints") -> Genes:
  """Uniform over the genomes that satisfy `feasible` (rejection sampling)."""
  for _ in range(max_tries):
    genes = tuple(int(rng.integers(n)) for n in choices)
    if feasible(genes):
      return genes
  raise TfnasError(f"no architecture met the {what} in {max_tries} uniform draws; "
                   "loosen the constraints")


class Evolution:
  """Algorithm 1 over `choices` with `feasible` and `evaluate` (higher is better).

  Example:
    >>> evo = Evolution([4] * 20, feasible=lambda g: sum(g) < 40, evaluate=score,
    ...                 opts=EvolutionOptions(population=16, generations=4))
    >>> result = evo.run(state_path="evo.json")

  Args:
    choices: Number of values of each gene.
    feasible: The hard constraints, checked before evaluation (every genome evaluated,
      made or sampled, meets them).
    evaluate: A genome's score, higher is better (called once per genome).
    opts: `EvolutionOptions`.
    what: The constraints in words, for the error when none can be met.
    sample: `sample(rng) -> genes`, a random feasible genome (default: uniform over the
      feasible ones by rejection).
    rank_key: `rank_key(genes, score)`, what parents are chosen by, higher first
      (default: the score; ties keep evaluation order).
    eligible: `eligible(genes)`, whether an evaluated genome may be a parent (default:
      all); a generation without an eligible genome makes random genomes only.
  """

  def __init__(self, choices: Sequence[int], feasible: Callable[[Genes], bool],
               evaluate: Callable[[Genes], float], opts: EvolutionOptions,
               what: str = "constraints",
               sample: Callable[[np.random.Generator], Genes] | None = None,
               rank_key: Callable[[Genes, float], object] | None = None,
               eligible: Callable[[Genes], bool] | None = None):
    opts.check()
    self.choices, self.feasible, self.evaluate = list(choices), feasible, evaluate
    self.opts, self.what = opts, what
    self.sample, self.rank_key = sample, rank_key or (lambda genes, score: score)
    self.eligible = eligible or (lambda genes: True)

  def _random(self, rng) -> Genes:
    if self.sample is not None:
      return tuple(self.sample(rng))
    return random_genes(rng, self.choices, self.feasible, self.opts.max_tries, self.what)

  def _ranked(self, scores: dict) -> list:
    return sorted(scores, key=lambda g: self.rank_key(g, scores[g]), reverse=True)

  def _made_with(self, identity: dict | None) -> dict:
    """What a state file must have been made with to be resumed (generations may grow)."""
    opts = {k: v for k, v in dataclasses.asdict(self.opts).items() if k != "generations"}
    return {"options": opts, "identity": identity or {}}

  def _children(self, rng, parents, n, make, seen, out):
    made, tries = 0, 0
    while made < n and tries < self.opts.max_tries and parents:
      tries += 1
      genes = make(rng, parents)
      if genes in seen or genes in out or not self.feasible(genes):
        continue
      out.append(genes)
      made += 1

  def _crossover(self, rng, parents):
    a, b = (parents[rng.integers(len(parents))] for _ in range(2))
    return tuple(x if rng.random() < 0.5 else y for x, y in zip(a, b))

  def _mutate(self, rng, parents):
    a = parents[rng.integers(len(parents))]
    return tuple(int(rng.integers(n)) if rng.random() < self.opts.mutation_prob else g
                 for g, n in zip(a, self.choices))

  def run(self, state_path: str | None = None, log=print, tag: str = "evolution",
          known: dict | None = None, identity: dict | None = None) -> dict:
    """Runs (or resumes) the search.

    Args:
      state_path: JSON file of the search state, written after every generation; when
        it exists the search resumes from it.
      log: Called with one line per generation.
      tag: The line's prefix.
      known: Genomes already evaluated, with their scores (e.g. baselines): parents like
        any other, never evaluated again.
      identity: What else fixes the scores (e.g. the limits and validation set of the
        caller): saved in the state, and a state made with other values is refused.

    Returns:
      {"history": one record per generation (population, best, best_score, evaluated,
      next), "top": the top-k (genes, score), "scores": every evaluated genome's score,
      "evaluations": their number}.

    Raises:
      TfnasError: the state file is not an evolution state or was made with other
        options or identity, or no genome meets the constraints.
    """
    o = self.opts
    state = read_json(state_path, "search state") if state_path and os.path.exists(
        state_path) else {"history": [], "scores": []}
    if not isinstance(state, dict) or not {"history", "scores"} <= set(state):
      raise TfnasError(f"search state {state_path!r} is not an evolution state (expected "
                       "{\"history\": [...], \"scores\": [...]}); delete it to start over")
    made_with = self._made_with(identity)
    saved = state.get("made_with", made_with)  # states from before it was recorded: as now
    if saved != json.loads(json.dumps(made_with)):
      diff = sorted(f"{part}.{k}: {saved.get(part, {}).get(k)!r} -> {v!r}"
                    for part in ("options", "identity") for k, v in made_with[part].items()
                    if saved.get(part, {}).get(k) != v)
      raise TfnasError(f"search state {state_path!r} was made with other settings "
                       f"({'; '.join(diff) or 'other keys'}); rerun with those, or delete it "
                       "to start over")
    scores: dict[Genes, float] = {tuple(g): float(s) for g, s in (known or {}).items()}
    scores.update({tuple(g): s for g, s in state["scores"]})
    history = state["history"]
    if history:
      population = [tuple(g) for g in history[-1]["next"]]
    else:
      rng = np.random.default_rng([o.seed, 0])
      population, seen = [], set()
      while len(population) < o.population:
        g = self._random(rng)
        if g not in seen:
          population.append(g)
          seen.add(g)
        elif len(seen) >= o.population * 50:
          break
    first, t0 = len(history), time.time()
    for gen in range(first, o.generations):
      rng = np.random.default_rng([o.seed, gen + 1])
      for g in population:
        if not self.feasible(g):  # only a state made under other constraints can do this
          raise TfnasError(f"genome {list(g)} of the saved population does not meet the "
                           f"{self.what}; delete the search state to start over")
        if g not in scores:
          scores[g] = float(self.evaluate(g))
      parents = [g for g in self._ranked(scores) if self.eligible(g)][:o.top_k]
      nxt: list[Genes] = []
      self._children(rng, parents, o.crossovers, self._crossover, scores, nxt)
      self._children(rng, parents, o.mutations, self._mutate, scores, nxt)
      tries = 0
      while len(nxt) < o.population and tries < o.max_tries:
        tries += 1
        g = self._random(rng)
        if g not in scores and g not in nxt:
          nxt.append(g)
      best = parents[0] if parents else None  # None: nothing eligible yet
      history.append({"generation": gen, "population": [list(g) for g in population],
                      "best": None if best is None else list(best),
                      "best_score": None if best is None else scores[best],
                      "evaluated": len(scores), "next": [list(g) for g in nxt]})
      per_gen = (time.time() - t0) / (gen + 1 - first)
      shown = "none eligible" if best is None else f"{scores[best]:.4f}"
      log(f"[{tag}] generation {gen + 1}/{o.generations}: best {shown}, "
          f"{len(scores)} evaluated ({per_gen:.0f} s/generation, ETA "
          f"{per_gen * (o.generations - gen - 1):.0f} s)")
      population = nxt
      if state_path:
        atomic_write_json(state_path, {"history": history, "made_with": made_with,
                                       "scores": [[list(g), s] for g, s in scores.items()]})
    ranked = self._ranked(scores)
    return {"history": history, "top": [(g, scores[g]) for g in ranked[:o.top_k]],
            "scores": scores, "evaluations": len(scores)}


def random_search(choices: Sequence[int], feasible, evaluate, budget: int, seed: int,
                  chunk: int, state_path: str | None = None, log=print,
                  what: str = "constraints", max_tries: int = 10000) -> dict:
  """Uniform feasible genomes until `budget` distinct ones are evaluated; the history
  has the best score after every `chunk` evaluations (a 'generation' for plotting)."""
  state = read_json(state_path, "search state") if state_path and os.path.exists(
      state_path) else {"scores": []}
  scores: dict[Genes, float] = {tuple(g): s for g, s in state["scores"]}
  order = [tuple(g) for g, _ in state["scores"]]
  rng = np.random.default_rng([seed, 7919, len(order)])
  stale, first, t0 = 0, len(order), time.time()
  while len(order) < budget:
    g = random_genes(rng, choices, feasible, max_tries, what)
    if g in scores:
      stale += 1
      if stale > max_tries:
        break  # the feasible set is smaller than the budget
      continue
    scores[g] = float(evaluate(g))
    order.append(g)
    if state_path and (len(order) % chunk == 0 or len(order) == budget):
      atomic_write_json(state_path, {"scores": [[list(x), scores[x]] for x in order]})
      per = (time.time() - t0) / (len(order) - first)
      log(f"[random] {len(order)}/{budget} evaluated, best {max(scores.values()):.4f} "
          f"(ETA {per * (budget - len(order)):.0f} s)")
    if len(order) % chunk == 0:
      rng = np.random.default_rng([seed, 7919, len(order)])
  history, best = [], -np.inf
  for i, g in enumerate(order):
    best = max(best, scores[g])
    if (i + 1) % chunk == 0 or i + 1 == len(order):
      history.append({"evaluated": i + 1, "best_score": best})
  ranked = sorted(order, key=lambda g: -scores[g])
  return {"history": history, "top": [(g, scores[g]) for g in ranked[:10]], "scores": scores,
          "evaluations": len(order)}
