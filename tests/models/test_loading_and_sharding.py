"""Checkpoint formats, shape-first init, sharded placement and preset sizes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from xtjax.models import init as model_init
from xtjax.models import registry
from xtjax.models.loading import load_pretrained
from xtjax.parallel.mesh import MeshConfig, make_mesh
from xtjax.parallel.rules import DEFAULT_RULES, logical_to_spec


def _hidden(pre, ids, mask):
  fn = jax.jit(lambda p, i, m: nnx.merge(pre.graphdef, p)(i, m).hidden_states)
  return [np.asarray(h) for h in fn(pre.params, ids, mask)]


@pytest.mark.parametrize("fmt", ["bin", "sharded-safetensors", "sharded-bin"])
def test_other_checkpoint_formats_load_identically(tiny_hf, tmp_path, fmt):
  import transformers as tf

  src = tiny_hf("bert")
  model = tf.AutoModel.from_pretrained(str(src))
  out = tmp_path / fmt
  save_kw = dict(max_shard_size="20KB") if fmt.startswith("sharded") else {}
  try:
    model.save_pretrained(str(out), safe_serialization=not fmt.endswith("bin"), **save_kw)
  except TypeError:
    pytest.skip("this transformers cannot write pytorch_model.bin")
  if fmt.endswith("bin") and not list(out.glob("pytorch_model*.bin")):
    # transformers v5 always writes safetensors: build the .bin files ourselves from its state dict.
    import torch

    for f in out.glob("model*.safetensors*"):
      f.unlink()
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    if fmt == "bin":
      torch.save(sd, out / "pytorch_model.bin")
    else:
      import json

      keys = sorted(sd)
      halves = {"pytorch_model-00001-of-00002.bin": keys[::2], "pytorch_model-00002-of-00002.bin": keys[1::2]}
      for name, ks in halves.items():
        torch.save({k: sd[k] for k in ks}, out / name)
      (out / "pytorch_model.bin.index.json").write_text(json.dumps(
          {"metadata": {}, "weight_map": {k: n for n, ks in halves.items() for k in ks}}))
  if fmt == "sharded-safetensors":
    assert (out / "model.safetensors.index.json").exists()
  ref = load_pretrained(src, with_tokenizer=False)
  got = load_pretrained(out, with_tokenizer=False)
  ids = jnp.array([[2, 10, 11, 3, 0], [2, 12, 13, 14, 3]])
  mask = (ids != 0).astype(jnp.int32)
  for a, b in zip(_hidden(ref, ids, mask), _hidden(got, ids, mask)):
    np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("mesh_cfg", [MeshConfig(8, 1, 1), MeshConfig(1, 4, 2), MeshConfig(2, 1, 4), MeshConfig(1, 8, 1)])
def test_every_mesh_gives_the_numbers_of_one_device(tiny_hf, mesh_cfg):
  src = tiny_hf("xlm-roberta")
  one = load_pretrained(src, with_tokenizer=False)
  mesh = make_mesh(mesh_cfg)
  many = load_pretrained(src, mesh=mesh, with_tokenizer=False)
  # Parameters really are sharded where the rules and shapes allow it.
  word = many.params["embeddings"]["word"][...]
  assert word.sharding.mesh.shape == mesh.shape
  q = many.params["layers"][0]["attention"]["query"][...]
  assert q.sharding.spec == logical_to_spec(("embed", "heads", "kv"), DEFAULT_RULES, mesh, q.shape)
  ids = jnp.array([[0, 10, 11, 12, 2, 1, 1, 1]] * 4 + [[0, 20, 21, 22, 23, 24, 25, 2]] * 4)
  mask = (ids != 1).astype(jnp.int32)
  for a, b in zip(_hidden(one, ids, mask), _hidden(many, ids, mask)):
    np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


def test_sharded_init_from_shapes_places_each_shard():
  fam, cfg = registry.preset("xlmr-bench-small")
  mesh = make_mesh(MeshConfig(1, 4, 2))
  graphdef, state = model_init.init(fam, cfg, seed=3, mesh=mesh)
  word = state["embeddings"]["word"][...]
  assert word.shape == (32000, 256)
  # vocab on `tensor` (2), embed on `fsdp` (4): each device holds 1/8 of the table.
  assert word.sharding.spec == jax.sharding.PartitionSpec("tensor", "fsdp")
  assert {s.data.shape for s in word.addressable_shards} == {(16000, 64)}
  assert model_init.count_params(state) == 11549184


def test_logical_rules_fall_back_to_replication_when_indivisible():
  mesh = make_mesh(MeshConfig(1, 4, 2))
  assert logical_to_spec(("vocab", "embed"), DEFAULT_RULES, mesh, (99, 32)) == jax.sharding.PartitionSpec(None, "fsdp")
  assert logical_to_spec(("embed", "embed"), DEFAULT_RULES, mesh, (32, 32)) == jax.sharding.PartitionSpec("fsdp")
  assert logical_to_spec(("batch", "length"), DEFAULT_RULES, mesh, (8, 5)) == jax.sharding.PartitionSpec("fsdp")


# Hugging Face's published parameter counts of the base models (AutoModel, pooler included).
PUBLISHED = {"xlmr-base": 278_043_648, "xlmr-large": 559_890_432, "mbert-base": 177_853_440,
             "bert-base": 109_482_240, "roberta-base": 124_645_632, "roberta-large": 355_359_744,
             "bert-large": 335_141_888}


@pytest.mark.parametrize("name", sorted(PUBLISHED))
def test_preset_sizes_match_hugging_face(name):
  import torch
  import transformers as tf

  fam, cfg = registry.preset(name)
  _, state = model_init.abstract(fam, cfg)
  ours = model_init.count_params(state)
  assert ours == PUBLISHED[name]
  hf_cfg = tf.AutoConfig.for_model(**fam.hf_config_from(cfg))
  with torch.device("meta"):
    hf_model = tf.AutoModel.from_config(hf_cfg)
  assert ours == sum(p.numel() for p in hf_model.parameters())
