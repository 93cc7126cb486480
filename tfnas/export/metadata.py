"""TFLite metadata in an exported `.tflite`, as Android's Task Library and MediaPipe read it.

An image classifier's metadata says what an app must do around the model: the input is
an RGB image of a given size, normalized per channel by `(x - mean) / std` (or not at
all when the model takes uint8 pixels), and the output has one score per label, the
labels coming from `labels.txt` packed into the file. The format is TFLite's metadata
schema (`tensorflow_lite_support/metadata/metadata_schema.fbs`, file identifier
"M001"): a `ModelMetadata` flatbuffer stored in one of the model's buffers and named
"TFLITE_METADATA" in `Model.metadata`, with its associated files (`labels.txt`) in a
zip archive appended to the model (a `.tflite` with metadata is also a zip file).

The maintained writers of this format do not install beside this project's TensorFlow
(MediaPipe 1.2.3's `metadata_writers` import a compiled module its wheel lacks; its
0.10 releases need numpy < 2; tflite-support needs protobuf < 4), so this module writes
the flatbuffer from the schema with the `flatbuffers` library, for the subset of tables
an image classifier uses (`SCHEMA` below, fields in schema order: a field's vtable slot
is its position), and reads it back the same way. The model's own flatbuffer is edited
through the TFLite schema's object API (`tflite_bench.stitch.load_model/pack_model`).

MediaPipe's ImageClassifier (1.2.3, measured) reads this metadata: labels, one mean/std
pair, a uint8 input without normalization; it refuses per-channel mean/std ("Per-channel
image normalization is not available"), which Task Library accepts: a model normalized
per channel goes to MediaPipe exported with `--bake_normalization`.
"""

from __future__ import annotations

import dataclasses
import io
import struct
import zipfile

import flatbuffers
from flatbuffers import number_types as nt
from flatbuffers.table import Table

from tfnas.errors import TfnasError

METADATA_NAME = "TFLITE_METADATA"  # the Model.metadata entry Task Library looks up
FILE_IDENTIFIER = b"M001"
MIN_PARSER_VERSION = "1.0.0"  # every field written here is in the schema's 1.0.0

ENUMS = {
    "AssociatedFileType": {"UNKNOWN": 0, "DESCRIPTIONS": 1, "TENSOR_AXIS_LABELS": 2,
                           "TENSOR_VALUE_LABELS": 3, "TENSOR_AXIS_SCORE_CALIBRATION": 4,
                           "VOCABULARY": 5, "SCANN_INDEX_FILE": 6},
    "ColorSpaceType": {"UNKNOWN": 0, "RGB": 1, "GRAYSCALE": 2},
}
# Union members by type number, as the schema numbers them; members without a table in
# SCHEMA (tokenizers, score calibration, bounding boxes) are named when read, not decoded.
UNIONS = {
    "ContentProperties": {"FeatureProperties": 1, "ImageProperties": 2,
                          "BoundingBoxProperties": 3, "AudioProperties": 4},
    "ProcessUnitOptions": {"NormalizationOptions": 1, "ScoreCalibrationOptions": 2,
                           "ScoreThresholdingOptions": 3, "BertTokenizerOptions": 4,
                           "SentencePieceTokenizerOptions": 5, "RegexTokenizerOptions": 6},
}
# The tables an image classifier's metadata uses, fields in schema order (a field's vtable
# slot is its position). Kinds: "string", "uint", "int", "[float]", "[string]", "enum:E",
# a table's name, "[table]", "union:U" (two slots: the member's type, then the member).
SCHEMA = {
    "ModelMetadata": [("name", "string"), ("description", "string"), ("version", "string"),
                      ("subgraph_metadata", "[SubGraphMetadata]"), ("author", "string"),
                      ("license", "string"), ("associated_files", "[AssociatedFile]"),
                      ("min_parser_version", "string")],
    "SubGraphMetadata": [("name", "string"), ("description", "string"),
                         ("input_tensor_metadata", "[TensorMetadata]"),
                         ("output_tensor_metadata", "[TensorMetadata]"),
                         ("associated_files", "[AssociatedFile]")],
    "TensorMetadata": [("name", "string"), ("description", "string"),
                       ("dimension_names", "[string]"), ("content", "Content"),
                       ("process_units", "[ProcessUnit]"), ("stats", "Stats"),
                       ("associated_files", "[AssociatedFile]")],
    "AssociatedFile": [("name", "string"), ("description", "string"),
                       ("type", "enum:AssociatedFileType"), ("locale", "string")],
    "Content": [("content_properties", "union:ContentProperties"), ("range", "ValueRange")],
    "FeatureProperties": [],
    "ImageProperties": [("color_space", "enum:ColorSpaceType"), ("default_size", "ImageSize")],
    "ImageSize": [("width", "uint"), ("height", "uint")],
    "ValueRange": [("min", "int"), ("max", "int")],
    "ProcessUnit": [("options", "union:ProcessUnitOptions")],
    "NormalizationOptions": [("mean", "[float]"), ("std", "[float]")],
    "Stats": [("max", "[float]"), ("min", "[float]")],
}
_SCALARS = {"uint": (nt.Uint32Flags, "PrependUint32Slot"),
            "int": (nt.Int32Flags, "PrependInt32Slot"),
            "enum": (nt.Int8Flags, "PrependInt8Slot")}  # the schema's enums are `byte`


