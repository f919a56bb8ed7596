"""No code path treats a run directory as a local file: `.absolute()`, `.resolve()` and builtin `open()`
turn `gs://bucket/run` into `$PWD/gs:/bucket/run`. Run directories go through `xtjax.io_utils`
(`run_path` / `as_path`, etils.epath); the places below read or write files that are local by nature."""

import ast
from pathlib import Path

XTJAX = Path(__file__).resolve().parents[1] / "xtjax"

# (module, function) -> why the call there never sees a run directory.
ALLOWED = {
  ("config.py", "read_with_bases"): "config YAML files named on the command line (local, with `base:` includes)",
  ("io_utils.py", "run_path"): "the one place a local run directory is made absolute (URLs are returned as given)",
  ("data/cache.py", "_stat"): "the task's local data files, stat'ed for the cache key",
  ("data/cache.py", "_store"): "writes into atomic_dir's staging folder, which is always local",
  ("data/formats/common.py", "_open_binary"): "upstream data files (local, or fetched by `xtjax data download`)",
  ("tasks/download.py", "_urlretrieve"): "downloads into the local data folder",
  ("tasks/synthetic.py", "ToyClassification.read"): "the toy task's data files, local",
  ("tasks/synthetic.py", "write_toy_data"): "writes the toy task's data into a local folder",
  ("train/logbook.py", "Logbook.write"): "metrics.jsonl in a local run directory, or in the local Mirror of a remote one",
  ("cli/generate_cmd.py", "run"): "writes into atomic_path's temp file, which is always local",
  ("infer/bench.py", "write_outputs"): "benchmark CSV at a local --out path",
  ("infer/xla_setup.py", "enable_compilation_cache"): "the XLA compilation cache folder, a local cache",
  ("runs/lease.py", "_LocalStore.read"): "the lease file of a local run directory (a bucket's is _GcsStore)",
  ("runs/lease.py", "_LocalStore.replace"): "the lease's temp file beside it in a local run directory",
  ("runs/lease.py", "_pid_start"): "/proc/<pid>/stat of this machine, to tell a live holder from a reused pid",
  ("tiny.py", "write_tiny_xtreme"): "writes the tiny demo data into a local folder",
}


def _calls() -> set[tuple[str, str, str]]:
  """{(module, enclosing function, call)} for every .absolute(), .resolve() and builtin open() in xtjax/."""
  found = set()
  for path in sorted(XTJAX.rglob("*.py")):
    module = path.relative_to(XTJAX).as_posix()

    def visit(node, scope):
      for child in ast.iter_child_nodes(node):
        inner = scope
        if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
          inner = f"{scope}.{child.name}" if scope and isinstance(node, ast.ClassDef) else child.name
        if isinstance(child, ast.Call):
          f = child.func
          if isinstance(f, ast.Attribute) and f.attr in ("absolute", "resolve") and not child.args:
            found.add((module, inner, f".{f.attr}()"))
          elif isinstance(f, ast.Name) and f.id == "open":
            found.add((module, inner, "open()"))
        visit(child, inner)

    visit(ast.parse(path.read_text(), str(path)), "")
  return found


def test_no_run_directory_is_made_absolute_resolved_or_opened_as_a_local_file():
  calls = _calls()
  unexpected = sorted(c for c in calls if c[:2] not in ALLOWED)
  assert not unexpected, ("use xtjax.io_utils.run_path / as_path (etils.epath) for paths that may be gs://, "
                          f"or allow-list a local-only use with its reason: {unexpected}")
  stale = sorted(set(ALLOWED) - {c[:2] for c in calls})
  assert not stale, f"allow-list entries with no such call any more: {stale}"
