"""TFLite metadata (issue 19, item 3): written from the schema, read back, and read by a
real consumer, MediaPipe's ImageClassifier (run in a subprocess: MediaPipe and TensorFlow
each bring their own native libraries, so they are kept out of one process)."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from tfnas.errors import TfnasError
from tfnas.export import metadata

LABELS = tuple(f"class_{i}" for i in range(10))


def _meta(mean=(127.5,), std=(127.5,), labels=LABELS):
  return metadata.ClassifierMetadata(
      name="nasbench_macro 12012012 (float32)", description="a test classifier", height=32,
      width=32, mean=mean, std=std, labels=labels, input_description="RGB, 32x32",
      output_description="logits", version="1")


@pytest.fixture(scope="module")
def float_model():
  """A converted float32 `nasbench_macro` child (10 classes, 32x32 input) and a uint8-input
  one (normalization inside the graph)."""
  from types import SimpleNamespace

  import keras

  from tfnas.export.pipeline import with_normalization
  from tfnas.export.quantize import convert
  from tfnas.models.child import build_child
  from tfnas.spaces import get_space, parse_arch
  keras.utils.set_random_seed(0)
  space = get_space("nasbench_macro", 32, 0.25, 10)
  model = build_child(space, parse_arch(space, "12012012"), dropout=0.0)
  pre = SimpleNamespace(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375))
  return convert(model, "float32"), convert(with_normalization(model, pre), "float32")


def test_attach_keeps_buffers_stored_after_the_flatbuffer():
  # litert-quantizer's files (the mixed-precision export) keep constant buffers after the
  # flatbuffer, addressed by offset: the file with metadata must still hold them.
  # The quantizer does so for larger files (not for the width-0.25 child): width 1.0.
  from tfnas.export import quantize
  from tfnas.export.recipe import Recipe
  from tfnas.models.child import build_child
  from tfnas.spaces import get_space, parse_arch
  space = get_space("nasbench_macro")
  model = build_child(space, parse_arch(space, "12012012"), dropout=0.0)
  plain = quantize.convert(model, "float32")
  recipe = Recipe.uniform("int8")
  samples = np.random.default_rng(0).normal(size=(4, 32, 32, 3)).astype(np.float32)
  mixed = quantize.quantize_recipe(plain, recipe, recipe.check(model), samples)
  from tflite_bench.stitch import load_model
  assert any(b.offset > 1 for b in load_model(mixed).buffers)  # the case under test
  with_meta = metadata.attach(mixed, _meta())
  np.testing.assert_array_equal(_run(mixed, samples[:2]), _run(with_meta, samples[:2]))


def _run(tflite: bytes, x):
  from tfnas.export.tflite import run_tflite
  return run_tflite(tflite, x)


def test_metadata_round_trips_through_the_flatbuffer():
  table = _meta(mean=(123.675, 116.28, 103.53), std=(58.395, 57.12, 57.375)).to_table()
  decoded = metadata.decode(metadata.encode(table))
  # Floats come back as float32; everything else exactly (unions as (member, table)).
  expected = json.loads(json.dumps(table))
  got = json.loads(json.dumps(decoded))
  norm = lambda t: t["subgraph_metadata"][0]["input_tensor_metadata"][0]["process_units"][0]
  np.testing.assert_allclose(norm(got)["options"][1]["mean"], norm(expected)["options"][1]["mean"],
                             rtol=1e-6)
  norm(got)["options"][1].clear()
  norm(expected)["options"][1].clear()
  assert got == expected
  assert decoded["min_parser_version"] == "1.0.0"


def test_attach_keeps_the_graph_and_packs_the_labels(float_model):
  plain, _ = float_model
  with_meta = metadata.attach(plain, _meta())
  x = np.random.default_rng(0).normal(size=(2, 32, 32, 3)).astype(np.float32)
  np.testing.assert_array_equal(_run(plain, x), _run(with_meta, x))
  table, files = metadata.read(with_meta)
  assert files == {"labels.txt": "".join(f"{l}\n" for l in LABELS).encode()}
  out = table["subgraph_metadata"][0]["output_tensor_metadata"][0]
  assert out["associated_files"][0] == {
      "name": "labels.txt", "type": "TENSOR_AXIS_LABELS",
      "description": "Labels of the output scores, one per line, in order."}
  image = table["subgraph_metadata"][0]["input_tensor_metadata"][0]
  assert image["content"]["content_properties"] == (
      "ImageProperties", {"color_space": "RGB", "default_size": {"width": 32, "height": 32}})
  # Written again: one TFLITE_METADATA entry, the new one.
  again = metadata.attach(with_meta, _meta(labels=tuple("abcdefghij")))
  from tflite_bench.stitch import load_model
  names = [m.name.decode() for m in load_model(again).metadata]
  assert names.count("TFLITE_METADATA") == 1
  assert metadata.read(again)[1]["labels.txt"] == b"a\nb\nc\nd\ne\nf\ng\nh\ni\nj\n"


def test_metadata_bad_input(float_model):
  plain, _ = float_model
  with pytest.raises(TfnasError, match="3 labels for a model with 10 output scores"):
    metadata.attach(plain, _meta(labels=("a", "b", "c")))
  with pytest.raises(TfnasError, match="no TFLITE_METADATA entry"):
    metadata.read(plain)
  with pytest.raises(TfnasError, match="Stats has no field 'mean'"):
    metadata.encode({"subgraph_metadata": [{"input_tensor_metadata": [
        {"stats": {"mean": [1.0]}}]}]})
  with pytest.raises(TfnasError, match="'CMYK' is not a ColorSpaceType"):
    metadata.encode({"subgraph_metadata": [{"input_tensor_metadata": [
        {"content": {"content_properties": ("ImageProperties", {"color_space": "CMYK"})}}]}]})
  with pytest.raises(TfnasError, match="not a TFLite metadata flatbuffer"):
    metadata.decode(plain)


MEDIAPIPE = textwrap.dedent("""
    import json, sys
    import numpy as np
    import mediapipe as mp
    from mediapipe.tasks.python import BaseOptions, vision
    path, image = sys.argv[1], np.load(sys.argv[2])
    options = vision.ImageClassifierOptions(
        base_options=BaseOptions(model_asset_path=path), max_results=-1)
    try:
      with vision.ImageClassifier.create_from_options(options) as classifier:
        result = classifier.classify(mp.Image(image_format=mp.ImageFormat.SRGB, data=image))
    except Exception as e:
      print(json.dumps({"error": f"{type(e).__name__}: {e}"}))
    else:
      print(json.dumps({c.category_name: c.score
                        for c in result.classifications[0].categories}))
    """)


def mediapipe_scores(path, image, tmp_path) -> dict:
  """{label: score} from MediaPipe's ImageClassifier on `image` ((H, W, 3) uint8, the
  model's size: no resize), or {"error": message} when it refuses the model."""
  np.save(tmp_path / "image.npy", image)
  r = subprocess.run([sys.executable, "-c", MEDIAPIPE, str(path), str(tmp_path / "image.npy")],
                     capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  return json.loads(r.stdout.strip().splitlines()[-1])


def test_mediapipe_image_classifier_reads_the_metadata(float_model, tmp_path):
  # A real consumer: MediaPipe takes the labels, normalization and image size from the
  # metadata alone; its scores equal LiteRT's on the same pixels, normalized by hand.
  plain, baked = float_model
  image = np.random.default_rng(1).integers(0, 256, (32, 32, 3), dtype=np.uint8)
  path = tmp_path / "float.tflite"
  path.write_bytes(metadata.attach(plain, _meta()))
  ours = _run(plain, (image[None].astype(np.float32) - 127.5) / 127.5)[0]
  got = mediapipe_scores(path, image, tmp_path)
  np.testing.assert_allclose([got[l] for l in LABELS], ours, atol=1e-4)
  # uint8 pixels straight in (normalization baked into the graph: mean 0, std 1).
  path.write_bytes(metadata.attach(baked, _meta(mean=(0.0,), std=(1.0,))))
  got = mediapipe_scores(path, image, tmp_path)
  np.testing.assert_allclose([got[l] for l in LABELS], _run(baked, image[None])[0], atol=1e-4)
  # Without metadata it cannot run the float model; per-channel mean/std it refuses (the
  # export says so and points to --bake_normalization).
  path.write_bytes(plain)
  assert "NormalizationOptions" in mediapipe_scores(path, image, tmp_path)["error"]
  path.write_bytes(metadata.attach(plain, _meta(mean=(123.7, 116.3, 103.5), std=(58, 57, 57))))
  assert "Per-channel" in mediapipe_scores(path, image, tmp_path)["error"]
