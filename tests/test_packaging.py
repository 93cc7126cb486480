"""tfnas installs where its users work: setup.cfg declares compatible ranges (the `tensorflow`
wheel, Python 3.11-3.13), the lock file pins what CI tests, and pip's resolver accepts the
package for Colab's Python 3.12 with the GPU `tensorflow` wheel."""

import configparser
import glob
import json
import os
import subprocess
import sys
import urllib.request
from importlib import metadata

import pytest
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.utils import canonicalize_name

from conftest import ROOT


def _setup_cfg():
  cfg = configparser.ConfigParser()
  cfg.read(os.path.join(ROOT, "setup.cfg"))
  lines = lambda text: [Requirement(l) for l in text.strip().splitlines() if l.strip()]
  return (cfg["options"]["python_requires"], lines(cfg["options"]["install_requires"]),
          lines(cfg["options.extras_require"]["test"]))


def _lock():
  pins = {}
  for line in open(os.path.join(ROOT, "requirements-lock.txt")):
    line = line.split("#")[0].strip()
    if line:
      name, _, version = line.partition("==")
      assert version, f"requirements-lock.txt: {line!r} is not an exact pin"
      pins[canonicalize_name(name)] = version
  return pins


def test_ranges_in_metadata_exact_versions_in_the_lock_and_installed():
  python, install, test = _setup_cfg()
  names = {canonicalize_name(r.name) for r in install}
  assert "tensorflow" in names and "tensorflow-cpu" not in names  # Colab's wheel resolves
  for r in install + test:
    assert not any(s.operator == "==" for s in r.specifier), f"{r}: a range, not a pin"
  assert all(v in SpecifierSet(python) for v in ("3.11", "3.12", "3.13"))
  pins = _lock()
  for r in install + test:
    # The lock installs TensorFlow's CPU wheel (same module, same version) for `tensorflow`.
    name = "tensorflow-cpu" if canonicalize_name(r.name) == "tensorflow" else r.name
    version = pins.get(canonicalize_name(name))
    assert version and version in r.specifier, f"lock pins {name}=={version}, outside {r}"
  # This environment is the lock (scripts/setup.sh installed it): the tests test it.
  for name in ("tensorflow-cpu", "keras", "numpy", "ai-edge-litert", "litert-quantizer"):
    assert metadata.version(name) == pins[name], name


def _pypi_reachable() -> bool:
  try:
    urllib.request.urlopen("https://pypi.org/simple/tensorflow/", timeout=15).close()
    return True
  except OSError:
    return False


def test_metadata_resolves_for_python312_with_the_gpu_tensorflow_wheel(tmp_path):
  """pip's resolver, in dry-run mode for Python 3.12 on manylinux x86_64 (Colab's runtime),
  resolves tfnas's built wheel and its ranges, `tensorflow` included: what Colab's
  `pip install` would do, without installing anything."""
  if not _pypi_reachable():
    pytest.skip("PyPI is not reachable from this machine (the resolver needs its index)")
  pip = [sys.executable, "-m", "pip"]
  wheels = tmp_path / "wheels"
  # The package's own wheel, and promise's: a dependency of tensorflow-datasets published
  # only as a source archive, which a cross-version dry run (binary-only) cannot build.
  r = subprocess.run([*pip, "wheel", "--no-deps", "-q", "-w", str(wheels), ROOT, "promise"],
                     capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  tfnas_wheel, = glob.glob(str(wheels / "tfnas-*.whl"))
  report = tmp_path / "report.json"
  r = subprocess.run(
      [*pip, "install", "--dry-run", "--ignore-installed", "-q", "--report", str(report),
       "--python-version", "3.12", "--only-binary=:all:", "--platform", "manylinux_2_27_x86_64",
       "--platform", "manylinux2014_x86_64", "--target", str(tmp_path / "target"),
       "--find-links", str(wheels), tfnas_wheel],
      capture_output=True, text=True, timeout=600)
  assert r.returncode == 0, r.stderr[-3000:]
  got = {canonicalize_name(i["metadata"]["name"]): i["metadata"]["version"]
         for i in json.load(open(report))["install"]}
  assert got["tfnas"] and got["tensorflow"].startswith("2.21.")
  assert "tensorflow-cpu" not in got
  assert {"keras", "numpy", "ai-edge-litert", "litert-quantizer", "tensorflow-datasets"} <= set(got)


def test_workspace_builds_benchmark_model_from_the_tensorflow_we_run():
  # The Bazel workspace (issue 19, item 5) pins the TensorFlow sources the Android
  # benchmark_model is built from to the release in the lock (and installed here). Bazel
  # itself is not on CI machines; scripts/check_workspace.sh evaluates the WORKSPACE with
  # Bazel where it is (README, "Building benchmark_model for a phone").
  import re
  workspace = open(os.path.join(ROOT, "WORKSPACE")).read()
  pinned = re.search(r'^TENSORFLOW_VERSION = "([0-9.]+)"$', workspace, re.M).group(1)
  lock = open(os.path.join(ROOT, "requirements-lock.txt")).read()
  assert re.search(rf"^tensorflow[-_]cpu=={re.escape(pinned)}$", lock, re.M), pinned
  assert metadata.version("tensorflow-cpu") == pinned
  assert re.search(r'sha256 = "[0-9a-f]{64}",\n    strip_prefix = "tensorflow-" \+ '
                   r"TENSORFLOW_VERSION", workspace)
  build = open(os.path.join(ROOT, "BUILD.bazel")).read()
  assert ('actual = "@org_tensorflow//tensorflow/lite/tools/benchmark:benchmark_model"'
          in build)
  # Starlark's syntax is Python's for these files: both parse.
  import ast
  ast.parse(workspace)
  ast.parse(build)
