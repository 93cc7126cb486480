"""Export: float/float16/int8 (post-training and QAT)/per-layer recipes, checked in LiteRT.

The model is a real `nasbench_macro` child (width 0.25; MBConv k3 e3 / k5 e6 blocks, a
strided 1x1 shortcut, ReLU) on real CIFAR-10 images (66 layers where a 21-block
`proxyless_cifar` child has 155: every conversion and quantization here takes less than
half the time; each space's child is converted in test_child.py);
BatchNorm statistics are randomized so folding and quantization have something
to get wrong. One workdir is trained by the training binary and exported by the
export binary end to end.
"""

import json
import os

import keras
import numpy as np
import pytest

from conftest import run_bin

from tfnas.errors import TfnasError


@pytest.fixture(scope="module")
def setup(tiny_cifar):
  from tfnas.data import pipeline
  from tfnas.models.child import build_child
  from tfnas.spaces import get_space, parse_arch
  keras.utils.set_random_seed(0)
  space = get_space("nasbench_macro", 32, 0.25, 10)
  arch = parse_arch(space, "12012012")  # k3_e3, k5_e6, id, ...: b02 and b05 strided 1x1
  model = build_child(space, arch, dropout=0.0)
  rng = np.random.default_rng(0)
  for layer in model.layers:
    if isinstance(layer, keras.layers.BatchNormalization):
      n = layer.gamma.shape[0]
      layer.set_weights([rng.uniform(0.5, 1.5, n), rng.normal(0, 0.2, n), rng.normal(0, 0.2, n),
                         rng.uniform(0.5, 2.0, n)])
  data = pipeline.load(f"folder:{tiny_cifar}", image_size=32, batch_size=8, augment="none")
  images = np.concatenate([x.numpy() for x, _ in data.test])  # 40 real test images
  return space, arch, model, images


def _agreement(a, b):
  return float(np.mean(np.argmax(a, -1) == np.argmax(b, -1)))


def test_float32_and_float16_match_keras(setup):
  from tfnas.export import quantize
  from tfnas.export.recipe import quantizable_layers
  from tfnas.export.tflite import run_tflite
  _, _, model, images = setup
  ref = model(images, training=False).numpy()
  f32 = quantize.convert(model, "float32")
  assert np.abs(run_tflite(f32, images) - ref).max() <= 1e-4
  f16 = quantize.convert(model, "float16")
  info = quantize.inspect(f16, quantizable_layers(model))
  assert set(info["layers"].values()) == {"float16"} and len(f16) < 0.6 * len(f32)
  assert np.abs(run_tflite(f16, images) - ref).max() <= 2e-2 * np.abs(ref).max()
  assert info["min_runtime_version"]


def test_bn_folding_is_exact(setup):
  from tfnas.export import qat
  from tfnas.export.recipe import Recipe
  from tfnas.models.child import build_child
  space, arch, model, images = setup
  folded = build_child(space, arch, quant=Recipe.uniform("float32"), dropout=0.0)
  qat.fold_weights(model, folded)
  assert not any("bn" in l.name for l in folded.layers)
  np.testing.assert_allclose(folded(images).numpy(), model(images, training=False).numpy(),
                             atol=1e-4)


