"""Every config file loads (full and quick variants), names a registered space and holds
every field of the shared fragments (tfnas/configs.py): the code reads them without a
fallback."""

import glob
import os

import ml_collections
import pytest

from conftest import ROOT
from tfnas import configs as common
from tfnas.spaces import list_spaces

CONFIGS = sorted(glob.glob(os.path.join(ROOT, "configs", "*.py")))


def _load(path):
  import importlib.util
  spec = importlib.util.spec_from_file_location(os.path.basename(path)[:-3], path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.parametrize("path", CONFIGS, ids=os.path.basename)
def test_config_variants_load(path):
  module = _load(path)
  assert "python -m tfnas.bin." in module.__doc__  # the command to run is documented
  shared = ml_collections.ConfigDict()
  common.data(shared, "tfds:cifar10", 32, 64)
  common.optimizer(shared, 0.1, 0.0)
  common.run(shared, 10)
  for arg in ("", "quick"):
    c = module.get_config(arg)
    assert c.space in list_spaces()
    assert set(shared) <= set(c), sorted(set(shared) - set(c))
    if "method" in c:  # a search config: the search runtime's fields too
      assert c.supernet_step in ("eager", "traced") and c.checkpoint_every > 0
  with pytest.raises(ValueError, match="unknown config variant"):
    module.get_config("nope")
