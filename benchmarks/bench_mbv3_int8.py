"""MobileNetV3 blocks as int8 on this CPU: `ofa_mbv3` files at float32 and int8, with hard
swish in tfnas's order and in Keras' `hard_silu` order, timed here.

  .venv/bin/python benchmarks/bench_mbv3_int8.py [--resolution=224] [--rounds=3]

Three archs of Once-for-All's space, `all_k3_e3` (depth 4), `min_depth_k3_e3` (depth 2)
and k5 e4 everywhere, each converted whole by TFLiteConverter at float32 and int8
(full-integer post-training quantization, float input/output: what the export ships), in
two forms: hard swish as tfnas builds it, (x / 6) * relu6(x + 3)
(`tfnas.layers.activations.hard_swish`), and as Keras' `hard_silu` (x * relu6(x + 3) / 6,
which the converter fuses into one HARD_SWISH op). Each file is timed by `tflite_bench`'s
host runner (LiteRT, XNNPACK, 1 thread, the fixed protocol: >= 50 runs and >= 1 s), all
twelve interleaved for --rounds rounds; medians. Also counted: XNNPACK partitions and the
ops LiteRT runs outside the delegate; and the Note10 table's float32 prediction of each
arch (at 224 px). Writes benchmarks/results/mbv3_int8_host.json.
"""

import collections
import json
import os
import statistics
import time

from absl import app, flags

_RES = flags.DEFINE_integer("resolution", 224, "Input size in px.")
_ROUNDS = flags.DEFINE_integer("rounds", 3, "Interleaved rounds over the twelve files.")

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
NOTE10 = os.path.join(os.environ.get("TFNAS_SHARED_DATA", os.path.join(ROOT, "..", "shared",
                                                                         "data")),
                      "latency", "ofa_note10_224_lookup_table.yaml")


def main(argv):
  del argv
  import keras

  from tflite_bench.host import HostRunner
  from tfnas.export.fastgen import convert_piece, randomize_batchnorm
  from tfnas.latency.lut import import_proxyless_yaml
  from tfnas.layers import from_spec
  from tfnas.models import build_child
  from tfnas.spaces import Arch, get_space, parse_arch
  space = get_space("ofa_mbv3", resolution=_RES.value)
  archs = {"all_k3_e3": parse_arch(space, "all_k3_e3"),
           "min_depth_k3_e3": parse_arch(space, "min_depth_k3_e3"),
           "all_k5_e4": Arch.create(space, ["k5_e4"] * len(space.choice_blocks))}
  note10 = (import_proxyless_yaml(NOTE10, space)
            if _RES.value == 224 and os.path.exists(NOTE10) else None)
  tfnas_layer = from_spec.activation_layer
  forms = {"tfnas": tfnas_layer,
           "hard_silu": lambda a, name: (keras.layers.Activation("hard_silu", name=name)
                                         if a == "hswish" else tfnas_layer(a, name))}
  files = {}
  t = time.time()
  for form, layer in forms.items():
    from_spec.activation_layer = layer  # what the child builder's make_layer calls
    try:
      for name, arch in archs.items():
        model = randomize_batchnorm(build_child(space, arch))
        for precision in ("float32", "int8"):
          files[(name, form, precision)] = convert_piece(model, precision, False, False)
    finally:
      from_spec.activation_layer = tfnas_layer
  print(f"{len(files)} files converted in {time.time() - t:.0f} s")
  runner = HostRunner(threads=1)
  times = collections.defaultdict(list)
  for r in range(_ROUNDS.value):
    for key, data in files.items():
      times[key].append(runner.measure(data)[0].median_ms)
    print(f"round {r + 1}/{_ROUNDS.value} done")
  rows = []
  for name, arch in archs.items():
    row = {"arch": name, "canonical": arch.to_string(space)}
    for form in forms:
      for precision in ("float32", "int8"):
        key = (name, form, precision)
        interp = runner.load(files[key])
        row[f"{form}/{precision}"] = {
            "median_ms": round(statistics.median(times[key]), 3),
            "runs_ms": [round(x, 3) for x in times[key]],
            "partitions": runner.delegate_partitions(interp),
            "outside_xnnpack": dict(collections.Counter(runner.undelegated_ops(interp)))}
    ms = lambda k: row[k]["median_ms"]
    row["int8_over_float32"] = {f: round(ms(f"{f}/int8") / ms(f"{f}/float32"), 3)
                                for f in forms}
    row["tfnas_over_hard_silu"] = {p: round(ms(f"tfnas/{p}") / ms(f"hard_silu/{p}"), 3)
                                   for p in ("float32", "int8")}
    if note10 is not None:
      row["note10_float32_predicted_ms"] = round(note10.predict(arch), 2)
    rows.append(row)
    print(f"{name}:" + (f" (Note10 table {row['note10_float32_predicted_ms']} ms)"
                         if note10 is not None else ""))
    for form in forms:
      for precision in ("float32", "int8"):
        r = row[f"{form}/{precision}"]
        print(f"  {form:>9} {precision:>7}: {r['median_ms']:7.2f} ms, {r['partitions']:2d} "
              f"partition(s), outside XNNPACK {r['outside_xnnpack'] or '-'}")
    print(f"  int8/float32 {row['int8_over_float32']}; tfnas/hard_silu "
          f"{row['tfnas_over_hard_silu']}")
  out = {"space": "ofa_mbv3", "resolution": _RES.value, "rounds": _ROUNDS.value,
         "runner": {"kind": "host", "threads": 1, "delegate": "xnnpack",
                    "device": runner.device()},
         "archs": rows}
  path = os.path.join(ROOT, "benchmarks", "results", "mbv3_int8_host.json")
  with open(path, "w") as f:
    json.dump(out, f, indent=2)
  print("wrote", path)


if __name__ == "__main__":
  app.run(main)
