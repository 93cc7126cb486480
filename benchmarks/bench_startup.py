"""Start-up of a search: seconds from the command to its first training steps, and the
time per step once running.

  .venv/bin/python benchmarks/bench_startup.py [--method=proxyless --repeats=2 --baseline=DIR]

`--method=proxyless` runs `python -m tfnas.bin.search
--config=configs/proxyless_cifar10.py:quick` on the 21-block `proxyless_cifar` at width
0.35 (the quick start's space until 2026-11-30; the quick config is on `nasbench_macro`
now) with one warm-up step; `--method=spos` runs `configs/spos_cifar10.py:quick`
(`spos_cifar` at width 0.5, channel choices). CIFAR-10 from ../shared/data, a fresh
process and workdir each, `log_every=1`; the output is read as it comes: the time from
launching the command to the line of step 1 (Python and TensorFlow start-up, data,
supernet construction, tracing and first call of the step), to step 2 (ProxylessNAS:
adds the first two-path architecture step), and the median time per step over the
second half of `--steps` (the steady state: every path seen by then). The process is
stopped at the last step. Also prints the 1- and 5-minute load averages at the start
and end (anything else running on the machine inflates every figure).
Writes benchmarks/results/startup_<space>.json (`proxyless_cifar`, `spos_cifar`).
"""

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
RESULTS = os.path.join(ROOT, "benchmarks", "results")


def _flags(root):
  """`flag("section.field", value)`: the flag in the form of `root`'s checkout (configs
  were flat, `--config.field`, before their sections; a baseline may predate them)."""
  with open(os.path.join(root, "tfnas", "configs.py")) as f:
    nested = "SECTIONS" in f.read()
  return lambda field, value: (f"--config.{field if nested else field.split('.')[1]}"
                               f"={value}")


def one_run(args, root) -> dict:
  workdir = tempfile.mkdtemp(prefix="bench_startup_")
  flag = _flags(root)
  common = [flag("data.dataset", f"folder:{args.data}"), flag("train.steps", args.steps),
            "--config.log_every=1", "--config.checkpoint_every=1000",
            flag("search.measure_host", "false"), f"--workdir={workdir}"]
  if args.supernet_step and root == ROOT:  # the baseline checkout may predate the option
    common.append(flag("train.supernet_step", args.supernet_step))
  if args.method == "proxyless":
    # The field was target_ms before the cost model's unit was made explicit.
    with open(os.path.join(root, "configs", "proxyless_cifar10.py")) as f:
      text = f.read()
    field = "search.target" if ".target =" in text else "search.target_ms"
    cmd = [sys.executable, "-m", "tfnas.bin.search",
           "--config=configs/proxyless_cifar10.py:quick", flag("model.space", args.space),
           flag("model.width", args.width), flag(field, args.target),
           flag("search.warmup_steps", 1), *common]
  else:
    cmd = [sys.executable, "-m", "tfnas.bin.search", "--config=configs/spos_cifar10.py:quick",
           *common]
  prefix = "[supernet] step "  # both searches log through tfnas.search.runner.step_loop
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
  t0 = time.time()
  proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env=env)
  marks, tail = {}, []
  for line in proc.stdout:
    tail = (tail + [line])[-20:]
    if line.startswith(prefix) and f"/{args.steps} " in line:
      marks[int(line[len(prefix):].split("/")[0])] = time.time() - t0
    if args.steps in marks:
      proc.kill()
      break
  proc.wait()
  if args.steps not in marks:
    sys.exit(f"the search did not reach step {args.steps}:\n" + "".join(tail))
  # ProxylessNAS: steps 2.. each hold a weight and an architecture step. After the first
  # few, every path has been traced and the time per step is the steady state.
  later = [marks[k + 1] - marks[k] for k in range(args.steps // 2, args.steps)]
  return {"to_step_1_s": marks[1], "to_step_2_s": marks[2],
          "steady_s_per_step": statistics.median(later)}


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--method", default="proxyless", choices=["proxyless", "spos"])
  p.add_argument("--space", default="proxyless_cifar",
                 help="(proxyless; --method=spos runs its quick config's spos_cifar w0.5)")
  p.add_argument("--width", type=float, default=0.35,
                 help="width multiplier (the figures in BENCHMARKS.md: 0.35)")
  p.add_argument("--target", type=float, default=15.0, help="MMACs (within the space's range)")
  p.add_argument("--data", default=os.path.join(
      os.environ.get("TFNAS_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data")),
      "cifar10-jpg.tar.gz"))
  p.add_argument("--supernet_step", default="eager", choices=["", "eager", "traced"],
                 help="this checkout's step form ('': the config's)")
  p.add_argument("--repeats", type=int, default=2)
  p.add_argument("--steps", type=int, default=20,
                 help="steps run (weight + architecture step each after the first); the "
                      "median time of the second half is the steady-state time per step")
  p.add_argument("--baseline", default="",
                 help="another checkout (e.g. a `git worktree` of an earlier commit): its "
                      "runs interleave with this checkout's, and the result gains the ratios")
  args = p.parse_args()
  if args.steps < 4:
    p.error(f"--steps {args.steps}: at least 4 (steps 1 and 2, then the steady state)")
  load_before = os.getloadavg()[:2]
  roots = {"this": ROOT, **({"baseline": os.path.abspath(args.baseline)} if args.baseline
                            else {})}
  runs = {name: [] for name in roots}
  for i in range(args.repeats):
    for name, root in roots.items():
      runs[name].append(one_run(args, root))
      print(json.dumps({"checkout": name, "run": i, **runs[name][-1]}), flush=True)
  median = lambda rs, key: statistics.median(r[key] for r in rs)
  result = {
      **({"space": args.space, "width": args.width, "config": "configs/proxyless_cifar10.py:quick"}
         if args.method == "proxyless" else
         {"space": "spos_cifar", "width": 0.5, "config": "configs/spos_cifar10.py:quick"}),
      "steps": args.steps, "supernet_step": args.supernet_step or "the config's",
      "cpu_count": os.cpu_count(), "load_average_1m_5m_before": load_before,
      "load_average_1m_5m_after": os.getloadavg()[:2], "runs": runs["this"],
      "median_to_step_1_s": median(runs["this"], "to_step_1_s"),
      "median_to_step_2_s": median(runs["this"], "to_step_2_s"),
      "median_steady_s_per_step": median(runs["this"], "steady_s_per_step")}
  if args.baseline:
    result["baseline"] = {"checkout": args.baseline, "runs": runs["baseline"]}
    for key in ("to_step_1_s", "to_step_2_s", "steady_s_per_step"):
      result[f"ratio_{key}"] = median(runs["this"], key) / median(runs["baseline"], key)
  os.makedirs(RESULTS, exist_ok=True)
  with open(os.path.join(RESULTS, f"startup_{result['space']}.json"), "w") as f:
    json.dump(result, f, indent=2)
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  main()
