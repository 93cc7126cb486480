"""The one Workdir type of train, search, export and latency_fit: what each kind holds,
the check that a folder belongs to this run, atomic writes. No TensorFlow (the binaries'
end-to-end tests check that every file a real run leaves is one `FILES` describes)."""

import json

import ml_collections
import pytest

from tfnas.errors import TfnasError
from tfnas.workdir import FILES, KINDS, WEIGHTS, Workdir


class _Data:  # what Workdir.start reads of a tfnas.data.Data
  def info(self):
    return {"num_classes": 10, "sizes": {"train": 8}}


def test_every_kind_says_what_its_files_mean():
  assert set(FILES) == set(KINDS)
  for kind, files in FILES.items():
    assert "workdir.json" in files and all(isinstance(m, str) and m for m in files.values())
  for kind, name in WEIGHTS.items():
    assert Workdir("/w", kind).weights == f"/w/{name}"


def test_file_names_outside_the_registry_are_refused():
  wd = Workdir("/w", "search")
  assert wd.file("evolution_0_step600.json") == "/w/evolution_0_step600.json"
  assert wd.file("arch_macs_m_60.json").endswith("arch_macs_m_60.json")
  with pytest.raises(ValueError, match="'model.weights.h5' is not a file of a search workdir"):
    wd.file("model.weights.h5")  # the training's weights, not a search's
  with pytest.raises(ValueError, match="unknown workdir kind 'export'"):
    Workdir("/w", "export")


def test_start_records_the_run_and_a_rerun_of_another_is_refused(tmp_path):
  config = ml_collections.ConfigDict({"data": {"dataset": "folder:x"},
                                      "model": {"space": "nasbench_macro"}})
  wd = Workdir(str(tmp_path / "run"), "train")
  ident = {"space": "nasbench_macro", "arch": "a"}
  wd.check(ident)  # a new folder: nothing to refuse, nothing written
  assert not (tmp_path / "run").exists()
  wd.start(ident, config, _Data())
  assert json.load(open(wd.file("workdir.json"))) == {"made_by": "train", "identity": ident}
  assert wd.read_json("config.json", "config")["model"]["space"] == "nasbench_macro"
  assert wd.read_json("data.json", "data")["dataset"] == "folder:x"
  wd.check(ident)  # the same run resumes
  with pytest.raises(TfnasError, match="holds a run with arch='a', not 'b'"):
    wd.check({**ident, "arch": "b"})
  with pytest.raises(TfnasError, match="holds the output of tfnas.bin.train"):
    Workdir(wd.path, "search").check({})
  assert Workdir.open(wd.path).kind == "train"


def test_open_names_what_is_wrong(tmp_path):
  with pytest.raises(TfnasError, match="does not exist"):
    Workdir.open(str(tmp_path / "none"))
  (tmp_path / "other").mkdir()
  with pytest.raises(TfnasError, match="is not a tfnas.bin.train or tfnas.bin.search workdir"):
    Workdir.open(str(tmp_path / "other"))
  fit = Workdir(str(tmp_path / "fit"), "latency_fit")
  fit.start({})
  with pytest.raises(TfnasError, match="is not a tfnas.bin.train or tfnas.bin.search workdir"):
    Workdir.open(fit.path)
  assert Workdir.open(fit.path, ("latency_fit",)).kind == "latency_fit"
