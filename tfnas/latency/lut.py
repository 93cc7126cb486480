"""Lookup-table latency models: imported from the ProxylessNAS / OFA YAML, or measured.

The ProxylessNAS YAML keys a block by its shapes and op, e.g.
``expanded_conv-input:112x112x16-output:56x56x24-expand:3-kernel:5-stride:2-idskip:0``
plus ``Conv-...`` (stem), ``Conv_1-...`` (final 1x1) and ``Logits-...`` (pool and
classifier). Once-for-All's tables key MobileNetV3 blocks the same way, with ``expand``
the mid-channel count and ``-se:<0|1>-hs:<0|1>`` (squeeze-and-excitation, hard swish)
added, and time the head as ``Conv_1``, ``AvgPool2D``, ``Conv_2`` (the pooled 1x1 conv)
and ``Logits`` (the classifier alone). The keys are generated from the spec, so a table
maps onto any MBConv space at the resolution it was measured for; a key the table lacks
is an error naming the key, never a default.
"""

from __future__ import annotations

import math
import os

import yaml

from tfnas.errors import TfnasError
from tfnas.latency.models import CostModel
from tfnas.spaces import SearchSpace
from tfnas.spaces import spec as S


def _shape(s) -> str:
  return "x".join(map(str, s))


def proxyless_key(block: S.Block, op: S.Op) -> str:
  """The ProxylessNAS lookup-table key of `op` in `block`."""
  expand = int(op.expand) if float(op.expand).is_integer() else op.expand
  return (f"expanded_conv-input:{_shape(block.in_shape)}-output:{_shape(block.out_shape)}"
          f"-expand:{expand}-kernel:{op.kernel}-stride:{block.stride}"
          f"-idskip:{int(block.same_shape)}")


def ofa_key(block: S.Block, op: S.Op, activation: str) -> str:
  """The Once-for-All lookup-table key of `op` in `block` (`activation`: the space's)."""
  main = block.graph(op, activation).main
  mid = next(l.out_shape[2] for l in main if l.type == "dwconv")
  hswish = any(l.type == "act" and l.activation == "hswish" for l in main)
  return (f"expanded_conv-input:{_shape(block.in_shape)}-output:{_shape(block.out_shape)}"
          f"-expand:{mid}-kernel:{op.kernel}-stride:{block.stride}"
          f"-idskip:{int(block.same_shape)}-se:{int(block.se)}-hs:{int(hswish)}")


def import_proxyless_yaml(path: str, space: SearchSpace,
                         precision: str = "float32") -> CostModel:
  """Maps a ProxylessNAS- or Once-for-All-format latency YAML onto an MBConv `space`
  (the format is told by the keys: OFA's carry ``-se:``).

  `precision` is what the table was measured on: the published ProxylessNAS (Pixel 1)
  and Once-for-All (Note10) tables time float32 models, the default.

  Raises:
    TfnasError: a missing, non-YAML or non-mapping file, a missing entry, an entry that
      is not a finite number >= 0, or a space that is not MBConv.
  """
  if not os.path.exists(path):
    raise TfnasError(f"lookup table {path!r} does not exist")
  with open(path) as f:
    try:
      raw = yaml.safe_load(f)
    except yaml.YAMLError as e:
      raise TfnasError(f"lookup table {path!r} is not YAML: {' '.join(str(e).split())}") from None
  if not isinstance(raw, dict):
    raise TfnasError(f"lookup table {path!r} is not a mapping of keys to entries")

  def get(key: str) -> float:
    if key not in raw:
      raise TfnasError(f"lookup table {os.path.basename(path)} has no entry {key!r} (space "
                       f"{space.name!r} at resolution {space.input_shape[0]})")
    entry = raw[key]
    value = entry.get("mean") if isinstance(entry, dict) else entry
    try:
      ms = float(value)
    except (TypeError, ValueError):
      ms = float("nan")
    if not math.isfinite(ms) or ms < 0 or isinstance(value, bool):
      raise TfnasError(f"lookup table {os.path.basename(path)} entry {key!r} has mean "
                       f"{value!r}; expected a finite latency in ms >= 0 "
                       "(an entry {mean: <ms>, ...} or a number)")
    return ms

  if any(op.kind not in (S.MBCONV, S.ZERO) for b in space.blocks for op in b.ops):
    raise TfnasError(f"space {space.name!r} is not an MBConv space; the ProxylessNAS table "
                     f"format only describes MBConv blocks")
  ofa = any(isinstance(k, str) and "-se:" in k for k in raw)
  key = ((lambda b, op: ofa_key(b, op, space.activation)) if ofa else proxyless_key)
  stem = space.stem_layers[0]
  constant = get(f"Conv-input:{_shape(stem.in_shape)}-output:{_shape(stem.out_shape)}")
  for block in space.fixed_blocks:
    constant += get(key(block, block.ops[0]))
  last = space.blocks[-1].out_shape
  head = space.head.conv_filters
  constant += get(f"Conv_1-input:{_shape(last)}-output:{last[0]}x{last[1]}x{head}")
  logits_in = (last[0], last[1], head)
  if space.head.pooled_filters:  # OFA: pooling and the pooled 1x1 conv timed apart
    pooled = space.head.pooled_filters
    constant += get(f"AvgPool2D-input:{_shape(logits_in)}-output:1x1x{head}")
    constant += get(f"Conv_2-input:1x1x{head}-output:1x1x{pooled}")
    logits_in = (1, 1, pooled)
  logits, derived = _logits_entry(raw, get, logits_in[:2], logits_in[2],
                                  space.head.num_classes)
  constant += logits
  table = {}
  for block in space.choice_blocks:
    table[block.name] = {op.name: 0.0 if op.kind == S.ZERO else get(key(block, op))
                         for op in block.ops}
  meta = {"source": os.path.abspath(path), "format": "ofa-yaml" if ofa else "proxylessnas-yaml"}
  if derived:
    meta["derived_entries"] = derived
  return CostModel(space, "lut", "ms", constant, table, meta, precision)


