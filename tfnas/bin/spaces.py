"""List search spaces, or describe one architecture.

  python -m tfnas.bin.spaces                       # list spaces and their references
  python -m tfnas.bin.spaces SPACE ARCH [--resolution=R] [--per_block]
      [--latency_model=DIR/latency_model.json | lut:FILE.yaml]
      # canonical form, params and MACs of ARCH (a reference name, canonical
      # string, comma-separated op names/indices, or a path to arch.json)
"""

from tfnas.bin import common  # noqa: F401

import json

from absl import app, flags

_RESOLUTION = flags.DEFINE_integer("resolution", None, "Input resolution (default: the space's).")
_WIDTH = flags.DEFINE_float("width", 1.0, "Width multiplier.")
_PER_BLOCK = flags.DEFINE_bool("per_block", False, "Also print params and MACs per block.")
_JSON = flags.DEFINE_bool("json", False, "Print one JSON object instead of text.")
_LATENCY = flags.DEFINE_string("latency_model", None, "Also print the predicted latency: a "
                               "latency_model.json, lut:FILE.yaml, 'macs' or 'params'.")


def main(argv):
  from tfnas.spaces import costs, get_space, list_spaces, total
  from tfnas.train import resolve_arch
  args = argv[1:]
  if not args:
    for name in list_spaces():
      space = get_space(name)
      refs = ", ".join(r for r, _ in space.references)
      print(f"{name}: {len(space.choice_blocks)} choice blocks, {space.size:.3g} archs, "
            f"input {'x'.join(map(str, space.input_shape))}\n  {space.description}\n"
            f"  references: {refs}")
    return
  if len(args) != 2:
    raise app.UsageError("usage: python -m tfnas.bin.spaces [SPACE ARCH]")
  space = get_space(args[0], _RESOLUTION.value, _WIDTH.value)
  arch = resolve_arch(space, args[1])
  t = total(space, arch)
  out = {"space": space.name, "canonical": arch.to_string(space), "indices": list(arch.ops),
         "params": t.params, "macs": t.macs, "resolution": space.input_shape[0]}
  if _LATENCY.value:
    from tfnas.latency import load
    lat = load(_LATENCY.value, space)
    out["predicted"] = lat.predict(arch)
    out["predicted_unit"] = lat.unit
  if _PER_BLOCK.value:
    out["blocks"] = [{"name": c.name, "params": c.params, "macs": c.macs}
                     for c in costs(space, arch)]
  if _JSON.value:
    print(json.dumps(out, indent=2))
    return
  print(out["canonical"])
  print(f"params={t.params} ({t.params / 1e6:.3f} M)  macs={t.macs} ({t.macs / 1e6:.1f} M)  "
        f"resolution={out['resolution']}"
        + (f"  predicted={out['predicted']:.3f} {out['predicted_unit']}" if _LATENCY.value else ""))
  for b in out.get("blocks", []):
    print(f"  {b['name']:>10}  params={b['params']:>9}  macs={b['macs']:>11}")


if __name__ == "__main__":
  common.run_main(main)