def test_qat_int8_matches_fake_quant_keras_and_is_one_partition(setup, tiny_cifar):
  from tflite_bench.host import HostRunner
  from tfnas.data import pipeline
  from tfnas.export import qat, quantize
  from tfnas.export.recipe import Recipe, quantizable_layers
  from tfnas.export.tflite import run_tflite
  from tfnas.models.child import build_child
  space, arch, model, images = setup
  qmodel = build_child(space, arch, quant=Recipe.uniform("int8"), dropout=0.0)
  qat.fold_weights(model, qmodel)
  qat.calibrate(qmodel, [images[i:i + 8] for i in range(0, 40, 8)], 5)
  # A few real QAT steps (fit on labelled images) run through the fake-quant graph.
  data = pipeline.load(f"folder:{tiny_cifar}", image_size=32, batch_size=8, augment="cifar")
  stats = qat.finetune(qmodel, data.train, steps=3, lr=1e-3)
  assert np.isfinite(stats["loss"])
  for int8_io in (False, True):
    tflite = quantize.convert(qmodel, "qat", int8_io=int8_io)
    info = quantize.inspect(tflite, quantizable_layers(model))
    assert set(info["layers"].values()) == {"int8"}, info["layers"]
    assert info["inputs"][0]["dtype"] == ("int8" if int8_io else "float32")
    keras_fq = qmodel(images, training=False).numpy()
    assert _agreement(run_tflite(tflite, images), keras_fq) >= 0.99
    interp = HostRunner().load(tflite)
    assert HostRunner.delegate_partitions(interp) == 1
    assert HostRunner.undelegated_ops(interp) == []


def test_ptq_int8_runs_fully_delegated(setup):
  from tflite_bench.host import HostRunner
  from tfnas.export import quantize
  from tfnas.export.tflite import run_tflite
  _, _, model, images = setup
  tflite = quantize.convert(model, "int8", [images[i:i + 1] for i in range(16)], int8_io=True)
  assert quantize.inspect(tflite)["inputs"][0]["dtype"] == "int8"
  interp = HostRunner().load(tflite)
  assert HostRunner.delegate_partitions(interp) == 1 and not HostRunner.undelegated_ops(interp)
  ref = model(images, training=False).numpy()
  assert _agreement(run_tflite(tflite, images), ref) >= 0.8


def test_uniform_int8_recipe_matches_the_converters_int8(setup):
  # The per-layer path (litert-quantizer) calibrates like the converter: ranges are the
  # min/max over all calibration images. Its default moving average gave ranges narrower
  # than the data (input [-1.91, 2.26] vs [-2.12, 2.64]) and lost 3.9 points.
  from tfnas.export import quantize
  from tfnas.export.recipe import Recipe, quantizable_layers
  from tfnas.export.tflite import run_tflite
  _, _, model, images = setup
  calib = [images[i:i + 1] for i in range(16)]
  converter = quantize.convert(model, "int8", calib)
  recipe = quantize.quantize_recipe(quantize.convert(model, "float32"), Recipe.uniform("int8"),
                                    {n: "int8" for n in quantizable_layers(model)}, calib)
  inp = quantize.inspect(recipe)["inputs"][0]
  lo, hi = (-128 - inp["zero_point"]) * inp["scale"], (127 - inp["zero_point"]) * inp["scale"]
  data = np.concatenate(calib)
  step = inp["scale"]
  assert lo <= data.min() + step and hi >= data.max() - step, (lo, hi, data.min(), data.max())
  ref = model(images, training=False).numpy()
  err_recipe = np.abs(run_tflite(recipe, images) - ref).max()
  err_converter = np.abs(run_tflite(converter, images) - ref).max()
  assert err_recipe <= 1.25 * err_converter, (err_recipe, err_converter)
  assert _agreement(run_tflite(recipe, images), ref) >= _agreement(
      run_tflite(converter, images), ref) - 0.05


