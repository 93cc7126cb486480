"""Search or training workdir -> verified `.tflite` + `export_report.json`.

`export(workdir, ExportOptions(precision="int8"))` reads `arch.json`,
`config.json`, `data.json` and the weights (`model.weights.h5` from training,
`child.weights.h5` from a search), builds the float child, produces the
`.tflite` at the requested precision, then checks what it produced: accuracy
on the test split by running the file through LiteRT, operator summary and
XNNPACK partitions, latency on the host runner (and an `adb` device), the
latency model's prediction, and a sidecar JSON the app needs (input size,
normalization, labels, input quantization, minimum runtime version).
"""

from __future__ import annotations

import dataclasses
import os
import time

import keras
import numpy as np

from tfnas.errors import TfnasError
from tfnas.io import atomic_write_bytes, atomic_write_json, read_json
from tfnas.workdir import Workdir

PRECISIONS = ("float32", "float16", "int8", "mixed")
QUANTIZATIONS = ("ptq", "qat")


@dataclasses.dataclass
class ExportOptions:
  """What to export and how to verify it (the `tfnas.bin.export` flags)."""
  precision: str = "int8"
  quantization: str = "ptq"  # int8 / mixed: post-training (ptq) or quantization-aware (qat)
  recipe: str | None = None  # JSON recipe file (precision "mixed")
  int8_io: bool = False  # int8 input/output tensors (int8 only)
  # uint8 RGB pixels in, normalized inside the graph (float32, float16, int8 PTQ)
  bake_normalization: bool = False
  calibration_images: int = 256
  qat_steps: int = 300
  qat_lr: float = 0.005
  dataset: str | None = None  # default: the workdir's data.json
  data_dir: str | None = None
  test_limit: int | None = None  # None: the whole test split
  batch_size: int = 64
  measure: bool = True
  adb_serial: str | None = None
  latency_model: str | None = None  # default: the workdir config's, when it predicts ms
  seed: int = 0

  def check(self):
    """Raises TfnasError naming the bad value."""
    if self.precision not in PRECISIONS:
      raise TfnasError(f"precision {self.precision!r} is not one of {list(PRECISIONS)}")
    if self.quantization not in QUANTIZATIONS:
      raise TfnasError(f"quantization {self.quantization!r} is not one of {list(QUANTIZATIONS)}")
    if self.precision == "mixed" and not self.recipe:
      raise TfnasError("precision 'mixed' needs --recipe=FILE.json "
                       '({"default": "int8", "layers": {"b03_project_conv": "int4", ...}})')
    if self.recipe and self.precision != "mixed":
      raise TfnasError(f"--recipe applies to precision 'mixed', not {self.precision!r}")
    if self.int8_io and self.precision != "int8":
      raise TfnasError(f"int8 input/output applies to precision 'int8', not {self.precision!r}")
    if self.bake_normalization and (self.int8_io or self.quantization == "qat"
                                    or self.precision == "mixed"):
      raise TfnasError("--bake_normalization (uint8 pixels in) applies to float32, float16 "
                       "and post-training int8 exports with float output, not with "
                       "--int8_io, --quantization=qat or precision 'mixed'")
    if self.calibration_images < 1:
      raise TfnasError(f"calibration_images {self.calibration_images} must be >= 1")
    if self.qat_steps < 0:
      raise TfnasError(f"qat_steps {self.qat_steps} must be >= 0")


@dataclasses.dataclass
class Source:
  """What a workdir holds: the space, arch, float model with weights, data description,
  and the `workdir` itself."""
  space: object
  arch: object
  model: keras.Model
  weights: str
  config: dict
  data_info: dict
  workdir: Workdir