@dataclasses.dataclass(frozen=True)
class ClassifierMetadata:
  """What an app needs to run an image classifier.

  height, width: the input image size in pixels (the model's input is (1, H, W, 3) RGB).
  mean, std: per-channel normalization `(x - mean) / std` of 0..255 pixel values; for a
    model that takes uint8 pixels and normalizes inside, mean 0 and std 1 (nothing to do).
  labels: one per output score, in output order (written as `labels.txt`).
  """
  name: str
  description: str
  height: int
  width: int
  mean: tuple[float, ...]
  std: tuple[float, ...]
  labels: tuple[str, ...]
  input_description: str
  output_description: str
  version: str = ""
  author: str = "tfnas"
  license: str = ""
  labels_file: str = "labels.txt"

  def to_table(self) -> dict:
    """The `ModelMetadata` table as a nested dict (the form `encode` takes)."""
    labels_file = {"name": self.labels_file, "type": "TENSOR_AXIS_LABELS",
                   "description": "Labels of the output scores, one per line, in order."}
    image = {"name": "image", "description": self.input_description,
             "content": {"content_properties": ("ImageProperties", {
                 "color_space": "RGB",
                 "default_size": {"width": self.width, "height": self.height}})},
             "process_units": [{"options": ("NormalizationOptions", {
                 "mean": list(self.mean), "std": list(self.std)})}],
             # The input tensor's value range: pixels 0..255 after the normalization.
             "stats": {"max": [(255.0 - m) / s for m, s in zip(self.mean, self.std)],
                       "min": [(0.0 - m) / s for m, s in zip(self.mean, self.std)]}}
    scores = {"name": "scores", "description": self.output_description,
              "content": {"content_properties": ("FeatureProperties", {})},
              "associated_files": [labels_file]}
    return {"name": self.name, "description": self.description, "version": self.version,
            "author": self.author, "license": self.license,
            "subgraph_metadata": [{"input_tensor_metadata": [image],
                                   "output_tensor_metadata": [scores]}],
            "min_parser_version": MIN_PARSER_VERSION}


def encode(table: dict, root: str = "ModelMetadata") -> bytes:
  """A metadata flatbuffer (file identifier "M001") from a nested dict of `SCHEMA`'s
  tables; unions are `(member name, dict)` pairs, enums their names. Raises TfnasError
  naming an unknown field or enum value."""
  builder = flatbuffers.Builder(1024)
  builder.Finish(_build(builder, root, table), file_identifier=FILE_IDENTIFIER)
  return bytes(builder.Output())


