"""Start-up of a search: seconds from the command to its first training steps.

  .venv/bin/python benchmarks/bench_startup.py [--space=proxyless_cifar --repeats=2]

Runs `python -m tfnas.bin.search --config=configs/proxyless_cifar10.py:quick` on the
21-block `proxyless_cifar` at width 0.35 (the quick start's space until 2026-11-30; the
quick config is on `nasbench_macro` now), CIFAR-10 from ../shared/data, in a fresh process with one
warm-up step, `log_every=1`, and reads its output as it comes: the time from launching
the command to the line of step 1 (Python and TensorFlow start-up, data, supernet
construction, tracing and first call of the weight step) and to step 2 (adds tracing and
the first call of the two-path architecture step). The process is stopped after step 2;
each repeat uses a new workdir. Also prints the 1- and 5-minute load averages at the
start and end (anything else running on the machine inflates every figure).
Writes benchmarks/results/startup_<space>.json.
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


def one_run(args, root) -> dict:
  workdir = tempfile.mkdtemp(prefix="bench_startup_")
  cmd = [sys.executable, "-m", "tfnas.bin.search", "--config=configs/proxyless_cifar10.py:quick",
         f"--config.space={args.space}", f"--config.width={args.width}",
         f"--config.target_ms={args.target}",
         f"--config.dataset=folder:{args.data}", "--config.warmup_steps=1",
         "--config.steps=3", "--config.log_every=1", "--config.checkpoint_every=100",
         "--config.measure_host=false", f"--workdir={workdir}"]
  env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1"}
  t0 = time.time()
  proc = subprocess.Popen(cmd, cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, env=env)
  marks, tail = {}, []
  for line in proc.stdout:
    tail = (tail + [line])[-20:]
    for step in (1, 2):
      if line.startswith(f"step {step}/3 "):
        marks[step] = time.time() - t0
    if 2 in marks:
      proc.kill()
      break
  proc.wait()
  if 2 not in marks:
    sys.exit("the search did not reach step 2:\n" + "".join(tail))
  return {"to_first_weight_step_s": marks[1], "to_first_arch_step_s": marks[2]}


def main():
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--space", default="proxyless_cifar")
  p.add_argument("--width", type=float, default=0.35,
                 help="width multiplier (the figures in BENCHMARKS.md: 0.35)")
  p.add_argument("--target", type=float, default=15.0, help="MMACs (within the space's range)")
  p.add_argument("--data", default=os.path.join(
      os.environ.get("TFNAS_SHARED_DATA", os.path.join(ROOT, "..", "shared", "data")),
      "cifar10-jpg.tar.gz"))
  p.add_argument("--repeats", type=int, default=2)
  p.add_argument("--baseline", default="",
                 help="another checkout (e.g. a `git worktree` of an earlier commit): its "
                      "runs interleave with this checkout's, and the result gains the ratios")
  args = p.parse_args()
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
      "space": args.space, "width": args.width, "config": "configs/proxyless_cifar10.py:quick",
      "cpu_count": os.cpu_count(), "load_average_1m_5m_before": load_before,
      "load_average_1m_5m_after": os.getloadavg()[:2], "runs": runs["this"],
      "median_to_first_weight_step_s": median(runs["this"], "to_first_weight_step_s"),
      "median_to_first_arch_step_s": median(runs["this"], "to_first_arch_step_s")}
  if args.baseline:
    result["baseline"] = {"checkout": args.baseline, "runs": runs["baseline"]}
    for key in ("to_first_weight_step_s", "to_first_arch_step_s"):
      result[f"ratio_{key}"] = median(runs["this"], key) / median(runs["baseline"], key)
  os.makedirs(RESULTS, exist_ok=True)
  with open(os.path.join(RESULTS, f"startup_{args.space}.json"), "w") as f:
    json.dump(result, f, indent=2)
  print(json.dumps(result, indent=2))


if __name__ == "__main__":
  main()
