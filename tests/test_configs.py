"""Every config file loads (full and quick variants) and names a registered space."""

import glob
import os

import pytest

from conftest import ROOT
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
  for arg in ("", "quick"):
    c = module.get_config(arg)
    assert c.space in list_spaces()
  with pytest.raises(ValueError, match="unknown config variant"):
    module.get_config("nope")
