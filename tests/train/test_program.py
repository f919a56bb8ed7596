"""The one train-program builder (`xtjax.train.program`): `plan` lowers exactly the step the trainer runs."""

import pytest
from conftest import toy_config

from xtjax.parallel import plan as aot
from xtjax.parallel import topology
from xtjax.train.loop import Trainer
from xtjax.train.plan import train_program_hash


def _trainer_hash(cfg, workdir) -> str:
  """The program hash of the step the trainer runs for its first task, lowered with its own state and batch."""
  t = Trainer(cfg, workdir).setup()
  try:
    task = t.train_tasks[0]
    _, host = t.loader.host_batch(0)
    return aot.program_hash(t.train_step_for(task).lower(t.state, t.loader.device_batch(host)))
  finally:
    t.ckpt.close()


@pytest.mark.parametrize("mesh,accum", [({"data": 8}, 2), ({"data": 2, "fsdp": 2, "tensor": 2}, 1)])
def test_plan_lowers_the_trainers_own_step(toy_env, tmp_path, mesh, accum):
  """Same config, same program: `xtjax plan` (and so docs/scale.md's compiled cells) describes `xtjax train`."""
  cfg = toy_config(toy_env, steps=6, zero_shot=False, mesh=mesh,
                   optim={"learning_rate": 3e-3, "warmup_ratio": 0.1, "grad_accum_steps": accum})
  assert train_program_hash(cfg, topology.parse("cpu:8")) == _trainer_hash(cfg, tmp_path / "run")
