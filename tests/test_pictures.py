"""Pictures of a search, swept over every registered space: the derived architecture (the
ProxylessNAS paper's Fig. 6 style) and the per-block op probabilities. No TensorFlow."""

import numpy as np
import pytest

from tfnas.search import pictures
from tfnas.spaces import get_space, list_spaces, parse_arch
from tfnas.spaces.spec import MBCONV, SKIP, ZERO

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("name", list_spaces())
def test_every_space_draws_its_archs(name, tmp_path):
  space = get_space(name)
  for i, (ref, _) in enumerate(space.references[:2]):
    path = tmp_path / f"{i}.png"
    pictures.draw_arch(space, parse_arch(space, ref), str(path))
    data = path.read_bytes()
    assert data.startswith(PNG) and len(data) > 5000


def test_labels_name_kernel_expansion_and_skips():
  space = get_space("nasbench_macro")  # stage starts: `id` is a 1x1 conv, elsewhere identity
  first, second = space.choice_blocks[:2]
  labels = {op.name: pictures.op_label(first, op) for op in first.ops}
  assert labels == {"id": "1x1 conv", "k3_e3": "MB3 3x3", "k5_e6": "MB6 5x5"}
  assert pictures.op_label(second, second.ops[0]) == "identity"
  proxyless = get_space("proxyless_cifar")
  block = next(b for b in proxyless.choice_blocks if any(o.kind == ZERO for o in b.ops))
  assert pictures.op_label(block, next(o for o in block.ops if o.kind == ZERO)) == "skipped"
  spos = get_space("spos_cifar").choice_blocks[0]
  assert pictures.op_label(spos, spos.ops[0], 0.6) == "Shuffle 3x3 x0.6"


def test_probabilities_over_steps(tmp_path):
  space = get_space("nasbench_macro")
  rng = np.random.default_rng(0)
  history = [{"step": s, "alpha": [rng.normal(size=3).tolist() for _ in space.choice_blocks]}
             for s in (25, 50, 75)]
  derived = parse_arch(space, "12012012")
  pictures.draw_probabilities(space, history, str(tmp_path / "p.png"), derived)
  assert (tmp_path / "p.png").read_bytes().startswith(PNG)
  np.testing.assert_allclose(pictures.softmax([0.0, np.log(3.0)]), [0.25, 0.75])
  with pytest.raises(ValueError, match="does not match the choice blocks of 'nasbench_macro'"):
    pictures.draw_probabilities(space, [{"step": 1, "alpha": [[0.0, 0.0]]}], str(tmp_path / "q"))
  with pytest.raises(ValueError, match="no architecture history"):
    pictures.draw_probabilities(space, [], str(tmp_path / "q"))


def test_drawing_leaves_pyplot_and_its_backend_alone(tmp_path):
  # A notebook's inline plots keep working after a search writes its pictures: drawing
  # never imports pyplot nor picks a matplotlib backend (issue 19: importing or running
  # tfnas changes no process-wide setting). In a fresh interpreter, to see sys.modules.
  import subprocess
  import sys
  code = f"""
import sys
import numpy as np
from tfnas.search import pictures
from tfnas.latency import fit
from tfnas.spaces import get_space, parse_arch
space = get_space("nasbench_macro")
pictures.draw_arch(space, parse_arch(space, space.references[0][0]), {str(tmp_path / 'a.png')!r})
fit.plot(np.array([1.0, 2.0, 3.0]), np.array([1.1, 1.9, 3.2]), {str(tmp_path / 'f.png')!r})
import matplotlib
assert "matplotlib.pyplot" not in sys.modules
assert matplotlib.rcParams._get_backend_or_none() is None, matplotlib.rcParams["backend"]
print("ok")
"""
  r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
  assert r.returncode == 0 and r.stdout.strip() == "ok", r.stderr[-2000:]
  assert (tmp_path / "a.png").read_bytes().startswith(PNG)
  assert (tmp_path / "f.png").read_bytes().startswith(PNG)
