"""Search quality against ground truth: SPOS on `nasbench_macro` (NAS-Bench-Macro).

  .venv/bin/python benchmarks/bench_search_quality.py [--steps=1500 --points=500,1000,1500 \
      --archs=200 --top=200 --limits=25,50,75 --seeds=0,1,2 --population=16 --generations=4]

Trains the SPOS supernet on CIFAR-10 from ../shared/data (`configs/spos_cifar10.py` with
`space=nasbench_macro`, width 1.0: the benchmark's own network) through the same
`SPOSSearch` the search binary runs, and measures what a search is worth:

- **ranking**: Kendall tau and Spearman between each arch's supernet score (validation
  top-1 with inherited weights after exact BN recalibration) and its NAS-Bench-Macro
  accuracy, over `--archs` uniformly sampled archs at each of `--points` (training steps:
  the curve), and over the `--top` best archs at the last point;
- **searches**: at the last point, evolution (Algorithm 1) and random search with the same
  number of evaluations under MACs limits at the `--limits` percentiles of the space's
  MACs, for each seed: the found arch's ground-truth accuracy, rank and percentile among
  the archs meeting the limit, and its gap to the best of them;
- **cost**: wall time of supernet training, of each evaluation and of each search.

The learning-rate schedule runs over `--steps`; the points stop training on the way.
Writes benchmarks/results/search_quality_spos.json (and prints it).
"""

import argparse
import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
RESULTS = os.path.join(ROOT, "benchmarks", "results")


