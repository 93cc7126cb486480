"""The architecture value: validated choice indices with a canonical form.

Canonical string: ``<space>:<tok>,<tok>,...`` with one token per choice
block, the op name, followed by ``@<scale>`` on spaces with channel choices,
e.g. ``proxyless_cifar:k3_e3,zero,k5_e6,...`` or
``spos_shufflenet:choice_3@1.0,choice_x@0.6,...``. The JSON form is
``{"space": ..., "ops": [names], "indices": [ints], "channels": [scales]}``.
Both round-trip through `parse_arch`, which also accepts a reference name
(``all_k3_e3``) or a plain list of indices.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any, Sequence

from tfnas.errors import TfnasError
from tfnas.io import read_json
from tfnas.spaces.spec import SearchSpace


@dataclasses.dataclass(frozen=True)
class Arch:
  """One architecture of one space. Build it with `Arch.create` or `parse_arch`.

  Example:
    >>> space = get_space("proxyless_cifar")
    >>> arch = Arch.create(space, space.reference("all_k3_e3"))
    >>> parse_arch(space, arch.to_string()) == arch
    True

  Attributes:
    space: Name of the space it belongs to.
    ops: Op index per choice block.
    channels: Mid-scale index per choice block on spaces with channel
      choices, else None.
  """
  space: str
  ops: tuple[int, ...]
  channels: tuple[int, ...] | None = None

  @classmethod
  def create(cls, space: SearchSpace, ops: Sequence[Any],
             channels: Sequence[Any] | None = None) -> "Arch":
    """Validates `ops` (indices or op names) and `channels` against `space`."""
    blocks = space.choice_blocks
    ops = list(ops)
    if len(ops) != len(blocks):
      raise TfnasError(
          f"arch for space {space.name!r} has {len(ops)} choices; expected {len(blocks)} "
          f"(one per choice block)")
    idx = []
    for block, value in zip(blocks, ops):
      idx.append(_op_index(space, block, value))
    chans = None
    if space.has_channel_choices:
      if channels is None:
        channels = [_default_scale_index(b) for b in blocks]
      channels = list(channels)
      if len(channels) != len(blocks):
        raise TfnasError(
            f"arch for space {space.name!r} has {len(channels)} channel choices; "
            f"expected {len(blocks)}")
      chans = tuple(_scale_index(space, b, c) for b, c in zip(blocks, channels))
    elif channels is not None:
      raise TfnasError(f"space {space.name!r} has no channel choices, but channels were given")
    return cls(space.name, tuple(idx), chans)

  def op_names(self, space: SearchSpace) -> list[str]:
    """The chosen op's name in each choice block of `space`."""
    return [b.ops[i].name for b, i in zip(space.choice_blocks, self.ops)]

  def mid_scales(self, space: SearchSpace) -> list[float]:
    """The chosen mid-channel scale of each choice block (1.0 everywhere without
    channel choices)."""
    if self.channels is None:
      return [1.0] * len(self.ops)
    return [b.mid_scales[i] for b, i in zip(space.choice_blocks, self.channels)]

  def to_string(self, space: SearchSpace) -> str:
    """The canonical string "space:op,op,..." ("op@scale" with channel choices), which
    `parse_arch` reads back."""
    names = self.op_names(space)
    if self.channels is not None:
      names = [f"{n}@{s:g}" for n, s in zip(names, self.mid_scales(space))]
    return f"{self.space}:{','.join(names)}"

  def to_json(self, space: SearchSpace) -> dict:
    """The arch.json object: space, op names, op indices, canonical string, and the
    mid-channel scales where the space has channel choices."""
    out = {"space": self.space, "ops": self.op_names(space), "indices": list(self.ops),
           "canonical": self.to_string(space)}
    if self.channels is not None:
      out["channels"] = self.mid_scales(space)
    return out

  def key(self) -> str:
    """Compact, order-preserving key (for caches and record keys)."""
    k = f"{self.space}:" + ".".join(map(str, self.ops))
    if self.channels is not None:
      k += "|" + ".".join(map(str, self.channels))
    return k


def _op_index(space: SearchSpace, block, value) -> int:
  allowed = ", ".join(f"{i}={n}" for i, n in enumerate(block.op_names))
  if isinstance(value, str) and not value.strip().lstrip("-").isdigit():
    try:
      return block.op_index(value.strip())
    except KeyError:
      why = ""
      if value.strip() == "zero":
        why = (f" ('zero' needs equal input/output shapes; this block maps "
               f"{_fmt(block.in_shape)} -> {_fmt(block.out_shape)} stride {block.stride})")
      raise TfnasError(
          f"space {space.name!r} block {block.name}: op {value!r} is not allowed{why}; "
          f"allowed: {allowed}") from None
  try:
    i = int(value)
  except (TypeError, ValueError):
    raise TfnasError(
        f"space {space.name!r} block {block.name}: choice {value!r} is not an op index or "
        f"name; allowed: {allowed}") from None
  if isinstance(value, float) and value != i or isinstance(value, bool):
    raise TfnasError(f"space {space.name!r} block {block.name}: choice {value!r} is not an int")
  if not 0 <= i < len(block.ops):
    raise TfnasError(
        f"space {space.name!r} block {block.name}: op index {i} out of range; allowed: {allowed}")
  return i