def load_workdir(workdir: str) -> Source:
  """The trained float child of a training or search workdir; clear errors for what is missing."""
  from tfnas.models.child import build_child
  from tfnas.spaces import get_space, parse_arch
  wd = Workdir.open(workdir, ("train", "search"))
  arch_json = wd.read_json("arch.json", "arch file (written by tfnas.bin.search or "
                           "tfnas.bin.train)")
  config = wd.read_json("config.json", "workdir config")
  data_info = wd.read_json("data.json", "data description")
  for name, obj in (("arch.json", arch_json), ("config.json", config), ("data.json", data_info)):
    if not isinstance(obj, dict):
      raise TfnasError(f"{wd.file(name)!r} holds a JSON "
                       f"{type(obj).__name__}; expected an object (is the file damaged?)")
  weights = wd.weights
  if not os.path.exists(weights):
    raise TfnasError(f"workdir {workdir!r} has no weights ({os.path.basename(weights)}); has "
                     f"the {'search' if wd.kind == 'search' else 'training'} finished?")
  space_name = _saved(config, "model.space", wd)
  if arch_json.get("space") != space_name:
    raise TfnasError(f"arch.json is an arch of space {arch_json.get('space')!r} but the workdir "
                     f"was made for space {space_name!r}")
  space = get_space(space_name, _saved(config, "data.resolution", wd),
                    _saved(config, "model.width", wd),
                    _saved(data_info, "num_classes", wd, "data.json"))
  arch = parse_arch(space, arch_json)
  model = build_child(space, arch, dropout=0.0)
  try:
    model.load_weights(weights)
  except Exception as e:  # h5py / keras raise several types for a mismatched file
    raise TfnasError(f"cannot load {weights!r} into {arch.to_string(space)}: "
                     f"{str(e).splitlines()[0]}") from None
  return Source(space, arch, model, weights, config, data_info, wd)


_MISSING = object()


def _saved(saved: dict, key: str, wd: Workdir, name: str = "config.json", default=_MISSING):
  """A field of the workdir's saved `name`, by its dotted path ("data.dataset"; configs
  saved before the sections were flat, and are read by the field's own name). Every
  training and search has saved the fields read without a `default` since the first
  version: TfnasError naming the file when one is missing (a damaged file)."""
  section, _, field = key.rpartition(".")
  holder = saved.get(section) if section and isinstance(saved.get(section), dict) else saved
  if field in holder:
    return holder[field]
  if default is not _MISSING:
    return default
  raise TfnasError(f"{wd.file(name)!r} has no {key!r} (every tfnas run writes it; is the "
                   "file damaged?)")


def load_data(src: Source, opts: ExportOptions):
  """The workdir's dataset with its split settings (dataset and test_limit overridable)."""
  from tfnas.data import pipeline as data_lib
  c, wd = src.config, src.workdir
  data = data_lib.load(
      opts.dataset or src.data_info.get("dataset") or _saved(c, "data.dataset", wd),
      image_size=src.space.input_shape[0], batch_size=opts.batch_size,
      val_size=_saved(c, "data.val_size", wd), seed=_saved(c, "seed", wd),
      augment=_saved(c, "data.augment", wd),
      data_dir=opts.data_dir or _saved(c, "data.data_dir", wd),
      train_limit=_saved(c, "data.train_limit", wd), test_limit=opts.test_limit, cache=True,
      calib_size=opts.calibration_images if opts.precision in ("int8", "mixed") else 0,
      bad_images=_saved(c, "data.bad_images", wd, default="skip"))  # saved before the field
  if data.num_classes != src.space.head.num_classes:
    raise TfnasError(f"dataset has {data.num_classes} classes but the model was trained for "
                     f"{src.space.head.num_classes}")
  return data


def calibration_images(data, n: int) -> list[np.ndarray]:
  """`n` images of `data.calib` (a seeded random, class-mixed subset of the training split,
  eval transform), each as a (1, H, W, C) array. Folder datasets list files class by class,
  so the first N training images would all be one class (256 airplanes on CIFAR-10)."""
  from tfnas.data import single_images
  return single_images(data.calib, n)


def _accuracy_keras(model, dataset) -> float:
  correct = n = 0
  for images, labels in dataset:
    logits = model(images, training=False)
    correct += int(np.sum(np.argmax(logits, -1) == labels.numpy()))
    n += len(labels)
  return correct / max(n, 1)


def _delegation(data: bytes) -> dict:
  """XNNPACK partitions and, when not fully delegated, the ops left on LiteRT's own kernels."""
  from tflite_bench.host import HostRunner
  interp = HostRunner().load(data)
  partitions = HostRunner.delegate_partitions(interp)
  left = sorted(set(HostRunner.undelegated_ops(interp)))
  out = {"delegate_partitions": partitions, "undelegated_ops": left}
  if left or partitions != 1:
    out["delegation_note"] = (
        f"{partitions} XNNPACK partition(s); {', '.join(left) or 'no op'} run(s) on LiteRT's "
        "built-in kernels (XNNPACK has no kernel for them at this precision, e.g. a float "
        "layer between int8 layers needs QUANTIZE/DEQUANTIZE)")
  return out


