"""Stitching `.tflite` pieces into one model, with the schema that ships in ai-edge-litert.

Fast model generation for latency datasets: each (block position, op) of a
search space is converted by TFLiteConverter once; an architecture's model is
then the concatenation of its pieces' operators, tensors and buffers, with each
piece's input tensor replaced by the previous piece's output. This takes
milliseconds instead of seconds per model; tests check that the result has the
converter's operators, in the same order, with the same tensor shapes.

This module knows nothing about tfnas: pieces are plain single-input,
single-output `.tflite` flatbuffers.
"""

from __future__ import annotations

import copy

import flatbuffers
import numpy as np
from ai_edge_litert import schema_py_generated as schema


class StitchError(ValueError):
  """Pieces that cannot be chained (shape mismatch, several inputs, ...)."""


# The schema's operator and tensor-type names by code ("CONV_2D", "int8").
OP_NAMES = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
TENSOR_TYPES = {v: k.lower() for k, v in vars(schema.TensorType).items()
                if not k.startswith("_")}


def load_model(data: bytes) -> "schema.ModelT":
  """The `.tflite` flatbuffer `data` as the schema's mutable object tree. Buffers stored
  after the flatbuffer (`Buffer.offset`/`size`, as litert-quantizer writes larger files)
  are brought inside it, so `pack_model` keeps them."""
  model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))
  for buffer in model.buffers or []:
    if buffer.offset > 1:  # 0: inline; 1: the writers' placeholder for an empty buffer
      buffer.data = np.frombuffer(data[buffer.offset:buffer.offset + buffer.size], np.uint8)
      buffer.offset = buffer.size = 0
  return model


def pack_model(model: "schema.ModelT") -> bytes:
  """The object tree `model` serialized as a `.tflite` file (identifier "TFL3")."""
  builder = flatbuffers.Builder(1024)
  builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
  return bytes(builder.Output())


def _opcode_key(code) -> tuple:
  custom = code.customCode.decode() if isinstance(code.customCode, bytes) else code.customCode
  return (code.builtinCode, code.deprecatedBuiltinCode, code.version, custom)


