"""The evolution engine (SPOS Algorithm 1) both searches run: architectures
(tfnas.search.spos) and per-layer precisions (tfnas.export.precision_search, whose real
quantized files are tested in test_export.py). No TensorFlow: toy scores."""

import json

import numpy as np
import pytest

from tfnas.errors import TfnasError
from tfnas.evolution import Evolution, EvolutionOptions, random_genes, random_search


def _toy_problem():
  # 12 genes of 3 choices; score rewards choice 2, constraint: at most 6 genes at choice 2.
  choices = [3] * 12
  feasible = lambda g: sum(x == 2 for x in g) <= 6
  calls = []

  def evaluate(g):
    calls.append(g)
    return sum(g) / 24 + 0.001 * g[0]
  return choices, feasible, evaluate, calls


def test_evolution_meets_constraints_finds_the_optimum_and_resumes(tmp_path):
  choices, feasible, evaluate, calls = _toy_problem()
  opts = EvolutionOptions(population=10, generations=6, top_k=4, crossovers=4, mutations=4,
                          mutation_prob=0.2, seed=1)
  full = Evolution(choices, feasible, evaluate, opts).run(log=lambda *a: None)
  assert all(feasible(g) for g in calls)  # constraints checked before every evaluation
  assert len(calls) == len(set(calls)) == full["evaluations"]
  best_genes, best = full["top"][0]
  assert sum(x == 2 for x in best_genes) == 6 and best >= 0.7
  assert full["history"][-1]["best_score"] >= full["history"][0]["best_score"]
  # Killed after 3 generations, resumed: the same result as uninterrupted.
  state = tmp_path / "evo.json"
  Evolution(choices, feasible, evaluate, EvolutionOptions(**{**opts.__dict__, "generations": 3})
            ).run(str(state), log=lambda *a: None)
  resumed = Evolution(choices, feasible, evaluate, opts).run(str(state), log=lambda *a: None)
  assert resumed["top"] == full["top"] and resumed["evaluations"] == full["evaluations"]
  # Random search with the same budget: feasible, distinct, and resumable.
  calls.clear()
  rand = random_search(choices, feasible, evaluate, full["evaluations"], 1, 10,
                       str(tmp_path / "rand.json"), log=lambda *a: None)
  assert rand["evaluations"] == full["evaluations"] and all(feasible(g) for g in calls)
  again = random_search(choices, feasible, evaluate, full["evaluations"], 1, 10,
                        str(tmp_path / "rand.json"), log=lambda *a: None)
  assert again["top"] == rand["top"]
  assert best >= rand["top"][0][1]


def test_custom_sampler_rank_key_and_known_genomes(tmp_path):
  """What the precision search needs from the engine: its own random genomes (a repaired
  draw), parents ranked by more than the score, and evaluated baselines as parents."""
  choices, feasible, evaluate, calls = _toy_problem()
  drawn = []

  def sample(rng):  # every draw repaired to exactly one gene at choice 2
    g = [int(rng.integers(2)) for _ in choices]
    g[int(rng.integers(len(g)))] = 2
    drawn.append(tuple(g))
    return tuple(g)

  # Rank "odd sums first" (a stand-in for feasible-after-measurement first), then score.
  rank_key = lambda g, score: (sum(g) % 2 == 1, score)
  known = {(0,) * 12: -1.0}  # a baseline, evaluated elsewhere
  opts = EvolutionOptions(population=6, generations=4, top_k=3, crossovers=3, mutations=3,
                          mutation_prob=0.2, seed=3)
  evo = Evolution(choices, feasible, evaluate, opts, sample=sample, rank_key=rank_key)
  out = evo.run(str(tmp_path / "evo.json"), log=lambda *a: None, known=known)
  assert drawn and (0,) * 12 not in calls  # known genomes are never evaluated again
  assert out["evaluations"] == len(calls) + 1 and out["scores"][(0,) * 12] == -1.0
  assert all(feasible(g) for g in calls) and len(calls) == len(set(calls))
  first = [tuple(g) for g in out["history"][0]["population"]]
  assert first == drawn[:len(first)]  # the first population is the sampler's
  top = [g for g, _ in out["top"]]
  keys = [rank_key(g, out["scores"][g]) for g in top]
  assert keys == sorted(keys, reverse=True) and keys[0][0]
  # Resumed with the known genome again: the same search.
  again = Evolution(choices, feasible, evaluate, opts, sample=sample, rank_key=rank_key).run(
      str(tmp_path / "evo.json"), log=lambda *a: None, known=known)
  assert again["top"] == out["top"] and again["history"] == out["history"]


