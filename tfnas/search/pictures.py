"""Pictures of a search: the derived architecture, drawn as the ProxylessNAS paper draws
its found networks (Fig. 6: one box per block, the kernel size and expansion ratio of
each visible, the input resolution per stage), and ProxylessNAS's per-block op
probabilities over training. Both are PNG files written atomically; matplotlib draws
them off-screen, outside pyplot (no backend is chosen)."""

from __future__ import annotations

import math
import sys
from typing import Sequence

import numpy as np

from tfnas.io import new_figure, write_png
from tfnas.spaces import Arch, SearchSpace
from tfnas.spaces.spec import IRF, MBCONV, SHUFFLE, SKIP, XCEPTION, ZERO, Block, Op

# Box colour by depthwise kernel size (as in the paper's figure: one colour per kernel).
KERNEL_COLOURS = {3: "#9ecae1", 5: "#fdae6b", 7: "#fc9272"}
OTHER_COLOUR = "#d9d9d9"


def draw_or_warn(draw, *args) -> bool:
  """`draw(*args)`; a picture that cannot be drawn is a warning on stderr, never the end
  of a finished search or fit (its report is written first). Returns whether it was drawn."""
  try:
    draw(*args)
    return True
  except Exception as e:  # matplotlib and its backends raise many types
    print(f"warning: {getattr(draw, '__name__', 'picture')} failed ({type(e).__name__}: "
          f"{str(e).splitlines()[0] if str(e) else ''}); the run's other results are complete",
          file=sys.stderr, flush=True)
    return False


def op_label(block: Block, op: Op, mid_scale: float = 1.0) -> str:
  """A block's chosen op in the paper's notation: "MB6 5x5" (MBConv, expansion 6, kernel
  5; "MB6 5x5 SE" with squeeze-and-excitation), "IRF e3 5x5 g2", "Shuffle 3x3 x0.6", "Xception 3x3", "identity", "1x1 conv" (a skip
  where the shape changes) or "skipped" (a zero op: the block is removed)."""
  if op.kind == MBCONV:
    return f"MB{op.expand:g} {op.kernel}x{op.kernel}" + (" SE" if block.se else "")
  if op.kind == IRF:
    return f"IRF e{op.expand:g} {op.kernel}x{op.kernel}" + (f" g{op.groups}" if op.groups > 1
                                                             else "")
  if op.kind in (SHUFFLE, XCEPTION):
    name = "Shuffle" if op.kind == SHUFFLE else "Xception"
    return f"{name} {op.kernel}x{op.kernel}" + ("" if mid_scale == 1.0 else f" x{mid_scale:g}")
  if op.kind == SKIP:
    return "identity" if block.same_shape else "1x1 conv"
  if op.kind == ZERO:
    return "skipped"
  return op.name


def _height(op: Op, mid_scale: float) -> float:
  """Box height: grows with the expansion ratio (or the mid-channel scale)."""
  if op.kind in (MBCONV, IRF):
    return 0.7 + 0.22 * op.expand
  if op.kind in (SHUFFLE, XCEPTION):
    return 0.7 + 0.6 * mid_scale
  return 0.9


