"""Packing of text-to-text rows (T5X-style, `xtjax.data.packing`): segment ids and positions as T5X
defines them, whole examples only; a packed row's per-example logits, losses and a train step's loss
and gradients equal the unpacked ones on a tiny mT5; the packed stream replays from a saved position;
the truncation report's padding rates fall."""

from pathlib import Path

import jax
import numpy as np
import optax
import pytest
from t5_fixtures import PROMPTS, tiny_t5_folder

from xtjax.data.batching import DataPosition, MultiTaskStream, TaskStream
from xtjax.data.loader import task_streams
from xtjax.data.packing import SEGMENT_KEYS, check_packable, pack_rows, pack_shard, padding_counts
from xtjax.data.shards import FeatureShard, ShardSpec
from xtjax.errors import ConfigError
from xtjax.models.heads import HeadConfig
from xtjax.models.loading import load_pretrained
from xtjax.models.seq2seq_loss import loss_terms, teacher_forced_logits
from xtjax.parallel.batching import batch_sharding
from xtjax.parallel.mesh import MeshConfig, make_mesh
from xtjax.parallel.rules import DEFAULT_RULES
from xtjax.tasks.base import Features
from xtjax.tasks.featurize import merge_truncation_reports, truncation_report
from xtjax.tasks.text_to_text import encode_pairs
from xtjax.train.setup import EncoderStart, build_model, init_state
from xtjax.train.state import state_sharding
from xtjax.train.step import compile_train_step, make_train_step

TARGETS = ["Hund lazy fox", "the", "world tiny corpus", "x quick brown", "dog", "fox the"]
INPUTS = PROMPTS + ["quick fox"]
TASK = "toy_t2t"


@pytest.fixture(scope="module")
def mt5_folder(tmp_path_factory):
  return tiny_t5_folder(tmp_path_factory, "mt5")


@pytest.fixture(scope="module")
def mt5(mt5_folder):
  return load_pretrained(str(mt5_folder))


def _table(lengths, L=8, T=4, base=10):
  """Rows with input lengths / target lengths `lengths`, tokens numbered by example (base(e+1) + i, 100(e+1) + i)."""
  n = len(lengths)
  ids, mask, labels = np.zeros((n, L), np.int32), np.zeros((n, L), np.int32), np.full((n, T), -100, np.int32)
  for e, (a, b) in enumerate(lengths):
    ids[e, :a], mask[e, :a], labels[e, :b] = base * (e + 1) + np.arange(a), 1, 100 * (e + 1) + np.arange(b)
  return {"input_ids": ids, "attention_mask": mask, "labels": labels}


def test_packed_rows_carry_t5x_segment_ids_and_positions():
  packed, first = pack_rows(_table([(3, 2), (4, 1), (5, 2), (2, 2)]), pad_id=0)
  # First-fit in example order: 0 and 1 share row 0 (7 of 8 inputs); 2 does not fit there, 3 fits row 1.
  assert packed["input_ids"].tolist() == [[10, 11, 12, 20, 21, 22, 23, 0], [30, 31, 32, 33, 34, 40, 41, 0]]
  assert packed["inputs_segment_ids"].tolist() == [[1, 1, 1, 2, 2, 2, 2, 0], [1, 1, 1, 1, 1, 2, 2, 0]]
  assert packed["inputs_positions"].tolist() == [[0, 1, 2, 0, 1, 2, 3, 0], [0, 1, 2, 3, 4, 0, 1, 0]]
  assert packed["attention_mask"].tolist() == [[1] * 7 + [0]] * 2
  assert packed["labels"].tolist() == [[100, 101, 200, -100], [300, 301, 400, 401]]
  assert packed["targets_segment_ids"].tolist() == [[1, 1, 2, 0], [1, 1, 2, 2]]
  assert packed["targets_positions"].tolist() == [[0, 1, 0, 0], [0, 1, 0, 1]]
  assert first.tolist() == [0, 2]


