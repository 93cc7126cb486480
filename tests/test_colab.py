"""Every notebook in colab/ runs top to bottom in a Jupyter kernel (nbclient, as Colab runs
it), at tiny sizes: the cell tagged "parameters" is followed by one that sets tiny values
(papermill's convention), on the tiny real CIFAR-10 tree. Notebooks are kept in git with
their outputs stripped, and each starts with the cell that installs tfnas on Colab."""

import glob
import os

import pytest

from conftest import ROOT

NOTEBOOKS = sorted(glob.glob(os.path.join(ROOT, "colab", "*.ipynb")))
JOBS = ("quickstart.ipynb", "latency.ipynb", "spos.ipynb", "shipping.ipynb")


def tiny(name: str, dataset: str, workdir: str) -> dict:
  """The injected parameters of notebook `name`: minutes of CPU in all, every cell run."""
  common = {"DATASET": f"folder:{dataset}", "WORKDIR": workdir}
  return {
      "quickstart.ipynb": {**common, "SEARCH_STEPS": 4, "WARMUP_STEPS": 2, "TRAIN_LIMIT": 64,
                           "VAL_SIZE": 32, "BATCH_SIZE": 8, "RETRAIN_EPOCHS": 1,
                           "CALIBRATION_IMAGES": 16, "TEST_LIMIT": 40},
      "latency.ipynb": {"WORKDIR": workdir, "NUM_ARCHS": 12, "TEST_SIZE": 4},
      "spos.ipynb": {**common, "SUPERNET_STEPS": 4, "TRAIN_LIMIT": 64, "VAL_SIZE": 32,
                     "BATCH_SIZE": 8, "BUDGETS": "macs_m<=45;macs_m<=55", "POPULATION": 4,
                     "GENERATIONS": 2, "TOP_K": 2, "CALIB_IMAGES": 16, "VAL_IMAGES": 16},
      "shipping.ipynb": {**common, "EPOCHS": 1, "TRAIN_LIMIT": 64, "VAL_SIZE": 32,
                         "BATCH_SIZE": 8, "QAT_STEPS": 2, "CALIBRATION_IMAGES": 16,
                         "TEST_LIMIT": 40, "POPULATION": 2, "GENERATIONS": 1,
                         "VAL_IMAGES": 16},
  }.get(name, {})


def test_there_is_a_notebook_for_every_job():
  assert set(JOBS) <= {os.path.basename(p) for p in NOTEBOOKS}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_is_stripped_and_installs_first(path):
  import nbformat
  nb = nbformat.read(path, as_version=4)
  nbformat.validate(nb)
  code = [c for c in nb.cells if c.cell_type == "code"]
  assert all(c.outputs == [] and c.execution_count is None for c in code), \
      f"{os.path.basename(path)} has outputs: strip them before committing"
  assert "pip install" in code[0].source and "TFNAS_REPO" in code[0].source
  params = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
  assert len(params) == (1 if os.path.basename(path) in JOBS else 0)


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_runs_top_to_bottom(path, tiny_cifar, tmp_path):
  import nbformat
  from nbclient import NotebookClient
  nb = nbformat.read(path, as_version=4)
  values = tiny(os.path.basename(path), tiny_cifar, str(tmp_path / "work"))
  if values:
    at = next(i for i, c in enumerate(nb.cells) if "parameters" in c.metadata.get("tags", []))
    names = set(compile(nb.cells[at].source, "parameters", "exec").co_names)
    assert set(values) <= names, f"not parameters of the notebook: {set(values) - names}"
    nb.cells.insert(at + 1, nbformat.v4.new_code_cell(
        "\n".join(f"{k} = {v!r}" for k, v in values.items())))
  # From the repository's root, as on Colab after the install cell (configs/ is there).
  client = NotebookClient(nb, timeout=1800, kernel_name="python3",
                          resources={"metadata": {"path": ROOT}})
  client.execute()
  errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if o.output_type == "error"]
  assert not errors
  # Plots are drawn inline (every notebook that plots shows at least one image).
  images = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
            if "image/png" in o.get("data", {})]
  if os.path.basename(path) in JOBS:
    assert images, "no picture shown"