def _predict(src: Source, opts: ExportOptions) -> dict:
  """The latency model's prediction for the exported file: in ms only when the model
  predicts this file's precision (int8, by PTQ or QAT, is the same int8 graph); a
  float32 model's number is never reported for an int8 file ("latency_prediction_note"
  says why there is none). MACs or params models give their value in their unit."""
  from tfnas.latency import load as load_latency
  spec = opts.latency_model or _saved(src.config, "search.latency_model", src.workdir,
                                       default=None)  # train configs have none
  if not spec:
    return {"latency_ms_predicted": None, "latency_model": None}
  model = load_latency(spec, src.space)
  value = float(model.predict(src.arch))
  out = {"latency_ms_predicted": value if model.is_latency else None,
         "latency_model": spec, "latency_model_kind": model.kind,
         "latency_predicted": model.predicted(src.arch),
         "latency_derived_entries": model.meta.get("derived_entries", {})}
  if model.is_latency and model.precision != opts.precision:
    out.update(latency_ms_predicted=None, latency_predicted=None, latency_prediction_note=(
        f"no prediction for this {opts.precision} file: the latency model predicts "
        f"{model.precision} files ({model.predict(src.arch):.3f} ms); give "
        f"--latency_model= one measured at {opts.precision}"))
  return out


def _measure(data: bytes, path: str, opts: ExportOptions) -> dict:
  from tflite_bench.host import HostRunner, runtime_version
  from tflite_bench.protocol import FIXED
  out = {}
  if opts.measure:
    stats, _ = HostRunner().measure(data, FIXED)
    out.update(latency_ms_measured=stats.median_ms, latency_ms_p10=stats.p10_ms,
               latency_ms_p90=stats.p90_ms,
               measured_on=f"host LiteRT {runtime_version()}, 1 thread, XNNPACK")
  if opts.adb_serial:
    from tflite_bench.android import AdbRunner
    runner = AdbRunner(serial=opts.adb_serial)
    stats, info = runner.measure(path)
    out["latency_ms_device"] = stats.median_ms
    out["device"] = runner.device()
  return out