def decode(buf: bytes, root: str = "ModelMetadata") -> dict:
  """The nested dict `encode` was given (fields absent from the buffer are left out).
  Raises TfnasError when the buffer is not a metadata flatbuffer."""
  if len(buf) < 8 or bytes(buf[4:8]) != FILE_IDENTIFIER:
    raise TfnasError(f"not a TFLite metadata flatbuffer (file identifier "
                     f"{bytes(buf[4:8])!r}, expected {FILE_IDENTIFIER!r})")
  try:
    pos = flatbuffers.encode.Get(flatbuffers.packer.uoffset, buf, 0)
    return _read(Table(bytearray(buf), pos), root)
  except (struct.error, IndexError, UnicodeDecodeError) as e:
    raise TfnasError(f"damaged TFLite metadata flatbuffer ({type(e).__name__}: {e})") from None


def attach(tflite: bytes, meta: ClassifierMetadata) -> bytes:
  """`tflite` with `meta` written in: the metadata flatbuffer in a new buffer named
  "TFLITE_METADATA" (replacing one already there), `labels.txt` in a zip archive appended
  to the file. The graph and weights are unchanged. Raises TfnasError when the labels do
  not match the model's output size."""
  import numpy as np
  from ai_edge_litert import schema_py_generated as schema
  from tflite_bench.stitch import load_model, pack_model

  # load_model brings litert-quantizer's buffers stored after the flatbuffer inside it.
  model = load_model(bytes(tflite))
  outputs = model.subgraphs[0].outputs
  n_out = int(model.subgraphs[0].tensors[outputs[0]].shape[-1])
  if len(meta.labels) != n_out:
    raise TfnasError(f"{len(meta.labels)} labels for a model with {n_out} output scores")
  for old in [m for m in (model.metadata or []) if _is_ours(m)]:
    model.buffers[old.buffer].data = None  # the replaced metadata's bytes go too
  model.metadata = [m for m in (model.metadata or []) if not _is_ours(m)]
  buffer = schema.BufferT()
  buffer.data = np.frombuffer(encode(meta.to_table()), np.uint8)
  model.buffers.append(buffer)
  entry = schema.MetadataT()
  entry.name, entry.buffer = METADATA_NAME, len(model.buffers) - 1
  model.metadata.append(entry)
  out = io.BytesIO(pack_model(model))
  out.seek(0, io.SEEK_END)
  # Appended to non-zip bytes, mode "a" starts a new archive at the end of the file.
  with zipfile.ZipFile(out, "a", compression=zipfile.ZIP_STORED) as z:
    z.writestr(meta.labels_file, "".join(f"{label}\n" for label in meta.labels))
  return out.getvalue()


def read(tflite: bytes) -> tuple[dict, dict[str, bytes]]:
  """(the ModelMetadata table as a dict, {associated file name: bytes}) of a `.tflite`.
  Raises TfnasError when the file has no metadata."""
  from tflite_bench.stitch import load_model

  try:
    model = load_model(bytes(tflite))
  except Exception as e:  # the flatbuffer parser raises anything on garbage
    raise TfnasError(f"not a .tflite flatbuffer ({type(e).__name__}: {e})") from None
  found = [m for m in (model.metadata or []) if _is_ours(m)]
  if not found:
    raise TfnasError(f"the model has no {METADATA_NAME} entry (no TFLite metadata)")
  buf = model.buffers[found[0].buffer]
  table = decode(bytes(bytearray(buf.data if buf.data is not None else ())))
  try:
    with zipfile.ZipFile(io.BytesIO(tflite)) as z:
      files = {n: z.read(n) for n in z.namelist()}
  except zipfile.BadZipFile:
    files = {}
  return table, files