def test_recipes_put_named_layers_at_their_precision(setup):
  from tflite_bench.host import HostRunner
  from tfnas.export import qat, quantize
  from tfnas.export.recipe import Recipe, quantizable_layers
  from tfnas.export.tflite import run_tflite
  from tfnas.models.child import build_child
  space, arch, model, images = setup
  names = quantizable_layers(model)
  # Post-training through litert-quantizer: float default, a few int8 and int4 layers.
  recipe = Recipe.from_json({"default": "float32", "layers": {
      "b00_expand_conv": "int8", "b00_dw_conv": "int8", "b01_project_conv": "int8",
      "classifier": "int4"}})
  layers = recipe.check(model)
  tflite = quantize.quantize_recipe(quantize.convert(model, "float32"), recipe, layers,
                                    [images[i:i + 1] for i in range(8)])
  got = quantize.inspect(tflite, names)["layers"]
  assert set(got) == set(names)
  for name in names:
    assert got[name] == layers[name], (name, got[name], layers[name])
  run_tflite(tflite, images[:2])
  recipe = Recipe.from_json({"default": "int8", "layers": {
      "b01_dw_conv": "float32", "b01_project_conv": "int4", "b03_expand_conv": "int4"}})
  layers = recipe.check(model)
  tflite = quantize.quantize_recipe(quantize.convert(model, "float32"), recipe, layers,
                                    [images[i:i + 1] for i in range(8)])
  assert quantize.inspect(tflite, names)["layers"] == layers
  assert _agreement(run_tflite(tflite, images), model(images).numpy()) >= 0.8
  # A recipe litert-quantizer would not follow is an error, not a silently different file.
  recipe = Recipe.from_json({"default": "float32", "layers": {"b01_project_conv": "int4"}})
  with pytest.raises(TfnasError, match="b01_project_conv: asked int4, got int8"):
    quantize.quantize_recipe(quantize.convert(model, "float32"), recipe, recipe.check(model),
                             [images[i:i + 1] for i in range(8)])
  # Quantization-aware through the converter: int8 default, int4 on a conv and the classifier.
  recipe = Recipe.from_json({"default": "int8", "layers": {
      "b04_project_conv": "int4", "classifier": "int4"}})
  layers = recipe.check(model)
  qmodel = build_child(space, arch, quant=recipe, dropout=0.0)
  qat.fold_weights(model, qmodel)
  qat.calibrate(qmodel, [images[:8]], 1)
  tflite = quantize.convert(qmodel, "qat")
  assert quantize.inspect(tflite, names)["layers"] == layers
  assert _agreement(run_tflite(tflite, images), qmodel(images).numpy()) >= 0.95
  # ... and with a float32 layer: the fine-tuned weights go through litert-quantizer.
  recipe = Recipe.from_json({"default": "int8", "layers": {
      "b03_expand_conv": "float32", "b04_project_conv": "int4"}})
  qmodel = build_child(space, arch, quant=recipe, dropout=0.0)
  qat.fold_weights(model, qmodel)
  fmodel = qat.unquantized(qmodel, space, arch)
  tflite = quantize.quantize_recipe(quantize.convert(fmodel, "float32"), recipe,
                                    recipe.check(fmodel), [images[i:i + 1] for i in range(8)])
  assert quantize.inspect(tflite, names)["layers"] == recipe.check(model)
  interp = HostRunner().load(tflite)  # the float layer leaves some ops outside XNNPACK
  assert HostRunner.delegate_partitions(interp) >= 1
  assert set(HostRunner.undelegated_ops(interp)) <= {"QUANTIZE", "DEQUANTIZE", "CONV_2D"}


def test_collapsed_ranges_are_widened_and_files_load(setup):
  from tfnas.export import qat, quantize
  from tfnas.export.recipe import Recipe
  from tfnas.export.tflite import run_tflite
  from tfnas.models.child import build_child
  space, arch, model, images = setup
  dead = keras.models.clone_model(model)
  dead.set_weights(model.get_weights())
  bn = dead.get_layer("b00_expand_bn")  # expand output ReLU(0 * x - 1) = 0 everywhere
  n = bn.gamma.shape[0]
  bn.set_weights([np.zeros(n), -np.ones(n), np.zeros(n), np.ones(n)])
  samples = [images[i:i + 1] for i in range(8)]
  files = [quantize.convert(dead, "int8", samples)]
  recipe = Recipe.from_json({"default": "int8", "layers": {"b01_project_conv": "int4"}})
  files.append(quantize.quantize_recipe(quantize.convert(dead, "float32"), recipe,
                                        recipe.check(dead), samples))
  qmodel = build_child(space, arch, quant=Recipe.uniform("int8"), dropout=0.0)
  qat.fold_weights(dead, qmodel)
  qat.calibrate(qmodel, [images[:8]], 1)
  fq = qmodel.get_layer("b00_expand_conv_fq")
  assert float(fq.max) - float(fq.min) == 0.0  # collapsed, widened inside the layer
  files.append(quantize.convert(qmodel, "qat"))
  for f in files:
    assert np.isfinite(run_tflite(f, images[:4])).all()