def stitch(pieces: list[bytes]) -> bytes:
  """Chains single-input single-output `.tflite` models into one.

  The output of piece i feeds piece i+1 (shapes must match). In quantized pieces the
  joint keeps the previous piece's output parameters, and every tensor of piece i+1 that
  shared its input's parameters (the converter gives RESHAPE, TRANSPOSE, SPLIT and
  CONCATENATION equal input and output parameters, and XNNPACK only delegates them so)
  takes them too, with the scale metadata of the biases of the convolutions reading such a
  tensor set to input scale x weight scale: the stitched model is delegated as the
  converter's is (`_adopt_input_quantization`).
  Operators whose inputs are all constants (a float16 model's weight DEQUANTIZEs) go
  first, as the converter lays them out, and one on a scalar constant that repeats an
  earlier one (a float16 hard sigmoid's 3.0 in every piece) is dropped for the earlier
  one's output, as the converter shares equal constants across a whole model (larger
  constants are not merged: in a trained model no two are equal, while pieces given the
  same random values may be; the dropped op's tensors stay in the file, unused); the
  others keep their order. Signature defs
  are dropped (the model keeps its input and output tensors); the first piece's
  metadata (e.g. min_runtime_version) is kept.
  """
  if not pieces:
    raise StitchError("nothing to stitch")
  models = [load_model(p) for p in pieces]
  out = schema.ModelT()
  out.version = models[0].version
  out.description = models[0].description
  out.operatorCodes = []
  out.buffers = [schema.BufferT()]  # buffer 0 is the empty sentinel by convention
  graph = schema.SubGraphT()
  graph.tensors, graph.operators, graph.inputs, graph.outputs = [], [], [], []
  graph.name = "main"
  codes: dict[tuple, int] = {}
  prev_out = None  # index of the running output tensor in `graph.tensors`
  for k, model in enumerate(models):
    if len(model.subgraphs) != 1:
      raise StitchError(f"piece {k} has {len(model.subgraphs)} subgraphs; expected 1")
    sub = model.subgraphs[0]
    if len(sub.inputs) != 1 or len(sub.outputs) != 1:
      raise StitchError(f"piece {k} has {len(sub.inputs)} inputs and {len(sub.outputs)} "
                        f"outputs; expected 1 and 1")
    buf_map = {0: 0}
    for i, buf in enumerate(model.buffers):
      if i == 0:
        continue
      buf_map[i] = len(out.buffers)
      out.buffers.append(buf)
    code_map = {}
    for i, code in enumerate(model.operatorCodes):
      key = _opcode_key(code)
      if key not in codes:
        codes[key] = len(out.operatorCodes)
        out.operatorCodes.append(code)
      code_map[i] = codes[key]
    tensor_map = {}
    in_idx = sub.inputs[0]
    if prev_out is not None:
      _adopt_input_quantization(model, graph.tensors[prev_out].quantization)
    for i, tensor in enumerate(sub.tensors):
      if i == in_idx and prev_out is not None:
        want = list(graph.tensors[prev_out].shape)
        got = list(tensor.shape)
        if want != got:
          raise StitchError(f"piece {k} expects input shape {got}, previous piece gives {want}")
        tensor_map[i] = prev_out
        continue
      t = copy.copy(tensor)
      t.buffer = buf_map.get(tensor.buffer, 0)
      t.name = f"p{k}/".encode() + (tensor.name if isinstance(tensor.name, bytes)
                                   else str(tensor.name or "").encode())
      tensor_map[i] = len(graph.tensors)
      graph.tensors.append(t)
    for op in sub.operators:
      o = copy.copy(op)
      o.opcodeIndex = code_map[op.opcodeIndex]
      o.inputs = [tensor_map[i] if i >= 0 else -1 for i in op.inputs]
      o.outputs = [tensor_map[i] for i in op.outputs]
      if op.intermediates is not None and len(op.intermediates):
        o.intermediates = [tensor_map[i] for i in op.intermediates]
      graph.operators.append(o)
    if prev_out is None:
      graph.inputs = [tensor_map[in_idx]]
    prev_out = tensor_map[sub.outputs[0]]
  graph.outputs = [prev_out]
  constant = lambda op: all(i < 0 or _is_constant(graph.tensors[i], out.buffers)
                            for i in op.inputs)
  firsts, remap = {}, {}
  for n, op in enumerate(op for op in graph.operators if constant(op)):
    inputs = [graph.tensors[i] for i in op.inputs if i >= 0]
    scalar = inputs and all(int(np.prod(t.shape if t.shape is not None else ())) <= 1
                            for t in inputs)
    key = ((op.opcodeIndex, tuple(_constant_key(t, out.buffers) for t in inputs)) if scalar
           else n)
    if key in firsts:
      remap.update(zip(op.outputs, firsts[key].outputs))
    else:
      firsts[key] = op
  for op in graph.operators:
    op.inputs = [remap.get(i, i) for i in op.inputs]
  graph.outputs = [remap.get(i, i) for i in graph.outputs]
  graph.operators = (list(firsts.values())
                     + [op for op in graph.operators if not constant(op)])
  out.subgraphs = [graph]
  first = models[0]
  out.metadata = []
  for md in first.metadata or []:
    if md.buffer:
      new = copy.copy(md)
      new.buffer = len(out.buffers)
      out.buffers.append(first.buffers[md.buffer])
      out.metadata.append(new)
  out.signatureDefs = []
  return pack_model(out)


def _same_quantization(a, b) -> bool:
  if a is None or b is None or a.scale is None or b.scale is None:
    return False
  return (list(a.scale) == list(b.scale) and list(a.zeroPoint) == list(b.zeroPoint)
          and a.quantizedDimension == b.quantizedDimension)


# Operators whose output keeps its input's quantization (the converter gives them equal
# parameters; XNNPACK delegates them only so), and those whose int32 bias is quantized at
# input scale x weight scale.
_SAME_QUANTIZATION = {"RESHAPE", "TRANSPOSE", "SPLIT", "SPLIT_V", "CONCATENATION",
                      "STRIDED_SLICE", "SLICE", "SQUEEZE", "PAD", "MAX_POOL_2D", "GATHER",
                      "DEPTH_TO_SPACE", "SPACE_TO_DEPTH"}
