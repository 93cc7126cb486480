"""Float TFLite conversion and running `.tflite` files with the LiteRT interpreter."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import tensorflow as tf

from tfnas.errors import TfnasError
from tfnas.io import atomic_write_bytes


def convert_float(model, path: str | None = None) -> bytes:
  """Converts a Keras model to a float32 `.tflite` flatbuffer (optionally written)."""
  converter = tf.lite.TFLiteConverter.from_keras_model(model)
  # Keras prints a page of captured-variable listings while exporting; keep it quiet.
  with contextlib.redirect_stdout(io.StringIO()):
    data = converter.convert()
  if path:
    atomic_write_bytes(path, data)
  return data


def load_interpreter(model: bytes | str, num_threads: int = 1):
  """A LiteRT interpreter (XNNPACK on by default) with tensors allocated."""
  from ai_edge_litert.interpreter import Interpreter
  try:
    if isinstance(model, (bytes, bytearray)):
      interp = Interpreter(model_content=bytes(model), num_threads=num_threads)
    else:
      interp = Interpreter(model_path=model, num_threads=num_threads)
    interp.allocate_tensors()
  except ValueError as e:
    where = "the given bytes" if isinstance(model, (bytes, bytearray)) else repr(model)
    raise TfnasError(f"cannot load .tflite from {where}: {e}".splitlines()[0]) from None
  return interp


def _invoke(interp, inp, out, image: np.ndarray) -> np.ndarray:
  """One image (H, W, C) through `interp`; quantized I/O (de)quantized with the tensors' params."""
  x = image[None]
  if inp["dtype"] != np.float32 and inp["quantization"][0]:  # quantized (not raw pixels)
    scale, zero = inp["quantization"]
    info = np.iinfo(inp["dtype"])
    x = np.clip(np.round(x / scale + zero), info.min, info.max)
  interp.set_tensor(inp["index"], x.astype(inp["dtype"]))
  interp.invoke()
  y = interp.get_tensor(out["index"])
  if out["dtype"] != np.float32:
    scale, zero = out["quantization"]
    y = (y.astype(np.float32) - zero) * scale
  return y[0]


def run_tflite(model: bytes | str, images: np.ndarray, num_threads: int = 1) -> np.ndarray:
  """Runs `images` (N, H, W, C) one at a time through the model; returns outputs.

  Quantized inputs/outputs are (de)quantized with the tensors' own parameters.
  """
  interp = load_interpreter(model, num_threads)
  inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
  return np.stack([_invoke(interp, inp, out, image) for image in images])


def tflite_accuracy(model: bytes | str, dataset, num_threads: int = 1) -> float:
  """Top-1 accuracy of a `.tflite` on a batched (image, label) dataset (one interpreter)."""
  interp = load_interpreter(model, num_threads)
  inp, out = interp.get_input_details()[0], interp.get_output_details()[0]
  correct = n = 0
  for images, labels in dataset:
    for image, label in zip(np.asarray(images), np.asarray(labels)):
      correct += int(np.argmax(_invoke(interp, inp, out, image)) == label)
      n += 1
  return correct / max(n, 1)