@pytest.mark.parametrize("recipe, pattern", [
    ({"default": "int8", "layers": {"b99_dw_conv": "int8"}}, "does not have; closest"),
    ({"default": "int8", "layers": {"b01_dw_conv": "int4"}}, "int4 for depthwise conv"),
    ({"default": "int4"}, "default 'int4'"),
    ({"default": "int8", "layers": {"b01_dw_conv": "int2"}}, "precision 'int2'"),
    ({"layers": ["b01"]}, "'layers' must map"),
])
def test_bad_recipes(setup, recipe, pattern):
  from tfnas.export.recipe import Recipe
  with pytest.raises(TfnasError, match=pattern):
    Recipe.from_json(recipe).check(setup[2])


@pytest.fixture(scope="module")
def trained(searched, tmp_path_factory):
  """A copy of the quick search's workdir (arch.json, child.weights.h5, config, data)."""
  import shutil
  workdir = tmp_path_factory.mktemp("export") / "run"
  shutil.copytree(searched[0], workdir, ignore=shutil.ignore_patterns("ckpt*", "tb"))
  return workdir


def test_export_binary_end_to_end(trained, tmp_path, fake_adb):
  recipe = tmp_path / "recipe.json"
  recipe.write_text(json.dumps({"default": "int8", "layers": {"head_head_conv": "int4"}}))
  # --adb_serial: also timed on a phone (the stand-in adb of conftest's `fake_adb`,
  # replaying a real benchmark_model output: no phone is attached to CI machines).
  r = run_bin("tfnas.bin.export", f"--workdir={trained}", "--precision=int8",
              "--calibration_images=16", "--batch_size=8", "--latency_model=macs",
              "--adb_serial=PIXEL1")
  assert r.returncode == 0, r.stderr[-3000:]
  assert "tflite_test_accuracy=" in r.stdout
  whole = json.load(open(trained / "export" / "export_report.json"))
  assert whole["latest"] == "int8" and whole["precisions"] == ["int8"]
  report = whole["exports"]["int8"]
  for key in ("size_bytes", "tflite_test_accuracy", "keras_test_accuracy",
              "latency_ms_measured", "latency_ms_predicted", "delegate_partitions"):
    assert key in report, key
  assert report["size_bytes"] == os.path.getsize(trained / "export" / "model_int8.tflite")
  assert report["delegate_partitions"] == 1 and report["test_examples"] == 40
  assert report["latency_ms_measured"] > 0 and report["latency_predicted"]["unit"] == "MMACs"
  assert report["latency_ms_device"] == pytest.approx(69.6343)  # the replayed output's
  assert report["device"]["serial"] == "PIXEL1" and report["device"]["kind"] == "android"
  assert "model_int8.tflite" in open(fake_adb / "adb.log").read()
  assert report["weights"] == "child.weights.h5"
  assert 0 <= report["tflite_test_accuracy"] <= 1 and report["quantization"] == "ptq"
  sidecar = json.load(open(trained / "export" / "model_int8.json"))
  assert sidecar["labels"][0] == "airplane" and sidecar["preprocess"]["image_size"] == 32
  # What an app must reproduce: the eval crop and resize, who normalizes, what comes out.
  assert sidecar["preprocess"]["crop_fraction"] == 1.0 and "bilinear" in sidecar["preprocess"]["resize"]
  assert sidecar["preprocess"]["normalized_by"].startswith("the app")
  assert sidecar["output_is"].startswith("logits")
  assert sidecar["min_runtime_version"] and sidecar["input"]["shape"] == [1, 32, 32, 3]
  # The file carries TFLite metadata (issue 19, item 3): labels, normalization, image size.
  from tfnas.export import metadata
  table, files = metadata.read(open(trained / "export" / "model_int8.tflite", "rb").read())
  assert files["labels.txt"].decode().splitlines() == sidecar["labels"]
  image = table["subgraph_metadata"][0]["input_tensor_metadata"][0]
  norm = image["process_units"][0]["options"]
  assert norm[0] == "NormalizationOptions" and norm[1]["mean"] == pytest.approx(
      sidecar["preprocess"]["mean"]) and norm[1]["std"] == pytest.approx(sidecar["preprocess"]["std"])
  assert image["content"]["content_properties"][1]["default_size"] == {"width": 32, "height": 32}
  assert report["metadata"]["written"] and "bake_normalization" in report["metadata"]["mediapipe"]
  assert sidecar["tflite_metadata"] == report["metadata"]
  # In process (no second TF start-up): float32 and a post-training mixed recipe.
  from tfnas.export.pipeline import ExportOptions, export
  quiet = lambda *a: None
  rep = export(str(trained), ExportOptions(precision="float32", measure=False), log=quiet)
  assert rep["delegate_partitions"] == 1 and set(rep["layer_weight_types"].values()) == {"float32"}
  rep = export(str(trained), ExportOptions(precision="mixed", recipe=str(recipe), measure=False,
                                           calibration_images=8), log=quiet)
  assert rep["layer_weight_types"]["head_head_conv"] == "int4"
  # The precision search binary, then its best recipe exported.
  r = run_bin("tfnas.bin.precision_search", f"--workdir={trained}", "--population=2",
              "--generations=1", "--top_k=1", "--val_images=16", "--calibration_images=8")
  assert r.returncode == 0, r.stderr[-3000:]
  out = trained / "export"
  result = json.load(open(out / "precision_search.json"))
  assert set(result["baselines"]) == {"float32", "int8"} and result["val_images"] == 16
  assert (out / "precision_pareto.png").exists()
  rep = export(str(trained), ExportOptions(precision="mixed", recipe=str(out / "best_recipe.json"),
                                           measure=False, calibration_images=8), log=quiet)
  assert rep["size_bytes"] > 0
  report = json.load(open(trained / "export" / "export_report.json"))
  assert set(report["exports"]) == {"int8", "float32", "mixed"} and report["latest"] == "mixed"
  # The int8 entry still describes the int8 file (the top level never switches precision).
  assert report["exports"]["int8"]["size_bytes"] == os.path.getsize(
      trained / "export" / "model_int8.tflite")
  # The benchmark binary times an exported file.
  r = run_bin("tflite_bench.bin.benchmark", f"--model={trained}/export/model_int8.tflite")
  assert r.returncode == 0, r.stderr[-2000:]
  assert json.loads(r.stdout)["delegate_partitions"] == 1


