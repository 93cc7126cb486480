"""Search quality against ground truth on `nasbench_macro` (NAS-Bench-Macro): SPOS and
ProxylessNAS, and what the benchmark's own noise allows.

  .venv/bin/python benchmarks/bench_search_quality.py [--steps=1500 --points=750,1500 \
      --archs=200 --top=200 --limits=25,50,75 --seeds=0,1,2 --population=10 --generations=4 \
      --sampling=uniform|strict_fair --val_images=2000 --val_prefixes=500,2000 \
      --search_scores=loss,accuracy]
  .venv/bin/python benchmarks/bench_search_quality.py --part=ceiling
  .venv/bin/python benchmarks/bench_search_quality.py --part=proxyless --limits=25,50,75 \
      --seeds=0,1,2 [--latency_model=runs/lut/latency_model.json]

`--part=spos` (default) trains the SPOS supernet on CIFAR-10 from ../shared/data
(`configs/spos_nasbench_macro.py`: `nasbench_macro` at width 1.0, the benchmark's own
network; --steps, --population and --generations default to its values, --points to half
and all of --steps; the other flags set their own) through the same `SPOSSearch` the search
binary runs, and measures:

- **ranking**: Kendall tau and Spearman between each arch's supernet score (validation
  top-1 with inherited weights after exact BN recalibration; and minus the loss, below) and its NAS-Bench-Macro
  accuracy, over `--archs` uniformly sampled archs at each of `--points` (training steps:
  the curve), and over the `--top` best archs at the last point; with `--val_prefixes`,
  also tau when scored on fewer of the same images (how much the score's noise costs);
  each also with the same evaluations scored by mean validation cross-entropy
  (`loss_kendall_tau`: a continuous score instead of counted hits);
- **searches**: at the last point, evolution (Algorithm 1) and random search with the same
  number of evaluations under MACs limits at the `--limits` percentiles of the space's
  MACs, for each seed and each of `--search_scores` (what evolution maximizes): the found arch's ground-truth accuracy, rank and percentile among
  the archs meeting the limit, and its gap to the best of them (`--limits=` skips them);
- **cost**: wall time of supernet training, of each evaluation and of each search.
The learning-rate schedule runs over `--steps`; the points stop training on the way.
Writes benchmarks/results/search_quality_spos.json (and prints it).

`--part=ceiling` (no training, seconds): the same ranking measured between the benchmark's
own independent trainings of each arch (run vs run), and the gap a search would have if it
could train every feasible arch once: the best any supernet can be expected to do.
Writes benchmarks/results/search_quality_ceiling.json.

`--part=proxyless`: the quick ProxylessNAS search (`configs/proxyless_cifar10.py:quick`,
the search binary's code) with its target at each limit (percentiles of the
`--latency_model`'s predictions over all 6,561 archs), for each seed: the derived arch's
ground truth among the archs meeting the target. About 10 min per search on 2 cores; a
killed run resumes at the first unfinished search. Writes
benchmarks/results/search_quality_proxyless_{macs,latency}.json.
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


def _load_config(name, arg=""):
  """`configs/<name>.py`'s get_config(arg), as the binaries' --config flag loads it."""
  from tfnas import configs
  return configs.load_file(os.path.join(ROOT, "configs", f"{name}.py"), arg)


def _write(out, obj):
  os.makedirs(os.path.dirname(out), exist_ok=True)
  with open(out, "w") as f:
    json.dump(obj, f, indent=2)


def _precision(spec: str) -> str:
  """The search's precision: the latency model's (search quality is judged against
  ground truth whichever precision the latency is of); int8 for MACs or params."""
  from tfnas import latency as latency_lib
  from tfnas.spaces import get_space
  return latency_lib.load(spec, get_space("nasbench_macro")).precision or "int8"


def _config(args):
  c = _load_config("spos_nasbench_macro")  # nasbench_macro, width 1.0, score = loss
  c.data.dataset = f"folder:{args.data}"
  c.train.steps = args.steps or c.train.steps  # 0: the config's
  c.data.batch_size = args.batch
  c.data.calib_images, c.search.val_images, c.data.val_size = args.calib_images, args.val_images, args.val_size
  c.train.sampling = args.sampling
  c.search.latency_model = args.latency_model
  c.search.precision = _precision(args.latency_model)
  c.search.searches, c.search.measure_host, c.log_every = "", False, 100
  c.checkpoint_every = min(c.train.steps, 500)
  if args.population:  # else the config's (10: top 2, 5 crossovers + 5 mutations)
    c.search.population = args.population
    c.search.top_k = max(2, args.population // 4)
    c.search.crossovers = c.search.mutations = args.population // 2
  c.search.generations = args.generations or c.search.generations
  return c


def _rank_corr(scores, truth):
  from scipy import stats
  tau = stats.kendalltau(scores, truth).statistic
  rho = stats.spearmanr(scores, truth).statistic
  return float(tau), float(rho)


def ranking(search, gt, indices, prefixes=()):
  """(tau, spearman, seconds per evaluation, ...) of the supernet's scores on
  gt.archs[indices]; with `prefixes`, also tau when each arch is scored on only the first
  P of its validation images, for each P (the same recalibration and images)."""
  import numpy as np
  search.scores = {}  # new weights since the last point: score every arch again
  t0 = time.time()
  hits = []
  for n, i in enumerate(indices, 1):
    hits.append(search.scores_per_batch(search.genes_of(gt.archs[i])))
    if n % 25 == 0 or n == len(indices):
      rate = (time.time() - t0) / n
      print(f"[ranking] {n}/{len(indices)} archs scored ({rate:.1f} s each, ETA "
            f"{rate * (len(indices) - n):.0f} s)", flush=True)
  per_eval = (time.time() - t0) / len(indices)
  hits = np.array(hits)  # (archs, batches, 3): correct, images, summed cross-entropy
  scores = hits[:, :, 0].sum(1) / hits[:, :, 1].sum(1)
  losses = hits[:, :, 2].sum(1) / hits[:, :, 1].sum(1)
  tau, rho = _rank_corr(scores, gt.accuracy[indices])
  # The same evaluations scored by mean validation cross-entropy (lower is better): a
  # continuous score, not counts of 0/1 hits.
  loss_tau, loss_rho = _rank_corr(-losses, gt.accuracy[indices])
  row = {"kendall_tau": tau, "spearman": rho, "archs": len(indices),
         "loss_kendall_tau": loss_tau, "loss_spearman": loss_rho,
         "val_images": int(hits[0, :, 1].sum()), "seconds_per_evaluation": per_eval,
         "median_supernet_accuracy": float(np.median(scores)),
         "median_supernet_loss": float(np.median(losses)),
         "scores": scores.tolist(), "losses": losses.tolist(),
         "ceiling": gt.noise_ceiling(np.asarray(indices))}
  if prefixes:
    seen = np.cumsum(hits[0, :, 1])
    row["by_val_images"] = {}
    for p in prefixes:
      if p not in seen:
        raise SystemExit(f"--val_prefixes: {p} is not a whole number of eval batches "
                         f"(cumulative batch sizes {seen.tolist()})")
      b = int(np.flatnonzero(seen == p)[0]) + 1
      part = hits[:, :b, 0].sum(1) / p
      t, r = _rank_corr(part, gt.accuracy[indices])
      lt, lr = _rank_corr(-hits[:, :b, 2].sum(1) / p, gt.accuracy[indices])
      row["by_val_images"][str(p)] = {"kendall_tau": t, "spearman": r,
                                      "loss_kendall_tau": lt, "loss_spearman": lr}
  return row


def ceiling(gt, archs, top, limits_pct):
  """What the benchmark's own noise allows: run-vs-run ranking of the same uniform / top
  archs the SPOS part scores, and the gap of a search guided by one from-scratch training."""
  import numpy as np
  rng = np.random.default_rng(0)
  out = {"uniform": gt.noise_ceiling(rng.choice(len(gt.archs), archs, replace=False)),
         "top": gt.noise_ceiling(np.argsort(-gt.accuracy)[:top]),
         "all": gt.noise_ceiling(np.arange(len(gt.archs))), "one_run_oracle": []}
  for pct in limits_pct:
    limit = float(np.percentile(gt.macs, pct)) / 1e6
    found = gt.one_run_oracle(gt.macs / 1e6 <= float(f"{limit:.4f}"))
    out["one_run_oracle"].append({"limit_percentile": pct, "macs_m_limit": limit,
                                  "gaps": [f["gap"] for f in found],
                                  "archs": [f["arch"] for f in found],
                                  "of": found[0]["of"]})
  return out


def searches(search, gt, limits_pct, seeds, log, scores=("loss",)):
  """Evolution and random search at equal evaluations for each limit, seed and score
  (what evolution maximizes: "loss" or "accuracy"; evaluations are shared between
  scores, every one records both)."""
  import numpy as np

  from tfnas.evolution import Evolution, EvolutionOptions, random_search
  from tfnas.search.spos import parse_constraints
  c = search.config
  out = []
  if search.latency.unit == "ms":  # limits on the per-op table's prediction (host latency)
    metric, values = "latency_ms", gt.predict(search.latency.predict)
  else:
    metric, values = "macs_m", gt.macs / 1e6
  for pct in limits_pct:
    limit = float(f"{float(np.percentile(values, pct)):.4f}")
    limits = parse_constraints(f"{metric}<={limit}")
    feasible_mask = values <= limit
    feasible = lambda g, limits=limits: search.feasible(g, limits)
    for seed, score in [(seed, score) for seed in seeds for score in scores]:
      c.search.score = score  # the evaluations already made, scored this way
      search.scores = {k: (-e["loss"] if score == "loss" else e["accuracy"])
                       for k, e in search.evals.items()}
      opts = EvolutionOptions(c.search.population, c.search.generations, c.search.top_k, c.search.crossovers, c.search.mutations,
                              c.search.mutation_prob, seed)
      t0 = time.time()
      evo = Evolution(search.choices, feasible, search.evaluate, opts, f"{metric}<={limit}").run(
          None, log, tag=f"evolution p{pct} s{seed}")
      evo_seconds = time.time() - t0
      t0 = time.time()
      rand = random_search(search.choices, feasible, search.evaluate, evo["evaluations"], seed,
                           c.search.population, None, log, f"{metric}<={limit}")
      row = {"limit_percentile": pct, "metric": metric, "limit": limit, "seed": seed,
             "score": score, "evaluations": evo["evaluations"],
             "evolution_seconds": evo_seconds,
             "random_seconds": time.time() - t0}
      for name, result in (("evolution", evo), ("random", rand)):
        genes, value = result["top"][0]
        arch = search.arch_of(genes)
        row[name] = {"supernet_score": value, "supernet_accuracy":
                     search.evals[arch.key()]["accuracy"], "supernet_loss":
                     search.evals[arch.key()]["loss"], **gt.standing(arch, feasible_mask)}
      out.append(row)
      log(f"p{pct} seed {seed} score {score}: evolution {row['evolution']['accuracy']:.2f} "
          f"(rank {row['evolution']['rank']}/{row['evolution']['of']}), random "
          f"{row['random']['accuracy']:.2f} (rank {row['random']['rank']}), best "
          f"{row['evolution']['best_accuracy']:.2f}")
  return out


def _proxyless_config(args, target, seed):
  c = _load_config("proxyless_cifar10", "quick")  # nasbench_macro, width 1.0, derive=target
  c.data.dataset, c.seed, c.search.target = f"folder:{args.data}", seed, float(target)
  c.search.latency_model = args.latency_model
  c.search.precision = _precision(args.latency_model)
  if args.proxyless_steps:
    c.train.steps, c.search.warmup_steps = args.proxyless_steps, args.proxyless_steps // 2
  return c


def proxyless(args, gt, limits_pct, seeds, log):
  """ProxylessNAS (the quick config, the search binary's `search`) with target = each
  limit, for each seed; the derived arch's standing among the archs whose prediction
  meets the target (+ derive_tolerance, as the report's own verdict). A finished
  (limit, seed) is read back from its workdir's report, so a killed run resumes."""
  import numpy as np

  from tfnas import latency as latency_lib
  from tfnas.search import proxyless as proxyless_lib
  model = latency_lib.load(args.latency_model, gt.space)
  predicted = gt.predict(model.predict)
  out = []
  for pct in limits_pct:
    target = float(np.percentile(predicted, pct))
    for seed in seeds:
      wd = os.path.join(args.workdir, f"proxyless_p{pct:g}_s{seed}")
      path = os.path.join(wd, "search_report.json")
      t0 = time.time()
      if os.path.exists(path):
        with open(path) as f:
          report = json.load(f)
        seconds = report.get("bench_seconds")
        done = report.get("target") or {}
        if done.get("unit") != model.unit or abs(done.get("value", -1) - target) > 1e-6 * target:
          raise SystemExit(f"{wd} holds a search for {done.get('value')} {done.get('unit')}, "
                           f"not {target:.6g} {model.unit}: use another --workdir")
      else:
        config = _proxyless_config(args, target, seed)
        report = proxyless_lib.search(config, wd)
        seconds = time.time() - t0
        report["bench_seconds"] = seconds
        with open(path, "w") as f:
          json.dump(report, f, indent=2)
      g = report["ground_truth"]
      # The baseline a derivation within the target must beat: any arch in the same window
      # (predicted within the tolerance of the target), each as likely as another. Exact,
      # from all archs: bigger archs are better on this benchmark, so this is no strawman.
      tol = report.get("derive_tolerance", 0.05)
      feasible = predicted <= target * (1 + tol)
      window = feasible & (predicted >= target * (1 - tol))
      acc = gt.accuracy
      baseline = {"archs": int(window.sum()),
                  "median_accuracy": float(np.median(acc[window])),
                  "median_gap": float(g["best_accuracy"] - np.median(acc[window])),
                  "median_percentile": float(np.median(
                      [100.0 * np.mean(acc[feasible] <= a) for a in acc[window]])),
                  "share_better_than_found": float(np.mean(acc[window] > g["accuracy"]))}
      row = {"limit_percentile": pct, "target": target, "unit": model.unit, "seed": seed,
             "arch": g["arch"], "accuracy": g["accuracy"], "rank": g["rank"], "of": g["of"],
             "percentile": g["percentile"], "gap": g["gap"], "best_arch": g["best_arch"],
             "best_accuracy": g["best_accuracy"],
             "predicted_over_target": report["predicted_over_target"],
             "argmax_over_target": report["argmax_over_target"],
             "val_accuracy_inherited": report["val_accuracy_inherited"],
             "measured_ms": (report.get("measured_latency") or {}).get("value"),
             "seconds": seconds,
             "random_in_window": baseline}
      out.append(row)
      log(f"proxyless p{pct:g} ({target:.4g} {model.unit}) seed {seed}: {g['accuracy']:.2f} "
          f"(rank {g['rank']}/{g['of']}), best {g['best_accuracy']:.2f}, gap {g['gap']:.2f}; "
          f"predicted {report['predicted_over_target']:.3f}x target; a random arch in the "
          f"window: median {baseline['median_accuracy']:.2f}, "
          f"{100 * baseline['share_better_than_found']:.0f} % of them better")
  return out


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--data", default=os.path.join(
      os.environ.get("TFNAS_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data")),
      "cifar10-jpg.tar.gz"))
  p.add_argument("--workdir", default=os.path.join(ROOT, "runs", "bench_search_quality"))
  p.add_argument("--steps", type=int, default=0,
                 help="supernet training steps (the lr schedule's length); 0: the config's")
  p.add_argument("--points", default="",
                 help="steps at which to score the archs, the last = --steps; '': half "
                      "and all of --steps")
  p.add_argument("--batch", type=int, default=64)
  p.add_argument("--archs", type=int, default=200)
  p.add_argument("--top", type=int, default=200)
  p.add_argument("--calib_images", type=int, default=256)
  p.add_argument("--val_images", type=int, default=2000)
  p.add_argument("--val_size", type=int, default=5000, help="held-out training images")
  p.add_argument("--limits", default="25,50,75")
  p.add_argument("--seeds", default="0,1,2")
  p.add_argument("--population", type=int, default=0, help="0: the config's")
  p.add_argument("--generations", type=int, default=0, help="0: the config's")
  p.add_argument("--curve_log", default="",
                 help="the log of an earlier run of this script on the same --workdir: its "
                      "ranking rows (one JSON line per point) become this run's curve, for a "
                      "rerun that only searches (--archs=0 --top=0, --points=--steps: the "
                      "supernet's last checkpoint is restored, no training step runs)")
  p.add_argument("--val_prefixes", default="500,2000",
                 help="e.g. 500,1000: also report tau with each arch scored on only the first "
                      "P of its --val_images (multiples of the eval batch, 250)")
  p.add_argument("--sampling", default="uniform", choices=("uniform", "strict_fair"),
                 help="supernet path sampling (config.train.sampling)")
  p.add_argument("--search_scores", default="loss",
                 help="what the searches' evolution maximizes (config.search.score), each in turn "
                      "on shared evaluations: loss, accuracy or loss,accuracy")
  p.add_argument("--part", default="spos", choices=("spos", "ceiling", "proxyless"),
                 help="spos: train and score the supernet, search; ceiling: no training, the "
                      "benchmark's own run-to-run noise (what any evaluator can reach); "
                      "proxyless: one ProxylessNAS search per limit and seed")
  p.add_argument("--latency_model", default="macs",
                 help="the cost the limits are percentiles of (SPOS: latency_ms limits for a "
                      "model in ms; ProxylessNAS: its target's unit): 'macs', or a per-op "
                      "table measured on the spot "
                      "(python -m tfnas.bin.latency_fit --measure_lut --space=nasbench_macro "
                      "--out=DIR; then DIR/latency_model.json)")
  p.add_argument("--proxyless_steps", type=int, default=0,
                 help="--part=proxyless: steps (half of them weight-only warm-up); 0: the "
                      "quick config's")
  p.add_argument("--out", default="")
  args = p.parse_args()
  import numpy as np

  limits_pct = [float(x) for x in args.limits.split(",") if x]
  for x in args.search_scores.split(","):
    if x not in ("loss", "accuracy"):
      p.error(f"--search_scores: {x!r} is not loss or accuracy")
  prefixes = [int(x) for x in args.val_prefixes.split(",") if x]
  for v in prefixes:  # checked before any training: ranking scores in eval batches of 250
    if not (0 < v <= args.val_images and (v % 250 == 0 or v == args.val_images)):
      p.error(f"--val_prefixes: {v} must be a multiple of the eval batch (250), or "
              f"--val_images, and at most --val_images ({args.val_images})")

  from tfnas.spaces import get_space
  from tfnas.spaces import groundtruth
  gt = groundtruth.load(get_space("nasbench_macro"))
  if args.part == "ceiling":
    result = ceiling(gt, args.archs, args.top, limits_pct)
    _write(args.out or os.path.join(RESULTS, "search_quality_ceiling.json"), result)
    print(json.dumps(result, indent=2))
    return
  if args.part == "proxyless":
    t0 = time.time()
    rows = proxyless(args, gt, limits_pct, [int(x) for x in args.seeds.split(",")],
                     lambda *a: print(*a, flush=True))
    result = {"space": "nasbench_macro", "method": "proxylessnas", "cpu_count": os.cpu_count(),
              "latency_model": args.latency_model, "searches": rows,
              "summary": {"gap_median": float(np.median([r["gap"] for r in rows])),
                          "gap_max": float(np.max([r["gap"] for r in rows])),
                          "percentile_median": float(np.median([r["percentile"] for r in rows])),
                          "window_random_gap_median": float(np.median(
                              [r["random_in_window"]["median_gap"] for r in rows])),
                          "wall_seconds": time.time() - t0}}
    kind = "macs" if args.latency_model == "macs" else "latency"
    _write(args.out or os.path.join(RESULTS, f"search_quality_proxyless_{kind}.json"), result)
    print(json.dumps(result["summary"], indent=2))
    return

  from tfnas.search.spos import SPOSSearch
  from tfnas.runtime import supernet_graphs
  config = _config(args)
  steps = config.train.steps
  points = sorted(int(x) for x in (args.points or f"{steps // 2},{steps}").split(","))
  if points[-1] != steps:
    p.error(f"the last point must be --steps ({steps})")
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
      config.train.steps = point  # the optimizer's schedule was built for all `steps`
      t0 = time.time()
      search.train()
      train_seconds += time.time() - t0
      if not args.archs:
        continue
      row = {"step": point, "train_seconds": train_seconds,
             "uniform": ranking(search, gt, uniform, prefixes)}
      if point == points[-1] and args.top:
        row["top"] = ranking(search, gt, top, prefixes)
      result["curve"].append(row)
      log(json.dumps(row))
    search.load_scores()  # this step's evaluations already in candidates.jsonl (a rerun)
    result["searches"] = searches(search, gt, limits_pct,
                                  [int(s) for s in args.seeds.split(",")], log,
                                  [x for x in args.search_scores.split(",") if x])
  s = result["searches"]
  result["summary"] = {
      "kendall_tau_uniform": result["curve"][-1]["uniform"]["kendall_tau"],
      "kendall_tau_top": result["curve"][-1].get("top", {}).get("kendall_tau"),
      "loss_kendall_tau_uniform": result["curve"][-1]["uniform"].get("loss_kendall_tau"),
      "loss_kendall_tau_top": result["curve"][-1].get("top", {}).get("loss_kendall_tau"),
      "supernet_train_seconds": train_seconds}
  for score in sorted({r["score"] for r in s}):
    rows = [r for r in s if r["score"] == score]
    result["summary"][f"searches_by_{score}"] = {
        "evolution_gap_median": float(np.median([r["evolution"]["gap"] for r in rows])),
        "evolution_gap_max": float(np.max([r["evolution"]["gap"] for r in rows])),
        "random_gap_median": float(np.median([r["random"]["gap"] for r in rows])),
        "evolution_minus_random_mean": float(np.mean(
            [r["evolution"]["accuracy"] - r["random"]["accuracy"] for r in rows]))}
  _write(args.out or os.path.join(RESULTS, "search_quality_spos.json"), result)
  print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
  main()
