"""A search's working directory: the files describing what it searches, and the check
that a rerun in the same directory searches the same supernet (so its checkpoint,
scores and search states can be resumed)."""

from __future__ import annotations

import json
import os

from tfnas.errors import TfnasError
from tfnas.io import atomic_write_json, read_json


def identity(space, config, **extra) -> dict:
  """What fixes the supernet's variables: the space, its input size and width, and
  `extra` (e.g. share_expansion)."""
  return {"space": space.name, "resolution": space.input_shape[0],
          "width": float(config.width), **extra}


def check(workdir: str, ident: dict) -> None:
  """Raise when `workdir` already holds a search of another supernet than `ident`
  (keys an older file lacks are not compared)."""
  path = os.path.join(workdir, "search_space.json")
  if not os.path.exists(path):
    return
  prev = read_json(path, "search space file")
  for key, value in ident.items():
    if key in prev and prev[key] != value:
      raise TfnasError(f"workdir {workdir!r} holds a search with {key}={prev[key]!r}, not "
                       f"{value!r}; use another --workdir (or the same settings to resume)")


def write_inputs(workdir: str, ident: dict, config, data) -> None:
  """search_space.json, config.json and data.json of a search starting or resuming."""
  os.makedirs(workdir, exist_ok=True)
  atomic_write_json(os.path.join(workdir, "search_space.json"), ident)
  atomic_write_json(os.path.join(workdir, "config.json"), json.loads(config.to_json_best_effort()))
  atomic_write_json(os.path.join(workdir, "data.json"),
                    {**data.info(), "dataset": config.dataset})