def test_export_predicts_latency_only_for_the_precision_it_exports(tmp_path):
  # Issue 18, item 1: an int8 export never reports a float32 model's latency as its own.
  import types

  from tfnas.export.pipeline import ExportOptions, _predict
  from tfnas.latency import CostModel, load
  from tfnas.spaces import get_space, parse_arch
  space = get_space("nasbench_macro")
  macs = load("macs", space)
  src = types.SimpleNamespace(space=space, arch=parse_arch(space, "12121212"), config={})
  for precision in ("float32", "int8"):
    CostModel(space, "lut", "ms", 0.1, macs.table, {}, precision).save(
        str(tmp_path / f"{precision}.json"))
  same = _predict(src, ExportOptions(precision="int8", latency_model=str(tmp_path / "int8.json")))
  assert same["latency_ms_predicted"] > 0 and same["latency_predicted"]["precision"] == "int8"
  other = _predict(src, ExportOptions(precision="int8",
                                      latency_model=str(tmp_path / "float32.json")))
  assert other["latency_ms_predicted"] is None and other["latency_predicted"] is None
  assert "predicts float32 files" in other["latency_prediction_note"]
  mixed = _predict(src, ExportOptions(precision="mixed", recipe="r.json",
                                      latency_model=str(tmp_path / "int8.json")))
  assert mixed["latency_ms_predicted"] is None and "mixed file" in mixed["latency_prediction_note"]
  by_macs = _predict(src, ExportOptions(precision="int8", latency_model="macs"))
  assert by_macs["latency_predicted"]["unit"] == "MMACs"  # MACs: any precision


