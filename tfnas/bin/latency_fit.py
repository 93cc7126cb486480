"""Fit a latency model on a records file, or import a lookup table.

  python -m tfnas.bin.latency_fit --records=FILE.jsonl --out=DIR [--test_size=1000]
      # writes DIR/latency_model.json and DIR/report.json (rmse_ms, rmspe,
      # within_5pct, within_10pct, spearman, kendall on the held-out split; the
      # lookup table's error on the same split with --lut; the test-retest
      # noise floor from re-measured archs; --target picks raw, drift-corrected
      # or smoothed-reference medians, by default the one with the lowest floor)
  python -m tfnas.bin.latency_fit --import_lut=FILE.yaml --space=proxyless_mobile --out=DIR
      # writes DIR/latency_model.json from a ProxylessNAS-format table
  python -m tfnas.bin.latency_fit --measure_lut --space=NAME [--resolution=R] \
      [--precision=int8] --out=DIR
      # measures every (block, op) in isolation on this host (micro-benchmarks), or on a
      # phone: --runner=adb [--serial=S] [--benchmark_binary=PATH]

Every latency model predicts one precision (float32, float16 or int8: the file a
search will ship): a fit takes the records' (one per file), --measure_lut measures at
--precision, --import_lut declares the table's (the published ones are float32).
"""

from tfnas.bin import common

if __name__ == "__main__":
  common.quiet_tensorflow()  # before TensorFlow loads; --verbosity=1 keeps its logs

import json
import time

from absl import app, flags

_RECORDS = flags.DEFINE_string("records", None, "Latency records (JSONL) from tflite_bench.")
_OUT = flags.DEFINE_string("out", None, "Output directory.")
_TEST = flags.DEFINE_integer("test_size", None, "Held-out archs (default: 20%, i.e. 1,000 "
                             "of 5,000).")
_SEED = flags.DEFINE_integer("seed", 0, "Split seed.")
_LUT = flags.DEFINE_string("lut", None, "A lookup-table model (latency_model.json or "
                           "lut:FILE.yaml) to evaluate on the same split and use as prior.")
_TARGET = flags.DEFINE_enum(
    "target", "auto", ["auto", "raw", "corrected", "smoothed"],
    "Latency to fit: the raw median; the write-time drift-corrected one (single reference); "
    "'smoothed' (divided by the median of the references around each record); 'auto': the "
    "one whose test-retest noise floor is lowest (re-measured archs needed; else smoothed).")
_RAW = flags.DEFINE_bool("raw", False, "Same as --target=raw (kept for old commands).")
_IMPORT = flags.DEFINE_string("import_lut", None, "ProxylessNAS-format YAML to import.")
_MEASURE = flags.DEFINE_bool("measure_lut", False, "Measure a micro-benchmark LUT on this host.")
_SPACE = flags.DEFINE_string("space", None, "Space (with --import_lut / --measure_lut).")
_RES = flags.DEFINE_integer("resolution", None, "Resolution (default: the space's).")
_WIDTH = flags.DEFINE_float("width", 1.0, "Width multiplier (--import_lut, --measure_lut).")
_RUNNER = flags.DEFINE_enum("runner", "host", ["host", "adb"],
                            "Where --measure_lut measures: this host, or a phone over adb.")
_SERIAL = flags.DEFINE_string("serial", None, "adb device serial (runner=adb; default: the "
                              "only attached device).")
_BINARY = flags.DEFINE_string("benchmark_binary", None,
                              "Local benchmark_model to push to the phone (runner=adb).")
_PRECISION = flags.DEFINE_enum(
    "precision", None, ["float32", "float16", "int8"],
    "Precision of the .tflite files the model predicts: measured at (--measure_lut), "
    "declared (--import_lut; default float32, as the published tables), or checked "
    "against the records' (--records; default: theirs).")
