"""Export a search or training result: `python -m tfnas.bin.export --workdir=DIR --precision=int8`.

Writes DIR/export/model_<precision>.tflite, its sidecar DIR/export/model_<precision>.json
(input size and quantization, normalization, labels, minimum runtime version) and
DIR/export/export_report.json (size, ops, XNNPACK partitions, accuracy measured by
running the .tflite through LiteRT next to Keras', host latency, predicted latency).

  --precision=float32|float16|int8|mixed   (mixed needs --recipe=FILE.json)
  --quantization=ptq|qat                   (int8/mixed: post-training or quantization-aware)
"""

from tfnas.bin import common

if __name__ == "__main__":
  common.quiet_tensorflow()  # before TensorFlow loads; --verbosity=1 keeps its logs

from absl import app, flags

from tfnas.export.pipeline import PRECISIONS, QUANTIZATIONS

_WORKDIR = flags.DEFINE_string("workdir", None, "A tfnas.bin.search or tfnas.bin.train workdir "
                               "(arch.json, config.json, data.json and weights).")
_PRECISION = flags.DEFINE_enum("precision", "int8", list(PRECISIONS), "Precision of the file.")
_QUANT = flags.DEFINE_enum("quantization", "ptq", list(QUANTIZATIONS),
                           "int8/mixed: ptq (calibrated post-training) or qat "
                           "(quantization-aware fine-tuning, BatchNorm folded).")
_RECIPE = flags.DEFINE_string("recipe", None, 'Per-layer precision recipe JSON for "mixed": '
                              '{"default": "int8", "layers": {"b03_project_conv": "int4"}}.')
_INT8_IO = flags.DEFINE_bool("int8_io", False, "int8 input and output tensors (int8 only).")
_BAKE = flags.DEFINE_bool("bake_normalization", False,
                          "The file takes uint8 RGB pixels (0..255) and normalizes inside "
                          "(data.json's mean/std): the app only crops and resizes "
                          "(float32, float16 and PTQ int8).")
_CALIB = flags.DEFINE_integer("calibration_images", 256, "Train images for calibration.")
_QAT_STEPS = flags.DEFINE_integer("qat_steps", 300, "Quantization-aware fine-tuning steps.")
_QAT_LR = flags.DEFINE_float("qat_lr", 0.005, "Quantization-aware fine-tuning learning rate.")
_DATASET = flags.DEFINE_string("dataset", None, "Dataset override (default: the workdir's).")
_DATA_DIR = flags.DEFINE_string("data_dir", None, "TFDS data dir.")
_TEST_LIMIT = flags.DEFINE_integer("test_limit", None, "Test images to evaluate (default all).")
_BATCH = flags.DEFINE_integer("batch_size", 64, "Batch size for calibration and QAT.")
_MEASURE = flags.DEFINE_bool("measure", True, "Measure latency on the host LiteRT runner.")
_SERIAL = flags.DEFINE_string("adb_serial", None, "Also measure on this adb device.")
_LATENCY = flags.DEFINE_string("latency_model", None, "Latency model for the prediction "
                               "(default: the workdir config's latency_model).")
flags.mark_flags_as_required(["workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  from tflite_bench.host import BenchError
  from tfnas.errors import TfnasError
  from tfnas.export.pipeline import ExportOptions, export
  opts = ExportOptions(
      precision=_PRECISION.value, quantization=_QUANT.value, recipe=_RECIPE.value,
      int8_io=_INT8_IO.value, bake_normalization=_BAKE.value, calibration_images=_CALIB.value, qat_steps=_QAT_STEPS.value,
      qat_lr=_QAT_LR.value, dataset=_DATASET.value, data_dir=_DATA_DIR.value,
      test_limit=_TEST_LIMIT.value, batch_size=_BATCH.value, measure=_MEASURE.value,
      adb_serial=_SERIAL.value, latency_model=_LATENCY.value)
  try:
    r = export(_WORKDIR.value, opts)
  except BenchError as e:
    raise TfnasError(str(e)) from None
  lat = r.get("latency_ms_measured")
  print(f"{r['tflite']}: {r['size_bytes']} bytes, tflite_test_accuracy="
        f"{r['tflite_test_accuracy']:.4f} (keras {r['keras_test_accuracy']:.4f}), "
        f"partitions={r['delegate_partitions']}"
        + (f", host latency {lat:.3f} ms" if lat is not None else ""))


if __name__ == "__main__":
  common.run_main(main)
