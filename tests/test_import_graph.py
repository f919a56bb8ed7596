"""The package's import graph: every module imports, no cycles, and the ARCHITECTURE arrows hold.

The graph is read with `ast` from every `import` statement in `xtjax/` (function-level ones
included: a deferred import still couples two modules), so a cycle hidden inside a function fails too.
"""

from __future__ import annotations

import ast
import importlib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "xtjax"


def _module_name(path: Path) -> str:
  parts = list(path.relative_to(ROOT).with_suffix("").parts)
  if parts[-1] == "__init__":
    parts.pop()
  return ".".join(parts)


def all_modules() -> dict[str, Path]:
  return {_module_name(p): p for p in sorted(PACKAGE.rglob("*.py"))}


def _imported(node: ast.AST, module: str, is_package: bool, known: set[str]) -> list[str]:
  """xtjax modules one import statement names (`from pkg import mod` names pkg.mod if it is a module)."""
  if isinstance(node, ast.Import):
    return [a.name for a in node.names if a.name in known]
  if not isinstance(node, ast.ImportFrom):
    return []
  if node.level:
    base = module.split(".") if is_package else module.split(".")[:-1]
    base = base[:len(base) - node.level + 1]
    target = ".".join(base + ([node.module] if node.module else []))
  else:
    target = node.module or ""
  out = []
  for alias in node.names:
    sub = f"{target}.{alias.name}"
    if sub in known:
      out.append(sub)
    elif target in known:
      out.append(target)
  return out


def import_graph() -> dict[str, set[str]]:
  """module -> the xtjax modules it imports (package __init__ files that are empty are not edges)."""
  modules = all_modules()
  known = set(modules)
  graph = {}
  for name, path in modules.items():
    tree = ast.parse(path.read_text(), str(path))
    edges = set()
    for node in ast.walk(tree):
      edges.update(_imported(node, name, path.name == "__init__.py", known))
    edges.discard(name)
    graph[name] = edges
  return graph


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
  """One import cycle as a path [a, b, ..., a], or None."""
  state: dict[str, int] = {}  # 1: on the stack, 2: done
  stack: list[str] = []

  def visit(node: str) -> list[str] | None:
    state[node] = 1
    stack.append(node)
    for nxt in sorted(graph.get(node, ())):
      if state.get(nxt) == 1:
        return stack[stack.index(nxt):] + [nxt]
      if nxt not in state:
        found = visit(nxt)
        if found:
          return found
    stack.pop()
    state[node] = 2
    return None

  for node in sorted(graph):
    if node not in state:
      found = visit(node)
      if found:
        return found
  return None


def _package(module: str) -> str:
  parts = module.split(".")
  return parts[1] if len(parts) > 1 else ""


# (importing package, imported package) pairs that ARCHITECTURE.md forbids.
FORBIDDEN = (
    *((src, "cli") for src in ("experiments", "train", "infer", "tasks", "models", "data", "metrics", "parallel")),
    *((src, "experiments") for src in ("train", "infer", "tasks", "models", "data", "metrics", "parallel")),
    ("train", "infer"),
    ("infer", "train"),
    ("models", "tasks"),
    ("models", "data"),
    ("models", "train"),
)


def arrow_violations(graph: dict[str, set[str]]) -> list[str]:
  bad = []
  for src, targets in sorted(graph.items()):
    for dst in sorted(targets):
      if (_package(src), _package(dst)) in FORBIDDEN:
        bad.append(f"{src} -> {dst}")
  return bad


def test_find_cycle_detects_a_cycle():
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
  assert find_cycle({"a": {"b"}, "b": {"c"}, "c": set()}) is None
  assert arrow_violations({"xtjax.models.x": {"xtjax.tasks.y"}, "xtjax.infer.e": {"xtjax.models.x"}}) == [
      "xtjax.models.x -> xtjax.tasks.y"]


def test_graph_reads_relative_and_from_imports():
  graph = import_graph()
  assert "xtjax.models.registry" in graph["xtjax.models.store"]
  assert "xtjax.tasks.base" in graph["xtjax.tasks.registry"]


def test_no_import_cycle_between_xtjax_modules():
  cycle = find_cycle(import_graph())
  assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_architecture_arrows_hold():
  bad = arrow_violations(import_graph())
  assert not bad, "imports against ARCHITECTURE.md: " + "; ".join(bad)


@pytest.mark.parametrize("name", sorted(n for n in all_modules() if n != "xtjax.__main__"))  # __main__ runs the CLI
def test_every_module_imports(name):
  importlib.import_module(name)
