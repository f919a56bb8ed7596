"""The LoRA train state: Adam moments for the adapters and heads only; an update moves nothing else."""

import jax
import numpy as np
from fixtures import flat_paths
from flax import nnx

from xtjax.models.encoder import EncoderConfig
from xtjax.models.heads import HeadConfig
from xtjax.models.lora import LoraConfig
from xtjax.models.registry import get
from xtjax.models.task_model import TaskModel
from xtjax.parallel.mesh import single_device_mesh
from xtjax.parallel.rules import state_shardings
from xtjax.runs.schema import OptimConfig
from xtjax.train import optim
from xtjax.train.setup import init_state
from xtjax.train.state import state_sharding, trained_part

LORA = LoraConfig(targets=(r"encoder/layers/\d+/attention/(query|value)",), rank=2)


def _params(lora):
  cfg = EncoderConfig(vocab_size=20, hidden_size=8, num_layers=2, num_heads=2, intermediate_size=8)
  return nnx.split(TaskModel(get("encoder"), cfg, {"t": HeadConfig("classification", 3)}, rngs=nnx.Rngs(0),
                             lora=lora))[1]


def _moment_paths(opt_state):
  leaves = jax.tree_util.tree_flatten_with_path(opt_state)[0]
  paths = [jax.tree_util.keystr(p, simple=True, separator="/") for p, _ in leaves]
  return {p.split("/mu/")[1].removesuffix("/value") for p in paths if "/mu/" in p}


def test_optimizer_state_covers_adapters_and_heads_only():
  params = _params(LORA)
  trained, frozen = trained_part(params, LORA)
  ocfg = OptimConfig(learning_rate=0.1, warmup_steps=0, schedule="constant")
  tx, _ = optim.build(ocfg, trained, 10, 2)
  state = init_state(params, tx, 0, lora=LORA)
  every = flat_paths(nnx.to_pure_dict(params))
  want = {p for p in every if "_lora/" in p or p.startswith("heads/")}
  assert _moment_paths(state.opt_state) == want
  assert len(want) == 2 * 2 * 2 + 4 and "encoder/embeddings/word" not in _moment_paths(state.opt_state)
  full = _params(None)
  assert _moment_paths(init_state(full, optim.build(ocfg, full, 10, 2)[0], 0).opt_state) == set(
      flat_paths(nnx.to_pure_dict(full)))  # full fine-tuning: every parameter
  # Moments are sharded like their parameters (the trained part's structure, not the whole tree's).
  mesh = single_device_mesh()
  sh = state_sharding(jax.eval_shape(lambda: state), state_shardings(params, mesh), mesh, LORA)
  assert _moment_paths(sh.opt_state) == want
  # One update with gradients for the trained part: the frozen base stays bit-identical.
  grads = jax.tree.map(lambda x: jax.numpy.ones_like(x), trained)
  new, _ = state.apply_gradients(tx, grads, LORA)
  before, after = flat_paths(nnx.to_pure_dict(params)), flat_paths(nnx.to_pure_dict(new.params))
  assert before.keys() == after.keys()
  for p in before:
    assert np.array_equal(before[p], after[p]) == (p not in want), p
