"""Single Path One-Shot figures: supernet vs child step, search cost, evolution vs random.

  .venv/bin/python benchmarks/bench_spos.py --part=step [--width=1.0 --batch=128 --archs=3]
  .venv/bin/python benchmarks/bench_spos.py --part=search [--width=0.5 --steps=2000 ...]
  .venv/bin/python benchmarks/bench_spos.py --part=cost [--rounds=15]
  .venv/bin/python benchmarks/bench_spos.py --part=recalib [--rounds=15 --width=1.0]

`step`: the supernet's training step (sliced channels, one path) against the sampled
child's (a plain Keras model of the same arch) at the same batch, for a few random
archs of `spos_cifar`, each variant in its own process. Peak memory of a step is
TensorFlow's BFC allocator statistic on the CPU (peak minus the bytes held before the
step), step time the median of `--steps` steps after warm-up. Writes
benchmarks/results/spos_step.json.

`search`: trains a CIFAR-10 supernet (real images from ../shared/data) for `--steps`,
then for each seed runs evolution (Algorithm 1) and random search with the same number
of evaluations under one MACs limit, every candidate scored with exact BN
recalibration on `--calib_images` training images and top-1 on `--val_images`
held-out validation images. Reports the best accuracy per generation, the time per
candidate evaluation, the time of a 1,000-candidate evolution (from the measured time
per evaluation) and its ratio to the supernet's training time at the same configuration
(measured step time x the full config's steps). Writes benchmarks/results/spos_search.json.

`cost`: the search-cost ratio at the full CIFAR-10 config itself (configs/spos_cifar10.py:
width, batch, calib_images, val_images and steps as written there, real images). Rounds
interleave one candidate evaluation (a fresh random arch: exact BN recalibration + top-1)
with a few supernet training steps, so host drift hits both alike; the ratio is
1,000 x median evaluation / (median step x the config's steps). Both costs are independent
of the weights' values, so the supernet is not trained first. Writes
benchmarks/results/spos_cost.json.

`recalib`: the fixed part of every candidate's BN recalibration on `spos_cifar` -- zeroing
every BN's accumulators before the calibration pass and turning the sums into moving
statistics after it -- as eager per-layer updates (before 2026-11-30) against one traced
graph call each (`SPOSSupernet.calibration_edges`), interleaved per round, default strategy
and MirroredStrategy over two logical CPUs (`--replicas=2`). Writes
benchmarks/results/spos_recalib_edges.json.
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
RESULTS = os.path.join(ROOT, "benchmarks", "results")


def _archs(space, n, seed=0):
  import numpy as np

  from tfnas.spaces import Arch
  rng = np.random.default_rng(seed)
  k = len(space.choice_blocks)
  return [Arch.create(space, rng.integers(0, 4, k).tolist(), rng.integers(0, 8, k).tolist())
          for _ in range(n)]


def measure_step(variant, width, batch, steps, n_archs):
  import tensorflow as tf

  from tfnas.models import build_child
  from tfnas.models.spos import SPOSSupernet
  from tfnas.spaces import get_space
  from tfnas.runtime import supernet_graphs
  space = get_space("spos_cifar", width=width)
  x = tf.random.normal((batch, 32, 32, 3))
  y = tf.random.uniform((batch,), 0, 10, tf.int32)
  ce = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  rows = []
  net = SPOSSupernet(space) if variant == "supernet" else None
  for arch in _archs(space, n_archs):
    if net is not None:
      ops, chans = net.arch_tensors(arch)
      fwd, variables = (lambda: net(x, ops=ops, chans=chans, bn_mode="train")), \
          net.trainable_variables
    else:
      model = build_child(space, arch)
      fwd, variables = (lambda: model(x, training=True)), model.trainable_variables
    opt = tf.keras.optimizers.SGD(0.01, momentum=0.9)
    opt.build(variables)

    @tf.function
    def step():
      with tf.GradientTape() as tape:
        loss = ce(y, fwd())
      opt.apply_gradients(zip(tape.gradient(loss, variables), variables))
      return loss

    with supernet_graphs():
      step()  # trace + warm-up
      step()
    times, peaks = [], []
    for _ in range(steps):
      tf.config.experimental.reset_memory_stats("CPU:0")
      before = tf.config.experimental.get_memory_info("CPU:0")["current"]
      t = time.perf_counter()
      step().numpy()
      times.append(time.perf_counter() - t)
      peaks.append(tf.config.experimental.get_memory_info("CPU:0")["peak"] - before)
    rows.append({"arch": arch.to_string(space), "median_step_s": statistics.median(times),
                 "peak_step_bytes": statistics.median(peaks)})
  return rows


def part_step(args):
  env = {**os.environ, "TF_CPU_ALLOCATOR_USE_BFC": "true"}
  rows = {}
  for v in ("child", "supernet"):
    out = subprocess.run([sys.executable, __file__, "--part=step_worker", f"--variant={v}",
                          f"--width={args.width}", f"--batch={args.batch}",
                          f"--steps={args.steps}", f"--archs={args.archs}"],
                         capture_output=True, text=True, env=env)
    if out.returncode:
      raise SystemExit(out.stderr[-3000:])
    rows[v] = json.loads(out.stdout.strip().splitlines()[-1])
  per_arch = []
  for c, s in zip(rows["child"], rows["supernet"]):
    per_arch.append({"arch": c["arch"], "child_step_s": c["median_step_s"],
                     "supernet_step_s": s["median_step_s"],
                     "time_ratio": s["median_step_s"] / c["median_step_s"],
                     "child_peak_mib": c["peak_step_bytes"] / 2**20,
                     "supernet_peak_mib": s["peak_step_bytes"] / 2**20,
                     "memory_ratio": s["peak_step_bytes"] / c["peak_step_bytes"]})
    r = per_arch[-1]
    print(f"{r['arch'][:60]}...: step {r['supernet_step_s'] * 1e3:.0f} / "
          f"{r['child_step_s'] * 1e3:.0f} ms = {r['time_ratio']:.2f}x, peak "
          f"{r['supernet_peak_mib']:.0f} / {r['child_peak_mib']:.0f} MiB = "
          f"{r['memory_ratio']:.2f}x")
  result = {"space": "spos_cifar", "resolution": 32, "width": args.width, "batch": args.batch,
            "per_arch": per_arch,
            "median_time_ratio": statistics.median(r["time_ratio"] for r in per_arch),
            "median_memory_ratio": statistics.median(r["memory_ratio"] for r in per_arch),
            "command": "python benchmarks/bench_spos.py " + " ".join(sys.argv[1:])}
  print(f"median supernet/child: time {result['median_time_ratio']:.2f}x, memory "
        f"{result['median_memory_ratio']:.2f}x (goal <= 1.2x each)")
  with open(os.path.join(RESULTS, "spos_step.json"), "w") as f:
    json.dump(result, f, indent=2)


def part_search(args):
  from tfnas import configs
  from tfnas.search import spos
  from tfnas.evolution import Evolution, EvolutionOptions, random_search
  from tfnas.runtime import supernet_graphs
  config = load_config(os.path.join(ROOT, "configs", "spos_cifar10.py"), "")
  full_steps = config.train.steps
  config.data.dataset = f"folder:{args.data}"
  configs.override(config, {
      "model.width": args.width, "train.steps": args.steps,
      "data.train_limit": args.train_limit, "data.val_size": args.val_size,
      "data.batch_size": args.batch, "data.calib_images": args.calib_images,
      "search.val_images": args.val_images, "search.searches": args.limit, "log_every": 100,
      "checkpoint_every": 500, "search.measure_host": False})
  search = spos.SPOSSearch(config, args.workdir)
  os.makedirs(args.workdir, exist_ok=True)
  with supernet_graphs():
    trained = search.train()
  limits = search.searches[0]
  feasible = lambda g: search.feasible(g, limits)
  search.load_scores()
  eval_times = []

  def timed_eval(genes):
    key = search.arch_of(genes).key()
    t = time.perf_counter()
    acc = search.evaluate(genes)
    if key not in timed:
      eval_times.append(time.perf_counter() - t)
      timed.add(key)
    return acc
  timed = set(search.scores)  # cached from an earlier run: not timed again
  runs = []
  with supernet_graphs():
    search._prepare_eval()
    search.evaluate(search.genes_of(search.largest()))  # traces calibration and eval
    for seed in args.seeds:
      opts = EvolutionOptions(args.population, args.generations, args.top_k,
                              args.population // 2, args.population - args.population // 2,
                              0.1, seed)
      t = time.perf_counter()
      evo = Evolution(search.choices, feasible, timed_eval, opts).run(
          os.path.join(args.workdir, f"bench_evo_{seed}.json"), tag=f"evolution seed {seed}")
      evo_s = time.perf_counter() - t
      rnd = random_search(search.choices, feasible, timed_eval, evo["evaluations"], seed,
                          args.population, os.path.join(args.workdir, f"bench_rand_{seed}.json"))
      runs.append({"seed": seed, "evaluations": evo["evaluations"], "evolution_seconds": evo_s,
                   "evolution_best_per_generation": [h["best_score"] for h in evo["history"]],
                   "random_best_per_generation": [h["best_score"] for h in rnd["history"]],
                   "evolution_best": evo["top"][0][1], "random_best": rnd["top"][0][1],
                   "evolution_best_arch": search.arch_of(evo["top"][0][0]).to_string(
                       search.space),
                   "evolution_best_macs_m": search.metrics(evo["top"][0][0])["macs_m"]})
      r = runs[-1]
      print(f"seed {seed}: {r['evaluations']} evaluations each: evolution best "
            f"{r['evolution_best']:.4f}, random best {r['random_best']:.4f}")
  # Timed after the search: these steps move the weights (never saved), so a rerun's
  # cached candidate scores still belong to the checkpointed supernet.
  step_s = _train_step_seconds(search, args.batch)
  per_eval = statistics.median(eval_times) if eval_times else float("nan")
  thousand = 1000 * per_eval
  result = {
      "space": "spos_cifar", "width": args.width, "batch": args.batch, "limit": args.limit,
      "supernet_steps": args.steps, "supernet_train": trained,
      "train_step_seconds_median": step_s, "calib_images": args.calib_images,
      "val_images": args.val_images, "population": args.population,
      "generations": args.generations, "top_k": args.top_k,
      "candidate_eval_seconds_median": per_eval, "candidates_timed": len(eval_times),
      "evolution_1000_seconds": thousand,
      "full_config_steps": full_steps,
      "full_config_train_seconds": step_s * full_steps,
      "evolution_1000_over_full_training": thousand / (step_s * full_steps),
      "evolution_1000_over_this_training": thousand / (step_s * args.steps),
      "runs": runs,
      "evolution_wins": sum(r["evolution_best"] > r["random_best"] for r in runs),
      "ties": sum(r["evolution_best"] == r["random_best"] for r in runs),
      "median_gap": statistics.median(r["evolution_best"] - r["random_best"] for r in runs),
      "command": "python benchmarks/bench_spos.py " + " ".join(sys.argv[1:])}
  print(f"candidate evaluation (BN recalibration on {args.calib_images} + top-1 on "
        f"{args.val_images} images): median {per_eval:.2f} s; 1,000 candidates {thousand:.0f} s "
        f"= {100 * result['evolution_1000_over_full_training']:.1f} % of training the supernet "
        f"for the full config's {full_steps} steps ({step_s:.3f} s/step)")
  print(f"evolution beat random in {result['evolution_wins']}/{len(runs)} seeds "
        f"(ties {result['ties']}), median gap {result['median_gap']:+.4f}")
  with open(os.path.join(RESULTS, "spos_search.json"), "w") as f:
    json.dump(result, f, indent=2)
  _plot(result, os.path.join(RESULTS, "spos_search.png"))


def part_cost(args):
  import numpy as np

  from tfnas import configs
  from tfnas.search import spos
  from tfnas.evolution import random_genes
  from tfnas.runtime import supernet_graphs
  config = load_config(os.path.join(ROOT, "configs", "spos_cifar10.py"), "")
  config.data.dataset = f"folder:{args.data}"
  config.search.measure_host = False
  search = spos.SPOSSearch(config, args.workdir)
  os.makedirs(args.workdir, exist_ok=True)
  step_fn = search.train_step_fn()
  train = iter(search.data.train.repeat())
  rng = np.random.default_rng(args.seeds[0])
  evals, steps = [], []
  with supernet_graphs():
    search._prepare_eval()
    for i in range(args.rounds + 1):  # round 0 traces both functions
      genes = random_genes(rng, search.choices, lambda g: True)
      search.scores.pop(search.arch_of(genes).key(), None)
      t = time.perf_counter()
      search.evaluate(genes)
      e = time.perf_counter() - t
      st = []
      for _ in range(args.steps_per_round):
        images, labels = next(train)
        t = time.perf_counter()
        step_fn(images, labels, *search._tensors(random_genes(rng, search.choices,
                                                               lambda g: True)))[0].numpy()
        st.append(time.perf_counter() - t)
      if i:
        evals.append(e)
        steps.extend(st[1:])  # the first step after an evaluation pays its cache misses
      print(f"round {i}: evaluation {e:.2f} s, steps {statistics.median(st):.3f} s", flush=True)
  per_eval, step_s = statistics.median(evals), statistics.median(steps)
  ratio = 1000 * per_eval / (step_s * config.train.steps)
  result = {
      "space": config.model.space, "width": config.model.width, "batch": config.data.batch_size,
      "calib_images": config.data.calib_images, "val_images": config.search.val_images,
      "config_steps": config.train.steps, "rounds": args.rounds,
      "candidate_eval_seconds_median": per_eval,
      "candidate_eval_seconds_p10_p90": [float(np.percentile(evals, 10)),
                                         float(np.percentile(evals, 90))],
      "train_step_seconds_median": step_s,
      "train_steps_timed": len(steps),
      "evolution_1000_seconds": 1000 * per_eval,
      "supernet_train_seconds": step_s * config.train.steps,
      "evolution_1000_over_training": ratio,
      "command": "python benchmarks/bench_spos.py " + " ".join(sys.argv[1:])}
  print(f"full config ({config.model.space} width {config.model.width}, batch {config.data.batch_size}, "
        f"{config.data.calib_images} calib + {config.search.val_images} val images): evaluation "
        f"{per_eval:.2f} s, step {step_s:.3f} s; 1,000 candidates {1000 * per_eval:.0f} s = "
        f"{100 * ratio:.1f} % of {config.train.steps} training steps ({step_s * config.train.steps:.0f} s)")
  with open(os.path.join(RESULTS, "spos_cost.json"), "w") as f:
    json.dump(result, f, indent=2)


def load_config(path, arg):
  from tfnas import configs
  return configs.load_file(path, arg)


def _train_step_seconds(search, batch, n=20):
  """Median time of the supernet training step (random archs, real pipeline)."""
  import numpy as np

  from tfnas.evolution import random_genes
  from tfnas.runtime import supernet_graphs
  step_fn = search.train_step_fn()
  train = iter(search.data.train.repeat())
  # These steps continue training the supernet (as the loop would), after the search.
  rng = np.random.default_rng(123)
  times = []
  with supernet_graphs():
    for i in range(n + 2):
      genes = random_genes(rng, search.choices, lambda g: True)
      images, labels = next(train)
      t = time.perf_counter()
      step_fn(images, labels, *search._tensors(genes))[0].numpy()
      if i >= 2:
        times.append(time.perf_counter() - t)
  return statistics.median(times)


def _plot(result, path):
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, ax = plt.subplots(figsize=(6.4, 4.2))
  for k, r in enumerate(result["runs"]):
    e, q = r["evolution_best_per_generation"], r["random_best_per_generation"]
    ax.plot(range(1, len(e) + 1), e, "-o", color=f"C{k}", ms=3, label=f"evolution seed {r['seed']}")
    ax.plot(range(1, len(q) + 1), q, "--", color=f"C{k}", label=f"random seed {r['seed']}")
  ax.set_xlabel(f"generation (population {result['population']}; random: same count)")
  ax.set_ylabel("best validation top-1 so far")
  ax.set_title(f"SPOS on CIFAR-10, {result['limit']}")
  ax.legend(fontsize=7)
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def part_recalib(args):
  import tensorflow as tf

  if args.replicas > 1:
    cpu = tf.config.list_physical_devices("CPU")[0]
    tf.config.set_logical_device_configuration(
        cpu, [tf.config.LogicalDeviceConfiguration()] * args.replicas)
    strategy = tf.distribute.MirroredStrategy([f"/cpu:{i}" for i in range(args.replicas)])
  else:
    strategy = tf.distribute.get_strategy()
  from tfnas.models.spos import SPOSSupernet
  from tfnas.spaces import get_space
  space = get_space("spos_cifar", width=args.width)
  with strategy.scope():
    net = SPOSSupernet(space)
    first = tf.zeros([len(space.choice_blocks)], tf.int32)  # op 0, width 0 everywhere
    net(tf.zeros((1,) + space.input_shape), first, first, bn_mode="eval")
  variants = {"eager": net._calibration_edges_eager(), "traced": net.calibration_edges()}
  t = time.perf_counter()
  for fn in variants["traced"]:
    fn()  # traces both
  trace_s = time.perf_counter() - t
  times = {k: [] for k in variants}
  for i in range(args.rounds):
    for name in (("eager", "traced") if i % 2 == 0 else ("traced", "eager")):
      begin, end = variants[name]
      t = time.perf_counter()
      begin()
      end()
      times[name].append(time.perf_counter() - t)
  med = {k: statistics.median(v) for k, v in times.items()}
  result = {"space": "spos_cifar", "width": args.width, "bn_layers": len(net.bns),
            "replicas": args.replicas, "rounds": args.rounds,
            "eager_seconds_median": med["eager"], "traced_seconds_median": med["traced"],
            "traced_over_eager": med["traced"] / med["eager"], "trace_seconds_once": trace_s,
            "load_average_1m_5m": os.getloadavg()[:2],
            "command": "python benchmarks/bench_spos.py " + " ".join(sys.argv[1:])}
  print(f"{len(net.bns)} BN layers, {args.replicas} replica(s): begin+end eager "
        f"{med['eager']:.3f} s, traced {med['traced']:.3f} s "
        f"({med['traced'] / med['eager']:.3f}x; tracing once {trace_s:.1f} s)")
  name = "spos_recalib_edges.json" if args.replicas == 1 else \
      f"spos_recalib_edges_{args.replicas}replicas.json"
  with open(os.path.join(RESULTS, name), "w") as f:
    json.dump(result, f, indent=2)


def main():
  p = argparse.ArgumentParser()
  p.add_argument("--part", choices=("step", "step_worker", "search", "cost", "recalib"),
                 required=True)
  p.add_argument("--replicas", type=int, default=1, help="recalib: MirroredStrategy replicas")
  p.add_argument("--variant")
  p.add_argument("--width", type=float, default=None)
  p.add_argument("--batch", type=int, default=128)
  p.add_argument("--steps", type=int, default=None)
  p.add_argument("--archs", type=int, default=3)
  p.add_argument("--data", default=os.path.join(
      os.environ.get("TFNAS_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data")),
      "cifar10-jpg.tar.gz"))
  p.add_argument("--workdir", default=os.path.join(ROOT, "runs", "bench_spos"))
  p.add_argument("--train_limit", type=int, default=None)
  p.add_argument("--val_size", type=int, default=2000)
  p.add_argument("--calib_images", type=int, default=1000)
  p.add_argument("--val_images", type=int, default=1000)
  p.add_argument("--limit", default="macs_m<=28")
  p.add_argument("--population", type=int, default=20)
  p.add_argument("--generations", type=int, default=5)
  p.add_argument("--top_k", type=int, default=5)
  p.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
  p.add_argument("--rounds", type=int, default=15, help="cost: evaluations timed")
  p.add_argument("--steps_per_round", type=int, default=6, help="cost: steps per round")
  args = p.parse_args()
  if args.part == "step_worker":
    print(json.dumps(measure_step(args.variant, args.width, args.batch, args.steps, args.archs)))
  elif args.part == "cost":
    if args.workdir == os.path.join(ROOT, "runs", "bench_spos"):
      args.workdir = os.path.join(ROOT, "runs", "bench_spos_cost")
    part_cost(args)
  elif args.part == "recalib":
    args.width = args.width or 1.0
    part_recalib(args)
  elif args.part == "step":
    args.width = args.width or 1.0
    args.steps = args.steps or 3
    part_step(args)
  else:
    args.width = args.width or 0.5
    args.steps = args.steps or 2000
    part_search(args)


if __name__ == "__main__":
  main()
