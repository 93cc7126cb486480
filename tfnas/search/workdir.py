"""A search's working directory: the files describing what it searches, and the check
that a rerun in the same directory searches the same supernet (so its checkpoint,
scores and search states can be resumed) and that the folder is not another binary's."""

from __future__ import annotations

import json
import os

from tfnas import workdir as workdir_lib
from tfnas.io import atomic_write_json


def identity(space, config, **extra) -> dict:
  """What fixes the supernet's variables and data: the method, space, its input size and
  width, the dataset, and `extra` (e.g. share_expansion)."""
  return {"method": config.method, "space": space.name, "resolution": space.input_shape[0],
          "width": float(config.width), "dataset": config.dataset, **extra}


def check(workdir: str, ident: dict) -> None:
  """Raise when `workdir` holds another binary's output or a search of another supernet
  than `ident`. Writes nothing."""
  workdir_lib.check(workdir, "search", ident)


def write_inputs(workdir: str, ident: dict, config, data) -> None:
  """workdir.json, config.json and data.json of a search starting or resuming."""
  os.makedirs(workdir, exist_ok=True)
  workdir_lib.mark(workdir, "search", ident)
  atomic_write_json(os.path.join(workdir, "config.json"), json.loads(config.to_json_best_effort()))
  atomic_write_json(os.path.join(workdir, "data.json"),
                    {**data.info(), "dataset": config.dataset})
