"""A binary's working directory: which binary made it, for which run.

Every binary that owns a `--workdir` (train, search) or an output folder
(latency_fit's `--out`) first calls `check(workdir, kind, identity)`, which
refuses a folder made by another binary, or by the same binary for another run
(another space, arch, dataset, width, ...), **before anything is written**; then
`mark` records `workdir.json` = `{"made_by": kind, "identity": {...}}` so the
next run can tell. A rerun with the same identity resumes. Folders made before
`workdir.json` existed are recognised by the files their binary writes.
"""

from __future__ import annotations

import os

from tfnas.errors import TfnasError
from tfnas.io import atomic_write_json, read_json

MARKER = "workdir.json"
KINDS = {"train": "tfnas.bin.train (a training run)",
         "search": "tfnas.bin.search (an architecture search)",
         "latency_fit": "tfnas.bin.latency_fit (a latency model)"}
# Files only one binary writes: how a folder from before MARKER is recognised.
_SIGNS = {"train": ("metrics.json", "backup", "model.weights.h5"),
          "search": ("search_space.json", "search_report.json", "alpha_history.jsonl",
                     "candidates.jsonl", "ckpt", "child.weights.h5"),
          "latency_fit": ("latency_model.json",)}


def _legacy_identity(workdir: str, kind: str) -> dict:
  """What a pre-MARKER folder of `kind` says about its run (keys it lacks are not compared)."""
  if kind == "search" and os.path.exists(os.path.join(workdir, "search_space.json")):
    return read_json(os.path.join(workdir, "search_space.json"), "search space file")
  if kind == "train" and os.path.exists(os.path.join(workdir, "arch.json")):
    arch = read_json(os.path.join(workdir, "arch.json"), "arch file")
    if isinstance(arch, dict):
      return {"space": arch.get("space"), "arch": arch.get("canonical")}
  return {}


def owner(workdir: str) -> tuple[str | None, dict]:
  """(kind, identity) of the run in `workdir`; (None, {}) for a new or foreign folder."""
  path = os.path.join(workdir, MARKER)
  if os.path.exists(path):
    prev = read_json(path, "workdir file")
    if not isinstance(prev, dict) or prev.get("made_by") not in KINDS:
      raise TfnasError(f"workdir file {path!r} is not a tfnas workdir description "
                       f"(expected {{\"made_by\": one of {sorted(KINDS)}, ...}}); use "
                       "another --workdir")
    return prev["made_by"], dict(prev.get("identity") or {})
  if not os.path.isdir(workdir):
    return None, {}
  for kind, signs in _SIGNS.items():
    if any(os.path.exists(os.path.join(workdir, s)) for s in signs):
      return kind, _legacy_identity(workdir, kind)
  return None, {}


def check(workdir: str, kind: str, identity: dict) -> None:
  """Raises TfnasError when `workdir` holds another binary's output or another run.

  Args:
    workdir: The folder (it may not exist yet).
    kind: This binary, one of `KINDS`.
    identity: What fixes this run's state (e.g. space, arch, dataset, width): a
      rerun with equal values resumes; a value that differs is refused.

  Writes nothing.
  """
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise TfnasError(f"workdir {workdir!r} is a file, not a folder")
  made_by, prev = owner(workdir)
  if made_by is None:
    # Only an arch.json (a run from before workdir.json that stopped early, or one made
    # by hand): it still names the run's space and arch.
    arch = _legacy_identity(workdir, "train")
    theirs = [arch.get(k) for k in ("space", "arch") if k in identity and arch.get(k)]
    if theirs != [identity[k] for k in ("space", "arch") if k in identity and arch.get(k)]:
      raise TfnasError(f"workdir {workdir!r} holds a run of {arch.get('arch') or arch['space']!r}, "
                       f"not {identity.get('arch', identity.get('space'))!r}; use another "
                       "--workdir (or delete that one)")
    return
  if made_by != kind:
    raise TfnasError(f"workdir {workdir!r} holds the output of {KINDS[made_by]}, and this is "
                     f"{KINDS[kind]}; use another --workdir")
  for key, value in identity.items():
    if key in prev and prev[key] is not None and prev[key] != value:
      raise TfnasError(f"workdir {workdir!r} holds a run with {key}={prev[key]!r}, not "
                       f"{value!r}; use another --workdir (or the same settings to resume)")


def mark(workdir: str, kind: str, identity: dict) -> None:
  """Records that `workdir` holds `kind`'s run of `identity` (after `check` passed)."""
  atomic_write_json(os.path.join(workdir, MARKER), {"made_by": kind, "identity": identity})
