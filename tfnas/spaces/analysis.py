"""Params and multiply-accumulates from the spec alone (no model is built)."""

from __future__ import annotations

import dataclasses

from tfnas.spaces.arch import Arch
from tfnas.spaces.spec import SearchSpace


@dataclasses.dataclass(frozen=True)
class Cost:
  """Params and MACs of one part of a network."""
  name: str
  params: int
  macs: int


def block_graph(space: SearchSpace, arch: Arch, block_index: int):
  """The `OpGraph` that `arch` selects for `space.blocks[block_index]`."""
  block = space.blocks[block_index]
  choice = space.choice_blocks
  if block in choice:
    j = choice.index(block)
    op = block.ops[arch.ops[j]]
    scale = arch.mid_scales(space)[j]
  else:
    op, scale = block.ops[0], 1.0
  return block.graph(op, space.activation, scale)


def costs(space: SearchSpace, arch: Arch) -> list[Cost]:
  """Per-part costs: stem, every block (fixed and chosen), head (its conv and the pooled
  conv), classifier."""
  out = [Cost("stem", sum(l.params for l in space.stem_layers),
              sum(l.macs for l in space.stem_layers))]
  for i, block in enumerate(space.blocks):
    layers = list(block_graph(space, arch, i).layers())
    out.append(Cost(block.name, sum(l.params for l in layers), sum(l.macs for l in layers)))
  head = space.head_layers + space.pooled_layers
  out.append(Cost("head", sum(l.params for l in head), sum(l.macs for l in head)))
  f, n = space.feature_channels, space.head.num_classes
  out.append(Cost("classifier", f * n + n, f * n))
  return out


def total(space: SearchSpace, arch: Arch) -> Cost:
  """Params (Keras' count) and MACs (batch 1) of the whole child of `arch`, from the
  spec alone: the sum of `costs` over stem, blocks and head."""
  parts = costs(space, arch)
  return Cost("total", sum(c.params for c in parts), sum(c.macs for c in parts))


def trainable_params(space: SearchSpace, arch: Arch) -> int:
  """Trained parameters of `arch` (BatchNorm scale and offset, no moving statistics): the
  count PyTorch's `parameters()` gives, which tabular benchmarks such as NAS-Bench-Macro
  report. `total(...).params` also counts BatchNorm's moving mean and variance."""
  layers = list(space.stem_layers) + list(space.head_layers) + list(space.pooled_layers)
  for i in range(len(space.blocks)):
    layers += block_graph(space, arch, i).layers()
  f, n = space.feature_channels, space.head.num_classes
  return sum(l.trainable_params for l in layers) + f * n + n