def test_export_bad_input(trained, tmp_path):
  import shutil
  from tfnas.export.pipeline import ExportOptions, export
  quiet = lambda *a: None
  bad = tmp_path / "bad"
  shutil.copytree(trained, bad, ignore=shutil.ignore_patterns("export", "backup", "tb"))
  os.remove(bad / "child.weights.h5")
  with pytest.raises(TfnasError, match="has no weights"):
    export(str(bad), ExportOptions(), log=quiet)
  shutil.copy(trained / "child.weights.h5", bad)
  arch = json.load(open(bad / "arch.json"))
  json.dump({**arch, "space": "fbnet_cifar"}, open(bad / "arch.json", "w"))
  with pytest.raises(TfnasError, match="space 'fbnet_cifar' but the workdir"):
    export(str(bad), ExportOptions(), log=quiet)
  os.remove(bad / "arch.json")
  with pytest.raises(TfnasError, match="arch file .* does not exist"):
    export(str(bad), ExportOptions(), log=quiet)
  with pytest.raises(TfnasError, match="needs --recipe"):
    export(str(trained), ExportOptions(precision="mixed"), log=quiet)
  recipe = tmp_path / "r.json"
  recipe.write_text(json.dumps({"layers": {"head_head_conv": "int2"}}))
  with pytest.raises(TfnasError, match="precision 'int2'"):
    export(str(trained), ExportOptions(precision="mixed", recipe=str(recipe)), log=quiet)
  assert not os.path.exists(bad / "export")
  # Binaries: one line, exit 2, nothing written.
  r = run_bin("tfnas.bin.export", f"--workdir={bad}", "--precision=int8")
  assert r.returncode == 2 and r.stderr.splitlines()[-1].startswith("error: arch file"), r.stderr
  corrupt = tmp_path / "corrupt.tflite"
  corrupt.write_bytes(b"TFL3" + b"\x00garbage" * 50)
  r = run_bin("tflite_bench.bin.benchmark", f"--model={corrupt}")
  assert r.returncode == 2 and r.stderr.splitlines()[-1].startswith("error: cannot load"), r.stderr