_BIASED = {"CONV_2D", "DEPTHWISE_CONV_2D", "FULLY_CONNECTED"}


def _adopt_input_quantization(model, joint) -> None:
  """Gives the tensors of `model` (a piece) that share its input's quantization the
  joint's (the previous piece's output's), in place: the input, and what is reached from
  it through `_SAME_QUANTIZATION` operators with the same parameters. The biases of the
  `_BIASED` operators that read one of them get the matching scale metadata (input scale
  x weight scale); their int32 values are not requantized (the model is for timing).
  Nothing happens for float pieces."""
  sub = model.subgraphs[0]
  own = sub.tensors[sub.inputs[0]].quantization
  if joint is None or joint.scale is None or own is None or own.scale is None:
    return
  if _same_quantization(own, joint):
    return
  kind = lambda op: OP_NAMES.get(max(model.operatorCodes[op.opcodeIndex].builtinCode,
                                  model.operatorCodes[op.opcodeIndex].deprecatedBuiltinCode))
  changed, grew = {int(sub.inputs[0])}, True
  while grew:
    grew = False
    for op in sub.operators:
      if kind(op) not in _SAME_QUANTIZATION:
        continue
      ends = [int(i) for i in list(op.inputs) + list(op.outputs) if i >= 0]
      if not changed.intersection(ends):
        continue
      for i in ends:
        if i not in changed and _same_quantization(sub.tensors[i].quantization, own):
          changed.add(i)
          grew = True
  for i in changed:
    sub.tensors[i].quantization = copy.deepcopy(joint)
  in_scale = float(joint.scale[0])
  for op in sub.operators:
    if kind(op) not in _BIASED or len(op.inputs) < 3 or op.inputs[2] < 0:
      continue
    if int(op.inputs[0]) not in changed:
      continue
    weights, bias = sub.tensors[op.inputs[1]], sub.tensors[op.inputs[2]]
    if bias.quantization is None or bias.quantization.scale is None:
      continue
    bias.quantization = copy.deepcopy(bias.quantization)
    bias.quantization.scale = [in_scale * float(w) for w in weights.quantization.scale]


def _constant_key(tensor, buffers) -> tuple:
  """What makes two constant tensors interchangeable: shape, type, quantization, bytes."""
  q = tensor.quantization
  quant = None if q is None else (
      tuple(q.scale) if q.scale is not None else None,
      tuple(q.zeroPoint) if q.zeroPoint is not None else None, q.quantizedDimension)
  data = buffers[tensor.buffer].data
  return (tuple(tensor.shape) if tensor.shape is not None else None, tensor.type, quant,
          bytes(bytearray(data)))


def _is_constant(tensor, buffers) -> bool:
  data = buffers[tensor.buffer].data if 0 < tensor.buffer < len(buffers) else None
  return data is not None and len(data) > 0


def op_signature(data: bytes) -> list[tuple]:
  """(op name, inputs, outputs, scalar options) of every operator, in order; each input
  and output is (shape, element type, quantized axis: the per-channel quantization's
  dimension, or None for per-tensor or no quantization).

  Constant inputs (weights) are included, so a different kernel size, channel
  count, stride, weight type or quantization axis shows up here; options hold
  strides, padding and fused activations."""
  model = load_model(data)
  names, types = OP_NAMES, TENSOR_TYPES
  sub = model.subgraphs[0]
  out = []

  def tensor(i):
    if i < 0:
      return ()
    t = sub.tensors[i]
    q = t.quantization
    axis = (int(q.quantizedDimension) if q is not None and q.scale is not None
            and len(q.scale) > 1 else None)
    return (tuple(int(d) for d in t.shape), types[t.type], axis)

  for op in sub.operators:
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    opts = tuple(sorted((k, v) for k, v in getattr(op.builtinOptions, "__dict__", {}).items()
                        if isinstance(v, (int, float, bool))))
    out.append((names.get(builtin, str(builtin)), tuple(tensor(i) for i in op.inputs),
                tuple(tensor(i) for i in op.outputs), opts))
  return out
