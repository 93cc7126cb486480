"""A binary's working directory: which binary made it, for which run, what it holds.

`Workdir(path, kind)` is the one type train, search, export and latency_fit use for
their folders: `FILES` says which files each kind holds at its top and what they mean
(`export/` is the export binaries' own folder inside a training or search workdir),
`Workdir.file(name)` is the path of one of them (a name not in `FILES` is a
programming error), `check(identity)` refuses a folder made by another binary, or by
the same binary for another run (another space, arch, dataset, width, ...), **before
anything is written**; `start(identity, ...)` records `workdir.json` =
`{"made_by": kind, "identity": {...}}` (so the next run can tell) with the run's config
and data description; every JSON it writes is atomic (`tfnas.io`). A rerun with the
same identity resumes. `Workdir.open(path)` is how export finds what a training or a
search left (its weights file among them). Folders made before `workdir.json` existed
are recognised by the files their binary writes.
"""

from __future__ import annotations

import fnmatch
import json
import os
from typing import Any

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


_COMMON = {MARKER: "which binary made the folder, for which run (its identity)",
           "config.json": "the run's config, every flag applied",
           "data.json": "the dataset: source, splits and their sizes, classes, preprocessing",
           "tb": "TensorBoard logs",
           "export": "tfnas.bin.export's and tfnas.bin.precision_search's output"}
# What each kind of workdir holds (file names or glob patterns) and what each means.
FILES = {
    "train": {**_COMMON,
              "arch.json": "the arch trained",
              "backup": "Keras BackupAndRestore state: a killed fit resumes from it",
              "model.weights.h5": "the trained child's weights (written when training ends)",
              "model.tflite": "the trained child as a float32 .tflite",
              "metrics.json": "test and validation metrics of the trained child"},
    "search": {**_COMMON,
               "ckpt": "supernet, optimizer and architecture-parameter checkpoints",
               "candidates.jsonl": "SPOS: every evaluated candidate's scores, one per line",
               "evolution_*_step*.json": "SPOS: one evolution's state (resumable)",
               "random_*_step*.json": "SPOS: one random search's state (resumable)",
               "arch_*.json": "SPOS: the best arch of one constraint set",
               "search_results.json": "SPOS: every search's candidates and best archs",
               "search_progress.png": "SPOS: best score per generation, evolution vs random",
               "alpha_history.jsonl": "ProxylessNAS: architecture parameters over steps",
               "alpha_history.png": "ProxylessNAS: each block's op probabilities over steps",
               "arch.json": "the arch found",
               "arch.png": "the arch found, one box per block (ProxylessNAS Fig. 6 style)",
               "child.weights.h5": "the found child with the supernet's weights",
               "child.tflite": "the found child as a .tflite at config.search.precision "
                               "(measured on the host)",
               "worker*": "multi-worker runs: worker i's scratch copy of the run (the same "
                          "search in lockstep; the chief, worker 0, writes this folder's files)",
               "search_report.json": "the report (`tfnas.search.finish`)",
               "search_space.json": "(before workdir.json) the searched space"},
    "latency_fit": {MARKER: _COMMON[MARKER],
                    "latency_model.json": "the fitted latency model (tfnas.latency.CostModel)",
                    "report.json": "the fit's accuracy on held-out archs",
                    "fit.png": "predicted vs measured latency of the held-out archs"},
}
# The weights of the model a finished run leaves, by kind (what export reads).
WEIGHTS = {"train": "model.weights.h5", "search": "child.weights.h5"}


class Workdir:
  """One binary's working directory.

  Args:
    path: The folder (it may not exist yet).
    kind: The binary, one of `KINDS`.

  Raises:
    ValueError: an unknown kind.
  """

  def __init__(self, path: str, kind: str):
    if kind not in KINDS:
      raise ValueError(f"unknown workdir kind {kind!r}; expected one of {sorted(KINDS)}")
    self.path, self.kind = str(path), kind

  def __repr__(self):
    return f"Workdir({self.path!r}, {self.kind!r})"

  @classmethod
  def open(cls, path: str, kinds: tuple[str, ...] = ("train", "search")) -> "Workdir":
    """The existing workdir at `path`, made by one of `kinds`.

    Raises:
      TfnasError: the folder does not exist, or was not made by one of `kinds`.
    """
    if not os.path.isdir(path):
      raise TfnasError(f"workdir {path!r} does not exist")
    made_by, _ = owner(path)
    if made_by not in kinds:
      names = " or ".join(KINDS[k].split(" ")[0] for k in kinds)
      raise TfnasError(f"workdir {path!r} is not a {names} workdir (no workdir.json "
                       f"{'of either' if len(kinds) == 2 else 'made by it'})")
    return cls(path, made_by)

  def file(self, name: str) -> str:
    """The path of `name`, one of this kind's `FILES` (a name or matching a pattern)."""
    if not any(fnmatch.fnmatchcase(name, pattern) for pattern in FILES[self.kind]):
      raise ValueError(f"{name!r} is not a file of a {self.kind} workdir; add it to "
                       "tfnas.workdir.FILES with what it means")
    return os.path.join(self.path, name)

  def exists(self, name: str) -> bool:
    """Whether `name` (see `file`) exists."""
    return os.path.exists(self.file(name))

  @property
  def weights(self) -> str:
    """The path of the weights a finished run of this kind leaves (`WEIGHTS`)."""
    return self.file(WEIGHTS[self.kind])

  def check(self, identity: dict) -> None:
    """`check(self.path, self.kind, identity)`: refuses another binary's folder or
    another run's, writing nothing."""
    check(self.path, self.kind, identity)

  def start(self, identity: dict, config=None, data=None) -> None:
    """Creates the folder and records the run (after `check` passed): workdir.json, and
    with them the config (an `ml_collections.ConfigDict`) and the data description
    (a `tfnas.data.Data`, with the config's dataset name).

    Raises:
      ValueError: `data` without the `config` that names its dataset.
    """
    if data is not None and config is None:
      raise ValueError("Workdir.start: data.json needs the config's dataset name")
    os.makedirs(self.path, exist_ok=True)
    mark(self.path, self.kind, identity)
    if config is not None:
      self.write_json("config.json", json.loads(config.to_json_best_effort()))
    if data is not None:
      self.write_json("data.json", {**data.info(), "dataset": config.data.dataset})

  def write_json(self, name: str, obj: Any) -> str:
    """Writes `obj` to `name` atomically; returns its path."""
    path = self.file(name)
    atomic_write_json(path, obj)
    return path

  def read_json(self, name: str, what: str) -> Any:
    """`name`'s JSON. Raises TfnasError naming `what` when it is missing or unreadable."""
    return read_json(self.file(name), what)
