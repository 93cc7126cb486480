"""Search per-layer precision for a trained child:
`python -m tfnas.bin.precision_search --workdir=DIR --size_limit_kb=200`.

Scores every candidate on the actually quantized .tflite (validation top-1 in
LiteRT, file size, host latency); writes DIR/export/precision_search.json (the
Pareto front next to uniform float32 and int8, the best recipe under the limits,
the per-generation history), DIR/export/precision_pareto.png and
DIR/export/best_recipe.json, which `tfnas.bin.export --precision=mixed
--recipe=DIR/export/best_recipe.json` turns into the shipped file. Rerun the same
command to resume a killed search (candidates are saved each generation).
"""

from tfnas.bin import common

if __name__ == "__main__":
  common.quiet_tensorflow()  # before TensorFlow loads; --verbosity=1 keeps its logs

from absl import app, flags

_WORKDIR = flags.DEFINE_string("workdir", None, "A tfnas.bin.search or tfnas.bin.train workdir.")
_SIZE = flags.DEFINE_float("size_limit_kb", None, "Hard limit on the .tflite size (KiB).")
_LAT = flags.DEFINE_float("latency_limit_ms", None, "Hard limit on host latency (ms).")
_POP = flags.DEFINE_integer("population", 16, "Population per generation.")
_GEN = flags.DEFINE_integer("generations", 5, "Generations.")
_TOPK = flags.DEFINE_integer("top_k", 6, "Parents per generation.")
_MUT = flags.DEFINE_float("mutation_prob", 0.1, "Per-layer mutation probability.")
_VAL = flags.DEFINE_integer("val_images", 500, "Validation images per candidate.")
_CALIB = flags.DEFINE_integer("calibration_images", 128, "Train images for calibration.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed.")
_DATASET = flags.DEFINE_string("dataset", None, "Dataset override (default: the workdir's).")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  import os

  import numpy as np

  from tfnas.errors import TfnasError
  from tfnas.export import pipeline
  from tfnas.export import precision_search as ps
  from tfnas.io import atomic_write_json
  opts = ps.SearchOptions(
      population=_POP.value, generations=_GEN.value, top_k=_TOPK.value,
      mutation_prob=_MUT.value, val_images=_VAL.value, calibration_images=_CALIB.value,
      size_limit_bytes=int(_SIZE.value * 1024) if _SIZE.value else None,
      latency_limit_ms=_LAT.value, seed=_SEED.value)
  opts.check()
  src = pipeline.load_workdir(_WORKDIR.value)
  data = pipeline.load_data(src, pipeline.ExportOptions(
      dataset=_DATASET.value, calibration_images=opts.calibration_images))
  if data.val is None:
    raise TfnasError("the workdir's data has no validation split (val_size 0); the precision "
                     "search must not select on the test split")
  images, labels = [], []
  for x, y in data.val:
    images.append(x.numpy())
    labels.append(y.numpy())
    if sum(len(i) for i in images) >= opts.val_images:
      break
  images = np.concatenate(images)[:opts.val_images]
  labels = np.concatenate(labels)[:opts.val_images]
  calibration = pipeline.calibration_images(data, opts.calibration_images)
  search = ps.PrecisionSearch(src.model, images, labels, calibration, opts)
  out = os.path.join(_WORKDIR.value, "export")
  os.makedirs(out, exist_ok=True)
  result = search.run(os.path.join(out, "precision_search_state.json"))
  result["val_images"] = int(len(labels))
  atomic_write_json(os.path.join(out, "precision_search.json"), result)
  ps.plot(result, os.path.join(out, "precision_pareto.png"))
  best = result["best"]
  if best is None:
    raise TfnasError("no evaluated recipe met the limits; see export/precision_search.json")
  atomic_write_json(os.path.join(out, "best_recipe.json"), best["recipe"])
  b = result["baselines"]
  print(f"best: accuracy {best['accuracy']:.4f}, {best['size_bytes']} bytes, "
        f"{best['latency_ms']:.3f} ms; uniform int8 {b['int8']['accuracy']:.4f} / "
        f"{b['int8']['size_bytes']} B / {b['int8']['latency_ms']:.3f} ms; float32 "
        f"{b['float32']['accuracy']:.4f} / {b['float32']['size_bytes']} B / "
        f"{b['float32']['latency_ms']:.3f} ms; {len(result['dominates_both_uniform'])} recipe(s) "
        f"dominate both uniform choices -> {out}/best_recipe.json")


if __name__ == "__main__":
  common.run_main(main)
