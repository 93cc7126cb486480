"""Every notebook in colab/ runs top to bottom (code cells executed in order)."""

import glob
import json
import os

import pytest

from conftest import ROOT

NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "colab", "*.ipynb")))


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs_top_to_bottom(path):
  nb = json.load(open(path))
  scope = {"__name__": "__main__"}
  for cell in nb["cells"]:
    if cell["cell_type"] != "code":
      continue
    source = "".join(cell["source"])
    # Shell/magic lines are for Colab's own set-up (pip install) only.
    code = "\n".join(l for l in source.splitlines() if not l.lstrip().startswith(("!", "%")))
    exec(compile(code, f"{os.path.basename(path)} cell", "exec"), scope)


def test_there_is_a_notebook():
  assert NOTEBOOKS