def _build(b: flatbuffers.Builder, name: str, value: dict) -> int:
  fields = SCHEMA[name]
  unknown = set(value) - {f for f, _ in fields}
  if unknown:
    raise TfnasError(f"{name} has no field {sorted(unknown)[0]!r}; its fields are "
                     f"{[f for f, _ in fields]}")
  # Children first: a flatbuffer table cannot be built while another one is open.
  refs = {}
  for field, kind in fields:
    v = value.get(field)
    if v is None:
      continue
    if kind == "string":
      refs[field] = b.CreateString(v)
    elif kind == "[float]":
      b.StartVector(4, len(v), 4)
      for x in reversed(v):
        b.PrependFloat32(float(x))
      refs[field] = b.EndVector()
    elif kind.startswith("["):
      elems = [b.CreateString(x) if kind == "[string]" else _build(b, kind[1:-1], x)
               for x in v]
      b.StartVector(4, len(elems), 4)
      for e in reversed(elems):
        b.PrependUOffsetTRelative(e)
      refs[field] = b.EndVector()
    elif kind.startswith("union:"):
      if not (isinstance(v, (tuple, list)) and len(v) == 2 and isinstance(v[1], dict)):
        raise TfnasError(f"{name}.{field} must be a (member name, table) pair; got {v!r}")
      member, sub = v
      number = _enum(UNIONS, kind[6:], member)
      if member not in SCHEMA:
        raise TfnasError(f"{name}.{field}: {member} is not written by this module; it "
                         f"writes {[m for m in UNIONS[kind[6:]] if m in SCHEMA]}")
      refs[field] = (number, _build(b, member, sub))
    elif kind in SCHEMA:
      refs[field] = _build(b, kind, v)
  b.StartObject(sum(2 if k.startswith("union:") else 1 for _, k in fields))
  slot = 0
  for field, kind in fields:
    v = value.get(field)
    if kind.startswith("union:"):
      if field in refs:
        b.PrependUint8Slot(slot, refs[field][0], 0)
        b.PrependUOffsetTRelativeSlot(slot + 1, refs[field][1], 0)
      slot += 2
      continue
    if field in refs:
      b.PrependUOffsetTRelativeSlot(slot, refs[field], 0)
    elif v is not None:
      base = kind.split(":")[0]
      if base == "enum":
        number = _enum(ENUMS, kind[5:], v)
      elif isinstance(v, int) and not isinstance(v, bool):
        number = v
      else:
        raise TfnasError(f"{name}.{field} must be an integer; got {v!r}")
      getattr(b, _SCALARS[base][1])(slot, number, 0)
    slot += 1
  return b.EndObject()


def _read(t: Table, name: str) -> dict:
  out, slot = {}, 0
  for field, kind in SCHEMA[name]:
    o = t.Offset(4 + 2 * slot)
    slot += 2 if kind.startswith("union:") else 1
    if not o:
      continue
    if kind == "string":
      out[field] = t.String(o + t.Pos).decode()
    elif kind.startswith("union:"):
      member_type = t.Get(nt.Uint8Flags, o + t.Pos)
      member = _name_of(UNIONS, kind[6:], member_type, f"{name}.{field}")
      o2 = t.Offset(4 + 2 * (slot - 1))
      # A member this module has no table for is named, its contents left out.
      out[field] = (member, _read(Table(t.Bytes, t.Indirect(o2 + t.Pos)), member)
                    if member in SCHEMA else None)
    elif kind.startswith("["):
      start, n = t.Vector(o), t.VectorLen(o)
      if kind == "[float]":
        out[field] = [t.Get(nt.Float32Flags, start + 4 * i) for i in range(n)]
      elif kind == "[string]":
        out[field] = [t.String(start + 4 * i).decode() for i in range(n)]
      else:
        out[field] = [_read(Table(t.Bytes, t.Indirect(start + 4 * i)), kind[1:-1])
                      for i in range(n)]
    elif kind in SCHEMA:
      out[field] = _read(Table(t.Bytes, t.Indirect(o + t.Pos)), kind)
    else:
      base = kind.split(":")[0]
      number = t.Get(_SCALARS[base][0], o + t.Pos)
      out[field] = (_name_of(ENUMS, kind[5:], number, f"{name}.{field}") if base == "enum"
                    else number)
  return out


def _is_ours(entry) -> bool:
  name = entry.name.decode() if isinstance(entry.name, bytes) else entry.name
  return name == METADATA_NAME


def _name_of(table: dict, enum: str, number: int, where: str) -> str:
  names = {v: k for k, v in table[enum].items()}
  if number not in names:
    raise TfnasError(f"{where}: {enum} value {number} is not one this module knows "
                     f"({sorted(names)}; a newer metadata schema?)")
  return names[number]


def _enum(table: dict, enum: str, name: str) -> int:
  if name not in table[enum]:
    raise TfnasError(f"{name!r} is not a {enum}; expected one of {list(table[enum])}")
  return table[enum][name]