def _config(args):
  import importlib.util
  spec = importlib.util.spec_from_file_location("c", os.path.join(ROOT, "configs",
                                                                  "spos_cifar10.py"))
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  c = module.get_config()
  c.space, c.width, c.dataset = "nasbench_macro", 1.0, f"folder:{args.data}"
  c.steps, c.batch_size, c.eval_batch_size = args.steps, args.batch, 250
  c.calib_images, c.val_images, c.val_size = args.calib_images, args.val_images, args.val_size
  c.channel_warmup_fraction = 0.0  # no channel choices in this space
  c.searches, c.measure_host, c.log_every = "", False, 100
  c.checkpoint_every = min(args.steps, 500)
  c.population, c.generations = args.population, args.generations
  c.top_k = max(2, args.population // 4)
  c.crossovers = c.mutations = args.population // 2
  return c


def _rank_corr(scores, truth):
  from scipy import stats
  tau = stats.kendalltau(scores, truth).statistic
  rho = stats.spearmanr(scores, truth).statistic
  return float(tau), float(rho)


def ranking(search, gt, indices):
  """(tau, spearman, seconds per evaluation) of the supernet's scores on gt.archs[indices]."""
  search.scores = {}  # new weights since the last point: score every arch again
  t0 = time.time()
  scores = [search.evaluate(search.genes_of(gt.archs[i])) for i in indices]
  per_eval = (time.time() - t0) / len(indices)
  tau, rho = _rank_corr(scores, gt.accuracy[indices])
  return {"kendall_tau": tau, "spearman": rho, "archs": len(indices),
          "seconds_per_evaluation": per_eval,
          "median_supernet_accuracy": float(sorted(scores)[len(scores) // 2])}


def searches(search, gt, limits_pct, seeds, log):
  import numpy as np

  from tfnas.search.evolution import Evolution, EvolutionOptions, random_search
  from tfnas.search.spos import parse_constraints
  c = search.config
  out = []
  for pct in limits_pct:
    limit = float(np.percentile(gt.macs, pct)) / 1e6
    limits = parse_constraints(f"macs_m<={limit:.4f}")
    feasible_mask = gt.macs / 1e6 <= float(f"{limit:.4f}")
    feasible = lambda g, limits=limits: search.feasible(g, limits)
    for seed in seeds:
      opts = EvolutionOptions(c.population, c.generations, c.top_k, c.crossovers, c.mutations,
                              c.mutation_prob, seed)
      t0 = time.time()
      evo = Evolution(search.choices, feasible, search.evaluate, opts, f"macs_m<={limit:.1f}").run(
          None, log, tag=f"evolution p{pct} s{seed}")
      evo_seconds = time.time() - t0
      t0 = time.time()
      rand = random_search(search.choices, feasible, search.evaluate, evo["evaluations"], seed,
                           c.population, None, log, f"macs_m<={limit:.1f}")
      row = {"limit_percentile": pct, "macs_m_limit": limit, "seed": seed,
             "evaluations": evo["evaluations"], "evolution_seconds": evo_seconds,
             "random_seconds": time.time() - t0}
      for name, result in (("evolution", evo), ("random", rand)):
        genes, score = result["top"][0]
        row[name] = {"supernet_accuracy": score,
                     **gt.standing(search.arch_of(genes), feasible_mask)}
      out.append(row)
      log(f"p{pct} seed {seed}: evolution {row['evolution']['accuracy']:.2f} "
          f"(rank {row['evolution']['rank']}/{row['evolution']['of']}), random "
          f"{row['random']['accuracy']:.2f} (rank {row['random']['rank']}), best "
          f"{row['evolution']['best_accuracy']:.2f}")
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data", default=os.path.join(
      os.environ.get("TFNAS_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data")),
      "cifar10-jpg.tar.gz"))
  p.add_argument("--workdir", default=os.path.join(ROOT, "runs", "bench_search_quality"))
  p.add_argument("--steps", type=int, default=1500)
  p.add_argument("--points", default="500,1000,1500")
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--archs", type=int, default=200)
  p.add_argument("--top", type=int, default=200)
  p.add_argument("--calib_images", type=int, default=256)
  p.add_argument("--val_images", type=int, default=500)
  p.add_argument("--val_size", type=int, default=5000, help="held-out training images")
  p.add_argument("--limits", default="25,50,75")
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--population", type=int, default=16)
  p.add_argument("--generations", type=int, default=4)
  p.add_argument("--curve_log", default="",
                 help="the log of an earlier run of this script on the same --workdir: its "
                      "ranking rows (one JSON line per point) become this run's curve, for a "
                      "rerun that only searches (--archs=0 --top=0, --points=--steps: the "
                      "supernet's last checkpoint is restored, no training step runs)")
  p.add_argument("--out", default=os.path.join(RESULTS, "search_quality_spos.json"))
  args = p.parse_args()
  import numpy as np

  from tfnas.search.spos import SPOSSearch
  from tfnas.spaces import get_space
  from tfnas.spaces import groundtruth
  from tfnas.train import supernet_graphs
  points = sorted(int(x) for x in args.points.split(","))
  if points[-1] != args.steps:
    p.error(f"the last point must be --steps ({args.steps})")
  gt = groundtruth.load(get_space("nasbench_macro"))
  config = _config(args)
  search = SPOSSearch(config, args.workdir)
  rng = np.random.default_rng(0)
  uniform = rng.choice(len(gt.archs), args.archs, replace=False)  # the same archs at each point
  top = np.argsort(-gt.accuracy)[:args.top]
  log = lambda *a: print(*a, flush=True)
  result = {"space": "nasbench_macro", "method": "spos", "config": json.loads(
      config.to_json_best_effort()), "curve": [], "cpu_count": os.cpu_count()}
  train_seconds = 0.0
  if args.curve_log:
    with open(args.curve_log) as f:
      result["curve"] = [json.loads(l) for l in f if l.startswith('{"step"')]
    result["curve_from"] = args.curve_log
    train_seconds = result["curve"][-1]["train_seconds"] if result["curve"] else 0.0
  with supernet_graphs():
    for point in points:
      config.steps = point  # the optimizer's schedule was built for args.steps
      t0 = time.time()
      search.train()
      train_seconds += time.time() - t0
      if not args.archs:
        continue
      row = {"step": point, "train_seconds": train_seconds,
             "uniform": ranking(search, gt, uniform)}
      if point == points[-1] and args.top:
        row["top"] = ranking(search, gt, top)
      result["curve"].append(row)
      log(json.dumps(row))
    result["searches"] = searches(search, gt, [float(x) for x in args.limits.split(",")],
                                  [int(s) for s in args.seeds.split(",")], log)
  s = result["searches"]
  result["summary"] = {
      "kendall_tau_uniform": result["curve"][-1]["uniform"]["kendall_tau"],
      "kendall_tau_top": result["curve"][-1].get("top", {}).get("kendall_tau"),
      "evolution_gap_median": float(np.median([r["evolution"]["gap"] for r in s])),
      "evolution_gap_max": float(np.max([r["evolution"]["gap"] for r in s])),
      "random_gap_median": float(np.median([r["random"]["gap"] for r in s])),
      "evolution_minus_random_mean": float(np.mean(
          [r["evolution"]["accuracy"] - r["random"]["accuracy"] for r in s])),
      "supernet_train_seconds": train_seconds}
  os.makedirs(os.path.dirname(args.out), exist_ok=True)
  with open(args.out, "w") as f:
    json.dump(result, f, indent=2)
  print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
  main()