def test_precision_search_scores_real_files_and_resumes(setup, tmp_path):
  from tfnas.export import quantize
  from tfnas.export import precision_search as ps
  from tfnas.export.recipe import quantizable_layers
  _, _, model, images = setup
  labels = np.argmax(model(images).numpy(), -1)  # the float model's own answers
  calib = [images[i:i + 1] for i in range(8)]
  int8_size = len(quantize.RecipeQuantizer(quantize.convert(model, "float32"),
                                           quantizable_layers(model), calib).quantize(
      ps.Recipe.uniform("int8"), {n: "int8" for n in quantizable_layers(model)}))
  opts = ps.SearchOptions(population=4, generations=2, top_k=2, mutation_prob=0.2,
                          size_limit_bytes=int(int8_size * 0.97), seed=1)
  search = ps.PrecisionSearch(model, images, labels, calib, opts)
  state = tmp_path / "state.json"
  result = search.run(str(state), log=lambda *a: None)
  assert result["baselines"]["float32"]["accuracy"] == 1.0
  assert result["baselines"]["int8"]["size_bytes"] == int8_size
  assert result["best"] is not None and result["best"]["size_bytes"] <= opts.size_limit_bytes
  for row in result["all"]:
    if row["tag"] != "uniform":  # sampled candidates met the size pre-check
      assert search.estimated_bytes(tuple(row["requested"])) <= opts.size_limit_bytes
    assert row["feasible"] == (row["size_bytes"] <= opts.size_limit_bytes)
  # The genes are what the file holds: re-quantize the best and read it back.
  best = result["best"]
  recipe = ps.Recipe.from_json(best["recipe"])
  data = search.quantizer.quantize(recipe, recipe.check(model))
  assert len(data) == best["size_bytes"]
  assert result["pareto_front"] and len(result["history"]) == 2
  # Resume: two more generations continue from the saved state, same seed -> same result.
  more = ps.PrecisionSearch(model, images, labels, calib,
                            ps.SearchOptions(**{**vars(opts), "generations": 3}))
  resumed = more.run(str(state), log=lambda *a: None)
  assert [h["generation"] for h in resumed["history"]] == [0, 1, 2]
  assert resumed["history"][:2] == result["history"]
  header, *rows = [json.loads(l) for l in open(str(state) + ".rows.jsonl")]
  assert header["identity"]["size_limit_bytes"] == opts.size_limit_bytes
  assert len({tuple(r["genes"]) for r in rows}) == len(resumed["all"])  # each file measured
  assert len(rows) == len({tuple(r["requested"]) for r in rows})  # once, each request kept
  # A rerun with another limit is refused, not resumed into a different search.
  other = ps.PrecisionSearch(model, images, labels, calib,
                             ps.SearchOptions(**{**vars(opts), "size_limit_bytes": int8_size}))
  with pytest.raises(TfnasError, match="holds candidates measured with"):
    other.run(str(state), log=lambda *a: None)
  fresh = ps.PrecisionSearch(model, images, labels, calib,
                             ps.SearchOptions(**{**vars(opts), "generations": 3}))
  straight = fresh.run(None, log=lambda *a: None)
  assert [h["population"] for h in straight["history"]] == \
      [h["population"] for h in resumed["history"]]
  ps.plot(resumed, str(tmp_path / "front.png"))
  assert (tmp_path / "front.png").stat().st_size > 1000


def test_saved_config_fields_of_sectioned_and_older_flat_workdirs(tmp_path):
  # Export reads a workdir's config.json by dotted path; workdirs saved before the
  # config's sections (2026-12-01) hold the same fields flat.
  from tfnas.export.pipeline import _saved
  from tfnas.workdir import Workdir
  wd = Workdir(str(tmp_path), "search")
  nested = {"data": {"dataset": "folder:x", "val_size": 5}, "search": {}, "seed": 1}
  flat = {"dataset": "folder:x", "val_size": 5, "seed": 1}
  for saved in (nested, flat):
    assert _saved(saved, "data.dataset", wd) == "folder:x" and _saved(saved, "seed", wd) == 1
    assert _saved(saved, "data.bad_images", wd, default="skip") == "skip"
    assert _saved(saved, "search.latency_model", wd, default=None) is None
    with pytest.raises(TfnasError, match="has no 'data.augment'"):
      _saved(saved, "data.augment", wd)


