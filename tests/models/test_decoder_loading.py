"""Sharded safetensors checkpoints stream onto the mesh tensor by tensor, checked before anything is read."""

import json
import shutil

import jax
import numpy as np
import pytest
from decoder_fixtures import make_tiny_decoder
from flax import nnx

from xtjax.errors import CheckpointError
from xtjax.models import decoder_family, hf_io, hf_stream
from xtjax.models import init as model_init
from xtjax.models.loading import load_pretrained
from xtjax.models.scan import to_per_layer
from xtjax.parallel.mesh import MeshConfig, make_mesh
from xtjax.parallel.rules import DEFAULT_RULES, logical_to_spec


@pytest.fixture(scope="module")
def sharded(tmp_path_factory):
  """A tiny Llama saved as several safetensors shards with an index (as 8B/70B checkpoints are)."""
  import transformers

  single = make_tiny_decoder(tmp_path_factory.mktemp("single") / "m", "llama")
  folder = tmp_path_factory.mktemp("sharded") / "m"
  model = transformers.LlamaForCausalLM.from_pretrained(str(single))
  model.save_pretrained(str(folder), max_shard_size="20KB")
  assert len(set(json.loads((folder / hf_io.SAFE_INDEX).read_text())["weight_map"].values())) > 2
  return folder


def _events(monkeypatch):
  """Records every tensor read and every placement, in order; whole-checkpoint reads are forbidden."""
  events = []
  reader, put = hf_stream._reader, model_init.put

  def recording_reader(files):
    get = reader(files)
    return lambda name: events.append(("read", name)) or get(name)

  monkeypatch.setattr(hf_stream, "_reader", recording_reader)
  monkeypatch.setattr(model_init, "put", lambda *a: events.append(("put", a[1])) or put(*a))
  monkeypatch.setattr(hf_io, "read_tensors", lambda folder: pytest.fail("the whole checkpoint was read"))
  return events


def test_streams_tensor_by_tensor_onto_the_mesh(sharded, monkeypatch, layer_layout):
  """Stacked, each layer's tensor is placed on the mesh and written into its slice of the stacked
  parameter on device (never assembled on the host)."""
  expected, _ = decoder_family.params_from_hf(load_pretrained(sharded, with_tokenizer=False).config,
                                              hf_io.read_tensors(sharded))
  events = _events(monkeypatch)
  mesh = make_mesh(MeshConfig(1, 4, 2))
  pre = load_pretrained(sharded, mesh=mesh, with_tokenizer=False)
  kinds = [e[0] for e in events]
  assert kinds == ["read", "put"] * (len(kinds) // 2)  # each tensor placed before the next is read
  assert all(len(e[1].shape) <= 2 for e in events if e[0] == "put")  # one layer's tensor at a time
  pure = nnx.to_pure_dict(pre.params)
  stacked = layer_layout == "stacked"
  assert ("stacked" in pure["layers"]) == stacked
  got = model_init.flat(to_per_layer(jax.tree.map(np.asarray, pure)))
  want = model_init.flat(expected)
  assert got.keys() == want.keys()
  for k in want:
    assert np.array_equal(got[k], want[k]), k
  q = (pure["layers"]["stacked"] if stacked else pure["layers"][0])["attention"]["q"]["kernel"]
  axes = (("layers",) if stacked else ()) + ("embed", "heads")
  assert q.sharding.mesh.shape == mesh.shape
  assert q.sharding.spec == logical_to_spec(axes, DEFAULT_RULES, mesh, q.shape)
  assert len(q.addressable_shards[0].data.shape) == q.ndim and q.addressable_shards[0].data.size == q.size // 8


def _broken_copy(sharded, tmp_path, edit):
  folder = tmp_path / "broken"
  shutil.copytree(sharded, folder)
  index = json.loads((folder / hf_io.SAFE_INDEX).read_text())
  edit(folder, index["weight_map"])
  (folder / hf_io.SAFE_INDEX).write_text(json.dumps(index))
  return folder


def test_bad_sharded_checkpoints_fail_before_anything_is_placed(sharded, tmp_path, monkeypatch):
  def drop(folder, wm):
    del wm["model.layers.1.self_attn.v_proj.weight"]

  def extra(folder, wm):
    wm["model.layers.7.mlp.up_proj.weight"] = wm["model.norm.weight"]

  def lose_shard(folder, wm):
    (folder / wm["model.norm.weight"]).unlink()

  cases = [(drop, "missing tensor 'model.layers.1.self_attn.v_proj.weight'"),
           (extra, "listed in the index but absent from this shard"),
           (lose_shard, "is missing")]
  events = _events(monkeypatch)
  for edit, message in cases:
    with pytest.raises(CheckpointError, match=message):
      load_pretrained(_broken_copy(sharded, tmp_path / edit.__name__, edit), with_tokenizer=False)
    assert not any(e[0] == "put" for e in events)