flags.mark_flags_as_required(["out"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments {argv[1:]}")
  from tfnas.errors import TfnasError
  from tfnas.workdir import Workdir
  from tfnas import latency as latency_lib
  from tfnas.latency import fit, lut
  from tfnas.spaces import get_space, parse_arch
  out = _OUT.value
  wd = Workdir(out, "latency_fit")
  modes = sum(bool(x) for x in (_RECORDS.value, _IMPORT.value, _MEASURE.value))
  if modes != 1:
    raise TfnasError("give exactly one of --records, --import_lut, --measure_lut")
  wd.check({})
  if _IMPORT.value or _MEASURE.value:
    if not _SPACE.value:
      raise TfnasError("--import_lut and --measure_lut need --space")
    space = get_space(_SPACE.value, _RES.value, _WIDTH.value)
    precision = _PRECISION.value or "float32"
    if _IMPORT.value:
      model = lut.import_proxyless_yaml(_IMPORT.value, space, precision)
    else:
      from tflite_bench.host import HostRunner
      from tflite_bench.protocol import ADAPTIVE
      from tfnas.export.fastgen import PieceCache
      if _RUNNER.value == "adb":
        from tflite_bench.android import AdbRunner
        runner = AdbRunner(serial=_SERIAL.value, local_binary=_BINARY.value)
      else:
        runner = HostRunner()
      t0 = time.time()

      def progress(i, n):
        per = (time.time() - t0) / i
        print(f"  block {i}/{n} ({per:.1f} s/block, ETA {per * (n - i):.0f} s)", flush=True)

      model = lut.measure_lut(space, runner, PieceCache(space, precision=precision),
                              ADAPTIVE, progress=progress)
    wd.start({})
    model.meta["width"] = _WIDTH.value
    model.save(wd.file("latency_model.json"))
    refs = {r: round(model.predict(r), 3) for r, _ in space.references}
    print(json.dumps({"latency_model": wd.file("latency_model.json"),
                      "precision": model.precision, "predicted_ms": refs}, indent=2))
    return
  from tflite_bench import record as rec_lib
  import numpy as np
  try:
    records = rec_lib.read_records(_RECORDS.value)
  except rec_lib.RecordError as e:
    raise TfnasError(str(e)) from None
  main_recs = [r for r in records if not r.get("extra", {}).get("reference")
               and not r.get("extra", {}).get("retest")]
  if len(main_recs) < 10:
    raise TfnasError(f"{_RECORDS.value} holds {len(main_recs)} measured archs; need >= 10")
  spaces = {(r["space"], r["resolution"], r.get("width", 1.0)) for r in main_recs}
  if len(spaces) != 1:
    raise TfnasError(f"records mix spaces/resolutions/widths {sorted(spaces)}; fit one at a time")
  (space_name, res, width), = spaces
  precisions = sorted({r["quantization"] for r in main_recs})
  if len(precisions) != 1:
    raise TfnasError(f"records mix precisions {precisions}; fit one at a time")
  precision, = precisions
  if precision not in latency_lib.PRECISIONS:
    raise TfnasError(f"records are of precision {precision!r}; a latency model predicts one "
                     f"of {list(latency_lib.PRECISIONS)}")
  if _PRECISION.value and _PRECISION.value != precision:
    raise TfnasError(f"--precision={_PRECISION.value} but {_RECORDS.value} holds {precision} "
                     f"records")
  space = get_space(space_name, res, width)
  archs = [parse_arch(space, r["arch"]) for r in main_recs]
  by_id = {r["id"]: r for r in records}
  pairs = [(r["id"][:-len("/retest")], r["id"]) for r in records
           if r.get("extra", {}).get("retest") and r["id"][:-len("/retest")] in by_id]
  values = {t: rec_lib.latencies(records, t) for t in rec_lib.TARGETS}
  floors = {}
  for t, v in values.items():
    if pairs:
      floors[t] = fit.metrics(np.array([v[b] for _, b in pairs]),
                              np.array([v[a] for a, _ in pairs]))
  target = "raw" if _RAW.value else _TARGET.value
  if target == "auto":
    target = min(floors, key=lambda t: floors[t]["rmspe"]) if floors else "smoothed"
  y = np.array([values[target][r["id"]] for r in main_recs])
  fit_idx, test_idx = fit.split(len(y), _TEST.value, _SEED.value)
  prior = latency_lib.load(_LUT.value, space) if _LUT.value else None
  model = fit.fit_additive(space, [archs[i] for i in fit_idx], y[fit_idx], prior,
                           precision=precision)
  pred = model.predict_many([archs[i] for i in test_idx])
  report = {"space": space_name, "resolution": res, "precision": precision,
            "records": _RECORDS.value,
            # measured while their device's reference drifted past the profile's threshold
            "drift_flagged": sum(bool((r.get("drift") or {}).get("flagged"))
                                 for r in main_recs),
            "n_fit": int(len(fit_idx)), "n_test": int(len(test_idx)), "seed": _SEED.value,
            "target": target, "target_flag": "raw" if _RAW.value else _TARGET.value,
            **fit.metrics(pred, y[test_idx])}
  if prior is not None:
    lut_pred = prior.predict_many([archs[i] for i in test_idx])
    report["lut"] = fit.metrics(lut_pred, y[test_idx])
    # The table plus one fitted overhead: how much is a constant offset.
    offset = float(np.mean(y[fit_idx] - prior.predict_many([archs[i] for i in fit_idx])))
    report["lut_plus_overhead"] = {"overhead_ms": offset,
                                   **fit.metrics(lut_pred + offset, y[test_idx])}
  if floors:
    report["test_retest"] = floors[target]
    report["test_retest_by_target"] = {t: m["rmspe"] for t, m in floors.items()}
    report["rmspe_over_noise_floor"] = (report["rmspe"] / report["test_retest"]["rmspe"]
                                        if report["test_retest"]["rmspe"] else None)
  model.meta["report"] = {k: report[k] for k in ("rmse_ms", "rmspe", "n_fit")}
  model.meta["width"] = width
  report["width"] = width
  wd.start({})
  model.save(wd.file("latency_model.json"))
  wd.write_json("report.json", report)
  from tfnas.search.pictures import draw_or_warn
  extra = {"lookup table": (lut_pred, y[test_idx])} if prior is not None else None
  title = (f"{space_name} {res}px {precision}: {len(test_idx)} held-out archs "
           f"({target} latency)")
  draw_or_warn(fit.plot, pred, y[test_idx], wd.file("fit.png"), title, extra)
  keys = ("n_fit", "n_test", "rmse_ms", "rmspe", "within_5pct", "within_10pct", "spearman",
          "kendall")
  print(json.dumps({k: report[k] for k in keys}, indent=2))
  if "test_retest" in report:
    by = ", ".join(f"{t} {v:.4f}" for t, v in report["test_retest_by_target"].items())
    print(f"test-retest noise floor: RMSPE {report['test_retest']['rmspe']:.4f} over "
          f"{len(pairs)} re-measured archs ({by}; fitted: {target})")
  if "lut" in report:
    print(f"lookup table on the same split: RMSPE {report['lut']['rmspe']:.4f}, "
          f"+overhead {report['lut_plus_overhead']['rmspe']:.4f}")


if __name__ == "__main__":
  common.run_main(main)