def test_packing_never_splits_an_example_and_keeps_every_one():
  rng = np.random.default_rng(0)
  lengths = [(int(a), int(b)) for a, b in zip(rng.integers(1, 13, 300), rng.integers(1, 4, 300))]
  table = _table(lengths, L=32, T=8, base=100)
  packed, _ = pack_rows(table, pad_id=0, window=4)
  assert len(packed["input_ids"]) < len(lengths) // 2
  found = []
  for r in range(len(packed["input_ids"])):
    for side, tokens, (seg, pos) in (("in", "input_ids", SEGMENT_KEYS[:2]), ("t", "labels", SEGMENT_KEYS[2:])):
      s, p = packed[seg][r], packed[pos][r]
      n = int(s.max())
      assert (np.diff(s[s > 0]) >= 0).all() and set(s[s > 0]) == set(range(1, n + 1))  # 1..n, contiguous
      assert (s[int((s > 0).sum()):] == 0).all() and (p[s == 0] == 0).all()  # padding only at the end
      for k in range(1, n + 1):
        assert p[s == k].tolist() == list(range(int((s == k).sum())))
        if side == "in":
          found.append((r, k, packed[tokens][r][s == k].tolist()))
  # Every example's inputs appear once, whole, and its targets sit in the same row and segment.
  by_first = {row[0] // 100 - 1: (r, k, row) for r, k, row in found}
  assert sorted(by_first) == list(range(len(lengths)))
  for e, (a, b) in enumerate(lengths):
    r, k, row = by_first[e]
    assert row == table["input_ids"][e, :a].tolist()
    assert packed["labels"][r][packed["targets_segment_ids"][r] == k].tolist() == table["labels"][e, :b].tolist()


def test_packing_refuses_what_has_no_packed_form():
  with pytest.raises(ConfigError, match="toy_cls.*classification head"):
    check_packable("toy_cls", "classification", "seq2seq")
  with pytest.raises(ConfigError, match="causal model"):
    check_packable("mnli_t2t", "text_to_text", "causal")


def _pairs_arrays(tok, n=6, L=24, T=6):
  arrays, _ = encode_pairs(list(zip(INPUTS[:n], TARGETS[:n])), tok, input_length=L, target_length=T)
  return arrays


def test_packed_logits_and_losses_equal_each_example_alone(mt5):
  model = mt5.model()
  arrays = _pairs_arrays(mt5.tokenizer, L=64, T=24)
  packed, _ = pack_rows(arrays, mt5.tokenizer.pad_token_id)
  assert len(packed["input_ids"]) < len(arrays["input_ids"]) and packed["inputs_segment_ids"].max() >= 3
  alone = np.asarray(teacher_forced_logits(model, arrays))  # [N, T, V]
  together = np.asarray(teacher_forced_logits(model, packed))
  inputs = [tuple(row[m > 0].tolist()) for row, m in zip(arrays["input_ids"], arrays["attention_mask"])]
  assert len(set(inputs)) == len(inputs)
  seen = []
  for r in range(len(packed["labels"])):
    in_seg, t_seg = packed["inputs_segment_ids"][r], packed["targets_segment_ids"][r]
    for k in range(1, int(t_seg.max()) + 1):
      e = inputs.index(tuple(packed["input_ids"][r][in_seg == k].tolist()))
      at = t_seg == k
      np.testing.assert_allclose(together[r][at], alone[e][:at.sum()], atol=1e-5, rtol=1e-6)  # f32 rounding
      seen.append(e)
  assert sorted(seen) == list(range(len(inputs)))
  one = np.ones(len(arrays["labels"]), np.int32)
  (loss_a, n_a), (loss_p, n_p) = (loss_terms(alone, arrays["labels"], one),
                                  loss_terms(together, packed["labels"], np.ones(len(packed["labels"]), np.int32)))
  assert float(n_a) == float(n_p)
  np.testing.assert_allclose(float(loss_p), float(loss_a), rtol=1e-6)


def test_packed_masks_matter(mt5):
  """Without segment ids the same packed row gives other logits: the masks and positions do the work."""
  model = mt5.model()
  packed, _ = pack_rows(_pairs_arrays(mt5.tokenizer, L=64, T=24), mt5.tokenizer.pad_token_id)
  plain = {k: packed[k] for k in ("input_ids", "attention_mask", "labels")}
  assert not np.allclose(np.asarray(teacher_forced_logits(model, packed)),
                         np.asarray(teacher_forced_logits(model, plain)), atol=1e-3)


def _step(folder, arrays):
  """(loss, params after one SGD(lr=1) step) of one jitted text_to_text train step (its state donated)."""
  mesh = make_mesh(MeshConfig(devices=1))
  pre = load_pretrained(str(folder), mesh=mesh, rules=DEFAULT_RULES)
  start = EncoderStart(pre.family, pre.config, pre.params, pre.tokenizer, "test")
  graphdef, params, param_sh = build_model(start, {TASK: HeadConfig("text_to_text")}, 0, mesh, DEFAULT_RULES)
  state = init_state(params, optax.sgd(1.0), 0)
  state_sh = state_sharding(jax.eval_shape(lambda: state), param_sh, mesh)
  step = compile_train_step(make_train_step(graphdef, optax.sgd(1.0), TASK, "text_to_text", 1, dropout=False),
                            state_sh, None)
  batch = {k: jax.device_put(v, batch_sharding(mesh, DEFAULT_RULES, v.shape)) for k, v in arrays.items()}
  new, metrics = step(state, batch)
  return float(metrics["loss"]), jax.tree.map(np.asarray, new.params)


def test_train_step_on_packed_rows_equals_unpacked(mt5, mt5_folder):
  arrays = _pairs_arrays(mt5.tokenizer, L=64, T=24)
  packed, _ = pack_rows(arrays, mt5.tokenizer.pad_token_id)
  arrays["example_mask"] = np.ones(len(arrays["labels"]), np.int32)
  packed["example_mask"] = np.ones(len(packed["labels"]), np.int32)
  loss_a, params_a = _step(mt5_folder, arrays)
  loss_p, params_p = _step(mt5_folder, packed)
  np.testing.assert_allclose(loss_p, loss_a, rtol=1e-6)
  for a, p in zip(jax.tree.leaves(params_a), jax.tree.leaves(params_p)):
    np.testing.assert_allclose(p, a, atol=1e-5, rtol=0)


def _shard(arrays, spec, num_examples):
  ids = spec.example_ids(num_examples)
  return FeatureShard(TASK, num_examples, Features({k: v[ids] for k, v in arrays.items()}, ids), spec)


def _examples_of(batch):
  """The examples (by first input token) of a packed batch's valid rows."""
  out = []
  for r in np.flatnonzero(batch["example_mask"]):
    seg = batch["inputs_segment_ids"][r]
    out += [int(batch["input_ids"][r][seg == k][0]) // 10 - 1 for k in range(1, int(seg.max()) + 1)]
  return out


def test_packed_stream_replays_from_a_saved_position_on_any_process_count():
  rng = np.random.default_rng(1)
  n = 200
  arrays = _table([(int(a), int(b)) for a, b in zip(rng.integers(1, 9, n), rng.integers(1, 4, n))], L=16, T=6)
  B = 4
  shard, _ = pack_shard(_shard(arrays, ShardSpec(B), n), pad_id=0)
  stream = MultiTaskStream(task_streams([shard], B, seed=3), {TASK: 1.0}, seed=3)
  per_epoch = stream.streams[TASK].batches_per_epoch
  it = stream.iterate(DataPosition())
  run = [next(it)[1:] for _ in range(2 * per_epoch + 3)]
  # One epoch sees every example exactly once.
  epoch = sorted(e for batch, _ in run[:per_epoch] for e in _examples_of(batch))
  assert epoch == list(range(n))
  # Resume at a saved position (mid second epoch): the same batches, array for array.
  saved = DataPosition.from_json(run[per_epoch + 1][1].to_json())
  again = stream.iterate(saved)
  for batch, _ in run[per_epoch + 2:]:
    got = next(again)[1]
    assert got.keys() == batch.keys() and all(np.array_equal(got[k], batch[k]) for k in batch)
  # Two processes pack their own shards into exactly the rows one process has.
  halves = [pack_shard(_shard(arrays, ShardSpec(B, p, 2), n), pad_id=0)[0] for p in range(2)]
  sizes = shard.local_shard_sizes()  # what `gather_shard_sizes` collects from the processes
  assert (sum(h.local_shard_sizes() for h in halves) == sizes).all()
  two = [MultiTaskStream([TaskStream(TASK, h.features.arrays, h.example_ids, sizes, B, 3, h.spec)], {TASK: 1.0},
                         seed=3) for h in halves]
  for step, (batch, _) in enumerate(run):
    joined = {k: np.concatenate([s.at(step)[1][k] for s in two]) for k in batch}
    valid = batch["example_mask"] > 0  # padding rows copy a process's own first row
    assert np.array_equal(joined["example_mask"], batch["example_mask"])
    assert all(np.array_equal(joined[k][valid], batch[k][valid]) for k in batch)


def test_truncation_report_shows_packing_lowers_padding_on_short_examples():
  rng = np.random.default_rng(2)
  n = 100
  arrays = _table([(int(a), int(b)) for a, b in zip(rng.integers(3, 12, n), rng.integers(1, 3, n))], L=64, T=32)
  spec = ShardSpec(4)
  whole = _shard(arrays, spec, n)
  packed, counts = pack_shard(whole, pad_id=0)
  report = truncation_report(n, whole.features, counts)
  assert report["features"] == n and report["packed_rows"] == len(packed.features) < n // 4
  assert report["input_padding_rate"] == pytest.approx(1 - arrays["attention_mask"].sum() / arrays["attention_mask"].size)
  assert report["input_padding_rate"] > 0.8 > 0.3 > report["packed_input_padding_rate"]
  assert report["target_padding_rate"] > report["packed_target_padding_rate"]
  assert padding_counts(packed.features.arrays)["input_slots"] == report["packed_input_slots"]
  # Two processes' reports merge into the one-process report.
  parts = []
  for p in range(2):
    mine = _shard(arrays, ShardSpec(4, p, 2), n)
    parts.append(truncation_report(len(mine.features), mine.features, pack_shard(mine, pad_id=0)[1]))
  assert merge_truncation_reports(parts) == report
  assert "input_padding_rate" not in truncation_report(n, whole.features)  # unpacked runs report as before


@pytest.fixture(scope="module")
def t2t_env(tmp_path_factory, mt5_folder):
  from xtjax.tasks.synthetic import write_toy_data

  root = tmp_path_factory.mktemp("toy-t2t-pack")
  return {"hf": mt5_folder, "data": write_toy_data(root / "data", n_train=96, n_eval=16), "root": root}


def _trainer_run(env, workdir, stop_after=None, **kw):
  from conftest import toy_config

  from xtjax.train.loop import Trainer

  cfg = toy_config(env, model={"pretrained": str(env["hf"])}, tasks=[
      {"name": "toy_cls_t2t", "data": {"path": str(env["data"] / "{split}.{lang}.jsonl")}}], batch_size=4,
      eval_batch_size=4, mesh={"data": 1, "devices": 1}, steps=6, zero_shot=False, eval_every=100, features={"max_length": 64, "max_target_length": 16, "pack": True},
      checkpoint={"every_steps": 2, "keep": 3, "async_save": False}, **kw)
  t = Trainer(cfg, workdir).setup()
  try:
    return t, t.run(stop_after_steps=stop_after)
  finally:
    t.ckpt.close()


@pytest.mark.slow
def test_trainer_packs_reports_padding_and_resumes_exactly(t2t_env, tmp_path):
  full, summary = _trainer_run(t2t_env, tmp_path / "full")
  report = summary["truncation"]["toy_cls_t2t"]["train"]
  assert report["features"] == 96 and report["packed_rows"] < 96
  assert report["packed_input_padding_rate"] < report["input_padding_rate"]
  assert "input_padding_rate" not in summary["truncation"]["toy_cls_t2t"]["dev"]  # dev rows are not packed
  assert set(SEGMENT_KEYS) <= set(full.stream.at(0)[1])
  _, cut = _trainer_run(t2t_env, tmp_path / "cut", stop_after=3)
  assert cut == {"status": "preempted", "step": 3}  # mid-way between the periodic checkpoints (every 2)
  resumed, summary = _trainer_run(t2t_env, tmp_path / "cut")
  assert summary["start"].startswith("resumed from")
  for a, b in zip(jax.tree.leaves(full.state.params), jax.tree.leaves(resumed.state.params)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


SHARED = Path(__file__).parents[2].parent / "shared" / "data"


@pytest.mark.skipif(not (SHARED / "xlmr_tokenizer").exists() or not (SHARED / "ud").exists(),
                    reason="needs /work/shared/data (XLM-R tokenizer, UD English-EWT)")
def test_mnli_like_rows_at_1024_tokens_are_mostly_padding_until_packed():
  """mnli_t2t's form over sentence pairs of real English web text (UD EWT: a sentence and the next, as
  premise and hypothesis), XLM-R's sentencepiece, mT5's 1024 -> 128 lengths; here 500 dev pairs. On all
  6272 train pairs: inputs 51 tokens on average, input padding 95.0% unpacked, 0.6% packed (19.9 per row)."""
  import types

  from transformers import AutoTokenizer

  from xtjax.tasks import registry

  lines = (SHARED / "ud" / "UD_English-EWT" / "en_ewt-ud-dev.conllu").read_text(encoding="utf-8").splitlines()
  sents = [line[len("# text = "):] for line in lines if line.startswith("# text = ")][:1000]
  examples = [types.SimpleNamespace(text_a=a, text_b=b, label="neutral") for a, b in zip(sents[::2], sents[1::2])]
  tok = AutoTokenizer.from_pretrained(str(SHARED / "xlmr_tokenizer"))
  arrays, _ = encode_pairs(registry.get("mnli_t2t").pairs(examples), tok, 1024, 128)
  shard = _shard(arrays, ShardSpec(1), len(examples))
  _, counts = pack_shard(shard, tok.pad_token_id)
  report = truncation_report(len(examples), shard.features, counts)
  assert report["input_padding_rate"] > 0.9 and report["packed_input_padding_rate"] < 0.05, report


def test_pack_keeps_the_feature_cache_and_gives_plan_the_packed_batch(mt5):
  """Packing runs on cached features: switching it on reuses them; `plan` compiles the packed step."""
  from xtjax.data.cache import feature_key
  from xtjax.data.sources import DataSource
  from xtjax.tasks import registry
  from xtjax.tasks.base import FeatureSettings
  from xtjax.train.plan import abstract_batch

  task, source = registry.get("mnli_t2t"), DataSource(kind="hf")
  off, _ = feature_key(task, "train", "en", source, mt5.tokenizer, FeatureSettings())
  on, _ = feature_key(task, "train", "en", source, mt5.tokenizer, FeatureSettings(pack=True))
  longer, _ = feature_key(task, "train", "en", source, mt5.tokenizer, FeatureSettings(max_length=64))
  assert off == on != longer
  plain = abstract_batch("text_to_text", 8, 64, False, 1, 16)
  packed = abstract_batch("text_to_text", 8, 64, False, 1, 16, packed=True)
  assert set(packed) - set(plain) == set(SEGMENT_KEYS)
  assert packed["inputs_positions"].shape == (8, 64) and packed["targets_segment_ids"].shape == (8, 16)