def export(workdir: str, opts: ExportOptions, log=print) -> dict:
  """Exports the workdir's model at `opts.precision`; returns (and writes) the report."""
  from tfnas.export import qat as qat_lib
  from tfnas.export import quantize
  from tfnas.export.recipe import Recipe
  from tfnas.export.tflite import tflite_accuracy
  from tfnas.models.child import build_child

  opts.check()
  src = load_workdir(workdir)
  if opts.precision == "mixed":
    recipe = Recipe.load(opts.recipe)
  else:
    recipe = Recipe.uniform("float32" if opts.precision.startswith("float") else "int8")
  layer_precisions = recipe.check(src.model)
  use_qat = opts.quantization == "qat" and opts.precision in ("int8", "mixed")
  if use_qat and recipe.default != "int8":
    raise TfnasError("quantization-aware training needs a recipe with default 'int8' "
                     "(name the float32 layers); use --quantization=ptq for a float default")
  data = load_data(src, opts)
  keras.utils.set_random_seed(opts.seed)
  out_dir = src.workdir.file("export")
  name = f"model_{opts.precision}"
  path = os.path.join(out_dir, f"{name}.tflite")
  t0 = time.time()
  report = {"precision": opts.precision, "workdir": os.path.abspath(workdir),
            "space": src.space.name, "arch": src.arch.to_string(src.space),
            "weights": os.path.basename(src.weights), "tflite": os.path.relpath(path, workdir)}
  log(f"[export] {report['arch']} -> {path}")
  report["keras_test_accuracy"] = _accuracy_keras(src.model, data.test)
  if opts.precision in ("int8", "mixed"):
    report["quantization"] = opts.quantization
    report["recipe"] = recipe.to_json()
  if use_qat:
    qmodel = build_child(src.space, src.arch, quant=recipe, dropout=0.0)
    qat_lib.fold_weights(src.model, qmodel)
    qat_lib.calibrate(qmodel, (x for x, _ in data.calib),
                      max(1, opts.calibration_images // opts.batch_size))
    log(f"[export] quantization-aware fine-tuning: {opts.qat_steps} steps")
    report["qat"] = {"steps": opts.qat_steps, "lr": opts.qat_lr,
                     **qat_lib.finetune(qmodel, data.train, opts.qat_steps, opts.qat_lr)}
    report["keras_qat_test_accuracy"] = _accuracy_keras(qmodel, data.test)
    if "float32" in layer_precisions.values():  # the converter cannot keep a layer float
      samples = calibration_images(data, opts.calibration_images)
      fmodel = qat_lib.unquantized(qmodel, src.space, src.arch)
      tflite = quantize.quantize_recipe(quantize.convert(fmodel, "float32"), recipe,
                                        recipe.check(fmodel), samples)
    else:
      tflite = quantize.convert(qmodel, "qat", int8_io=opts.int8_io)
  elif opts.precision == "mixed":
    samples = calibration_images(data, opts.calibration_images)
    tflite = quantize.quantize_recipe(quantize.convert(src.model, "float32"), recipe,
                                      layer_precisions, samples)
  elif opts.bake_normalization:
    pre = data.preprocess
    samples = ([pixels(s, pre) for s in calibration_images(data, opts.calibration_images)]
               if opts.precision == "int8" else None)
    tflite = quantize.convert(with_normalization(src.model, pre), opts.precision, samples)
  else:
    samples = (calibration_images(data, opts.calibration_images)
               if opts.precision == "int8" else None)
    tflite = quantize.convert(src.model, opts.precision, samples, int8_io=opts.int8_io)
  info = quantize.inspect(tflite, layer_precisions)
  # The file as shipped, metadata in, is what every check below runs.
  tflite, report["metadata"] = _with_metadata(tflite, src, info, opts)
  report["convert_seconds"] = time.time() - t0
  report.update(_delegation(tflite))
  log("[export] LiteRT accuracy on the test split")
  test = data.test
  if opts.bake_normalization:
    pre = data.preprocess
    test = test.map(lambda x, y: (pixels(x, pre), y))
    report["input"] = "uint8 RGB pixels, normalized inside the model"
  report["tflite_test_accuracy"] = tflite_accuracy(tflite, test)
  report["test_examples"] = int(data.sizes.get("test", 0))
  report["ops"] = info["ops"]
  report["layer_weight_types"] = info["layers"]
  report["min_runtime_version"] = info["min_runtime_version"]
  report.update(_predict(src, opts))
  report["size_bytes"] = len(tflite)
  # The three files of one export land together or this precision has no entry: the
  # previous file, sidecar and report entry go first, so a kill part-way never leaves a
  # new .tflite beside an old sidecar or a report describing another file.
  report_path = os.path.join(out_dir, "export_report.json")
  sidecar_path = os.path.join(out_dir, f"{name}.json")
  exports, latest = _previous_exports(report_path)
  if opts.precision in exports or os.path.exists(path) or os.path.exists(sidecar_path):
    exports.pop(opts.precision, None)
    _write_report(report_path, exports, None if latest == opts.precision else latest)
    for stale in (sidecar_path, path):
      if os.path.exists(stale):
        os.remove(stale)
  atomic_write_bytes(path, tflite)
  report.update(_measure(tflite, path, opts))
  sidecar = {
      "model": os.path.basename(path), "space": src.space.name, "arch": report["arch"],
      "input": info["inputs"][0], "output": info["outputs"][0],
      "output_is": "logits, one per label (softmax gives probabilities)",
      "preprocess": _preprocess(src.data_info.get("preprocess"), opts),
      "labels": src.data_info.get("class_names"),
      "min_runtime_version": info["min_runtime_version"],
      "tflite_metadata": report["metadata"],
  }
  atomic_write_json(sidecar_path, sidecar)
  report["sidecar"] = f"export/{name}.json"
  _write_report(report_path, {**exports, opts.precision: report}, opts.precision)
  return report


def _with_metadata(tflite: bytes, src, info: dict, opts: ExportOptions) -> tuple[bytes, dict]:
  """`tflite` with TFLite metadata written in (`tfnas.export.metadata`), and what the
  report says of it."""
  from tfnas.export import metadata

  labels = src.data_info.get("class_names")
  pre = src.data_info.get("preprocess") or {}
  if not labels or "mean" not in pre:
    return tflite, {"written": False,
                    "why": "data.json has no class_names or no preprocess mean/std"}
  _, height, width, _ = info["inputs"][0]["shape"]
  if opts.bake_normalization:
    mean, std = (0.0,), (1.0,)
    given = "uint8 RGB pixels 0..255, normalized inside the model"
  else:
    mean, std = tuple(pre["mean"]), tuple(pre["std"])
    given = "RGB pixels 0..255 normalized per channel as (x - mean) / std"
  if info["inputs"][0]["dtype"] == "int8":
    given += ", then quantized with the input tensor's scale and zero point"
  crop = pre.get("crop_fraction")
  resize = (f"centre crop of {crop:g} of the shorter side, then " if crop and crop < 1 else "") + (
      f"bilinear resize to {height}x{width}")
  meta = metadata.ClassifierMetadata(
      name=f"{src.arch.to_string(src.space)} ({opts.precision})",
      description=(f"Image classifier over {len(labels)} labels, an architecture of the "
                   f"tfnas space {src.space.name}, exported at {opts.precision}."),
      height=int(height), width=int(width), mean=mean, std=std, labels=tuple(labels),
      input_description=f"An RGB image: {resize}; {given}.",
      output_description="Logits, one per label (softmax gives probabilities).")
  out = {"written": True, "format": "TFLite metadata (ModelMetadata, schema M001)",
         "associated_files": [meta.labels_file], "normalization": {"mean": list(mean),
                                                                 "std": list(std)}}
  if len(set(mean)) > 1 or len(set(std)) > 1:
    out["mediapipe"] = ("MediaPipe's ImageClassifier refuses per-channel normalization; "
                        "export with --bake_normalization for it (Task Library reads both)")
  return metadata.attach(tflite, meta), out


def with_normalization(model: keras.Model, pre) -> keras.Model:
  """`model` behind its input normalization: takes (N, H, W, 3) uint8 RGB pixels (0..255,
  already cropped and resized as `pre` says) and computes (x - mean) / std per channel
  (a `Rescaling` layer) before the model, so an app feeds camera pixels straight in."""
  inputs = keras.Input(model.input_shape[1:], dtype="uint8", name="pixels")
  x = keras.layers.Rescaling([1.0 / s for s in pre.std],
                             [-m / s for m, s in zip(pre.mean, pre.std)],
                             name="normalize")(keras.ops.cast(inputs, "float32"))
  return keras.Model(inputs, model(x), name=f"{model.name}_pixels")


def pixels(images, pre):
  """Normalized float images back to the uint8 pixels they came from (rounded, clipped):
  the input of a model `with_normalization`. numpy in, numpy out; tensors likewise."""
  mean, std = np.asarray(pre.mean, np.float32), np.asarray(pre.std, np.float32)
  if isinstance(images, np.ndarray):
    return np.clip(np.round(images * std + mean), 0, 255).astype(np.uint8)
  import tensorflow as tf
  return tf.cast(tf.clip_by_value(tf.round(images * std + mean), 0, 255), tf.uint8)


def _preprocess(pre: dict | None, opts: ExportOptions) -> dict | None:
  """The sidecar's preprocessing: data.json's, and who normalizes in this file."""
  if pre is None or not opts.bake_normalization:
    return pre
  return {**pre, "normalized_by": "the model: uint8 RGB pixels (0..255) go straight in",
          "input_range": "uint8 0..255, the model's input tensor"}


def _previous_exports(report_path: str) -> tuple[dict, str | None]:
  """(exports, latest) of an existing export_report.json; ({}, None) when there is none."""
  if not os.path.exists(report_path):
    return {}, None
  previous = read_json(report_path, "export report")
  if not isinstance(previous, dict) or not isinstance(previous.get("exports"), dict):
    return {}, None
  return dict(previous["exports"]), previous.get("latest")


def _write_report(report_path: str, exports: dict, latest: str | None) -> None:
  """export_report.json: one entry per precision under "exports"; "latest" names the most
  recently completed export (None while one is being replaced)."""
  atomic_write_json(report_path, {"exports": exports, "latest": latest,
                                  "precisions": sorted(exports)})
