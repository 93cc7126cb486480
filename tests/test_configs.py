"""Every config file loads (full and quick variants), names a registered space and holds
every field of the shared fragments (tfnas/configs.py): the code reads them without a
fallback."""

import glob
import os

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
  shared = common.base("tfds:cifar10", 32, 64, 0.1, 0.0, 10)
  for arg in ("", "quick"):
    c = module.get_config(arg)
    assert c.model.space in list_spaces()
    # The sections, and every field of the shared fragments in its section.
    assert set(common.SECTIONS) <= set(c), sorted(set(common.SECTIONS) - set(c))
    for section in common.SECTIONS:
      assert set(shared[section]) <= set(c[section]), (section, set(shared[section]) - set(c[section]))
    # At the top only the sections and run-wide fields: a field set flat by mistake
    # (c.target instead of c.search.target) would be read by nothing.
    assert set(c) <= set(shared) | {"method", "checkpoint_every", "verbose"}, sorted(set(c) - set(shared))
    if "method" in c:  # a search config: the search runtime's fields too
      assert c.train.supernet_step in ("eager", "traced") and c.checkpoint_every > 0
  with pytest.raises(ValueError, match="unknown config variant"):
    module.get_config("nope")


def test_override_sets_fields_by_section_and_refuses_unknown_ones():
  c = common.load_file(os.path.join(ROOT, "configs", "proxyless_cifar10.py"), "quick")
  common.override(c, {"data.dataset": "folder:x", "search.target": 2.0, "seed": 3})
  assert (c.data.dataset, c.search.target, c.seed) == ("folder:x", 2.0, 3)
  for bad in ("dataset", "search.nope", "nope.target", "seed.x"):  # flat, unknown, no
    # such section, through a field
    with pytest.raises((KeyError, AttributeError)):
      common.override(c, {bad: 1})
  assert "dataset" not in c and "nope" not in c.search
