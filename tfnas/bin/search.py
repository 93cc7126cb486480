"""Architecture search: `python -m tfnas.bin.search --config=configs/<...>.py --workdir=DIR`.

The method comes from the config (`config.method`: "proxyless" or "spos"). Writes
DIR/arch.json and DIR/search_report.json (one schema for both methods,
`tfnas.search.finish`: target and predicted cost with their unit, the measured
latency of child.tflite on the host, ground truth), DIR/alpha_history.jsonl,
DIR/child.weights.h5 (inherited weights) and DIR/child.tflite; rerun the same
command to resume from the last checkpoint. SPOS runs also write
DIR/search_results.json, DIR/search_progress.png and DIR/arch_<search>.json for
each constraint set (see `tfnas.search.spos`).
"""

from tfnas.bin import common

if __name__ == "__main__":
  common.quiet_tensorflow()  # before TensorFlow loads; --verbosity=1 keeps its logs

from absl import app

_CONFIG, _WORKDIR = common.define_config_and_workdir("configs/proxyless_cifar10.py:quick")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from tfnas.errors import TfnasError
  config = _CONFIG.value
  method = config.get("method")
  if method not in ("proxyless", "spos"):
    raise TfnasError(f"unknown search method {method!r}; expected 'proxyless' or 'spos'")
  report = _run(method, config)
  if "worker" in report:  # a worker other than the chief of a multi-worker run
    print(f"worker {report['worker']}: done; the search's files are in the chief's workdir "
          f"{_WORKDIR.value} (this worker's scratch copy: worker{report['worker']}/)")
    return
  if method == "spos":
    for s in report["searches"]:
      best = s["best"]
      line = (f"search {s['name']}: best top-1 {best['accuracy']:.4f} loss "
              f"{best['loss']:.3f} macs_m={best['macs_m']:.1f} params_m={best['params_m']:.3f}")
      if "random" in s and s["random"]["best"]:
        r = s["random"]["best"]
        line += f" (random search, same {s['random']['evaluations']} evaluations: " \
            f"top-1 {r['accuracy']:.4f} loss {r['loss']:.3f})"
      print(line)
      _print_ground_truth(s.get("ground_truth"), f"search {s['name']}")
  measured, target = report["measured_latency"], report["target"]
  print(f"arch={report['arch']}")
  print(f"predicted={_cost(report['predicted'])} "
        + (f"target={_cost(target)} " if target else "")
        + (f"measured_host={_cost(measured)} " if measured else "")
        + f"val_accuracy_inherited={report['val_accuracy_inherited']:.4f}")
  if method == "proxyless":
    print(f"derive={report['derive']}: predicted/target={report['predicted_over_target']:.3f} "
          f"(the argmax arch {report['argmax_arch']}: {report['argmax_over_target']:.3f})")
    _print_ground_truth(report.get("ground_truth"), "derived arch")


def _run(method: str, config) -> dict:
  """The search's report. Under --config.strategy=multi_worker a worker that stops (killed,
  its machine lost, or failed on its own error) fails the others' collective operations
  with UnavailableError: one line saying how to resume instead of TensorFlow's
  traceback."""
  import tensorflow as tf

  from tfnas.errors import TfnasError
  from tfnas.search import proxyless, spos
  try:
    return (proxyless if method == "proxyless" else spos).search(config, _WORKDIR.value)
  except (tf.errors.UnavailableError, tf.errors.DeadlineExceededError) as e:
    if config.strategy != "multi_worker":
      raise
    first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
    raise TfnasError(f"a worker of the cluster stopped or cannot be reached "
                     f"({type(e).__name__}: {first[:200]}); if a worker failed on an error of "
                     "its own, its log says which; then start every worker again with the "
                     "same command: the search resumes from the chief's last checkpoint") from e


def _cost(c):
  """{"value": 2.08, "unit": "ms"} -> "2.080 ms"."""
  return f"{c['value']:.3f} {c['unit']}"


def _print_ground_truth(gt, what):
  """One line: the arch's benchmark accuracy and rank among the archs meeting its budget."""
  if gt is None:
    return
  if "unavailable" in gt:
    print(f"{what}: no ground-truth check ({gt['unavailable']})")
    return
  print(f"{what}: ground truth ({gt['benchmark']}) {gt['accuracy']:.2f} %, rank {gt['rank']} "
        f"of {gt['of']} archs meeting the same budget (top {100 * gt['rank'] / gt['of']:.1f} %); "
        f"the best of them {gt['best_arch']} {gt['best_accuracy']:.2f} % "
        f"(gap {gt['gap']:.2f} pt)")


if __name__ == "__main__":
  common.run_main(main)