def test_state_file_of_another_kind_is_refused(tmp_path):
  choices, feasible, evaluate, _ = _toy_problem()
  state = tmp_path / "state.json"
  state.write_text(json.dumps({"evaluated": [], "history": []}))  # not an evolution state
  with pytest.raises(TfnasError, match="is not an evolution state"):
    Evolution(choices, feasible, evaluate, EvolutionOptions(population=4, generations=1,
                                                            top_k=2, crossovers=1, mutations=1)
              ).run(str(state), log=lambda *a: None)


@pytest.mark.parametrize("bad, match", [
    (dict(population=0), "population >= 1"),
    (dict(crossovers=30, mutations=30), "crossovers 30 \\+ mutations 30"),
    (dict(mutation_prob=1.5), "mutation_prob 1.5"),
])
def test_bad_options_are_named(bad, match):
  with pytest.raises(TfnasError, match=match):
    EvolutionOptions(**bad).check()


def test_no_feasible_genome_is_one_error():
  with pytest.raises(TfnasError, match="no architecture met the MACs <= 1 in 50"):
    random_genes(np.random.default_rng(0), [3] * 4, lambda g: False, 50, "MACs <= 1")


def test_only_eligible_genomes_become_parents_and_other_settings_are_refused(tmp_path):
  """`eligible` (a limit known only after evaluation, e.g. measured latency) keeps
  ineligible genomes out of the parents; a state made with other options or identity is
  not resumed."""
  choices, feasible, evaluate, calls = _toy_problem()
  eligible = lambda g: g[0] != 2  # "measured over the limit" when the first gene is 2
  opts = EvolutionOptions(population=8, generations=3, top_k=3, crossovers=3, mutations=3,
                          mutation_prob=0.2, seed=2)
  state = tmp_path / "evo.json"
  out = Evolution(choices, feasible, evaluate, opts, eligible=eligible).run(
      str(state), log=lambda *a: None, identity={"limit": 1})
  assert all(h["best"] is None or eligible(tuple(h["best"])) for h in out["history"])
  assert any(g[0] == 2 for g in calls)  # ineligible genomes were evaluated, not bred from
  nobody = Evolution(choices, feasible, evaluate, opts, eligible=lambda g: False).run(
      None, log=lambda *a: None)
  assert all(h["best"] is None for h in nobody["history"])  # random genomes only
  with pytest.raises(TfnasError, match=r"identity.limit: 1 -> 2"):
    Evolution(choices, feasible, evaluate, opts, eligible=eligible).run(
        str(state), log=lambda *a: None, identity={"limit": 2})
  with pytest.raises(TfnasError, match=r"options.seed: 2 -> 5"):
    Evolution(choices, feasible, evaluate, EvolutionOptions(**{**opts.__dict__, "seed": 5}),
              eligible=eligible).run(str(state), log=lambda *a: None, identity={"limit": 1})
  more = Evolution(choices, feasible, evaluate, EvolutionOptions(
      **{**opts.__dict__, "generations": 4}), eligible=eligible).run(
          str(state), log=lambda *a: None, identity={"limit": 1})  # more generations: resumed
  assert more["history"][:3] == out["history"]