def _default_scale_index(block) -> int:
  if not block.mid_scales:
    return 0
  return min(range(len(block.mid_scales)), key=lambda i: abs(block.mid_scales[i] - 1.0))


def _scale_index(space: SearchSpace, block, value) -> int:
  """`value` is an index (int) or a scale (float / "0.6")."""
  allowed = ", ".join(f"{s:g}" for s in block.mid_scales)
  if not block.mid_scales:
    if value in (0, None):
      return 0
    raise TfnasError(f"space {space.name!r} block {block.name}: has no channel choice, got {value!r}")
  if isinstance(value, int) and not isinstance(value, bool):
    if 0 <= value < len(block.mid_scales):
      return value
    raise TfnasError(
        f"space {space.name!r} block {block.name}: channel index {value} out of range "
        f"0..{len(block.mid_scales) - 1} (scales {allowed})")
  try:
    scale = float(value)
  except (TypeError, ValueError):
    raise TfnasError(
        f"space {space.name!r} block {block.name}: channel choice {value!r} is not a scale; "
        f"allowed: {allowed}") from None
  for i, s in enumerate(block.mid_scales):
    if abs(s - scale) < 1e-6:
      return i
  raise TfnasError(
      f"space {space.name!r} block {block.name}: channel scale {value!r} not allowed; "
      f"allowed: {allowed}")


def _fmt(shape) -> str:
  return "x".join(map(str, shape))


def parse_arch(space: SearchSpace, value: Any) -> Arch:
  """Parses an arch given as canonical string, JSON (str or dict), reference
  name, comma-separated indices/op names, or a sequence of indices."""
  if isinstance(value, Arch):
    if value.space != space.name:
      raise TfnasError(f"arch belongs to space {value.space!r}, expected {space.name!r}")
    return Arch.create(space, value.ops, value.channels)
  if isinstance(value, dict):
    return _from_json(space, value)
  if isinstance(value, (list, tuple)):
    return Arch.create(space, value)
  if not isinstance(value, str):
    raise TfnasError(f"cannot read an arch from {type(value).__name__} {value!r}")
  text = value.strip()
  if not text:
    raise TfnasError(f"empty arch for space {space.name!r}")
  if text.startswith("{"):
    try:
      return _from_json(space, json.loads(text))
    except json.JSONDecodeError as e:
      raise TfnasError(f"arch JSON is malformed ({e}): {text[:80]!r}") from None
  refs = dict(space.references)
  if text in refs:
    return Arch.create(space, refs[text])
  n = len(space.choice_blocks)
  if text.isdigit() and max(len(b.ops) for b in space.choice_blocks) <= 10:
    # A digit code, one op index per choice block (NAS-Bench-Macro's "22212220").
    if len(text) != n:
      raise TfnasError(f"arch code {text!r} has {len(text)} digits; space {space.name!r} "
                       f"expects {n}, one op index per choice block")
    return Arch.create(space, [int(d) for d in text])
  if ":" in text:
    name, text = text.split(":", 1)
    if name != space.name:
      raise TfnasError(f"arch {value[:60]!r} belongs to space {name!r}, expected {space.name!r}")
  tokens = [t.strip() for t in text.split(",")]
  if len(tokens) == 1 and tokens[0] not in space.choice_blocks[0].op_names:
    raise TfnasError(
        f"arch {value!r} is neither a reference of space {space.name!r} ({sorted(refs)}) nor a "
        f"comma-separated list of {len(space.choice_blocks)} choices")
  ops, chans = [], []
  for t in tokens:
    op, _, scale = t.partition("@")
    ops.append(op)
    chans.append(scale or None)
  channels = None
  if any(c is not None for c in chans):
    if not all(c is not None for c in chans):
      raise TfnasError(f"arch {value[:60]!r}: give '@scale' on every block or on none")
    channels = chans
  return Arch.create(space, ops, channels)


def _from_json(space: SearchSpace, obj: dict) -> Arch:
  if obj.get("space", space.name) != space.name:
    raise TfnasError(f"arch belongs to space {obj.get('space')!r}, expected {space.name!r}")
  if "canonical" in obj:
    arch = parse_arch(space, obj["canonical"])
  elif "indices" in obj or "ops" in obj:
    arch = Arch.create(space, obj.get("indices", obj.get("ops")), obj.get("channels"))
  else:
    raise TfnasError(f"arch JSON needs 'canonical', 'indices' or 'ops'; got keys {sorted(obj)}")
  return arch


def resolve_arch(space: SearchSpace, value) -> Arch:
  """An arch from a config value: the path of an arch.json (as searches and training
  write it), or anything `parse_arch` reads (a reference name, canonical string, op list,
  the benchmark's digit code, an `Arch`).

  Raises:
    TfnasError: an unreadable or damaged file, or a value that does not parse for `space`.
  """
  if isinstance(value, str) and value.endswith(".json"):
    value = read_json(value, "arch file")
  return parse_arch(space, value)
