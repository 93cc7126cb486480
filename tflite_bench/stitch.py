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
from ai_edge_litert import schema_py_generated as schema


class StitchError(ValueError):
  """Pieces that cannot be chained (shape mismatch, several inputs, ...)."""


def load_model(data: bytes) -> "schema.ModelT":
  """The `.tflite` flatbuffer `data` as the schema's mutable object tree."""
  return schema.ModelT.InitFromObj(schema.Model.GetRootAs(data, 0))


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

  The output of piece i feeds piece i+1 (shapes must match). Signature defs are
  dropped (the model keeps its input and output tensors); the first piece's
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


def op_signature(data: bytes) -> list[tuple]:
  """(op name, input shapes, output shapes, scalar options) of every operator, in order.

  Constant inputs (weights) are included, so a different kernel size, channel
  count or stride shows up here; options hold strides, padding and fused
  activations."""
  model = load_model(data)
  names = {v: k for k, v in vars(schema.BuiltinOperator).items() if not k.startswith("_")}
  sub = model.subgraphs[0]
  out = []
  for op in sub.operators:
    code = model.operatorCodes[op.opcodeIndex]
    builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
    shape = lambda i: tuple(int(d) for d in sub.tensors[i].shape) if i >= 0 else ()
    opts = tuple(sorted((k, v) for k, v in getattr(op.builtinOptions, "__dict__", {}).items()
                        if isinstance(v, (int, float, bool))))
    out.append((names.get(builtin, str(builtin)), tuple(shape(i) for i in op.inputs),
                tuple(shape(i) for i in op.outputs), opts))
  return out