def draw_arch(space: SearchSpace, arch: Arch, path: str, title: str | None = None) -> None:
  """Writes a PNG of `arch`: input, stem, one box per block of `space` (fixed blocks
  hatched; a skipped block a dashed outline), head; the feature-map size and channels
  written where a block changes them.

  Args:
    space: The (sized) space `arch` belongs to.
    arch: The architecture.
    path: The PNG to write (atomically).
    title: Above the picture (default: the arch string).
  """
  from matplotlib.patches import FancyBboxPatch, Rectangle
  chosen = dict(zip((b.name for b in space.choice_blocks),
                    zip(arch.op_names(space), arch.mid_scales(space))))
  items = [("stem", f"{space.stem[1]}x{space.stem[1]} conv, {space.stem[0]}", 1.0, None,
            False, False)]
  marks = []  # (x, text): the feature map after a block that changes it
  h, w, c = space.input_shape
  for b in space.blocks:
    name, scale = chosen.get(b.name, (b.ops[0].name, 1.0))
    op = b.ops[b.op_index(name)]
    colour = KERNEL_COLOURS.get(op.kernel, OTHER_COLOUR) if op.kind not in (SKIP, ZERO) \
        else "white"
    items.append((b.name, op_label(b, op, scale), _height(op, scale), colour,
                  b.name not in chosen, op.kind in (SKIP, ZERO)))
    if b.out_shape != b.in_shape:
      marks.append((len(items) - 1, "{}x{}x{}".format(*b.out_shape)))
  pooled = f" {space.head.pooled_filters}," if space.head.pooled_filters else ""
  items.append(("head", f"1x1 conv, {space.head.conv_filters}\npool,{pooled} FC "
                f"{space.head.num_classes}", 1.4, None, True, False))
  fig = new_figure(figsize=(max(6.0, 0.55 * len(items) + 1.5), 3.6))
  ax = fig.subplots()
  for x, (_, label, height, colour, fixed, skipped) in enumerate(items):
    face = colour or "#bdbdbd"
    box = FancyBboxPatch((x - 0.38, -height / 2), 0.76, height,
                         boxstyle="round,pad=0.02,rounding_size=0.08", facecolor=face,
                         edgecolor="#555555" if skipped else "black",
                         linestyle="--" if skipped else "-",
                         hatch="///" if fixed and colour is not None else None, linewidth=1.0)
    ax.add_patch(box)
    ax.text(x, 0, label, rotation=90, ha="center", va="center", fontsize=7,
            color="#555555" if skipped else "black")
    if x:
      ax.annotate("", xy=(x - 0.4, 0), xytext=(x - 0.6, 0),
                  arrowprops=dict(arrowstyle="->", lw=0.8))
  ax.text(-0.4, 1.55, f"input {h}x{w}x{c}", fontsize=7, ha="left")
  for x, text in marks:
    ax.text(x, 1.3, text, fontsize=6.5, ha="center", rotation=30)
  handles = [Rectangle((0, 0), 1, 1, facecolor=col, edgecolor="black")
             for col in KERNEL_COLOURS.values()]
  ax.legend(handles, [f"{k}x{k} depthwise" for k in KERNEL_COLOURS], fontsize=6.5,
            loc="lower right", ncol=3, frameon=False)
  ax.set_xlim(-0.7, len(items) - 0.3)
  ax.set_ylim(-1.9, 1.9)
  ax.axis("off")
  ax.set_title(title or arch.to_string(space), fontsize=8)
  fig.tight_layout()
  write_png(fig, path)


def softmax(alpha: Sequence[float]) -> np.ndarray:
  """Probabilities of one block's ops from its architecture parameters (Eq. 1)."""
  a = np.asarray(alpha, np.float64)
  e = np.exp(a - a.max())
  return e / e.sum()


def draw_probabilities(space: SearchSpace, history: list[dict], path: str,
                       derived: Arch | None = None) -> None:
  """Writes a PNG of each choice block's op probabilities over the search steps
  (ProxylessNAS: softmax of the block's alphas, Eq. 1), one small panel per block, the
  derived arch's op marked in its panel's title.

  Args:
    space: The searched space.
    history: Rows {"step": int, "alpha": one list of architecture parameters per choice
      block} (`alpha_history.jsonl`).
    path: The PNG to write (atomically).
    derived: The arch the search derived (optional).

  Raises:
    ValueError: no rows, or a row whose alphas do not match the space's choice blocks.
  """
  blocks = space.choice_blocks
  if not history:
    raise ValueError("no architecture history to draw")
  for row in history:
    if [len(a) for a in row["alpha"]] != [len(b.ops) for b in blocks]:
      raise ValueError(f"history row of step {row.get('step')} does not match the choice "
                       f"blocks of {space.name!r}")
  steps = [r["step"] for r in history]
  cols = min(6, len(blocks))
  rows = math.ceil(len(blocks) / cols)
  fig = new_figure(figsize=(2.0 * cols, 1.5 * rows + 0.6))
  axes = fig.subplots(rows, cols, sharex=True, sharey=True, squeeze=False)
  names = derived.op_names(space) if derived is not None else None
  for i, b in enumerate(blocks):
    ax = axes[i // cols][i % cols]
    p = np.array([softmax(r["alpha"][i]) for r in history])  # (steps, ops of block i)
    for j, op in enumerate(b.ops):
      ax.plot(steps, p[:, j], lw=1.0, label=op.name)
    ax.set_ylim(0, 1)
    ax.set_title(b.name + (f" -> {names[i]}" if names else ""), fontsize=7)
    ax.tick_params(labelsize=6)
    ax.legend(fontsize=5, loc="upper left", frameon=False)
  for k in range(len(blocks), rows * cols):
    axes[k // cols][k % cols].axis("off")
  fig.suptitle("op probabilities per block over search steps", fontsize=8)
  fig.tight_layout()
  write_png(fig, path, dpi=100)
