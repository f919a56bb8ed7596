"""One AdamW step equals PyTorch's: same tiny XLM-R weights and batch, dropout off, clipping on.

Our step (clip by global norm, Adam, decoupled weight decay masked by `optim.no_decay`, constant
lr) against `torch.optim.AdamW` + `clip_grad_norm_` on transformers'
`XLMRobertaForSequenceClassification`, whose classifier is our `classification` head. Every
parameter is compared after the step, and the loss before it.
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import toy_config
from flax import nnx

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from xtjax.models import encoder_family  # noqa: E402
from xtjax.parallel.mesh import make_mesh  # noqa: E402
from xtjax.parallel.rules import rules_from_config  # noqa: E402
from xtjax.tasks import registry as task_registry  # noqa: E402
from xtjax.train import optim, setup  # noqa: E402
from xtjax.train.step import make_train_step  # noqa: E402

TASK = "toy_cls"
LR = 1e-3
ATOL = 1e-5
# torch Linear [out, in] <-> our kernel [in, out].
HEAD_TO_TORCH = {
    ("dense", "kernel"): "classifier.dense.weight",
    ("dense", "bias"): "classifier.dense.bias",
    ("out", "kernel"): "classifier.out_proj.weight",
    ("out", "bias"): "classifier.out_proj.bias",
}


@pytest.fixture(scope="module")
def seqcls_env(toy_env, tmp_path_factory):
  """The tiny XLM-R re-saved as XLMRobertaForSequenceClassification (no pooler, like the torch
  model), so that every one of our parameters has exactly one torch counterpart."""
  folder = tmp_path_factory.mktemp("xlmr-seqcls")
  model = transformers.XLMRobertaForSequenceClassification.from_pretrained(str(toy_env["hf"]), num_labels=2)
  model.save_pretrained(str(folder))
  transformers.AutoTokenizer.from_pretrained(str(toy_env["hf"])).save_pretrained(str(folder))
  return {**toy_env, "hf": folder}


def _ours(env, grad_accum_steps, max_norm, weight_decay):
  """(cfg, encoder start, graphdef, params, tx, batch) for one step on one device."""
  cfg = toy_config(env, mesh={"data": 1, "devices": 1},
                   optim={"learning_rate": LR, "weight_decay": weight_decay, "b1": 0.9, "b2": 0.999, "eps": 1e-8,
                          "schedule": "constant", "warmup_steps": 0, "max_grad_norm": max_norm,
                          "grad_accum_steps": grad_accum_steps})
  mesh, rules = make_mesh(cfg.mesh), rules_from_config(cfg.rules)
  start = setup.encoder_start(cfg, mesh, rules)
  task = task_registry.get(TASK)
  graphdef, params, _ = setup.build_model(start, setup.head_configs([task]), cfg.seed, mesh, rules)
  tx, _ = optim.build(cfg.optim, params, total_steps=1, num_layers=start.config.num_layers)
  examples = task.read("train", "en", cfg.tasks[0].data)[:8]
  arrays = task.featurize(examples, start.tokenizer, cfg.features).arrays
  batch = {k: np.asarray(v) for k, v in arrays.items()}
  # The last row is padding that fills the batch: it must drop out of the loss on our side.
  batch["example_mask"] = np.array([1] * 7 + [0], np.int32)
  return cfg, start, graphdef, params, tx, batch


def _our_path_to_torch(start) -> dict[str, str]:
  """'encoder/layers/0/attention/query' -> 'roberta.encoder.layer.0.attention.self.query.weight'."""
  names = {"encoder/" + "/".join(map(str, r.ours)): "roberta." + r.hf for r in encoder_family._rules(start.config)}
  names.update({f"heads/{TASK}/{a}/{b}": hf for (a, b), hf in HEAD_TO_TORCH.items()})
  return names


def _torch_model(env, params):
  model = transformers.XLMRobertaForSequenceClassification.from_pretrained(str(env["hf"]), attn_implementation="eager")
  model.eval()  # dropout off (the tiny config has rate 0 anyway)
  head = jax.device_get(nnx.to_pure_dict(params["heads"][TASK]))
  with torch.no_grad():
    sd = model.state_dict()
    for (a, b), hf in HEAD_TO_TORCH.items():
      w = np.asarray(head[a][b])
      sd[hf].copy_(torch.from_numpy(np.array(w.T if b == "kernel" else w)))
  return model


def _run_both(env, grad_accum_steps, max_norm, weight_decay):
  cfg, start, graphdef, params, tx, batch = _ours(env, grad_accum_steps, max_norm, weight_decay)
  to_torch = _our_path_to_torch(start)
  model = _torch_model(env, params)

  # torch: the mirror of our weight-decay mask, as two parameter groups.
  paths = jax.tree.leaves(optim.tree_paths(params))
  assert set(to_torch) == set(paths), "every parameter of ours must have a torch counterpart"
  no_decay = {to_torch[p] for p in paths if optim._matches(cfg.optim.no_decay, p)}
  named = dict(model.named_parameters())
  assert set(named) == set(to_torch.values())
  # The usual Hugging Face rule (biases and LayerNorm weights), which our regexes must reproduce.
  assert no_decay == {n for n in named if n.endswith("bias") or "LayerNorm" in n}
  groups = [{"params": [p for n, p in named.items() if n not in no_decay], "weight_decay": weight_decay},
            {"params": [p for n, p in named.items() if n in no_decay], "weight_decay": 0.0}]
  opt = torch.optim.AdamW(groups, lr=LR, betas=(0.9, 0.999), eps=1e-8)
  before = {n: p.detach().numpy().copy() for n, p in named.items()}
  real = batch["example_mask"].astype(bool)
  logits = model(input_ids=torch.from_numpy(batch["input_ids"][real]).long(),
                 attention_mask=torch.from_numpy(batch["attention_mask"][real]).long()).logits
  torch_loss = torch.nn.functional.cross_entropy(logits, torch.from_numpy(batch["labels"][real]).long())
  torch_loss.backward()
  torch_grad_norm = float(torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm))
  opt.step()

  # ours
  state = setup.init_state(params, tx, cfg.seed)
  step = jax.jit(make_train_step(graphdef, tx, TASK, "classification", grad_accum_steps, dropout=False))
  state, metrics = step(state, {k: jnp.asarray(v) for k, v in batch.items()})
  assert int(metrics["finite"]) == 1 and int(state.step) == 1

  new = jax.device_get(nnx.to_pure_dict(state.params))
  ours = {"roberta." + k: v for k, v in encoder_family.params_to_hf(start.config, new["encoder"]).items()}
  for (a, b), hf in HEAD_TO_TORCH.items():
    w = np.asarray(new["heads"][TASK][a][b])
    ours[hf] = w.T if b == "kernel" else w
  theirs = {n: p.detach().numpy() for n, p in model.named_parameters()}
  assert set(ours) == set(theirs)
  diffs = {n: float(np.abs(ours[n] - theirs[n]).max()) for n in theirs}
  return {"loss": (float(metrics["loss"]), float(torch_loss.detach())),
          "grad_norm": (float(metrics["grad_norm"]), torch_grad_norm), "diffs": diffs, "theirs": theirs,
          "before": before}


# The tiny model's gradient norm is ~0.14: max_norm 1.0 (the default) leaves it alone, 0.05 clips.
# With weight decay 0.01 one step decays a weight by lr * 0.01 * |w| <= 1e-5, below the tolerance,
# so the last case uses 1.0 to make a wrong no-decay mask visible (1e-3 on layer-norm scales).
@pytest.mark.parametrize("grad_accum_steps,max_norm,weight_decay",
                         [(1, 1.0, 0.01), (2, 1.0, 0.01), (2, 0.05, 1.0)])
def test_one_adamw_step_equals_pytorch(seqcls_env, grad_accum_steps, max_norm, weight_decay):
  r = _run_both(seqcls_env, grad_accum_steps, max_norm, weight_decay)
  ours_loss, torch_loss = r["loss"]
  assert abs(ours_loss - torch_loss) <= ATOL, (ours_loss, torch_loss)
  np.testing.assert_allclose(*r["grad_norm"], rtol=1e-5)
  assert (r["grad_norm"][0] > max_norm) == (max_norm < 1.0)  # clipping active exactly where intended
  worst = max(r["diffs"], key=r["diffs"].get)
  print(f"accum {grad_accum_steps} max_norm {max_norm} wd {weight_decay}: loss {ours_loss:.7f} vs "
        f"{torch_loss:.7f}, grad norm {r['grad_norm'][0]:.6f}, worst {worst} {r['diffs'][worst]:.3g}")
  assert r["diffs"][worst] <= ATOL, f"{worst}: max abs diff {r['diffs'][worst]:.3g} (all: {r['diffs']})"
  # Not vacuous: the step moved the weights by about the learning rate.
  moved = {n: float(np.abs(r["theirs"][n] - r["before"][n]).max()) for n in r["theirs"]}
  for name in ("classifier.out_proj.weight", "roberta.encoder.layer.0.attention.self.query.weight"):
    assert moved[name] > 0.5 * LR, (name, moved[name])
