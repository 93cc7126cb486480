"""ProxylessNAS step memory and time versus the compact child, each in its own process.

  .venv/bin/python benchmarks/bench_proxyless_memory.py [--batch=128] [--steps=5]

Variants: the child (a sampled arch as a plain model), the supernet weight step
(one path), the two-path and full_v2 architecture steps (gated), and the full
(weighted-sum) architecture step. Peak memory of a step is TensorFlow's own
allocator statistic: the processes run with the BFC allocator on the CPU
(TF_CPU_ALLOCATOR_USE_BFC=true) so `get_memory_info("CPU:0")` reports the
peak, reset before each step; the figure is peak minus the bytes held before
the step (weights, optimizer state), i.e. what the step itself needs. Writes
benchmarks/results/proxyless_memory.json.
"""

import json
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ["TF_CPU_ALLOCATOR_USE_BFC"] = "true"  # allocator stats on the CPU

VARIANTS = ("child", "weight", "two_path", "full_v2", "full")


def measure(variant, batch, steps, width):
  import numpy as np
  import tensorflow as tf

  from tfnas.models import build_child
  from tfnas.models.supernet import ProxylessSupernet
  from tfnas.spaces import Arch, get_space
  space = get_space("proxyless_cifar", resolution=32, width=width)
  rng = np.random.default_rng(0)
  arch = Arch.create(space, [int(rng.integers(len(b.ops) - 1)) for b in space.choice_blocks])
  x = tf.random.normal((batch, 32, 32, 3))
  y = tf.random.uniform((batch,), 0, 10, tf.int32)
  ce = tf.keras.losses.SparseCategoricalCrossentropy(from_logits=True)
  paths = tf.constant(arch.ops, tf.int32)
  if variant == "child":
    model = build_child(space, arch)
    variables = model.trainable_variables
    fwd = lambda: model(x, training=True)
  else:
    net = ProxylessSupernet(space)
    net(x[:1], paths=paths)
    if variant == "weight":
      variables, fwd = net.weight_variables, lambda: net(x, paths=paths, training=True)
    else:
      involved = None
      if variant == "two_path":
        involved = tf.constant([[a, (a + 1) % len(b.ops)] for a, b in
                                zip(arch.ops, space.choice_blocks)], tf.int32)
      mode = "full" if variant == "full" else "gated"
      variables = net.alphas
      fwd = lambda: net(x, paths=paths, involved=involved, mode=mode, training=True)

  @tf.function
  def step():
    with tf.GradientTape() as tape:
      loss = ce(y, fwd())
    return tape.gradient(loss, variables)

  step()  # trace + warm-up
  times, peaks = [], []
  for _ in range(steps):
    tf.config.experimental.reset_memory_stats("CPU:0")
    before = tf.config.experimental.get_memory_info("CPU:0")["current"]
    t = time.perf_counter()
    grads = step()
    times.append(time.perf_counter() - t)
    peaks.append(tf.config.experimental.get_memory_info("CPU:0")["peak"] - before)
    del grads
  return {"variant": variant, "median_step_s": statistics.median(times),
          "peak_step_bytes": statistics.median(peaks), "arch": arch.to_string(space)}


def main():
  import argparse
  parser = argparse.ArgumentParser()
  parser.add_argument("--batch", type=int, default=128)
  parser.add_argument("--steps", type=int, default=5)
  parser.add_argument("--width", type=float, default=1.0)
  parser.add_argument("--variant")
  args = parser.parse_args()
  if args.variant:
    print(json.dumps(measure(args.variant, args.batch, args.steps, args.width)))
    return
  rows = {}
  for v in VARIANTS:  # each in its own process
    out = subprocess.run([sys.executable, __file__, f"--variant={v}", f"--batch={args.batch}",
                          f"--steps={args.steps}", f"--width={args.width}"],
                         capture_output=True, text=True, check=True)
    rows[v] = json.loads(out.stdout.strip().splitlines()[-1])
  child = rows["child"]
  for v, r in rows.items():
    r["memory_ratio_vs_child"] = r["peak_step_bytes"] / child["peak_step_bytes"]
    r["time_ratio_vs_child"] = r["median_step_s"] / child["median_step_s"]
    print(f"{v:>9}: peak step memory {r['peak_step_bytes'] / 2**20:7.1f} MiB "
          f"({r['memory_ratio_vs_child']:.2f}x child), step {r['median_step_s'] * 1e3:7.0f} ms "
          f"({r['time_ratio_vs_child']:.2f}x child)")
  result = {"space": "proxyless_cifar", "resolution": 32, "width": args.width,
            "batch": args.batch, "rows": rows,
            "command": "python benchmarks/bench_proxyless_memory.py " + " ".join(sys.argv[1:])}
  out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results",
                     "proxyless_memory.json")
  with open(out, "w") as f:
    json.dump(result, f, indent=2)


if __name__ == "__main__":
  main()
