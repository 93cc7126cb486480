"""How every search ends, whichever method found the arch: one `finish` and one report
schema (issue 20, items 1 and 3).

`finish` writes the derived arch (`arch.json`, and its picture `arch.png`:
`tfnas.search.pictures`) and its inherited child, evaluates the child on the
held-out split, converts it to `child.tflite` at the precision the search is for
(`config.search.precision`: int8 is full-integer post-training quantization calibrated on
`CALIBRATION_IMAGES` held-out images, the form `tfnas.bin.export` ships; the scales
do not change its latency), measures that file on this host, checks the
arch against ground truth where the space has one, and writes `search_report.json`. Every
cost in the report is `{"value": float, "unit": str}` (`tfnas.latency.with_unit`), so a
target or prediction in MMACs is never read as ms:

    method, space, resolution, width, replicas, arch
    cost_model        {"spec", "kind", "unit", "derived_entries"}
    target            {"value", "unit"} in the cost model's unit, or None (no limit on it)
    predicted         {"value", "unit"[, "precision"]}: the cost model's prediction for
                      `arch` (a latency model's precision is the search's)
    measured_latency  {"value", "unit": "ms", "of": "child.tflite (int8)", "on"}, or
                      None when not measured (config.search.measure_host False)
    val_accuracy_inherited   top-1 of the inherited child on the held-out split
    ground_truth      the arch's benchmark accuracy and rank among the archs within the
                      same budget (`tfnas.spaces.groundtruth.search_standing`)
    ...               the method's own fields (`extra`)
"""

from __future__ import annotations

import os
from typing import Callable

import keras

from tfnas.data import single_images
from tfnas.export import quantize
from tfnas.export import tflite as tflite_lib
from tfnas.io import atomic_path, atomic_write_bytes
from tfnas.latency import CostModel, with_unit
from tfnas.search import pictures
from tfnas.spaces import Arch, SearchSpace, groundtruth
from tfnas.workdir import Workdir

MEASURED_ON = "host LiteRT, 1 thread, XNNPACK"
CALIBRATION_IMAGES = 16  # held-out images calibrating an int8 child.tflite
COMMON_FIELDS = ("method", "space", "resolution", "width", "replicas", "arch", "cost_model",
                 "target", "predicted", "val_accuracy_inherited", "measured_latency",
                 "ground_truth")


def cost_model_info(spec: str, model: CostModel) -> dict:
  """The report's "cost_model": what the config named, its kind and unit, and the table
  entries derived rather than measured (e.g. a published table's Logits entry for another
  class count: {key: how}; empty when every entry was measured)."""
  return {"spec": spec, "kind": model.kind, "unit": model.unit,
          "derived_entries": model.meta.get("derived_entries", {})}


def convert_child(child: keras.Model, precision: str, val_data) -> bytes:
  """`child` as a `.tflite` at `precision` ("float32", "float16" or "int8"; int8
  calibrated on the first `CALIBRATION_IMAGES` images of `val_data`)."""
  if precision == "float32":
    return tflite_lib.convert_float(child)
  samples = single_images(val_data, CALIBRATION_IMAGES) if precision == "int8" else None
  return quantize.convert(child, precision, samples)


def measure_child(tflite_path: str, precision: str) -> dict:
  """Median latency of the file at `tflite_path` (of `precision`) on this host (LiteRT,
  1 thread, XNNPACK, the fixed protocol), as the report's "measured_latency"."""
  from tflite_bench.host import HostRunner
  from tflite_bench.protocol import FIXED
  with open(tflite_path, "rb") as f:
    stats, _ = HostRunner().measure(f.read(), FIXED)
  return {**with_unit(stats.median_ms, "ms"), "of": f"{os.path.basename(tflite_path)} "
          f"({precision})", "on": MEASURED_ON}


def finish(workdir: Workdir, *, method: str, space: SearchSpace, arch: Arch, child: keras.Model,
           cost_model: CostModel, cost_model_spec: str, target: float | None, val_data,
           measure_host: bool, within_budget: Callable[[Arch], bool], replicas: int,
           width: float, precision: str, extra: dict | None = None) -> dict:
  """Writes arch.json, arch.png, child.weights.h5, child.tflite and search_report.json in `workdir`
  and returns the report (schema in the module docstring).

  Args:
    arch: The derived architecture; `child` its plain network with inherited weights.
    target: The budget in `cost_model.unit`, or None where the search set none on it.
    val_data: The held-out split (batched (images, labels)) the child is evaluated on.
    precision: The precision of `child.tflite` ("float32", "float16" or "int8"), the
      search's `config.search.precision`.
    within_budget: Which archs count as meeting the same budget, for ground truth.
    extra: The method's own report fields (they may not replace the common ones).

  Raises:
    ValueError: `extra` repeats a common field.
  """
  clash = set(COMMON_FIELDS) & set(extra or {})
  if clash:
    raise ValueError(f"method fields {sorted(clash)} repeat the common report's")
  workdir.write_json("arch.json", arch.to_json(space))
  with atomic_path(workdir.weights) as tmp:
    child.save_weights(tmp)
  child.compile(loss=keras.losses.SparseCategoricalCrossentropy(from_logits=True),
                metrics=["accuracy"])
  report = {
      "method": method, "space": space.name, "resolution": space.input_shape[0],
      "width": width, "replicas": replicas, "arch": arch.to_string(space),
      "cost_model": cost_model_info(cost_model_spec, cost_model),
      "target": None if target is None else with_unit(target, cost_model.unit),
      "predicted": cost_model.predicted(arch),
      "val_accuracy_inherited": float(child.evaluate(val_data, verbose=0)[1]),
  }
  tflite_path = workdir.file("child.tflite")
  atomic_write_bytes(tflite_path, convert_child(child, precision, val_data))
  report["measured_latency"] = measure_child(tflite_path, precision) if measure_host else None
  report["ground_truth"] = groundtruth.search_standing(space, arch, within_budget)
  assert set(report) == set(COMMON_FIELDS), sorted(report)
  report.update(extra or {})
  workdir.write_json("search_report.json", report)
  pictures.draw_or_warn(pictures.draw_arch, space, arch, workdir.file("arch.png"),
                        f"{method}: {arch.to_string(space)}")
  return report
