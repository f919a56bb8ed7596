"""Hugging Face safetensors checkpoints streamed onto the mesh, one tensor at a time.

Everything that can be wrong with the checkpoint (missing, unexpected or mis-shaped tensors) is
found from the files' headers before any tensor is read, so a bad checkpoint places nothing. Then,
file by file, each tensor is read, converted to our layout and placed with its sharding (each
device receives only its slice) before the next is read: a host holds one tensor at a time, never
the whole model (a 70B checkpoint is 140 GB in bf16).
"""

from __future__ import annotations

from pathlib import Path

from flax import nnx
from jax.sharding import Mesh

from xtjax.errors import CheckpointError
from xtjax.models import hf_io
from xtjax.models import hf_mapping as M
from xtjax.models import init as model_init
from xtjax.parallel.rules import Rules, state_shardings


def _reader(files: dict[str, Path]):
  """get(name) -> numpy array, reading only that tensor."""
  from safetensors import safe_open

  def get(name: str):
    path = files[name]
    try:
      with safe_open(str(path), framework="numpy") as f:
        return f.get_tensor(name)
    except Exception as e:
      raise CheckpointError(f"{path}: cannot read tensor {name!r} ({e}); is the file truncated or corrupt?") from e

  return get


def load(folder: Path, family, cfg, mesh: Mesh, rules: Rules, files: dict[str, Path] | None = None):
  """(graphdef, placed nnx.State, ignored tensor names) of `family.tensor_plan` applied to `folder`."""
  where = str(folder)
  files = hf_io.safetensors_files(folder) if files is None else files
  if files is None:
    raise CheckpointError(f"{folder}: streaming needs safetensors ({hf_io.SAFE_SINGLE} or {hf_io.SAFE_INDEX})")
  shapes = hf_io.safetensors_shapes(files)
  plan = family.tensor_plan(cfg, list(shapes), where)
  ignored = M.check_tensors(plan.rules, shapes, plan.ignore, where)
  get = _reader(files)
  M.check_equal(plan, get, shapes, where)
  graphdef, abs_state = model_init.abstract(family, cfg)
  want = model_init.flat(nnx.to_pure_dict(abs_state))
  by_path = {tuple(r.ours): r for r in plan.rules}
  if set(by_path) != set(want):  # the family's rules and its model disagree: a bug, not the checkpoint's fault
    fmt = lambda ks: ["/".join(map(str, k)) for k in sorted(ks, key=str)[:5]]
    raise CheckpointError(f"{where}: rules do not cover the model: missing {fmt(set(want) - set(by_path))}, "
                          f"unexpected {fmt(set(by_path) - set(want))}")
  shardings = model_init.flat(nnx.to_pure_dict(state_shardings(abs_state, mesh, rules)))
  placed = {}
  for path in sorted(by_path, key=lambda k: (str(files[by_path[k].hf]), by_path[k].hf)):  # file by file
    rule = by_path[path]
    placed[path] = model_init.put(M.convert(rule, get(rule.hf), where), want[path], shardings[path])
  nnx.replace_by_pure_dict(abs_state, model_init.nest(placed))
  return graphdef, abs_state, ignored