def test_baked_normalization_takes_uint8_pixels_straight_in(trained, tmp_path):
  # Issue 19, item 3: --bake_normalization puts data.json's (x - mean) / std inside the
  # graph; the int8 file (PTQ, calibrated on the same images as pixels) takes uint8 RGB,
  # LiteRT scores the test images fed as pixels like the float Keras model, and the
  # sidecar tells the app that the model normalizes.
  import shutil

  from tfnas.export.tflite import load_interpreter
  workdir = tmp_path / "w"
  shutil.copytree(trained, workdir)
  r = run_bin("tfnas.bin.export", f"--workdir={workdir}", "--precision=int8",
              "--bake_normalization", "--calibration_images=32", "--test_limit=128",
              "--measure=false")
  assert r.returncode == 0, r.stderr[-3000:]
  report = json.load(open(workdir / "export" / "export_report.json"))["exports"]["int8"]
  assert report["input"].startswith("uint8 RGB pixels")
  assert abs(report["tflite_test_accuracy"] - report["keras_test_accuracy"]) <= 0.05
  interp = load_interpreter(str(workdir / "export" / "model_int8.tflite"))
  assert interp.get_input_details()[0]["dtype"] == np.uint8
  sidecar = json.load(open(workdir / "export" / "model_int8.json"))
  assert sidecar["preprocess"]["normalized_by"].startswith("the model")
  # The file an app loads: MediaPipe's ImageClassifier runs it from its metadata alone
  # (mean 0, std 1: pixels straight in) with LiteRT's scores on the same pixels.
  from test_metadata import mediapipe_scores
  from tfnas.export.tflite import run_tflite
  assert report["metadata"]["normalization"] == {"mean": [0.0], "std": [1.0]}
  assert "mediapipe" not in report["metadata"]
  image = np.random.default_rng(2).integers(0, 256, (32, 32, 3), dtype=np.uint8)
  got = mediapipe_scores(workdir / "export" / "model_int8.tflite", image, tmp_path)
  ours = run_tflite(str(workdir / "export" / "model_int8.tflite"), image[None])[0]
  np.testing.assert_allclose([got[label] for label in sidecar["labels"]], ours, atol=1e-4)
  # The wrapper's arithmetic: pixels through it = the same pixels normalized by the app.
  from tfnas.data import Preprocess
  from tfnas.export.pipeline import load_workdir, pixels, with_normalization
  src, pre = load_workdir(str(workdir)), Preprocess(32)
  raw = pixels(np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32), pre)
  np.testing.assert_allclose(with_normalization(src.model, pre)(raw).numpy(),
                             src.model(pre.normalize(raw)).numpy(), rtol=1e-4, atol=1e-4)


def test_qat_of_mobilenetv3_blocks_converts_and_agrees():
  """QAT on ofa_mbv3's first 10 blocks (squeeze-and-excitation, ReLU and hard-swish
  stages): the file converts, runs inside XNNPACK and agrees with the fake-quant Keras
  model. QAT has no fake-quant inside SE or hard swish, so the convs whose input or
  output passes through them stay float (the README says so; post-training int8, the
  default, quantizes everything); the ReLU stage's convs are int8."""
  import dataclasses

  from tflite_bench.host import HostRunner
  from tfnas.export import qat, quantize
  from tfnas.export.fastgen import randomize_batchnorm
  from tfnas.export.recipe import Recipe, quantizable_layers
  from tfnas.export.tflite import run_tflite
  from tfnas.models.child import build_child
  from tfnas.spaces import Arch, get_space
  space = get_space("ofa_mbv3", resolution=64, width=0.25, num_classes=10)
  space = dataclasses.replace(space, blocks=space.blocks[:10], references=())
  arch = Arch.create(space, [8, 4, 9, 0, 5, 1, 9, 2, 3])
  keras.utils.set_random_seed(0)  # the same weights whatever ran before in this worker
  model = randomize_batchnorm(build_child(space, arch, dropout=0.0))
  qmodel = build_child(space, arch, quant=Recipe.uniform("int8"), dropout=0.0)
  qat.fold_weights(model, qmodel)
  x = np.random.default_rng(0).normal(size=(40, 64, 64, 3)).astype(np.float32)
  qat.calibrate(qmodel, [x[i:i + 8] for i in range(0, 40, 8)], 5)
  tflite = quantize.convert(qmodel, "qat")
  layers = quantize.inspect(tflite, quantizable_layers(model))["layers"]
  assert all(layers[f"b0{i}_{r}_conv"] == "int8" for i in (0, 1, 3)
             for r in ("expand", "dw", "project"))
  assert layers["b04_project_conv"] == "float32"  # after squeeze-and-excitation
  runner = HostRunner()
  assert runner.delegate_partitions(runner.load(tflite)) == 1
  # Random weights give near-tied logits (top-1 agreement swings with the seed): compare
  # values, to a few int8 steps of the logits' range (1.7 % measured).
  got, want = run_tflite(tflite, x), qmodel(x, training=False).numpy()
  assert np.abs(want).max() > 1e-2 and np.abs(got - want).max() <= 0.05 * np.abs(want).max()
