"""List search spaces, or describe one architecture.

  python -m tfnas.bin.spaces                       # list spaces and their references
  python -m tfnas.bin.spaces SPACE ARCH [--resolution=R] [--per_block]
      [--latency_model=DIR/latency_model.json | lut:FILE.yaml]
      # canonical form, params and MACs of ARCH (a reference name, canonical
      # string, comma-separated op names/indices, or a path to arch.json)
  python -m tfnas.bin.spaces SPACE [--latency_model=...] [--json]
      # what budgets make sense: MMACs, M params (and the predicted latency) of the
      # space's archs: exact min and max, and percentiles over every arch (spaces of up
      # to 100,000 archs) or --samples uniform samples (default 10,000)
"""

from tfnas.bin import common

if __name__ == "__main__":
  common.quiet_tensorflow()  # before TensorFlow loads; --verbosity=1 keeps its logs

import json

from absl import app, flags

_RESOLUTION = flags.DEFINE_integer("resolution", None, "Input resolution (default: the space's).")
_WIDTH = flags.DEFINE_float("width", 1.0, "Width multiplier.")
_PER_BLOCK = flags.DEFINE_bool("per_block", False, "Also print params and MACs per block.")
_JSON = flags.DEFINE_bool("json", False, "Print one JSON object instead of text.")
_SAMPLES = flags.DEFINE_integer("samples", 10_000, "Budgets of a space larger than 100,000 "
                                "archs: percentiles over this many uniform samples.")
_LATENCY = flags.DEFINE_string("latency_model", None, "Also print the predicted latency: a "
                               "latency_model.json, lut:FILE.yaml, 'macs' or 'params'.")


def main(argv):
  from tfnas.spaces import costs, get_space, list_spaces, resolve_arch, total
  args = argv[1:]
  if not args:
    for name in list_spaces():
      space = get_space(name)
      refs = ", ".join(r for r, _ in space.references)
      print(f"{name}: {len(space.choice_blocks)} choice blocks, {space.size:.3g} archs, "
            f"input {'x'.join(map(str, space.input_shape))}\n  {space.description}\n"
            f"  references: {refs}")
    return
  if len(args) not in (1, 2):
    raise app.UsageError("usage: python -m tfnas.bin.spaces [SPACE [ARCH]]")
  space = get_space(args[0], _RESOLUTION.value, _WIDTH.value)
  if len(args) == 1:
    _print_budgets(space)
    return
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


PERCENTILES = (0, 5, 25, 50, 75, 95, 100)


def _print_budgets(space):
  """The cost distribution of `space`'s archs, for choosing a search budget."""
  import numpy as np

  from tfnas import latency as latency_lib
  from tfnas.errors import TfnasError
  from tfnas.search import spos
  lat = latency_lib.load(_LATENCY.value or "macs", space)
  if _SAMPLES.value < 1:
    raise TfnasError(f"samples {_SAMPLES.value} must be an integer >= 1")
  choices = spos.gene_choices(space)
  if space.size <= 100_000:
    genes = np.indices(choices).reshape(len(choices), -1).T  # every arch
    how = "all"
  else:
    rng = np.random.default_rng(0)
    genes = np.stack([rng.integers(n, size=_SAMPLES.value) for n in choices], axis=1)
    how = f"{_SAMPLES.value:,} uniform samples"
  # Every metric is a sum of per-block terms: one evaluation per (block, option), then sums.
  terms = spos.block_terms(space, lat)
  values = spos.metrics_of_many(space, lat, genes, terms)
  ranges = spos.metric_ranges(space, lat, terms)
  out = {"space": space.name, "resolution": space.input_shape[0], "archs": space.size,
         "percentiles_over": how, "latency_model": _LATENCY.value, "metrics": {}}
  for name in values:
    if name.startswith("latency_") and name != "latency_ms":
      continue  # a "macs" or "params" model: the same numbers as macs_m / params_m
    lo, hi = ranges[name]
    out["metrics"][name] = {"min": lo, **{f"p{q}": float(np.percentile(values[name], q))
                                          for q in PERCENTILES[1:-1]}, "max": hi}
  if _JSON.value:
    print(json.dumps(out, indent=2))
    return
  print(f"{space.name} at {out['resolution']} px: {space.size:.4g} archs; percentiles over "
        f"{how}")
  for name, m in out["metrics"].items():
    print(f"  {name:>11}: " + "  ".join(f"{k} {v:.4g}" for k, v in m.items()))


if __name__ == "__main__":
  common.run_main(main)
