"""The layering contract: tfnas's rooms import only downwards (pyproject.toml's import-linter
contracts, function-local imports included), `tflite_bench` stands alone but for its profile
binary, and no two modules import each other, directly or around a loop."""

import os
import subprocess
import sys

import grimp

from conftest import ROOT


def test_import_linter_contracts_are_kept():
  lint = os.path.join(os.path.dirname(sys.executable), "lint-imports")
  out = subprocess.run([lint, "--no-cache"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
  assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]
  assert "2 kept, 0 broken" in out.stdout, out.stdout[-2000:]


def _cycles(graph, modules) -> list[list[str]]:
  """Strongly connected components of more than one module (Tarjan)."""
  index, low, stack, on, out = {}, {}, [], set(), []

  def visit(v):
    index[v] = low[v] = len(index)
    stack.append(v)
    on.add(v)
    for w in graph.find_modules_directly_imported_by(v):
      if w not in modules:
        continue
      if w not in index:
        visit(w)
        low[v] = min(low[v], low[w])
      elif w in on:
        low[v] = min(low[v], index[w])
    if low[v] == index[v]:
      comp = []
      while True:
        w = stack.pop()
        on.discard(w)
        comp.append(w)
        if w == v:
          break
      if len(comp) > 1:
        out.append(sorted(comp))

  for m in sorted(modules):
    if m not in index:
      visit(m)
  return out


def test_no_import_cycles_between_modules():
  # Packages included: `from tfnas.spaces import X` is an edge to the package, whose
  # __init__ imports its submodules, so a loop through a package's re-exports counts too.
  graph = grimp.build_graph("tfnas", "tflite_bench", cache_dir=None)
  assert _cycles(graph, set(graph.modules)) == []