def _logits_entry(raw: dict, get, last, head: int, classes: int) -> tuple[float, dict]:
  """The `Logits` entry (global average pool + dense `head` -> `classes`; OFA's tables:
  the dense layer alone, input 1x1) for this head.

  The published tables were measured with ImageNet's 1000 classes. For another class
  count, when the table has no entry of its own, it is derived from an entry with the same
  input shape and another class count, scaled by the operations it performs: the pool's
  H*W*head additions (none on a 1x1 input) plus the dense layer's head*classes MACs (for
  10 classes at 7x7x1280: 5.6 % of the 1000-class entry, 0.017 of 0.310 ms on the Pixel 1,
  under 0.1 % of a typical 80 ms model). Returns (ms, {key: how it was derived}) ({} when
  measured)."""
  prefix = f"Logits-input:{last[0]}x{last[1]}x{head}-output:"
  key = f"{prefix}{classes}"
  if key in raw:
    return get(key), {}
  measured = sorted(k for k in raw if isinstance(k, str) and k.startswith(prefix)
                    and k[len(prefix):].isdigit())
  if not measured:
    return get(key), {}  # the error naming the missing key
  source = measured[-1]
  their = int(source[len(prefix):])
  pool = last[0] * last[1] * head if last[0] * last[1] > 1 else 0
  scale = (pool + head * classes) / (pool + head * their)
  return get(source) * scale, {key: f"derived from {source!r} x {scale:.4f} (pool {pool:,} "
                                    f"adds + dense {head}x{classes} MACs, vs {their} classes)"}


def measure_lut(space: SearchSpace, runner, cache, protocol=None,
                progress=None) -> CostModel:
  """Measures every (block, op) in isolation at its position's shapes.

  Args:
    space: The (sized) search space.
    runner: A `tflite_bench` runner (`measure(model_bytes, protocol)`).
    cache: The pieces as `.tflite` bytes: `stem_piece()`, `head_piece()` and
      `block_piece(block index, op index, mid scale or None)` (None for `zero`), e.g.
      `tfnas.export.fastgen.PieceCache(space)`: the pieces fast generation stitches, so
      the table and the whole-model dataset measure the same operators.
    protocol: The runner's measurement protocol (None: its default).
    progress: Called with (blocks done, choice blocks) after each block.

  Returns:
    A "lut" `CostModel` in ms at the cache's precision (`cache.precision`, float32 when
    it has none): the stem, head and fixed blocks as its constant.
  """
  ms = lambda data: runner.measure(data, protocol)[0].median_ms
  constant = ms(cache.stem_piece()) + ms(cache.head_piece())
  for i, block in enumerate(space.blocks):
    if block in space.fixed_blocks:
      constant += ms(cache.block_piece(i, 0))
  table = {}
  for j, block in enumerate(space.choice_blocks):
    i = space.blocks.index(block)
    row = {}
    for k, op in enumerate(block.ops):
      scales = block.mid_scales or (None,)
      for s in scales:
        piece = cache.block_piece(i, k, s)
        token = op.name if s is None else f"{op.name}@{s:g}"
        row[token] = 0.0 if piece is None else ms(piece)
    table[block.name] = row
    if progress:
      progress(j + 1, len(space.choice_blocks))
  return CostModel(space, "lut", "ms", constant, table,
                   {"source": "micro-benchmarks", "device": runner.device(),
                    "delegate": runner.delegate, "threads": getattr(runner, "threads", None)},
                   getattr(cache, "precision", "float32"))
